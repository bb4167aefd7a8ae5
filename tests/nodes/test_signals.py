"""Signal nodes: positions in [-1, 1], warm-up 0, holds, combination rules, sizing."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nodes.base import NodeContext, registry
from nodes.errors import NodeError
from tests.nodes.conftest import run_node

NAN = float("nan")


def _series(values: list[float], periods: int | None = None) -> pd.Series:
    index = pd.date_range("2024-01-01", periods=len(values), freq="D", tz="UTC", name="ts")
    return pd.Series(values, index=index, dtype="float64")


def _values(s: pd.Series) -> list[float]:
    return s.to_numpy().tolist()


def test_crossover_long_short_with_warmup_zero_and_hold_on_equal() -> None:
    fast = _series([NAN, 2, 3, 3, 1, 1, 5])
    slow = _series([1, 1, 1, 3, 2, 1, 4])
    out = run_node("crossover", {"fast": fast, "slow": slow})["signal"]
    assert _values(out) == [0.0, 1.0, 1.0, 1.0, -1.0, -1.0, 1.0]


def test_crossover_holds_through_an_undefined_input() -> None:
    # a NaN after the warm-up is no information: hold (it used to go flat, an order)
    fast = _series([2, 3, NAN, 0, NAN])
    slow = _series([1, 1, 1, 1, 1])
    out = run_node("crossover", {"fast": fast, "slow": slow})["signal"]
    assert _values(out) == [1.0, 1.0, 1.0, -1.0, -1.0]


def test_threshold_holds_through_an_undefined_input() -> None:
    out = run_node(
        "threshold", {"series": _series([NAN, 20, NAN, 50, 80, NAN])}, lower=30.0, upper=70.0
    )["signal"]
    assert _values(out) == [0.0, 1.0, 1.0, 1.0, -1.0, -1.0]


def test_crossover_long_only_is_flat_below() -> None:
    fast = _series([2, 0, 0, 2])
    slow = _series([1, 1, 0, 1])
    out = run_node("crossover", {"fast": fast, "slow": slow}, mode="long_only")["signal"]
    assert _values(out) == [1.0, 0.0, 0.0, 1.0]


def test_crossover_refuses_series_with_different_timestamps() -> None:
    with pytest.raises(NodeError, match="same timestamps"):
        run_node("crossover", {"fast": _series([1, 2, 3]), "slow": _series([1, 2])})


def test_threshold_holds_between_levels() -> None:
    rsi = _series([NAN, 50, 25, 40, 75, 50, 20])
    out = run_node("threshold", {"series": rsi}, lower=30.0, upper=70.0)["signal"]
    assert _values(out) == [0.0, 0.0, 1.0, 1.0, -1.0, -1.0, 1.0]


def test_threshold_flat_inside_and_custom_positions() -> None:
    x = _series([50, 25, 40, 75])
    out = run_node("threshold", {"series": x}, lower=30.0, upper=70.0, above=0.5, inside="flat")
    assert _values(out["signal"]) == [0.0, 1.0, 0.0, 0.5]


def test_threshold_with_one_level_only() -> None:
    out = run_node("threshold", {"series": _series([1, -2, 0])}, lower=-1.0, below=-0.5)
    assert _values(out["signal"]) == [0.0, -0.5, -0.5]


@pytest.mark.parametrize(
    "params",
    [{}, {"lower": 70.0, "upper": 30.0}, {"lower": 1.0, "below": 2.0}],
)
def test_threshold_refuses_bad_levels(params: dict) -> None:
    with pytest.raises(NodeError):
        run_node("threshold", {"series": _series([1.0])}, **params)


def test_combine_and_or_mean() -> None:
    a = _series([1, 1, -1, 0.5, 0, -0.5])
    b = _series([0.5, -1, -0.5, 1, 1, 0])
    signals = {"signals": [a, b]}
    assert _values(run_node("combine", signals, how="and")["signal"]) == [
        0.5,
        0.0,
        -0.5,
        0.5,
        0.0,
        0.0,
    ]
    assert _values(run_node("combine", signals, how="or")["signal"]) == [
        1.0,
        0.0,
        -1.0,
        1.0,
        1.0,
        -0.5,
    ]
    assert _values(run_node("combine", signals)["signal"]) == [0.75, 0.0, -0.75, 0.75, 0.5, -0.25]


def test_combine_refuses_a_nan_signal_naming_the_timestamp() -> None:
    with pytest.raises(NodeError, match="2024-01-02"):
        run_node("combine", {"signals": [_series([1, NAN]), _series([1, 1])]})


def test_position_sizer_scales_by_fraction_and_clips() -> None:
    out = run_node(
        "position_sizer", {"signal": _series([1, -1, 0.5])}, fraction=0.5, max_position=0.4
    )
    assert _values(out["signal"]) == [0.4, -0.4, 0.25]


def test_position_sizer_targets_volatility_from_past_returns() -> None:
    prices = _series([100, 110, 99, 108.9, 108.9])
    signal = _series([1, 1, 1, 1, -1])
    out = run_node(
        "position_sizer",
        {"signal": signal, "prices": prices},
        target_vol=0.1,
        vol_window=3,
        ppy=252.0,
        max_position=1.0,
    )["signal"]
    # returns: nan, 0.1, -0.1, 0.1, 0.0; std(ddof=1) of (0.1, -0.1, 0.1) = sqrt(0.04/3)
    vol3 = math.sqrt(((0.1 - 1 / 30) ** 2 * 2 + (-0.1 - 1 / 30) ** 2) / 2) * math.sqrt(252)
    vol4 = float(np.std([-0.1, 0.1, 0.0], ddof=1)) * math.sqrt(252)
    np.testing.assert_allclose(out.to_numpy(), [0.0, 0.0, 0.0, 0.1 / vol3, -0.1 / vol4], rtol=1e-9)


def test_position_sizer_holds_its_scale_where_the_vol_is_undefined() -> None:
    # a flat window (vol 0) used to give 0: the position was closed because the price stopped
    prices = _series([100, 110, 99, 99, 99, 99, 108.9])
    signal = _series([1.0] * 7)
    lines: list[str] = []
    node_type = registry().get("position_sizer")
    params = node_type.validated_params({"target_vol": 0.1, "vol_window": 2, "ppy": 252.0})
    out = node_type(NodeContext(log=lines.append)).run(
        {"signal": signal, "prices": prices}, params
    )["signal"]
    vol2 = float(np.std([0.1, -0.1], ddof=1)) * math.sqrt(252)  # bar 2
    vol3 = float(np.std([-0.1, 0.0], ddof=1)) * math.sqrt(252)  # bar 3
    vol6 = float(np.std([0.0, 0.1], ddof=1)) * math.sqrt(252)  # bar 6
    expected = [0.0, 0.0, 0.1 / vol2, 0.1 / vol3, 0.1 / vol3, 0.1 / vol3, 0.1 / vol6]
    np.testing.assert_allclose(out.to_numpy(), expected, rtol=1e-12)
    assert lines == ["ppy 252: given: ppy=252"]


def test_position_sizer_takes_a_calendar() -> None:
    prices = _series([100, 110, 99, 108.9, 108.9])
    values = [
        run_node(
            "position_sizer",
            {"signal": _series([1.0] * 5), "prices": prices},
            target_vol=0.1,
            vol_window=3,
            **kw,
        )["signal"].iloc[-1]
        for kw in ({"ppy": 365.0}, {"calendar": "crypto"}, {"ppy": 252.0}, {"calendar": "equities"})
    ]
    assert values[0] == values[1] and values[2] == values[3] and values[0] != values[2]


def test_position_sizer_target_vol_needs_prices() -> None:
    with pytest.raises(NodeError, match="prices"):
        run_node("position_sizer", {"signal": _series([1.0])}, target_vol=0.1)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("crossover", {}),
        ("threshold", {"lower": -0.01, "upper": 0.01}),
        ("position_sizer", {"target_vol": 0.2, "vol_window": 10}),
    ],
)
def test_signal_on_a_prefix_equals_the_full_signal(
    name: str, params: dict, random_walk: pd.Series
) -> None:
    fast = random_walk.rolling(5).mean()
    slow = random_walk.rolling(20).mean()
    momentum = random_walk.pct_change()
    sig = pd.Series(np.sign(np.sin(np.arange(len(random_walk)) / 7.0)), index=random_walk.index)

    def inputs(n: int) -> dict:
        return {
            "crossover": {"fast": fast.iloc[:n], "slow": slow.iloc[:n]},
            "threshold": {"series": momentum.iloc[:n]},
            "position_sizer": {"signal": sig.iloc[:n], "prices": random_walk.iloc[:n]},
        }[name]

    full = run_node(name, inputs(len(random_walk)), **params)["signal"]
    assert full.abs().max() <= 1.0 and not full.isna().any()
    for n in (30, 200):
        part = run_node(name, inputs(n), **params)["signal"]
        np.testing.assert_array_equal(part.to_numpy(), full.iloc[:n].to_numpy())
