"""Panels through the runners: wide values stored and checked, column selection of a panel,
custom nodes refusing panels, and a compiled pipeline on a 3-symbol CSV run node by node."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dsl.compiler import compile_or_raise
from dsl.ir import NodeIR
from nodes import panel
from runners.base import RunnerError
from runners.custom import CustomNodeManifest, Limits
from runners.inprocess import InProcessRunner
from runners.io import check_value, read_value, write_value
from runners.jobs import prepare_job
from tests.nodes.panels import long_panel, three_symbols


@pytest.fixture
def bars() -> pd.DataFrame:
    return long_panel(three_symbols())


def test_a_wide_series_round_trips_exactly_with_its_bars(tmp_path: Path, bars) -> None:
    close = panel.wide(bars, "close")
    smooth = panel.set_bars(close.rolling(3).mean(), panel.bars(close))  # NaN on some bars
    smooth.attrs[panel.NAME_ATTR] = "sma"
    path = tmp_path / "value.parquet"
    check_value(smooth, "series", "test")
    write_value(smooth, "series", path)
    back = read_value(path)
    pd.testing.assert_frame_equal(back, smooth, check_freq=False)
    assert (panel.bars(back) == panel.bars(close)).all()
    assert not (panel.bars(back) == back.notna().to_numpy()).all()  # the bars, not the values
    assert back.attrs[panel.NAME_ATTR] == "sma"


def test_a_wide_signal_whose_symbols_need_quoting_round_trips(tmp_path: Path) -> None:
    stamps = pd.date_range("2024-01-01", periods=3, tz="UTC", name="ts")
    weights = pd.DataFrame(
        {"__index_level_0__": [0.5, np.nan, 0.0], "c0": [0.25, 0.5, 1.5], "ts": [0.0, 0.0, -1.0]},
        index=stamps,
    )
    check_value(weights, "signal", "test")  # NaN (no bar) and a weight above 1 are allowed
    write_value(weights, "signal", tmp_path / "w.parquet")
    pd.testing.assert_frame_equal(read_value(tmp_path / "w.parquet"), weights, check_freq=False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda w: w.reset_index(drop=True), "indexed by timestamps"),
        (lambda w: w.iloc[::-1], "ascending"),
        (lambda w: w[["BBB", "AAA", "CCC"]], "sorted"),
        (lambda w: w.assign(AAA="x"), "'AAA' must be numeric"),
        (lambda w: w.assign(AAA=np.inf), "finite"),
    ],
)
def test_check_value_refuses_a_malformed_wide_signal(bars, change, message) -> None:
    weights = panel.wide(bars, "close") * 0.0
    with pytest.raises(RunnerError, match=message):
        check_value(change(weights), "signal", "output 'w' of node 'n'")


def _ir(text: str):
    return compile_or_raise(text)


def _run_all(ir, tmp_path: Path) -> dict[str, dict[str, str]]:
    runner = InProcessRunner(base_dir=tmp_path)
    outputs: dict[str, dict[str, str]] = {}
    for node in ir.nodes:
        paths = {
            port: (
                [outputs[b.node][b.port] for b in binding]
                if isinstance(binding, tuple)
                else outputs[binding.node][binding.port]
            )
            for port, binding in node.inputs.items()
        }
        result = runner.run(node, paths, output_dir=tmp_path / "out" / node.id)
        assert result.status == "completed", (node.id, result.error)
        outputs[node.id] = result.output_paths
    return outputs


def _write_csv(tmp_path: Path, bars: pd.DataFrame) -> None:
    frame = bars.reset_index()
    frame["ts"] = frame["ts"].dt.strftime("%Y-%m-%d")
    frame = frame.sort_values(["symbol", "ts"], kind="stable")  # a file per symbol, appended
    frame.to_csv(tmp_path / "prices.csv", index=False)


def test_a_compiled_rotation_runs_on_a_three_symbol_csv(tmp_path: Path, bars) -> None:
    _write_csv(tmp_path, bars)
    ir = _ir(
        """pipeline rotation "Momentum rotation"
