"""The four planned example pipelines compile against the real built-in nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl import Diagnostic, compile_file, compile_source
from dsl.ir import InputBinding
from nodes.base import NodeRegistry, registry

SMA_CROSSOVER = """
pipeline sma_crossover "Moving Average Crossover (Sample)"
data   = csv_ohlcv(path="data/sample_ohlcv.csv")
fast   = sma(data.close, window=10)
slow   = sma(data.close, window=30)
signal = crossover(fast, slow)
result = backtest(data, signal, cash=100_000, fee_bps=5, slippage_bps=2)
sweep grid {
    fast.window = [5, 10, 20]
    slow.window = range(20, 100, 10)
    where fast.window < slow.window
    objective maximize result.sharpe
}
walkforward(train=2y, test=6M, step=6M)
"""

RSI_MEAN_REVERSION = """
pipeline rsi_mean_reversion "RSI Mean Reversion"
data   = csv_ohlcv(path="data/sample_ohlcv.csv", start=2021-01-01, end=2023-06-30T00:00)
rsi14  = rsi(data.close, window=14)
raw    = threshold(rsi14, lower=30.0, upper=70.0, below=1.0, above=-1.0, inside="hold")
signal = position_sizer(raw, fraction=0.5)
result = backtest(data, signal, cash=100_000, fee_bps=5, slippage_bps=2)
sweep optuna(trials=200, seed=7) {
    rsi14.window = int(5, 50)
    raw.lower = float(10.0, 40.0)
    objective maximize result.sharpe
}
"""

MACD_TREND = """
pipeline macd_trend "MACD Trend Following"
data    = csv_ohlcv(path="data/sample_ohlcv.csv")
m       = macd(data.close, fast=12, slow=26, signal=9)
entry   = crossover(m.macd, m.signal, mode="long_only")
trend   = ema(data.close, window=100)
regime  = crossover(data.close, trend, mode="long_only")
signal  = combine(entry, regime, how="and")
result  = backtest(data, signal, cash=100_000, fee_bps=5, slippage_bps=2)
stats   = metrics(result.equity, result.trades, result.orders)
"""

BOLLINGER_MULTI_RSI = """
pipeline bollinger_breakout "Bollinger Band Breakout with RSI filters"
data   = csv_ohlcv(path="data/sample_ohlcv.csv")
bands  = bollinger(data.close, window=20, k=2.0)
raw    = threshold(bands.percent_b, lower=0.0, upper=1.0, below=-1.0, above=1.0)
for w in [6, 12, 24] {
    rsi_{w} = rsi(data.close, window=w)
    gate_{w} = threshold(rsi_{w}, lower=30.0, upper=70.0)
}
vote   = combine(raw, gate_6, gate_12, gate_24, how="mean")
signal = position_sizer(vote, data.close, target_vol=0.15, vol_window=20, max_position=1.0)
result = backtest(data, signal, cash=100_000, fee_bps=5, slippage_bps=2)
"""

EXAMPLES = {
    "sma_crossover": SMA_CROSSOVER,
    "rsi_mean_reversion": RSI_MEAN_REVERSION,
    "macd_trend": MACD_TREND,
    "bollinger_breakout": BOLLINGER_MULTI_RSI,
}


def _only_not_executed(diagnostics: list[Diagnostic], source: str) -> bool:
    """No diagnostic but AF008, exactly once per block this version does not execute (a
    ``stream``; sweeps and walk-forward run as sweeps)."""
    blocks = sum(f"\n{kw}" in source for kw in ("stream",))
    return [d.code for d in diagnostics] == ["AF008"] * blocks


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example_compiles_against_the_real_nodes(name: str, reg: NodeRegistry) -> None:
    result = compile_source(EXAMPLES[name], registry=reg)
    assert result.ok and _only_not_executed(result.diagnostics, EXAMPLES[name]), result.format(name)
    assert result.ir is not None and result.ir.name == name


def test_bollinger_example_expands_and_wires_the_loop() -> None:
    ir = compile_source(BOLLINGER_MULTI_RSI, registry=registry()).ir
    assert ir is not None
    assert ir.node("gate_12").inputs["series"] == InputBinding(node="rsi_12", port="value")
    signals = ir.node("vote").inputs["signals"]
    assert [b.node for b in signals] == ["raw", "gate_6", "gate_12", "gate_24"]  # type: ignore[union-attr]
    assert ir.node_ids().index("rsi_24") < ir.node_ids().index("vote")


def test_dates_reach_the_real_loader_as_iso_strings() -> None:
    ir = compile_source(RSI_MEAN_REVERSION, registry=registry()).ir
    assert ir is not None
    params = ir.node("data").params
    assert params["start"] == "2021-01-01" and params["end"].startswith("2023-06-30T00:00")


EXAMPLE_FILES = sorted((Path(__file__).parents[2] / "examples").glob("*.af"))


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_repository_examples_compile_with_the_default_registry(path: Path) -> None:
    """Built-ins from the default registry; `use` pins from examples/nodes and strategy modules
    from files next to the pipeline (as the CLI does)."""
    from cli.nodes_dir import LocalNodeResolver
    from live.strategyrefs import FileStrategyResolver

    resolver = LocalNodeResolver.from_dir(path.parent / "nodes")
    strategies = FileStrategyResolver(path.parent)
    result = compile_file(path, resolver=resolver, strategies=strategies)
    assert result.ok, result.format(str(path))
    assert {n.runtime for n in result.ir.nodes} <= {"builtin", "python"}
