"""Indicators against values computed by hand, and the no-look-ahead property."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from nodes.base import registry
from nodes.errors import NodeError
from tests.nodes.conftest import make_bars, run_node

NAN = float("nan")


def _series(values: list[float]) -> pd.Series:
    index = pd.date_range("2024-01-01", periods=len(values), freq="D", tz="UTC", name="ts")
    return pd.Series(values, index=index, dtype="float64")


def _eq(actual: pd.Series, expected: list[float]) -> None:
    np.testing.assert_allclose(actual.to_numpy(), np.array(expected), rtol=1e-12, atol=1e-12)


def test_sma_is_the_mean_of_the_last_window_values_with_nan_warmup() -> None:
    out = run_node("sma", {"series": _series([1, 2, 3, 4, 6])}, window=3)["value"]
    _eq(out, [NAN, NAN, 2.0, 3.0, 13 / 3])


def test_ema_is_seeded_with_the_sma_then_recursive() -> None:
    # alpha = 2 / (3 + 1) = 0.5; seed = mean(2, 4, 6) = 4;
    # then 0.5*4 + 0.5*8 = 6 and 0.5*6 + 0.5*12 = 9
    out = run_node("ema", {"series": _series([2, 4, 6, 8, 12])}, window=3)["value"]
    _eq(out, [NAN, NAN, 4.0, 6.0, 9.0])


def test_ema_skips_leading_nan_and_passes_over_a_later_nan() -> None:
    lead = run_node("ema", {"series": _series([NAN, 2, 4, 6, 8, 12])}, window=3)["value"]
    _eq(lead, [NAN, NAN, NAN, 4.0, 6.0, 9.0])
    gap = run_node("ema", {"series": _series([2, 4, 6, NAN, 8])}, window=3)["value"]
    _eq(gap, [NAN, NAN, 4.0, NAN, 6.0])  # 0.5*4 + 0.5*8


def test_rsi_uses_wilder_smoothing_and_is_100_without_losses() -> None:
    # changes 1, 1, -1, 2; window 2: gains avg (1+1)/2 = 1, losses 0 -> 100;
    # then gain 0.5*1 + 0.5*0 = 0.5, loss 0.5*0 + 0.5*1 = 0.5 -> 50;
    # then gain 0.5*0.5 + 0.5*2 = 1.25, loss 0.25 -> 100 * 1.25 / 1.5
    out = run_node("rsi", {"series": _series([1, 2, 3, 2, 4])}, window=2)["value"]
    _eq(out, [NAN, NAN, 100.0, 50.0, 100 * 1.25 / 1.5])


def test_rsi_is_undefined_while_the_price_has_never_moved() -> None:
    # It was 100 (TA-Lib: 0), so an RSI 30/70 strategy traded on no information. Window 2:
    # changes 0, 0, 0, then 2 (gain avg 0.5*0 + 0.5*2 = 1, loss 0 -> 100), then -1
    # (gain 0.5, loss 0.5 -> 50), then flat: both averages halve, the ratio stays 50.
    out = run_node("rsi", {"series": _series([5, 5, 5, 5, 7, 6, 6, 6])}, window=2)["value"]
    _eq(out, [NAN, NAN, NAN, NAN, 100.0, 50.0, 50.0, 50.0])


def test_an_rsi_threshold_strategy_does_not_trade_on_a_flat_start() -> None:
    prices = _series([5.0] * 20 + [5.0 - 0.1 * i for i in range(1, 6)])
    rsi = run_node("rsi", {"series": prices}, window=14)["value"]
    signal = run_node("threshold", {"series": rsi}, lower=30.0, upper=70.0)["signal"]
    assert signal.iloc[:20].eq(0.0).all()  # no level crossed while nothing moved
    assert signal.iloc[-1] == 1.0  # the falling prices after it: RSI 0 < 30, long


def test_macd_lines_from_seeded_emas() -> None:
    x = _series([2, 4, 6, 8, 12, 10])
    out = run_node("macd", {"series": x}, fast=2, slow=3, signal=2)
    # EMA(2), alpha 2/3: 3, 5, 7, 31/3, 91/9 from bar 1;
    # EMA(3), alpha 1/2: 4, 6, 9, 9.5 from bar 2
    macd = [NAN, NAN, 1.0, 1.0, 31 / 3 - 9, 91 / 9 - 9.5]
    # signal EMA(2) of macd: seed mean(1, 1) = 1 at bar 3;
    # then 1/3 + 2/3 * 4/3 = 11/9 and 11/27 + 2/3 * 11/18
    signal = [NAN, NAN, NAN, 1.0, 11 / 9, 11 / 27 + (2 / 3) * (11 / 18)]
    _eq(out["macd"], macd)
    _eq(out["signal"], signal)
    _eq(out["hist"], [m - s for m, s in zip(macd, signal, strict=True)])


def test_macd_refuses_fast_not_below_slow() -> None:
    with pytest.raises(NodeError, match="fast must be smaller than slow"):
        run_node("macd", {"series": _series([1, 2, 3])}, fast=26, slow=12)


def test_bollinger_uses_population_std_and_percent_b() -> None:
    out = run_node("bollinger", {"series": _series([1, 2, 3, 4, 6])}, window=3, k=2.0)
    s1 = math.sqrt(2 / 3)  # std(ddof=0) of (1, 2, 3) and of (2, 3, 4)
    s2 = math.sqrt(((3 - 13 / 3) ** 2 + (4 - 13 / 3) ** 2 + (6 - 13 / 3) ** 2) / 3)
    _eq(out["middle"], [NAN, NAN, 2.0, 3.0, 13 / 3])
    _eq(out["upper"], [NAN, NAN, 2 + 2 * s1, 3 + 2 * s1, 13 / 3 + 2 * s2])
    _eq(out["lower"], [NAN, NAN, 2 - 2 * s1, 3 - 2 * s1, 13 / 3 - 2 * s2])
    pct_last = (6 - (13 / 3 - 2 * s2)) / (4 * s2)
    _eq(out["percent_b"], [NAN, NAN, (1 + 2 * s1) / (4 * s1), (1 + 2 * s1) / (4 * s1), pct_last])


def test_bollinger_percent_b_is_nan_on_a_flat_window() -> None:
    out = run_node("bollinger", {"series": _series([5, 5, 5, 6])}, window=3)
    assert np.isnan(out["percent_b"].iloc[2])
    assert out["upper"].iloc[2] == 5.0


def test_atr_is_wilder_average_of_true_range() -> None:
    bars = make_bars([9, 10, 10, 11], [9, 11, 10, 14])
    bars["high"] = [10.0, 12.0, 11.0, 15.0]
    bars["low"] = [8.0, 9.0, 9.0, 12.0]
    # TR: 2 (first bar: high - low), max(3, |12-9|, |9-9|) = 3, max(2, 0, |9-11|) = 2,
    # max(3, |15-10|, |12-10|) = 5; window 2: seed 2.5, 0.5*2.5 + 0.5*2 = 2.25, 0.5*2.25 + 0.5*5
    out = run_node("atr", {"bars": bars}, window=2)["value"]
    _eq(out, [NAN, 2.5, 2.25, 3.625])


def test_momentum_is_the_change_over_the_lag() -> None:
    out = run_node("momentum", {"series": _series([1, 4, 9, 16])}, window=2)["value"]
    _eq(out, [NAN, NAN, 8.0, 12.0])


def test_returns_simple_and_log() -> None:
    x = _series([100, 110, 99])
    _eq(run_node("returns", {"series": x})["value"], [NAN, 0.1, -0.1])
    _eq(run_node("returns", {"series": x}, log=True)["value"], [NAN, math.log(1.1), math.log(0.9)])
    _eq(run_node("returns", {"series": x}, periods=2)["value"], [NAN, NAN, -0.01])


def test_zscore_uses_sample_std_and_is_nan_when_flat() -> None:
    out = run_node("zscore", {"series": _series([1, 2, 3, 5, 5, 5, 5])}, window=3)["value"]
    # windows (1,2,3): (3 - 2) / 1; (2,3,5): (5 - 10/3) / sqrt(7/3); (3,5,5): (5 - 13/3) /
    # sqrt(4/3); (5,5,5) and again: flat -> NaN
    expected = [NAN, NAN, 1.0, (5 / 3) / math.sqrt(7 / 3), (2 / 3) / math.sqrt(4 / 3), NAN, NAN]
    _eq(out, expected)


def test_indicators_refuse_a_non_numeric_series() -> None:
    with pytest.raises(NodeError, match="numeric"):
        run_node("sma", {"series": pd.Series(["a", "b"])}, window=1)


def test_window_below_one_is_refused_by_the_params_model() -> None:
    with pytest.raises(ValidationError):
        registry().get("sma").parse_params({"window": 0})


_LOOKAHEAD_CASES = [
    ("sma", {"window": 10}),
    ("ema", {"window": 10}),
    ("rsi", {"window": 14}),
    ("macd", {}),
    ("bollinger", {"window": 20}),
    ("momentum", {"window": 5}),
    ("returns", {"periods": 3, "log": True}),
    ("zscore", {"window": 15}),
]


@pytest.mark.parametrize(("name", "params"), _LOOKAHEAD_CASES)
def test_indicator_output_on_a_prefix_equals_the_full_output(
    name: str, params: dict, random_walk: pd.Series
) -> None:
    full = run_node(name, {"series": random_walk}, **params)
    for n in (40, 137, 300):
        part = run_node(name, {"series": random_walk.iloc[:n]}, **params)
        for port, series in part.items():
            np.testing.assert_array_equal(series.to_numpy(), full[port].iloc[:n].to_numpy())
            assert series.notna().any(), f"{name}.{port} is all warm-up on {n} bars"


def test_atr_output_on_a_prefix_equals_the_full_output(random_walk: pd.Series) -> None:
    bars = make_bars(random_walk.shift(1).fillna(100.0).to_numpy(), random_walk.to_numpy())
    full = run_node("atr", {"bars": bars}, window=14)["value"]
    for n in (20, 250):
        part = run_node("atr", {"bars": bars.iloc[:n]}, window=14)["value"]
        np.testing.assert_array_equal(part.to_numpy(), full.iloc[:n].to_numpy())


# -- the documented differences from TA-Lib, checked against TA-Lib's algorithm -------------------
# TA-Lib is not a dependency; these loops restate its ta_ATR.c and ta_MACD.c (default settings)
# plainly, so the docs' claims ("the gap shrinks by 1 - 1/window a bar") are tested.


def _talib_atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(high), np.nan)
    tr = [np.nan] + [
        max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
        for i in range(1, len(high))
    ]
    prev = sum(tr[1 : n + 1]) / n  # no true range on bar 0: seed with bars 1..n
    out[n] = prev
    for today in range(n + 1, len(high)):
        prev = (prev * (n - 1) + tr[today]) / n
        out[today] = prev
    return out


def _talib_ema_from(x: np.ndarray, period: int, seed_end: int) -> np.ndarray:
    """EMA seeded at ``seed_end`` with the mean of the ``period`` values ending there."""
    k = 2.0 / (period + 1)
    out = np.full(len(x), np.nan)
    prev = float(np.mean(x[seed_end - period + 1 : seed_end + 1]))
    out[seed_end] = prev
    for today in range(seed_end + 1, len(x)):
        prev = (x[today] - prev) * k + prev
        out[today] = prev
    return out


def test_atr_differs_from_talib_only_by_the_seed_and_the_gap_decays_as_documented(
    random_walk: pd.Series,
) -> None:
    bars = make_bars(random_walk.shift(1).fillna(100.0).to_numpy(), random_walk.to_numpy())
    n = 14
    ours = run_node("atr", {"bars": bars}, window=n)["value"].to_numpy()
    theirs = _talib_atr(
        bars["high"].to_numpy(), bars["low"].to_numpy(), bars["close"].to_numpy(), n
    )
    assert np.isnan(theirs[n - 1]) and not np.isnan(ours[n - 1])  # we start a bar earlier
    gap = ours[n:] - theirs[n:]
    assert gap[0] != 0.0
    np.testing.assert_allclose(
        gap, gap[0] * (1 - 1 / n) ** np.arange(len(gap)), rtol=1e-6, atol=1e-12
    )


def test_macd_differs_from_talib_only_by_the_fast_seed_and_the_gap_decays_as_documented(
    random_walk: pd.Series,
) -> None:
    fast, slow, signal = 12, 26, 9
    x = random_walk.to_numpy()
    ours = run_node("macd", {"series": random_walk}, fast=fast, slow=slow, signal=signal)
    line = ours["macd"].to_numpy()
    # TA-Lib: both EMAs start at bar slow - 1; the fast one from the mean of its last `fast` bars
    theirs = _talib_ema_from(x, fast, slow - 1) - _talib_ema_from(x, slow, slow - 1)
    gap = line[slow - 1 :] - theirs[slow - 1 :]
    assert gap[0] != 0.0
    decay = (1 - 2 / (fast + 1)) ** np.arange(len(gap))
    np.testing.assert_allclose(gap, gap[0] * decay, rtol=1e-6, atol=1e-12)
