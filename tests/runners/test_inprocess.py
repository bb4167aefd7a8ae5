"""The in-process runner: typed port files in, typed port files out, failures as results."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dsl.ir import NodeIR
from nodes.base import Node, NodeRegistry, Port, PortType
from nodes.modelfile import ModelFileError
from runners.base import RunnerError
from runners.inprocess import InProcessRunner
from runners.io import check_value, file_name, read_value, write_value
from tests.flows.testnodes import install, node, ref


@pytest.fixture
def runner(tmp_path: Path, test_nodes: None) -> InProcessRunner:
    return InProcessRunner(base_dir=tmp_path)


def _bars(runner: InProcessRunner, tmp_path: Path) -> dict[str, str]:
    result = runner.run(node("data", "t_bars", {"n": 30}), {}, output_dir=tmp_path / "bars")
    assert result.status == "completed", result.error
    return result.output_paths


def test_runner_selects_the_bound_column_and_writes_a_series(runner, tmp_path) -> None:
    bars = _bars(runner, tmp_path)
    ir = node("fast", "t_sleep", {"scale": 2.0}, series=ref("data", "bars", "close"))
    result = runner.run(ir, {"series": bars["bars"]}, output_dir=tmp_path / "fast")
    assert result.status == "completed"
    out = read_value(result.output_paths["value"])
    close = read_value(bars["bars"])["close"]
    assert isinstance(out, pd.Series)
    assert out.index.name == "ts" and str(out.index.tz) == "UTC"
    pd.testing.assert_series_equal(out, close * 2.0, check_names=False)
    assert result.usage["wall_s"] >= 0 and result.logs


def test_node_log_lines_are_tagged_with_the_node_id(runner, tmp_path) -> None:
    result = runner.run(node("data", "t_bars", {"n": 30}), {}, output_dir=tmp_path / "o")
    assert "[data] 30 bars" in result.logs


def test_a_failing_node_gives_its_message_and_keeps_the_traceback_in_the_log(
    runner, tmp_path
) -> None:
    bars = _bars(runner, tmp_path)
    ir = node("bad", "t_fail", {"message": "no data for 1999"}, series=ref("data", "bars", "close"))
    result = runner.run(ir, {"series": bars["bars"]}, output_dir=tmp_path / "bad")
    assert result.status == "failed"
    assert result.error == "no data for 1999"
    assert result.error_kind == "NodeError"
    assert "Traceback" not in result.error
    assert any("Traceback" in line for line in result.logs)


def test_a_crashing_node_is_reported_as_an_internal_error(runner, tmp_path) -> None:
    bars = _bars(runner, tmp_path)
    ir = node("bad", "t_fail", {"crash": True, "message": "x"}, series=ref("data", "bars", "close"))
    result = runner.run(ir, {"series": bars["bars"]}, output_dir=tmp_path / "bad")
    assert result.status == "failed" and result.error_kind == "InternalError"
    assert result.error.startswith("internal error in node 'bad' (t_fail): ValueError: x (")
    assert "tell your operator" in result.error


def test_an_unknown_column_is_named_with_the_columns_there_are(runner, tmp_path) -> None:
    bars = _bars(runner, tmp_path)
    ir = node("fast", "t_sleep", series=ref("data", "bars", "closse"))
    result = runner.run(ir, {"series": bars["bars"]}, output_dir=tmp_path / "fast")
    assert result.status == "failed"
    assert "no column 'closse'" in (result.error or "") and "close" in (result.error or "")


def test_invalid_params_fail_the_node_with_the_type_named(runner, tmp_path) -> None:
    ir = node("data", "t_bars", {"n": "ten"})
    result = runner.run(ir, {}, output_dir=tmp_path / "o")
    assert result.status == "failed"
    assert "invalid params for node type 't_bars'" in (result.error or "")


class _Liar(Node):
    name = "liar"
    outputs = (Port("value", PortType.SERIES),)

    def run(self, inputs: Mapping[str, Any], params: Any) -> dict[str, Any]:
        return {"value": pd.DataFrame({"a": [1.0]})}


class _Silent(Node):
    name = "silent"
    outputs = (Port("value", PortType.SERIES), Port("metrics", PortType.METRICS))

    def run(self, inputs: Mapping[str, Any], params: Any) -> dict[str, Any]:
        return {"value": pd.Series([1.0])}


@pytest.mark.parametrize(
    ("node_type", "expected"),
    [(_Liar, "expected a series (pandas Series), got DataFrame"), (_Silent, "was not produced")],
)
def test_outputs_must_exist_with_their_declared_type(tmp_path, node_type, expected) -> None:
    reg = NodeRegistry()
    reg.register(node_type)
    runner = InProcessRunner(base_dir=tmp_path, node_registry=reg)
    ir = NodeIR(
        id="n",
        type=node_type.name,
        version="1.0.0",
        outputs={p.name: p.type.value for p in node_type.outputs},
    )
    result = runner.run(ir, {}, output_dir=tmp_path / "o")
    assert result.status == "failed"
    assert expected in (result.error or "")


def test_unknown_node_type_suggests_a_close_name(tmp_path) -> None:
    runner = InProcessRunner(base_dir=tmp_path, node_registry=install(NodeRegistry()))
    ir = NodeIR(id="n", type="t_bar", version="1.0.0")
    result = runner.run(ir, {}, output_dir=tmp_path / "o")
    assert result.status == "failed" and "did you mean 't_bars'" in (result.error or "")


def test_metrics_with_nan_are_refused(runner, tmp_path) -> None:
    from runners.base import RunnerError
    from runners.io import check_value

    with pytest.raises(RunnerError, match="use None for undefined"):
        check_value({"sharpe": float("nan")}, PortType.METRICS, "output 'metrics'")


@pytest.mark.parametrize("port_type", ["series", "signal"])
def test_series_round_trip_keeps_name_index_and_values(tmp_path, port_type) -> None:
    idx = pd.date_range("2024-01-01", periods=4, freq="h", tz="UTC", name="ts")
    series = pd.Series([0.0, 1.0, -1.0, 0.5], index=idx, name="close")
    path = tmp_path / file_name("value", port_type)
    write_value(series, port_type, path)
    pd.testing.assert_series_equal(read_value(path), series, check_freq=False)


def test_metrics_and_models_round_trip(tmp_path) -> None:
    write_value({"sharpe": 1.5, "n": 3, "undefined": None}, "metrics", tmp_path / "m.json")
    assert read_value(tmp_path / "m.json") == {"sharpe": 1.5, "n": 3, "undefined": None}
    # a model is stored as a model file, never a pickle: an arbitrary object is refused
    with pytest.raises(ModelFileError, match="got dict"):
        write_value({"weights": [1, 2]}, "model", tmp_path / "model.afmodel")
    with pytest.raises(RunnerError, match="expected a model"):
        check_value({"weights": [1, 2]}, "model", "node 'm' output 'model'")


def test_volume_of_bars_without_volume_stops_the_node_with_a_clear_message(
    runner, tmp_path
) -> None:
    """Bars from a file without a volume column carry volume as all NaN; a node fed
    `data.volume` stops saying so instead of computing on NaN (issue 9, item 3)."""
    bars = _bars(runner, tmp_path)
    frame = read_value(bars["bars"])
    no_volume = frame.assign(volume=float("nan"))
    path = tmp_path / "novol" / file_name("bars", PortType.OHLCV)
    path.parent.mkdir()
    write_value(no_volume, PortType.OHLCV, path)
    ir = node("v", "t_sleep", {"scale": 1.0}, series=ref("data", "bars", "volume"))
    result = runner.run(ir, {"series": str(path)}, output_dir=tmp_path / "v")
    assert result.status == "failed"
    assert result.error_kind == "MISSING_VOLUME"
    assert "node 'v' (data.volume) uses volume" in (result.error or "")
    assert "no volume column (volume is missing)" in (result.error or "")
    # the same bars' close is fine
    ok = node("c", "t_sleep", {"scale": 1.0}, series=ref("data", "bars", "close"))
    assert runner.run(ok, {"series": str(path)}, output_dir=tmp_path / "c").status == "completed"
