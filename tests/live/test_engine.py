"""The reconciler against a real PostgreSQL database, with scripted hosts (tests/live/fakes.py).

The property: whatever sequence of database changes (instances created, switched between off,
observe and active, reconfigured, moved to a new strategy version, deleted), sandbox crashes,
failing inits and engine restarts, after a reconcile the running set is exactly what the
database wants, each instance at its wanted version, config and mode, and no instance is ever
loaded twice at once. Random sequences, each seed reported on failure.
"""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from live.engine import Engine as LiveEngine
from live.instances import create_instance, delete_instance, save_strategy, update_instance
from live.store import Desired, LiveStore
from live.tables import LiveBar, LiveEvent, LiveOrder, Strategy, StrategyInstance
from runners.papertrade.replay import ReplaySource
from tests.deployments.fixtures import wait_for
from tests.live.fakes import HostLedger, ScriptedHost

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = pd.read_csv(ROOT / "examples" / "data" / "sample_ohlcv.csv")

CODE = """
from alphaforge_strategy import Strategy

class SmaCross(Strategy):
    CONFIG_SCHEMA = {
        "type": "object",
        "properties": {
            "fast": {"type": "integer", "minimum": 1, "default": 3},
            "slow": {"type": "integer", "minimum": 2, "default": 8},
        },
        "additionalProperties": False,
    }

    def on_tick(self, tick):
        pass
"""


def _engine(store: LiveStore, ledger: HostLedger, speed: float, name: str) -> LiveEngine:
    def host(want: Desired) -> ScriptedHost:
        return ScriptedHost(want, ledger)

    def source(want: Desired) -> ReplaySource:
        after = pd.Timestamp(want.last_bar_ts) if want.last_bar_ts is not None else None
        return ReplaySource(SAMPLE, interval="1d", speed=speed, start=10, after=after)

    # a pid that does not exist on this host: a "restart" (a new engine) may take its
    # instances back at once, as after a real engine process died
    return LiveEngine(store, host, source, engine_id=name, lease_s=30, base_backoff_s=0.05,
                      max_backoff_s=0.2)  # fmt: skip


def _gone_engine_id(n: int) -> str:
    """An engine id of this host whose process does not exist (pid above the kernel's max)."""
    return f"engine@{socket.gethostname()}:{4_194_305 + n}:0"


def _wanted(db: Engine) -> dict[str, StrategyInstance]:
    with Session(db) as s:
        rows = s.exec(
            select(StrategyInstance)
            .where(col(StrategyInstance.deleted_at).is_(None))
            .where(col(StrategyInstance.mode) != "off")
        ).all()
        return {r.id: r for r in rows}


def _check(engine: LiveEngine, db: Engine, ledger: HostLedger, seed: int, ops: list[str]) -> None:
    wanted = _wanted(db)
    where = f"seed {seed}, after {ops}"
    assert set(engine.workers) == set(wanted), where
    for iid, row in wanted.items():
        worker = engine.workers[iid]
        assert worker.desired.strategy_version == row.strategy_version, where
        assert worker.desired.config_version == row.config_version, where
        assert worker.mode == row.mode, where
        assert row.engine_id == engine.engine_id, where
    assert all(n <= 1 for n in ledger.max_alive.values()), (dict(ledger.max_alive), where)


