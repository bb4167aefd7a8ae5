"""Live (paper) and backtest agree bar by bar: the same strategy on the same bars places the
same orders, fills them at the same prices and has the same equity at every close, also when
the engine restarts half-way (its warm-up rebuilds the strategy's state). Round trips and the
venue's accounting are checked against sums worked here by hand."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from live.engine import Engine as LiveEngine
from live.feeds import source_factory
from live.instances import create_instance, save_strategy
from live.store import Desired, LiveStore
from live.tables import LiveBar, LiveOrder, StrategyInstance
from runners.papertrade.backtest import backtest_strategy, round_trips
from runners.papertrade.venue import Order
from tests.deployments.fixtures import wait_for
from tests.live.fakes import HostLedger, ScriptedHost
from tests.live.test_engine import CODE

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = pd.read_csv(ROOT / "examples" / "data" / "sample_ohlcv.csv")
CONFIG = {"fast": 3, "slow": 8}


def _backtest(ledger: HostLedger) -> tuple[pd.DataFrame, pd.DataFrame]:
    want = Desired(id="bt", owner_id=1, strategy_name="sma", strategy_version=1, code="",
                   code_hash="0" * 64, account="bt", market="ASSET", feed={},
                   initial_cash=100_000.0, fee_bps=10, slippage_bps=5, mode="active",
                   config=CONFIG, config_version=1)  # fmt: skip
    result = backtest_strategy(ScriptedHost(want, ledger), SAMPLE, config=CONFIG, cash=100_000.0,
                               fee_bps=10, slippage_bps=5)  # fmt: skip
    assert result.metrics["bars"] == len(SAMPLE) and result.metrics["num_trades"] >= 5
    return result.equity, result.orders


@pytest.mark.parametrize("restart", [False, True])
def test_the_paper_run_equals_the_backtest_bar_by_bar(live_db: Engine, restart: bool) -> None:
    ledger = HostLedger()
    equity, orders = _backtest(ledger)
    store = LiveStore(live_db)
    sources = source_factory(ROOT / "examples")
    engine_ids = iter(f"engine@{socket.gethostname()}:{4_194_400 + n}:0" for n in range(9))

    def engine(speed_source: Callable[[Desired], object]) -> LiveEngine:
        return LiveEngine(store, lambda want: ScriptedHost(want, ledger), speed_source,  # type: ignore[arg-type]
                          engine_id=next(engine_ids), base_backoff_s=0.05)  # fmt: skip

    with Session(live_db) as s:
        strategy, _ = save_strategy(s, 1, "sma_cross", CODE)
        iid = create_instance(
            s, 1, strategy, account="paper", market="ASSET", config=CONFIG, mode="active",
            feed={"kind": "replay", "path": "data/sample_ohlcv.csv", "start": 0, "warmup": 50,
                  "speed": 300 if restart else 0},
            fee_bps=10, slippage_bps=5,
        ).id  # fmt: skip

    def row() -> StrategyInstance:
        with Session(live_db) as s:
            found = s.get(StrategyInstance, iid)
            assert found is not None
            return found

    first = engine(sources)
    live_engine = first
    try:
        first.reconcile()
        if restart:
            wait_for(lambda: row().bars_seen > 300, 60, what="300 bars")
            for worker in list(first.workers.values()):  # the engine process "dies"
                worker.shutdown()
            first.workers.clear()
            assert row().bars_seen < len(SAMPLE)
            live_engine = engine(sources)
            live_engine.reconcile()
        wait_for(lambda: row().status == "ended", 120, what="the end of the replay")
    finally:
        first.shutdown()
        live_engine.shutdown()
    assert ledger.starts[iid] == (2 if restart else 1)
    with Session(live_db) as s:
        bars = s.exec(select(LiveBar).where(col(LiveBar.instance_id) == iid)
                      .order_by(col(LiveBar.bar_ts))).all()  # fmt: skip
        fills = s.exec(select(LiveOrder).where(col(LiveOrder.status) == "filled")
                       .order_by(col(LiveOrder.id))).all()  # fmt: skip
    assert len(bars) == len(SAMPLE)  # every bar once: none skipped, none twice
    index = pd.DatetimeIndex([b.bar_ts for b in bars]).tz_convert("UTC")
    live_eq = pd.Series([b.equity for b in bars], index=index)
    pd.testing.assert_series_equal(live_eq, equity["equity"], check_names=False,
                                   check_freq=False, rtol=1e-12)  # fmt: skip
    assert [(pd.Timestamp(f.filled_bar_ts), f.side, f.qty) for f in fills] == [
        (pd.Timestamp(t), s, u)
        for t, s, u in orders[["ts", "side", "units"]].itertuples(index=False)
    ]
    assert [f.fill_price for f in fills] == pytest.approx(list(orders["price"]), rel=1e-12)


def test_round_trips_and_the_accounting_by_hand() -> None:
    def fill(ts: str, side: str, qty: float, price: float, fee: float) -> Order:
        return Order(client_id=ts, symbol="X", side=side, qty=qty, status="filled",
                     filled_bar_ts=ts, fill_price=price, fee=fee)  # fmt: skip

    fills = [
        fill("2024-01-02", "buy", 10, 100.0, 1.0),
        fill("2024-01-03", "buy", 10, 110.0, 1.1),  # adds: entry 105
        fill("2024-01-05", "sell", 20, 120.0, 2.4),  # closes the long
        fill("2024-01-08", "sell", 5, 118.0, 0.59),  # opens a short
        fill("2024-01-09", "buy", 8, 100.0, 0.8),  # closes it and opens a long of 3
    ]
    trades = round_trips(fills)
    assert list(trades["side"]) == ["long", "short", "long"]
    long1, short, long2 = trades.to_dict("records")
    assert long1["entry_price"] == pytest.approx(105.0)
    assert long1["pnl"] == pytest.approx(20 * 120 - (10 * 100 + 10 * 110) - (1.0 + 1.1 + 2.4))
    assert long1["return"] == pytest.approx(long1["pnl"] / 2100.0)
    # the closing buy's fee splits 5/8 to the short, 3/8 to the new long
    assert short["pnl"] == pytest.approx(5 * (118 - 100) - 0.59 - 0.8 * 5 / 8)
    assert long2["is_open"] and long2["units"] == 3 and long2["fees"] == pytest.approx(0.3)
