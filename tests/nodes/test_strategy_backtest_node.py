"""``strategy_backtest`` in a pipeline, with the module in the real Docker sandbox: its fills and
equity against the SMA crossover worked out here with pandas (an independent implementation of
the module's logic and of the paper venue's fill rule), the config checked again at run time,
and a strategy that raises failing the node with where and why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dsl import compile_source
from live.strategyrefs import FileStrategyResolver
from nodes.errors import NodeError
from runners.inprocess import InProcessRunner

ROOT = Path(__file__).resolve().parents[2]
STRATEGIES = ROOT / "examples" / "strategies"

pytestmark = pytest.mark.docker


def _bars(n: int = 160) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    open_ = close * np.exp(rng.normal(0, 0.005, n))
    index = pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC", name="ts")
    return pd.DataFrame(
        {"open": open_, "high": np.maximum(open_, close) * 1.01,
         "low": np.minimum(open_, close) * 0.99, "close": close, "volume": 1.0},
        index=index,
    )  # fmt: skip


def _run(step: str, bars: pd.DataFrame, base: Path = STRATEGIES) -> tuple[dict[str, Any], list]:
    text = f'pipeline p\ndata = csv_ohlcv(path="x.csv")\n{step}\n'
    result = compile_source(text, filename="p.af", strategies=FileStrategyResolver(base))
    assert result.ok, [d.message for d in result.diagnostics]
    node = result.ir.node("bt")
    logs: list[str] = []
    runner = InProcessRunner(base_dir=base)
    out = runner.compute(node, {"data": {node.inputs["data"].port: bars}}, log=logs.append)
    return out, logs


def _expected(bars: pd.DataFrame, fast: int, slow: int, qty: float, fee_bps: float,
              slip_bps: float, cash: float) -> tuple[pd.DataFrame, pd.Series]:  # fmt: skip
    """The module's crossover and the venue's fills, worked out with pandas: a cross seen at
    bar t's close (after the slow window filled, the first such bar only sets the side) buys
    ``qty`` or sells the position at bar t+1's open, moved by the slippage, paying the fee."""
    close = bars["close"]
    above = close.rolling(fast).mean() > close.rolling(slow).mean()
    valid = close.rolling(slow).count() == slow
    fills = []
    position, last = 0.0, None
    for i in range(len(bars) - 1):
        if not valid.iloc[i]:
            continue
        now = bool(above.iloc[i])
        crossed = last is not None and now != last
        last = now
        if not crossed:
            continue
        side, units = ("buy", qty) if now else ("sell", position)
        if units <= 0:
            continue
        price = bars["open"].iloc[i + 1] * (
            1 + slip_bps / 1e4 if side == "buy" else 1 - slip_bps / 1e4
        )
        fills.append((bars.index[i + 1], side, units, price, units * price * fee_bps / 1e4))
        position += units if side == "buy" else -units
    frame = pd.DataFrame(fills, columns=["ts", "side", "units", "price", "fee"])
    signed = np.where(frame["side"] == "buy", frame["units"], -frame["units"])
    flows = pd.Series((-signed * frame["price"] - frame["fee"]).to_numpy(), index=frame["ts"])
    held = pd.Series(signed, index=frame["ts"]).groupby(level=0).sum()
    position_path = held.reindex(bars.index, fill_value=0.0).cumsum()
    cash_path = cash + flows.groupby(level=0).sum().reindex(bars.index, fill_value=0.0).cumsum()
    return frame, cash_path + position_path * close


def test_the_sandboxed_module_trades_as_the_crossover_worked_out_by_hand(docker_engine) -> None:  # type: ignore[no-untyped-def]
    bars = _bars()
    out, logs = _run(
        'bt = strategy_backtest(data, strategy="sma_cross.py", fast=4, slow=12, qty=3, '
        "fee_bps=10, slippage_bps=5, cash=10000)",
        bars,
    )
    fills, equity = _expected(bars, 4, 12, 3.0, 10.0, 5.0, 10_000.0)
    assert len(fills) >= 6 and set(fills["side"]) == {"buy", "sell"}
    orders = out["orders"]
    assert list(pd.DatetimeIndex(orders["ts"])) == list(fills["ts"])
    assert list(orders["side"]) == list(fills["side"])
    np.testing.assert_allclose(orders["units"], fills["units"], rtol=1e-12)
    np.testing.assert_allclose(orders["price"], fills["price"], rtol=1e-12)
    np.testing.assert_allclose(orders["fee"], fills["fee"], rtol=1e-9)
    np.testing.assert_allclose(out["equity"]["equity"], equity, rtol=1e-10)
    assert out["metrics"]["final_equity"] == pytest.approx(equity.iloc[-1], rel=1e-10)
    assert out["metrics"]["rejected_orders"] == 0
    closed = out["trades"][~out["trades"]["is_open"].astype(bool)]
    assert out["metrics"]["num_trades"] == len(closed) == (fills["side"] == "sell").sum()
    assert any(line.startswith("fill: ") for line in logs)  # the venue's events in the log


def test_a_strategy_that_raises_fails_the_node_at_its_bar(docker_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "boom.py").write_text(
        "from alphaforge_strategy import Strategy\n\n\n"
        "class Boom(Strategy):\n"
        "    def on_tick(self, tick):\n"
        "        if tick['ts'].startswith('2024-01-05'):\n"
        "            return 1 / 0\n"
    )
    with pytest.raises(NodeError) as info:
        _run('bt = strategy_backtest(data, strategy="boom.py")', _bars(20), base=tmp_path)
    message = str(info.value)
    assert "on_tick raised at 1 bar(s), first at 2024-01-05T00:00:00+00:00" in message
    assert "ZeroDivisionError" in message


def test_a_sweep_value_outside_the_schema_is_refused_at_run_time(docker_engine) -> None:  # type: ignore[no-untyped-def]
    """A trial's params come from the sweep, past the compiler: the node checks the config
    against CONFIG_SCHEMA again before any sandbox starts."""
    text = (
        'pipeline p\ndata = csv_ohlcv(path="x.csv")\n'
        'bt = strategy_backtest(data, strategy="sma_cross.py")\n'
    )
    result = compile_source(text, strategies=FileStrategyResolver(STRATEGIES))
    node = result.ir.node("bt")
    trial = node.model_copy(update={"params": {**node.params, "fast": 0}})
    with pytest.raises(
        NodeError, match=r"config of 'sma_cross.py': fast: 0 is less than the minimum of 1"
    ):
        InProcessRunner(base_dir=STRATEGIES).compute(
            trial, {"data": {node.inputs["data"].port: _bars(30)}}
        )
