"""Binance feeds across a restart: the bars that closed while the engine (or a stream pipeline)
was down are filled from REST and processed, then the live ones, each once, in order.

The local server (``binance_server.py``) replays ``data/binance_klines_1m.jsonl`` from 00:30;
the test holds its clock, stops the engine, lets time pass with nobody listening (the klines
closed meanwhile are on REST only, never on a socket), then starts a new engine. Expected bars
and values come from the recording; the orders from a hand-worked SMA cross (the scripted
host's rule, tests/live/fakes.py) over the recorded closes, as one run without a restart would
place them, and fills at the next bar's open with slippage and fees.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from live.engine import Engine as LiveEngine
from live.feeds import source_factory
from live.instances import create_instance, save_strategy
from live.store import Desired, LiveStore
from live.stream import StreamPipeline, StreamService
from live.tables import LiveBar, LiveEvent, LiveOrder, StrategyInstance
from tests.deployments.fixtures import wait_for
from tests.live.binance_server import BinanceReplay, recording
from tests.live.fakes import HostLedger, ScriptedHost
from tests.live.stream_support import compiled, read_csv_events, workdir, write_af
from tests.live.test_binance_source import LIVE, MINUTE
from tests.live.test_engine import CODE, _gone_engine_id

WARMUP = 20
FAST, SLOW = 3, 8
FEE_BPS, SLIP_BPS = 10.0, 5.0
AWAY = 15  # minutes the engine is down (after the hold): klines only REST has


def _utc(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")


def _expected_orders(klines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The scripted host's SMA cross over every closed kline (history included), trading from
    LIVE: a market order placed on a bar fills at the next bar's open, slipped, with a fee."""
    closes: list[float] = []
    position, pending = 0.0, None
    out: list[dict[str, Any]] = []
    for k in klines:
        closes.append(float(k["c"]))
        if k["t"] < LIVE:
            continue
        if pending is not None:
            side, qty, placed = pending
            slip = 1 + SLIP_BPS / 1e4 if side == "buy" else 1 - SLIP_BPS / 1e4
            price = float(k["o"]) * slip
            out.append({"side": side, "qty": qty, "placed": placed, "filled": k["t"],
                        "price": price, "fee": FEE_BPS / 1e4 * qty * price})  # fmt: skip
            position += qty if side == "buy" else -qty
            pending = None
        fast, slow = sum(closes[-FAST:]) / FAST, sum(closes[-SLOW:]) / SLOW
        if fast > slow and position <= 0:
            pending = ("buy", 10.0, k["t"])
        elif fast < slow and position > 0:
            pending = ("sell", position, k["t"])
    return out


def _engine(store: LiveStore, ledger: HostLedger, sources: Any, name: str) -> LiveEngine:
    def host(want: Desired) -> ScriptedHost:
        return ScriptedHost(want, ledger)

    return LiveEngine(store, host, sources, engine_id=name, lease_s=30, base_backoff_s=0.05,
                      max_backoff_s=0.2)  # fmt: skip


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[BinanceReplay]:
    with BinanceReplay(recording(), start_ms=LIVE, market=request.param) as replay:
        yield replay


