"""ML building blocks: labels (hand-worked, no leakage past the horizon), the purged time split,
and the gate's neutral zone, confidence threshold and cooldown."""

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


def _frame(close: list[float], high: list[float] | None = None, low: list[float] | None = None):
    c = np.asarray(close, dtype="float64")
    return pd.DataFrame(
        {
            "open": c,
            "high": c if high is None else np.asarray(high, dtype="float64"),
            "low": c if low is None else np.asarray(low, dtype="float64"),
            "close": c,
            "volume": np.full(len(c), 1000.0),
        },
        index=_index(len(c)),
    )


def _walk(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    spread = np.abs(rng.normal(0.0, 0.01, n)) * close
    return _frame(list(close), list(close + spread), list(close - spread))


# -- label_forward_return -----------------------------------------------------------------------


def test_forward_return_labels_by_hand() -> None:
    data = _frame([100, 102, 101, 99, 103, 104])
    out = run_node("label_forward_return", {"data": data}, horizon=2, threshold=0.015)["labels"]
    # r = close[t+2] / close[t] - 1: 101/100-1 = 0.01 (0), 99/102-1 = -0.029 (-1),
    # 103/101-1 = 0.0198 (1), 104/99-1 = 0.0505 (1); rows 4 and 5 have no full horizon
    assert out["label"].tolist() == [0.0, -1.0, 1.0, 1.0]
    assert out["label_return"].to_numpy() == pytest.approx(
        [0.01, 99 / 102 - 1, 103 / 101 - 1, 104 / 99 - 1]
    )
    assert list(out.index) == list(data.index[:4])
    assert list(out["label_end"]) == list(data.index[2:])
    assert list(out.columns[:5]) == ["open", "high", "low", "close", "volume"]
    assert not out.isna().any().any()


def test_forward_return_threshold_is_strict_and_zero_threshold_labels_signs() -> None:
    data = _frame([100, 125, 100, 100])
    labels = run_node("label_forward_return", {"data": data}, horizon=1, threshold=0.25)["labels"]
    # +25% (exact in floats) is not above 0.25 (strictly): 0; 100/125-1 = -20%: 0; flat: 0
    assert labels["label"].tolist() == [0.0, 0.0, 0.0]
    signs = run_node("label_forward_return", {"data": data}, horizon=1)["labels"]
    assert signs["label"].tolist() == [1.0, -1.0, 0.0]


def test_forward_return_refuses_too_few_bars_and_a_relabel() -> None:
    with pytest.raises(NodeError, match="no row with a full horizon"):
        run_node("label_forward_return", {"data": _frame([1, 2, 3])}, horizon=3)
    once = run_node("label_forward_return", {"data": _frame([1, 2, 3])}, horizon=1)["labels"]
    with pytest.raises(NodeError, match="already has"):
        run_node("label_forward_return", {"data": once}, horizon=1)


# -- label_triple_barrier -----------------------------------------------------------------------

_CLOSE = [100, 100.5, 101, 99, 100, 100, 100]
_HIGH = [100.5, 101, 102.5, 100, 100.2, 100.3, 100.1]
_LOW = [99.5, 100, 100.5, 98.5, 99.8, 99.9, 99.9]


@pytest.mark.parametrize(("time_label", "last"), [("zero", 0.0), ("sign", 1.0)])
def test_triple_barrier_by_hand(time_label: str, last: float) -> None:
    data = _frame(_CLOSE, _HIGH, _LOW)
    out = run_node(
        "label_triple_barrier",
        {"data": data},
        horizon=3,
        upper_bps=200,
        lower_bps=100,
        time_label=time_label,
    )["labels"]
    # row 0: barriers 102 / 99; bar 2's high 102.5 touches the upper before bar 3's low 98.5
    # row 1: 102.51 / 99.495; bar 2's high 102.5 misses, bar 3's low 98.5 touches the lower
    # row 2: 103.02 / 99.99; bar 3's low 98.5 touches the lower at once
    # row 3: 100.98 / 98.01; bars 4-6 touch neither: the time barrier (return 100/99-1 > 0)
    assert out["label"].tolist() == [1.0, -1.0, -1.0, last]
    ix = data.index
    assert list(out["label_end"]) == [ix[2], ix[3], ix[3], ix[6]]
    assert out["label_return"].to_numpy() == pytest.approx(
        [0.01, 99 / 100.5 - 1, 99 / 101 - 1, 100 / 99 - 1]
    )


def test_triple_barrier_one_sided_and_same_bar_touches() -> None:
    data = _frame(_CLOSE, _HIGH, _LOW)
    upper_only = run_node("label_triple_barrier", {"data": data}, horizon=3, upper_bps=200)[
        "labels"
    ]
    # without a lower barrier rows 1 and 2 run to the time barrier
    assert upper_only["label"].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert list(upper_only["label_end"]) == [
        data.index[2],
        data.index[4],
        data.index[5],
        data.index[6],
    ]
    # a bar that reaches both barriers: their order inside the bar is unknown, label 0
    both = _frame([100, 100, 100], [100, 103, 100], [100, 97, 100])
    out = run_node("label_triple_barrier", {"data": both}, horizon=1, upper_bps=100, lower_bps=100)
    assert out["labels"]["label"].tolist() == [0.0, 0.0]
    assert out["labels"]["label_end"].tolist() == list(both.index[1:])


def test_triple_barrier_volatility_barriers_start_when_the_volatility_exists() -> None:
    close = [100, 101, 100, 103, 97, 100, 100]
    data = _frame(close)
    out = run_node("label_triple_barrier", {"data": data}, horizon=1, vol_mult=1.0, vol_window=2)[
        "labels"
    ]
    # vol at t needs the returns at t-1 and t: first at row 2; rows 2..5 have a horizon
    assert list(out.index) == list(data.index[2:6])
    r = pd.Series(close).pct_change()
    vol2 = r.iloc[1:3].std(ddof=1)  # ~0.0141: barriers 101.41 / 98.59; close[3] = 103 -> 1
    assert 100 * (1 + vol2) < 103
    assert out["label"].iloc[0] == 1.0


def test_triple_barrier_params_need_one_kind_of_barrier() -> None:
    with pytest.raises(NodeError, match="give upper_bps"):
        run_node("label_triple_barrier", {"data": _frame(_CLOSE)}, horizon=2)
    with pytest.raises(NodeError, match="not both"):
        run_node("label_triple_barrier", {"data": _frame(_CLOSE)}, vol_mult=1.0, upper_bps=5)


_LABELLERS = [
    ("label_forward_return", {"horizon": 5, "threshold": 0.005}),
    ("label_triple_barrier", {"horizon": 5, "upper_bps": 100, "lower_bps": 80}),
    ("label_triple_barrier", {"horizon": 5, "vol_mult": 1.5, "vol_window": 10}),
]


@pytest.mark.parametrize(("name", "params"), _LABELLERS)
def test_labels_at_t_use_only_bars_up_to_t_plus_h(name: str, params: dict) -> None:
    """Changing every bar after t+h never changes label[t] (nor any label before it)."""
    h = params["horizon"]
    data = _walk(120, 3)
    whole = run_node(name, {"data": data}, **params)["labels"]
    rng = np.random.default_rng(11)
    for t in (20, 57, 90, 114 - h):
        changed = data.copy()
        later = changed.index[t + h + 1 :]
        factor = rng.uniform(0.5, 1.5, len(later))
        for col in ("open", "high", "low", "close"):
            changed.loc[later, col] = changed.loc[later, col] * factor
        again = run_node(name, {"data": changed}, **params)["labels"]
        upto = whole.index <= data.index[t]
        pd.testing.assert_frame_equal(again.loc[whole.index[upto]], whole[upto])
        # and the label ends never go past t+h
        assert (whole["label_end"] <= whole.index.shift(h, freq="D")).all()


def test_labels_do_see_bar_t_plus_h() -> None:
    """The horizon is real: changing bar t+h changes label[t] (the test above is not vacuous)."""
    data = _frame([100, 100, 100, 100])
    before = run_node("label_forward_return", {"data": data}, horizon=2)["labels"]
    data.loc[data.index[2], "close"] = 90.0
    after = run_node("label_forward_return", {"data": data}, horizon=2)["labels"]
    assert before["label"].tolist() == [0.0, 0.0]
    assert after["label"].tolist() == [-1.0, 0.0]


# -- train_test_split -----------------------------------------------------------------------


def _labelled(n: int = 20, horizon: int = 3) -> pd.DataFrame:
    data = _walk(n, 5)
    return run_node("label_forward_return", {"data": data}, horizon=horizon)["labels"]


def test_split_by_hand_purges_the_labels_that_reach_the_embargo() -> None:
    labels = _labelled(20, 3)  # 17 rows
    parts = run_node("train_test_split", {"data": labels}, test=0.25, embargo=2)
    train, test = parts["train"], parts["test"]
    # test from row floor(17 * 0.75) = 12; embargo rows 10, 11; a train row i ends at i + 3,
    # which must come before row 10: rows 0..6
    assert list(test.index) == list(labels.index[12:])
    assert list(train.index) == list(labels.index[:7])
    # the same cut from purge=3 on a frame without label_end
    plain = labels.drop(columns=["label_end"])
    by_bars = run_node("train_test_split", {"data": plain}, test=0.25, embargo=2, purge=3)
    assert list(by_bars["train"].index) == list(labels.index[:7])


def test_split_without_label_end_needs_purge() -> None:
    plain = _labelled().drop(columns=["label_end"])
    with pytest.raises(NodeError, match="give purge"):
        run_node("train_test_split", {"data": plain})
    parts = run_node("train_test_split", {"data": plain}, test=0.25, purge=0)
    assert len(parts["train"]) == 12 and len(parts["test"]) == 5
    # a label_end that is not a timestamp of the rows is refused, not compared
    odd = plain.assign(label_end=np.arange(len(plain), dtype="float64"))
    with pytest.raises(NodeError, match="label_end"):
        run_node("train_test_split", {"data": odd})
    # an unknown end (NaT) drops the row: its horizon cannot be checked
    unknown = _labelled()
    unknown.loc[unknown.index[0], "label_end"] = pd.NaT
    train = run_node("train_test_split", {"data": unknown}, test=0.25)["train"]
    assert list(train.index) == list(unknown.index[1:9])


def test_split_from_a_date() -> None:
    labels = _labelled(20, 3)
    parts = run_node("train_test_split", {"data": labels}, test_start="2024-01-13", embargo=1)
    assert parts["test"].index[0] == pd.Timestamp("2024-01-13", tz="UTC")
    # test from row 12, embargo row 11: train rows i with i + 3 < 11
    assert list(parts["train"].index) == list(labels.index[:8])
    with pytest.raises(NodeError, match="test part is empty"):
        run_node("train_test_split", {"data": labels}, test_start="2030-01-01")
    with pytest.raises(NodeError, match="nothing left to train on"):
        run_node("train_test_split", {"data": labels}, test=0.5, embargo=6)


@pytest.mark.parametrize("name", ["label_forward_return", "label_triple_barrier"])
@pytest.mark.parametrize(("test", "embargo"), [(0.2, 0), (0.3, 4), (0.5, 13)])
def test_no_train_label_reaches_the_embargo_or_the_test_part(
    name: str, test: float, embargo: int, tmp_path: Path
) -> None:
    params = {"horizon": 7}
    if name == "label_triple_barrier":
        params |= {"upper_bps": 150, "lower_bps": 150}
    labels = run_node(name, {"data": _walk(200, 9)}, **params)["labels"]
    # through the artifact store, as between two steps of a run
    write_value(labels, "frame", tmp_path / "labels.parquet")
    stored = read_value(tmp_path / "labels.parquet")
    parts = run_node("train_test_split", {"data": stored}, test=test, embargo=embargo)
    train, test_part = parts["train"], parts["test"]
    k = labels.index.get_loc(test_part.index[0])
    first_removed = labels.index[k - embargo]
    assert (train["label_end"] < first_removed).all()
    assert train.index.max() < first_removed
    assert len(test_part) == len(labels) - k
    # purging is not over-eager: the row after the last train row would reach the window
    nxt = labels.index.get_loc(train.index[-1]) + 1
    assert labels["label_end"].iloc[nxt] >= first_removed


# -- gate ---------------------------------------------------------------------------------


def _s(values: list[float]) -> pd.Series:
    return pd.Series(values, index=_index(len(values)), dtype="float64")


def test_gate_neutral_zone_around_a_probability() -> None:
    p = _s([0.5, 0.7, 0.55, 0.3, 0.62, NAN, 0.45, 0.6])
    out = run_node("gate", {"prediction": p}, center=0.5, neutral_zone=0.1)["signal"]
    # x = p - 0.5: 0, .2, .05, -.2, .12, NaN (hold), -.05, .1 (inside the zone: closed)
    assert out.tolist() == [0.0, 1.0, 0.0, -1.0, 1.0, 1.0, 0.0, 0.0]
    check_value(out, "signal", "gate")


def test_gate_confidence_threshold_and_long_only() -> None:
    pred = _s([1, 1, -1, -1, 1, -1])
    conf = _s([0.9, 0.5, 0.8, 0.59, 0.6, NAN])
    out = run_node("gate", {"prediction": pred, "confidence": conf}, threshold=0.6)["signal"]
    assert out.tolist() == [1.0, 0.0, -1.0, 0.0, 1.0, 1.0]
    long_only = run_node(
        "gate", {"prediction": pred, "confidence": conf}, threshold=0.6, mode="long_only"
    )["signal"]
    assert long_only.tolist() == [1.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    # without a confidence input, |prediction - center| is the confidence
    score = _s([0.3, -0.7, 0.8, 0.05])
    assert run_node("gate", {"prediction": score}, threshold=0.5)["signal"].tolist() == [
        0.0,
        -1.0,
        1.0,
        0.0,
    ]


def test_gate_cooldown_by_hand() -> None:
    wanted = _s([1, -1, -1, 0, 0, 1, 1, 1, -1, 0])
    out = run_node("gate", {"prediction": wanted}, cooldown_bars=3)["signal"]
    # change to 1 at 0; -1 wanted at 1, 2 refused; 0 at 3; 1 wanted at 5 refused (2 bars);
    # 1 at 6; -1 at 8 refused; 0 at 9
    assert out.tolist() == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    free = run_node("gate", {"prediction": wanted}, cooldown_bars=1)["signal"]
    assert free.tolist() == [1.0, -1.0, -1.0, 0.0, 0.0, 1.0, 1.0, 1.0, -1.0, 0.0]


@pytest.mark.parametrize("cooldown", [2, 5, 17])
def test_gate_changes_are_at_least_the_cooldown_apart(cooldown: int) -> None:
    rng = np.random.default_rng(cooldown)
    p = _s(list(rng.uniform(0, 1, 400)))
    out = run_node("gate", {"prediction": p}, center=0.5, neutral_zone=0.1, cooldown_bars=cooldown)[
        "signal"
    ]
    changes = np.flatnonzero(np.diff(np.r_[0.0, out.to_numpy()]))
    assert len(changes) > 5
    assert (np.diff(changes) >= cooldown).all()
    assert set(out.unique()) <= {-1.0, 0.0, 1.0}
    # and causal: a prefix gives the same signal
    head = run_node(
        "gate", {"prediction": p.iloc[:150]}, center=0.5, neutral_zone=0.1, cooldown_bars=cooldown
    )["signal"]
    pd.testing.assert_series_equal(head, out.iloc[:150])


def test_gate_inputs_must_share_timestamps() -> None:
    with pytest.raises(NodeError, match="same timestamps"):
        run_node("gate", {"prediction": _s([1, 2, 3]), "confidence": _s([1, 2])})
