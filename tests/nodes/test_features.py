"""The `features` node: columns by name and value, dropna's three modes, the timestamps check,
clashing names, and the artifact round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nodes.errors import NodeError
from runners.io import check_value, read_value, write_value
from tests.nodes.conftest import run_node

NAN = float("nan")


def _index(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC", name="ts")


def _bars(n: int = 6) -> pd.DataFrame:
    c = np.arange(100.0, 100.0 + n)
    return pd.DataFrame(
        {"open": c, "high": c + 1, "low": c - 1, "close": c, "volume": np.full(n, 10.0)},
        index=_index(n),
    )


def _s(values: list[float], n: int | None = None, name: str = "value") -> pd.Series:
    return pd.Series(values, index=_index(n or len(values)), name=name, dtype="float64")


def test_columns_are_added_by_name_with_their_values_and_warmup_dropped() -> None:
    data = _bars()
    a = _s([NAN, 1.0, 2.0, 3.0, 4.0, 5.0])
    b = _s([NAN, NAN, 20.0, 30.0, 40.0, 50.0])
    out = run_node("features", {"data": data, "features": [a, b]}, names=["a", "b"])["features"]
    assert list(out.columns) == ["open", "high", "low", "close", "volume", "a", "b"]
    # the warm-up is the first two rows (b is undefined there); the rest keep their timestamps
    assert list(out.index) == list(data.index[2:])
    assert out["a"].tolist() == [2.0, 3.0, 4.0, 5.0]
    assert out["b"].tolist() == [20.0, 30.0, 40.0, 50.0]
    assert out["close"].tolist() == [102.0, 103.0, 104.0, 105.0]
    assert out.index.name == "ts"
    assert list(data.columns) == ["open", "high", "low", "close", "volume"]  # input untouched


def test_dropna_none_keeps_every_row_and_any_drops_every_gap() -> None:
    data = _bars()
    a = _s([NAN, 1.0, NAN, 3.0, 4.0, 5.0])
    kept = run_node("features", {"data": data, "features": [a]}, names=["a"], dropna="none")
    assert kept["features"].index.equals(data.index)
    assert np.isnan(kept["features"]["a"].iloc[[0, 2]]).all()
    some = run_node("features", {"data": data, "features": [a]}, names=["a"], dropna="any")
    assert list(some["features"].index) == [data.index[i] for i in (1, 3, 4, 5)]
    assert some["features"]["a"].tolist() == [1.0, 3.0, 4.0, 5.0]


def test_a_gap_after_the_warmup_is_an_error_by_default() -> None:
    a = _s([NAN, 1.0, NAN, 3.0, 4.0, 5.0])
    with pytest.raises(NodeError, match=r"'gap' is missing at 2024-01-03.*dropna=\"any\""):
        run_node("features", {"data": _bars(), "features": [a]}, names=["gap"])


def test_a_feature_with_other_timestamps_is_an_error_naming_it() -> None:
    data = _bars()
    shorter = _s([1.0, 2.0, 3.0, 4.0, 5.0])
    with pytest.raises(NodeError, match=r"feature 'short' does not have the frame's.*5 rows vs 6"):
        run_node(
            "features", {"data": data, "features": [_s([1.0] * 6), shorter]}, names=["ok", "short"]
        )
    shifted = pd.Series(np.ones(6), index=_index(7)[1:])
    with pytest.raises(NodeError, match=r"'late'.*row 0: 2024-01-02 00:00:00\+00:00 vs 2024-01-01"):
        run_node("features", {"data": data, "features": [shifted]}, names=["late"])


def test_clashing_names_are_errors() -> None:
    data = _bars()
    a = _s([1.0] * 6)
    with pytest.raises(NodeError, match="would replace the frame's column 'close'"):
        run_node("features", {"data": data, "features": [a]}, names=["close"])
    with pytest.raises(NodeError, match="two features are named 'x'"):
        run_node("features", {"data": data, "features": [a, a]}, names=["x", "x"])
    with pytest.raises(NodeError, match="1 names for 2 features"):
        run_node("features", {"data": data, "features": [a, a]}, names=["x"])


def test_names_must_be_column_names() -> None:
    with pytest.raises(NodeError, match="names"):
        run_node("features", {"data": _bars(), "features": [_s([1.0] * 6)]}, names=["a b"])


def test_without_names_the_series_names_are_used() -> None:
    out = run_node("features", {"data": _bars(), "features": [_s([1.0] * 6, name="mom")]})
    assert "mom" in out["features"].columns


def test_no_row_with_every_feature_is_an_error() -> None:
    with pytest.raises(NodeError, match="no row has every feature"):
        run_node("features", {"data": _bars(), "features": [_s([NAN] * 6)]}, names=["a"])


def test_the_feature_frame_round_trips_through_the_artifact_store(tmp_path: Path) -> None:
    a = _s([NAN, 1.0, 2.0, 3.0, 4.0, 5.0])
    out = run_node("features", {"data": _bars(), "features": [a]}, names=["a"])["features"]
    check_value(out, "frame", "features")
    write_value(out, "frame", tmp_path / "features.parquet")
    back = read_value(tmp_path / "features.parquet")
    pd.testing.assert_frame_equal(back, out, check_freq=False)


def test_names_param_must_belong_to_a_variadic_port() -> None:
    from nodes.base import Node, NodeRegistry, Port, PortType
    from nodes.builtin.ml import FeaturesParams

    class Bad(Node):
        name = "bad_names"
        inputs = (Port("x", PortType.SERIES, names_param="names"),)
        params_model = FeaturesParams

        def run(self, inputs, params):  # type: ignore[no-untyped-def]
            return {}

    with pytest.raises(NodeError, match="names_param of `x` must be a param of a variadic port"):
        NodeRegistry().register(Bad)