@pytest.mark.parametrize(
    ("server", "how"), [("spot", "stopped"), ("usdm", "killed")], indirect=["server"]
)
def test_a_restarted_engine_fills_the_bars_it_missed_then_goes_on_live(
    live_db: Engine, server: BinanceReplay, how: str, tmp_path: Path
) -> None:
    btc = [k for k in server.closed() if k["s"] == "BTCUSDT"]
    orders = _expected_orders(btc)
    # stop the engine just after the bar of an order, so that it fills after the restart
    hold = next(o["placed"] for o in orders if o["placed"] >= LIVE + 10 * MINUTE) + MINUTE
    assert hold + (AWAY + 5) * MINUTE <= btc[-1]["t"]  # live bars after the missed ones
    futures = server.market == "usdm"
    ws = f"{server.ws_url}/market" if futures else server.ws_url
    options = {"ws_url": ws, "rest_url": server.rest_url, "backoff_initial": 0.02,
               "backoff_max": 0.2}  # fmt: skip
    sources = source_factory(tmp_path, **{"binance_futures" if futures else "binance": options})
    store = LiveStore(live_db)
    ledger = HostLedger()
    with Session(live_db) as s:
        strategy, _ = save_strategy(s, 1, "sma_cross", CODE)
        inst = create_instance(
            s, 1, strategy, account="paper", market="BTCUSDT",
            feed={"kind": "binance_futures" if futures else "binance", "interval": "1m",
                  "warmup": WARMUP},
            config={"fast": FAST, "slow": SLOW}, mode="active", initial_cash=10_000_000.0,
            fee_bps=FEE_BPS, slippage_bps=SLIP_BPS,
        )  # fmt: skip
        iid = inst.id

    def bars() -> list[LiveBar]:
        with Session(live_db) as s:
            query = select(LiveBar).where(col(LiveBar.instance_id) == iid)
            return list(s.exec(query.order_by(col(LiveBar.bar_ts))).all())

    server.hold(hold)
    first = _engine(store, ledger, sources, _gone_engine_id(10))
    try:
        first.reconcile()
        before = [k for k in btc if LIVE <= k["t"] < hold]
        wait_for(lambda: len(bars()) == len(before), 60, what="the bars before the hold")
        assert server.passed_closed("BTCUSDT")[-1]["t"] == hold - MINUTE
    finally:
        if how == "stopped":
            first.shutdown()
        else:  # the engine process dies: its workers stop, nothing is released
            for worker in list(first.workers.values()):
                worker.shutdown()
    ticks_before = len(ledger.ticks[iid])
    server.advance(hold + AWAY * MINUTE)  # time passes; nobody listens
    server.release()
    second = _engine(store, ledger, sources, _gone_engine_id(11))
    try:
        assert second.reconcile().loaded == [iid]
        live = [k for k in btc if k["t"] >= LIVE]

        def at_the_end() -> bool:
            got = bars()
            return bool(got) and pd.Timestamp(got[-1].bar_ts) == _utc(live[-1]["t"])

        wait_for(at_the_end, 60, what="the recording's last bar after the restart")
        time.sleep(0.3)  # nothing more may come
    finally:
        second.shutdown()

    got = bars()
    assert [(_utc(k["t"]), float(k["c"])) for k in live] == [
        (pd.Timestamp(b.bar_ts).tz_convert("UTC"), b.close) for b in got
    ]  # every bar once, in order, with its recorded close: none lost while the engine was down
    # the restarted instance: its warm-up ends on its last processed bar, then the missed bars
    # (from REST: no socket ever sent them) and the live ones
    resumed = [pd.Timestamp(t) for t in ledger.ticks[iid][ticks_before:]]
    expected = [_utc(k["t"]) for k in btc if k["t"] >= hold - WARMUP * MINUTE]
    assert resumed == expected
    assert ledger.starts[iid] == 2 and ledger.max_alive[iid] == 1
    missed = {_utc(k["t"]) for k in btc if hold <= k["t"] < hold + (AWAY - 1) * MINUTE}
    assert missed <= {pd.Timestamp(b.bar_ts).tz_convert("UTC") for b in got}
    klines = [r for r in server.rest_requests if int(r.get("startTime", -1)) == hold - MINUTE + 1]
    assert klines, server.rest_requests  # the gap-fill asked for what followed the last bar
    with Session(live_db) as s:
        placed = s.exec(
            select(LiveOrder).where(col(LiveOrder.instance_id) == iid)
            .order_by(col(LiveOrder.id))
        ).all()  # fmt: skip
        warmed = s.exec(
            select(LiveEvent).where(col(LiveEvent.instance_id) == iid)
            .where(col(LiveEvent.message).startswith("warmed up"))
        ).all()  # fmt: skip
        row = s.get(StrategyInstance, iid)
    assert [e.message for e in warmed] == [f"warmed up on {WARMUP} bar(s) of history "
                                           "(observe mode)"] * 2  # fmt: skip
    filled = [o for o in placed if o.status == "filled"]
    assert len(filled) >= 3
    assert [
        (o.side, o.qty, pd.Timestamp(o.placed_bar_ts).tz_convert("UTC"),
         pd.Timestamp(o.filled_bar_ts).tz_convert("UTC"))
        for o in filled
    ] == [(o["side"], o["qty"], _utc(o["placed"]), _utc(o["filled"]))
          for o in orders[: len(filled)]]  # fmt: skip
    for order, want in zip(filled, orders, strict=False):
        assert order.fill_price == pytest.approx(want["price"], rel=1e-12)
        assert order.fee == pytest.approx(want["fee"], rel=1e-12)
    # the order of the last bar before the stop filled on the first bar after it
    across = [o for o in filled if pd.Timestamp(o.placed_bar_ts) == _utc(hold - MINUTE)]
    assert len(across) == 1 and pd.Timestamp(across[0].filled_bar_ts) == _utc(hold)
    # the book: every expected fill of the recording is there (the last bar's order is open)
    done = [o for o in orders if o["filled"] <= live[-1]["t"]]
    assert len(filled) == len(done)
    cash = 10_000_000.0 - sum(
        (o["qty"] if o["side"] == "buy" else -o["qty"]) * o["price"] + o["fee"] for o in done
    )
    assert row is not None and row.cash == pytest.approx(cash, rel=1e-12)
    assert got[-1].position == sum(o["qty"] if o["side"] == "buy" else -o["qty"] for o in done)


