"""The look-ahead comparison (pure: no sandbox)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from runners.lookahead import compare_outputs, lookahead_error, values_equal

IDX = pd.date_range("2024-01-01", periods=40, freq="D", tz="UTC", name="ts")
X = pd.Series(np.linspace(1.0, 2.0, 40), index=IDX)


def _run(f, whole_n: int = 40, prefix_n: int = 30):  # type: ignore[no-untyped-def]
    return f(X.iloc[:whole_n]), f(X.iloc[:prefix_n])


def test_values_equal_rules() -> None:
    assert values_equal(math.nan, math.nan)
    assert not values_equal(math.nan, 1.0)
    assert not values_equal(1.0, math.nan)
    assert values_equal(1e6, 1e6 + 1e-4)  # relative to |a| above 1
    assert not values_equal(1e6, 1e6 + 1e-2)
    assert values_equal(0.0, 5e-10)  # absolute below 1
    assert not values_equal(0.0, 2e-9)
    assert values_equal(math.inf, math.inf)
    assert not values_equal(math.inf, -math.inf)


def test_causal_series_passes() -> None:
    whole, prefix = _run(lambda x: x.rolling(3).mean())
    verdict = compare_outputs(
        {"y": whole}, {"y": prefix}, {"y": "series"}, whole_rows=40, prefix_rows=30
    )
    assert verdict["status"] == "pass", verdict
    assert verdict["checked_rows"] == 40
    assert verdict["prefix_rows"] == 30
    assert verdict["first_difference"] is None


def test_shift_minus_one_fails_at_the_prefix_last_row() -> None:
    whole, prefix = _run(lambda x: x.shift(-1))
    verdict = compare_outputs(
        {"y": whole}, {"y": prefix}, {"y": "series"}, whole_rows=40, prefix_rows=30
    )
    assert verdict["status"] == "fail"
    diff = verdict["first_difference"]
    assert diff["port"] == "y"
    assert diff["row"] == 29
    assert diff["ts"] == IDX[29].isoformat()
    assert diff["whole"] == X.iloc[30]
    assert diff["prefix"] is None
    assert "row 29" in verdict["message"]


def test_centered_window_fails_earlier_and_the_earliest_port_wins() -> None:
    w1, p1 = _run(lambda x: x.rolling(5, center=True).mean())  # uses 2 future bars
    w2, p2 = _run(lambda x: x.shift(-1))
    verdict = compare_outputs(
        {"a": w2, "b": w1},
        {"a": p2, "b": p1},
        {"a": "series", "b": "signal"},
        whole_rows=40,
        prefix_rows=30,
    )
    assert verdict["status"] == "fail"
    assert verdict["first_difference"]["port"] == "b"
    assert verdict["first_difference"]["row"] == 28
    assert "'a'" in verdict["message"] and "'b'" in verdict["message"]


def test_tiny_float_noise_is_equal() -> None:
    whole, prefix = _run(lambda x: x * 3)
    noisy = prefix * (1 + 1e-12)
    verdict = compare_outputs(
        {"y": whole}, {"y": noisy}, {"y": "series"}, whole_rows=40, prefix_rows=30
    )
    assert verdict["status"] == "pass"


def test_frame_columns_are_compared_and_named() -> None:
    def features(x: pd.Series) -> pd.DataFrame:
        return pd.DataFrame({"ret": x.pct_change(), "peek": x.shift(-3)}, index=x.index)

    whole, prefix = _run(features)
    verdict = compare_outputs(
        {"f": whole}, {"f": prefix}, {"f": "frame"}, whole_rows=40, prefix_rows=30
    )
    assert verdict["status"] == "fail"
    assert verdict["first_difference"]["row"] == 27
    assert "'f.peek'" in verdict["message"]


def test_metrics_are_not_compared_and_metrics_only_is_skipped() -> None:
    verdict = compare_outputs(
        {"m": {"n": 40}}, {"m": {"n": 30}}, {"m": "metrics"}, whole_rows=40, prefix_rows=30
    )
    assert verdict["status"] == "skipped"
    assert verdict["first_difference"] is None
    whole, prefix = _run(lambda x: x.cumsum())
    verdict = compare_outputs(
        {"m": {"n": 40}, "y": whole},
        {"m": {"n": 30}, "y": prefix},
        {"m": "metrics", "y": "series"},
        whole_rows=40,
        prefix_rows=30,
    )
    assert verdict["status"] == "pass"


def test_error_verdict_shape() -> None:
    verdict = lookahead_error("boom", 40, 30)
    assert verdict == {
        "status": "error",
        "message": "boom",
        "checked_rows": 40,
        "prefix_rows": 30,
        "first_difference": None,
    }
