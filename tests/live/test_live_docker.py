"""The strategy engine end to end in the real Docker sandbox: the example SMA module
(examples/strategies/sma_cross.py) as two instances on the replay feed — one observing, one
active on the paper venue — each in its own long-lived container; the active one's paper run
equals the strategy's backtest in the sandbox bar by bar; widgets render on request; the
engine leaves no container behind."""

from __future__ import annotations

import json
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
from live.tables import LiveBar, LiveEvent, LiveOrder, StrategyInstance
from runners.papertrade.backtest import backtest_strategy
from runners.strategyhost import strategy_host
from tests.deployments.fixtures import wait_for

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
CODE = (ROOT / "examples" / "strategies" / "sma_cross.py").read_text()
CONFIG = {"fast": 5, "slow": 20, "qty": 10}


def test_observe_and_active_instances_in_the_sandbox_match_the_backtest(
    live_db: Engine, docker_engine: Any, tmp_path: Path
) -> None:
    bars = pd.read_csv(ROOT / "examples" / "data" / "sample_ohlcv.csv").head(260)
    (tmp_path / "data").mkdir()
    bars.to_csv(tmp_path / "data" / "bars.csv", index=False)
    store = LiveStore(live_db)

    def host(want: Desired) -> Any:
        return strategy_host(want.code, instance_id=want.id, choice="docker")

    engine = LiveEngine(store, host, source_factory(tmp_path, confine=True))
    feed = {"kind": "replay", "path": "data/bars.csv", "start": 0, "warmup": 0}
    with Session(live_db) as s:
        strategy, _ = save_strategy(s, 1, "sma_cross", CODE)
        observing = create_instance(s, 1, strategy, account="paper", market="ASSET",
                                    feed=feed, config=CONFIG, mode="observe").id  # fmt: skip
        active = create_instance(s, 1, strategy, account="paper", market="ASSET",
                                 feed=feed | {"speed": 60},
                                 config=CONFIG, mode="active", fee_bps=10,
                                 slippage_bps=5).id  # fmt: skip

    def status(iid: str) -> str:
        with Session(live_db) as s:
            row = s.get(StrategyInstance, iid)
            return row.status if row is not None else "?"

    def seen(iid: str) -> int:
        with Session(live_db) as s:
            row = s.get(StrategyInstance, iid)
            return row.bars_seen if row is not None else 0

    try:
        engine.reconcile()
        wait_for(lambda: seen(active) > 40, 120, what="the active instance running")
        with Session(live_db) as s:  # the dashboard asks for the widgets
            row = s.get(StrategyInstance, active)
            assert row is not None
            row.render_requested_at = pd.Timestamp.now(tz="UTC").to_pydatetime()
            s.add(row)
            s.commit()
        engine.serve_renders()
        with Session(live_db) as s:
            widgets = json.loads((s.get(StrategyInstance, active) or row).widgets_json or "{}")
        assert [w["label"] for w in widgets["widgets"][:3]] == ["Fast SMA", "Slow SMA", "Trades"]
        assert isinstance(widgets["widgets"][0]["value"], float)
        wait_for(lambda: status(observing) == "ended" and status(active) == "ended", 180,
              what="both replays to end")  # fmt: skip
        containers = docker_engine.containers.list(filters={"label": "alphaforge.sandbox=1"})
        ours = [c for c in containers if observing in c.name or active in c.name
                or observing in str(c.labels) or active in str(c.labels)]  # fmt: skip
        assert ours == []  # a replay that ended leaves no container
        with Session(live_db) as s:
            events = s.exec(select(LiveEvent).where(col(LiveEvent.instance_id) == observing)
                            .where(col(LiveEvent.kind) == "intent")).all()  # fmt: skip
            observed_orders = s.exec(select(LiveOrder).where(
                col(LiveOrder.instance_id) == observing)).all()  # fmt: skip
            fills = s.exec(select(LiveOrder).where(col(LiveOrder.instance_id) == active)
                           .where(col(LiveOrder.status) == "filled")
                           .order_by(col(LiveOrder.id))).all()  # fmt: skip
            curve = s.exec(select(LiveBar).where(col(LiveBar.instance_id) == active)
                           .order_by(col(LiveBar.bar_ts))).all()  # fmt: skip
    finally:
        engine.shutdown()
    assert observed_orders == [] and len(events) >= 2
    assert all("not placed" in e.message for e in events)

    result = backtest_strategy(
        strategy_host(CODE, instance_id="bt", choice="docker"), bars, config=CONFIG,
        fee_bps=10, slippage_bps=5,
    )  # fmt: skip
    assert len(fills) == len(result.orders) >= 4
    assert [(pd.Timestamp(f.filled_bar_ts), f.side, f.qty) for f in fills] == [
        (pd.Timestamp(t), side, u)
        for t, side, u in result.orders[["ts", "side", "units"]].itertuples(index=False)
    ]
    assert [f.fill_price for f in fills] == pytest.approx(list(result.orders["price"]), rel=1e-12)
    assert [b.equity for b in curve] == pytest.approx(list(result.equity["equity"]), rel=1e-12)
    assert len(curve) == len(bars)