PIPELINE = """pipeline resume

data = csv_ohlcv(path="data/sample_ohlcv.csv")
fast = sma(data.close, window=3)

stream {{
    source = {kind}(symbols=["BTCUSDT", "ETHUSDT"], interval=1m, ws_url="{ws}",
                  rest_url="{rest}")
    warmup = 10m
    every 1m
    emit fast to csv_append(path="out/fast.csv")
}}
"""


@pytest.mark.parametrize("server", ["spot"], indirect=True)
def test_a_restarted_stream_pipeline_evaluates_the_bars_it_missed(
    server: BinanceReplay, tmp_path: Path
) -> None:
    folder = workdir(tmp_path)
    text = PIPELINE.format(kind="binance", ws=server.ws_url, rest=server.rest_url)
    ir = compiled(write_af(folder, "resume", text))
    hold = LIVE + 20 * MINUTE

    def run(until: pd.Timestamp) -> dict[str, Any]:
        pipeline = StreamPipeline(ir, base_dir=folder, state_dir=folder / "state",
                                  straggler_s=0.2)  # fmt: skip
        service = StreamService([pipeline])
        service.start()

        def reached() -> bool:
            path = folder / "state" / "state.json"
            if not path.is_file():
                return False
            last = json.loads(path.read_text())["last"]
            return all(pd.Timestamp(last.get(s, 0)) >= until for s in ("BTCUSDT", "ETHUSDT"))

        try:
            wait_for(reached, 60, 0.1, what=f"evaluations up to {until}")
            service.drain_sinks(30)
        finally:
            service.stop()
        return pipeline.health()

    server.hold(hold)
    first = run(_utc(hold - MINUTE))
    server.advance(hold + AWAY * MINUTE)
    server.release()
    end = max(k["t"] for k in server.closed())
    second = run(_utc(end))
    assert not first["errors"] and not second["errors"], (first["errors"], second["errors"])
    assert second["first_live"] == _utc(hold).isoformat()  # resumed from REST, not the socket
    events = read_csv_events(folder / "out" / "fast.csv")
    closed = server.closed()
    closes = {(k["s"], k["t"]): float(k["c"]) for k in closed}
    wanted = sorted((_utc(k["t"]), k["s"]) for k in closed if k["t"] >= LIVE)
    assert sorted(zip(events["ts"], events["symbol"], strict=True)) == wanted  # once each, no gap
    for row in events.itertuples():
        t = int(row.ts.value // 1_000_000)
        expected = sum(closes[(row.symbol, t - i * MINUTE)] for i in range(3)) / 3
        assert row.value == pytest.approx(expected, rel=1e-12), row