data = csv_ohlcv(path="prices.csv")
mom  = returns(data.close, periods=5)
fast = sma(data.close, window=3)
w    = top_n(mom, n=1)
"""
    )
    outputs = _run_all(ir, tmp_path)
    loaded = read_value(outputs["data"]["bars"])
    pd.testing.assert_frame_equal(loaded, bars, check_freq=False)
    fast = read_value(outputs["fast"]["value"])
    close = panel.wide(bars, "close")
    for s, f in three_symbols().items():
        pd.testing.assert_series_equal(
            fast[s].loc[f.index], f["close"].rolling(3).mean(), check_names=False, check_freq=False
        )
    weights = read_value(outputs["w"]["weights"])
    # momentum over each symbol's own last 5 bars (CCC's gaps are not bars)
    mom = pd.DataFrame(
        {s: f["close"] / f["close"].shift(5) - 1.0 for s, f in three_symbols().items()}
    )
    assert list(weights.columns) == ["AAA", "BBB", "CCC"] and weights.index.equals(close.index)
    assert (weights["BBB"].iloc[:20] == 0).all()  # before its first bar: target 0
    chosen = weights.fillna(0.0)
    for day in close.index[6:]:
        best = mom.loc[day].idxmax()  # NaN (warm-up, no bar) never chosen
        assert chosen.loc[day, best] == 1.0 and chosen.loc[day].sum() == 1.0, day


def test_a_backtest_of_a_panel_fails_with_the_portfolio_hint(tmp_path: Path, bars) -> None:
    _write_csv(tmp_path, bars)
    ir = _ir(
        """pipeline p "p"
data = csv_ohlcv(path="prices.csv")
fast = sma(data.close, window=3)
slow = sma(data.close, window=8)
signal = crossover(fast, slow)
result = backtest(data, signal)
"""
    )
    runner = InProcessRunner(base_dir=tmp_path)
    outputs: dict[str, dict[str, str]] = {}
    for node in ir.nodes:
        paths = {p: outputs[b.node][b.port] for p, b in node.inputs.items()}  # type: ignore[union-attr]
        result = runner.run(node, paths, output_dir=tmp_path / node.id)
        if node.id == "result":
            assert result.status == "failed"
            assert result.error is not None and "portfolio_backtest" in result.error
            assert "input 'data' holds 3 symbols" in result.error
        else:
            assert result.status == "completed", result.error
            outputs[node.id] = result.output_paths


def test_a_custom_node_given_a_panel_is_refused_with_its_id(tmp_path: Path, bars) -> None:
    manifest = CustomNodeManifest.model_validate(
        {
            "name": "my_node",
            "version": "1.0.0",
            "language": "python",
            "inputs": [{"name": "x", "type": "series"}],
            "outputs": [{"name": "y", "type": "series"}],
            "params_schema": {"type": "object", "properties": {}},
            "code": "def run(inputs, params):\n    return {'y': inputs['x']}\n",
        }
    )
    stored = tmp_path / "bars.parquet"
    write_value(bars, "ohlcv", stored)
    ir = NodeIR.model_validate(
        {
            "id": "mine",
            "type": "my_node",
            "version": "1.0.0",
            "inputs": {"x": {"node": "data", "port": "bars", "column": "close"}},
            "outputs": {"y": "series"},
            "runtime": "python",
            "code_hash": manifest.code_hash(),
        }
    )
    with pytest.raises(RunnerError, match=r"node 'mine': custom nodes take one symbol.*3 symbols"):
        prepare_job(ir, manifest, {"x": str(stored)}, {}, Limits.default(), tmp_path / "job")
    wide_file = tmp_path / "close.parquet"
    write_value(panel.wide(bars, "close"), "series", wide_file)
    ir2 = ir.model_copy(
        update={"inputs": {"x": ir.inputs["x"].model_copy(update={"column": None})}}
    )
    with pytest.raises(RunnerError, match="custom nodes take one symbol"):
        prepare_job(ir2, manifest, {"x": str(wide_file)}, {}, Limits.default(), tmp_path / "j2")


def test_compute_selects_a_panel_column_as_a_wide_frame(tmp_path: Path, bars) -> None:
    ir = NodeIR.model_validate(
        {
            "id": "fast",
            "type": "sma",
            "version": "1.0.0",
            "params": {"window": 2},
            "inputs": {"series": {"node": "data", "port": "bars", "column": "close"}},
            "outputs": {"value": "series"},
        }
    )
    out = InProcessRunner(base_dir=tmp_path).compute(ir, {"data": {"bars": bars}})["value"]
    close = panel.wide(bars, "close")
    assert list(out.columns) == ["AAA", "BBB", "CCC"] and out.index.equals(close.index)
    assert close["BBB"].iloc[:20].isna().all() and close["CCC"].iloc[[10, 11, 12, 40]].isna().all()
    for s, f in three_symbols().items():
        want = f["close"].rolling(2).mean()
        pd.testing.assert_series_equal(
            out[s].loc[f.index], want, check_names=False, check_freq=False
        )