@pytest.mark.parametrize("seed", range(6))
def test_random_changes_crashes_and_restarts_converge_without_double_loads(
    live_db: Engine, seed: int
) -> None:
    rng = random.Random(seed)
    store = LiveStore(live_db)
    ledger = HostLedger()
    names = iter(_gone_engine_id(n) for n in range(1000))
    engine = _engine(store, ledger, speed=40.0, name=next(names))
    with Session(live_db) as s:
        strategy, _ = save_strategy(s, 1, "sma_cross", CODE)
        sid = strategy.id
    ops: list[str] = []
    try:
        for _ in range(22):
            with Session(live_db) as s:
                strategy = s.get(Strategy, sid)
                assert strategy is not None
                live = s.exec(
                    select(StrategyInstance).where(col(StrategyInstance.deleted_at).is_(None))
                ).all()
                op = rng.choice(
                    ["create", "create", "mode", "mode", "config", "version", "delete", "crash",
                     "fail_init", "restart", "noop"]
                )  # fmt: skip
                target = rng.choice(live) if live else None
                if op == "create" or target is None:
                    op = "create"
                    create_instance(s, 1, strategy, account="paper", market="ASSET",
                                    feed={"kind": "replay", "path": "x.csv", "warmup": 5},
                                    mode=rng.choice(["off", "observe", "active"]))  # fmt: skip
                elif op == "mode":
                    update_instance(s, target, mode=rng.choice(["off", "observe", "active"]))
                elif op == "config":
                    update_instance(s, target, config={"fast": rng.randint(2, 4),
                                                       "slow": rng.randint(6, 9)})  # fmt: skip
                elif op == "version":
                    code = CODE + f"\n# revision {rng.random()}\n"
                    save_strategy(s, 1, "sma_cross", code)
                    s.refresh(strategy)
                    update_instance(s, target, version=strategy.latest_version)
                elif op == "delete":
                    delete_instance(s, target)
                elif op == "crash":
                    ledger.crash_next.add(target.id)
                elif op == "fail_init":
                    ledger.fail_init.add(target.id)
                elif op == "restart":
                    # the engine process "dies": its workers stop without releasing anything
                    for worker in list(engine.workers.values()):
                        worker.shutdown()
                    engine.workers.clear()
                    engine = _engine(store, ledger, speed=40.0, name=next(names))
            ops.append(op)
            engine.reconcile()
            _check(engine, live_db, ledger, seed, ops)
            time.sleep(rng.choice([0.0, 0.05, 0.2]))
        # every wanted instance ends up running (crashes restarted after their back-off)
        wanted = set(_wanted(live_db))

        def all_running() -> bool:
            engine.reconcile()
            with Session(live_db) as s:
                rows = [s.get(StrategyInstance, i) for i in wanted]
                return all(r is not None and r.status == "running" for r in rows)

        wait_for(all_running, 60, what=f"every instance running (seed {seed}, {ops})")
        _check(engine, live_db, ledger, seed, ops)
    finally:
        engine.shutdown()
    assert all(n == 0 for n in ledger.alive.values()), dict(ledger.alive)
    with Session(live_db) as s:
        rows = s.exec(select(StrategyInstance)).all()
        assert all(r.engine_id is None and r.status in ("stopped", "crashed") for r in rows)


def test_observe_records_intents_then_active_trades_on_the_paper_venue(live_db: Engine) -> None:
    """Observe: intents recorded, no order. Switched to active in place (no reload: the
    strategy keeps its state), orders are placed and fill at the next bar's open with slippage
    and fees; cash and position follow from the fills, worked here by hand."""
    store = LiveStore(live_db)
    ledger = HostLedger()
    engine = _engine(store, ledger, speed=60.0, name=_gone_engine_id(1))
    with Session(live_db) as s:
        strategy, _ = save_strategy(s, 1, "sma_cross", CODE)
        inst = create_instance(s, 1, strategy, account="paper", market="ASSET",
                               feed={"kind": "replay", "path": "x.csv", "warmup": 0},
                               mode="observe", fee_bps=10, slippage_bps=5)  # fmt: skip
        iid = inst.id

    def events(kind: str) -> list[LiveEvent]:
        with Session(live_db) as s:
            return list(s.exec(select(LiveEvent).where(col(LiveEvent.kind) == kind)).all())

    try:
        engine.reconcile()
        wait_for(lambda: len(events("intent")) >= 3, 60, what="intents in observe mode")
        with Session(live_db) as s:
            assert s.exec(select(LiveOrder)).all() == []
            row = s.get(StrategyInstance, iid)
            assert row is not None
            update_instance(s, row, mode="active")
        report = engine.reconcile()
        assert report.switched == [iid] and not report.reloaded
        wait_for(lambda: len(events("fill")) >= 4, 60, what="fills in active mode")
        engine.shutdown()
    finally:
        engine.shutdown()
    assert ledger.starts[iid] == 1 and ledger.modes[iid][-1] == "active"
    assert all("not placed" in e.message for e in events("intent"))
    bars = SAMPLE.assign(ts=pd.to_datetime(SAMPLE["ts"], utc=True)).set_index("ts")
    with Session(live_db) as s:
        orders = s.exec(select(LiveOrder).order_by(col(LiveOrder.id))).all()
        row = s.get(StrategyInstance, iid)
    filled = [o for o in orders if o.status == "filled"]
    assert len(filled) >= 4 and row is not None and row.cash is not None
    cash, position = 100_000.0, 0.0
    for order in filled:
        placed = pd.Timestamp(order.placed_bar_ts).tz_convert("UTC")
        nxt = bars.index[bars.index.get_loc(placed) + 1]
        assert pd.Timestamp(order.filled_bar_ts).tz_convert("UTC") == nxt
        slip = 1 + 5e-4 if order.side == "buy" else 1 - 5e-4
        assert order.fill_price == pytest.approx(bars.loc[nxt, "open"] * slip, rel=1e-12)
        assert order.fee == pytest.approx(10e-4 * order.qty * order.fill_price, rel=1e-12)
        signed = order.qty if order.side == "buy" else -order.qty
        cash -= signed * order.fill_price + order.fee
        position += signed
    assert row.cash == pytest.approx(cash, rel=1e-12)
    assert position >= 0  # never short: the strategy sells what it holds


def test_a_failing_instance_never_takes_the_others_down(live_db: Engine) -> None:
    store = LiveStore(live_db)
    ledger = HostLedger()
    engine = _engine(store, ledger, speed=20.0, name=_gone_engine_id(2))
    with Session(live_db) as s:
        strategy, _ = save_strategy(s, 1, "sma_cross", CODE)
        ids = [
            create_instance(s, 1, strategy, account="paper", market="ASSET",
                            feed={"kind": "replay", "path": "x.csv"}, mode="active").id
            for _ in range(3)
        ]  # fmt: skip
    try:
        engine.reconcile()
        wait_for(
            lambda: all(len(ledger.ticks[i]) > 3 for i in ids), 60, what="ticks on every instance"
        )
        for _ in range(3):
            ledger.crash_next.add(ids[0])
            time.sleep(0.3)
        wait_for(lambda: ledger.starts[ids[0]] >= 3, 60, what="the crashing instance's restarts")
        before = {i: len(ledger.ticks[i]) for i in ids[1:]}
        wait_for(lambda: all(len(ledger.ticks[i]) > before[i] + 5 for i in ids[1:]), 60,
              what="the other instances going on")  # fmt: skip
        assert all(ledger.starts[i] == 1 for i in ids[1:])  # never reloaded
        row = store.instance(ids[0])
        assert row is not None and row.restarts >= 2
        with Session(live_db) as s:
            crashes = s.exec(
                select(LiveEvent).where(col(LiveEvent.instance_id) == ids[0])
                .where(col(LiveEvent.kind) == "crash")
            ).all()  # fmt: skip
        assert crashes and "code 137" in crashes[0].message
    finally:
        engine.shutdown()


def test_a_reload_from_a_snapshot_read_before_the_old_worker_stopped_does_no_bar_twice(
    live_db: Engine,
) -> None:
    """A reconcile reads the desired state, then stops the old worker and loads the new one
    from that snapshot; bars the old worker stored in between must not be done again (they
    were: the new worker stored a bar twice and crashed on the bars' primary key)."""
    store = LiveStore(live_db)
    ledger = HostLedger()
    engine = _engine(store, ledger, speed=40.0, name=_gone_engine_id(7))
    with Session(live_db) as s:
        strategy, _ = save_strategy(s, 1, "sma_cross", CODE)
        inst = create_instance(s, 1, strategy, account="paper", market="ASSET",
                               feed={"kind": "replay", "path": "x.csv", "warmup": 0},
                               mode="observe")  # fmt: skip
        iid = inst.id

    def stored() -> list[object]:
        with Session(live_db) as s:
            return list(s.exec(select(LiveBar.bar_ts).where(col(LiveBar.instance_id) == iid)))

    try:
        engine.reconcile()
        wait_for(lambda: len(stored()) >= 3, 60, what="the first bars")
        snapshot = next(d for d in store.desired() if d.id == iid)  # read now ...
        seen = len(stored())
        wait_for(lambda: len(stored()) >= seen + 4, 60, what="more bars after the snapshot")
        engine._unload(iid, status=None)  # ... used after the old worker did more bars
        after_unload = len(stored())
        engine._load(snapshot)
        # the new worker's own bars (the old one may have done many before it stopped)
        wait_for(lambda: ledger.starts[iid] == 2, 60, what="the new worker's host")
        wait_for(lambda: len(stored()) >= after_unload + 8, 60, what="bars after the reload")
        crashes = [e for e in _events(live_db, "crash")]
        assert crashes == [], [e.message for e in crashes]
    finally:
        engine.shutdown()
    bars = stored()
    assert len(bars) == len(set(bars))
    assert ledger.starts[iid] == 2


def _events(db: Engine, kind: str) -> list[LiveEvent]:
    with Session(db) as s:
        return list(s.exec(select(LiveEvent).where(col(LiveEvent.kind) == kind)).all())
