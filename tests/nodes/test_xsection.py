"""Cross-sectional nodes, worked by hand on four symbols and three timestamps."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nodes import panel
from nodes.errors import NodeError
from tests.nodes.panels import run

NAN = math.nan
STAMPS = pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC", name="ts")


@pytest.fixture
def x() -> pd.DataFrame:
    """t0: D has no bar; t1: A and B tie; t2: only C has a value (A and B have bars, still
    warming up: NaN; D has no bar)."""
    frame = pd.DataFrame(
        {
            "A": [1.0, 5.0, NAN],
            "B": [3.0, 5.0, NAN],
            "C": [2.0, 1.0, 4.0],
            "D": [NAN, 2.0, NAN],
        },
        index=STAMPS,
    )
    cells = np.array([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 0]], dtype=bool)
    return panel.set_bars(frame, cells)


def _rows(frame: pd.DataFrame) -> list[list[float]]:
    return frame.to_numpy().round(6).tolist()


def _same(got: pd.DataFrame, want: list[list[float]]) -> None:
    np.testing.assert_allclose(got.to_numpy(), np.array(want), rtol=0, atol=1e-12)


def test_rank_pct_divides_by_the_symbols_ranked_and_averages_ties(x) -> None:
    got = run("rank", {"x": x})["value"]
    _same(got, [[1 / 3, 1.0, 2 / 3, NAN], [0.875, 0.875, 0.25, 0.5], [NAN, NAN, 1.0, NAN]])
    assert list(got.columns) == ["A", "B", "C", "D"] and got.index.equals(STAMPS)


def test_rank_descending_without_pct_counts_from_one(x) -> None:
    got = run("rank", {"x": x}, ascending=False, pct=False)["value"]
    _same(got, [[3.0, 1.0, 2.0, NAN], [1.5, 1.5, 4.0, 3.0], [NAN, NAN, 1.0, NAN]])


def test_rank_agrees_with_pandas_on_random_scores() -> None:
    rng = np.random.default_rng(3)
    values = rng.integers(0, 5, size=(40, 7)).astype(float)  # many ties
    values[rng.random(values.shape) < 0.2] = NAN
    frame = pd.DataFrame(values, columns=list("ABCDEFG"))
    frame.index = pd.date_range("2024-01-01", periods=40, tz="UTC", name="ts")
    got = run("rank", {"x": frame})["value"]
    pd.testing.assert_frame_equal(got, frame.rank(axis=1, pct=True), check_freq=False)


def test_zscore_xs_uses_the_sample_std_and_needs_two_values(x) -> None:
    got = run("zscore_xs", {"x": x})["value"]
    std1 = math.sqrt(12.75 / 3)  # t1: mean 3.25, squared deviations 3.0625·2 + 5.0625 + 1.5625
    want = [
        [-1.0, 1.0, 0.0, NAN],  # mean 2, sample std 1
        [1.75 / std1, 1.75 / std1, -2.25 / std1, -1.25 / std1],
        [NAN, NAN, NAN, NAN],  # one value: undefined
    ]
    _same(got, want)


def test_zscore_xs_population_std_and_a_flat_row(x) -> None:
    got = run("zscore_xs", {"x": x}, ddof=0)["value"]
    assert got.loc[STAMPS[0], "A"] == pytest.approx(-1.0 / math.sqrt(2.0 / 3.0))
    flat = panel.set_bars(x.fillna(7.0) * 0.0 + 7.0, np.ones(x.shape, dtype=bool))
    assert run("zscore_xs", {"x": flat})["value"].isna().all().all()


def test_top_n_holds_the_best_equally_and_nothing_outside_a_symbols_bars(x) -> None:
    got = run("top_n", {"x": x}, n=2)["weights"]
    # D: no bar before t1 and none after it: target 0 (every row sums to the gross)
    _same(got, [[0.0, 0.5, 0.5, 0.0], [0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    assert panel.bars(got).tolist() == panel.bars(x).tolist()


def test_top_n_ranks_a_symbol_in_a_gap_by_its_last_bars_score() -> None:
    """B has no bar at t1 (a halt): it keeps its t0 score (9), stays chosen, and every row's
    weights sum to 1; the portfolio executes B's target at its next bar."""
    frame = pd.DataFrame(
        {"A": [1.0, 2.0, 3.0], "B": [9.0, NAN, 0.5], "C": [2.0, 3.0, 4.0]}, index=STAMPS
    )
    cells = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=bool)
    got = run("top_n", {"x": panel.set_bars(frame, cells)}, n=2)["weights"]
    _same(got, [[0.0, 0.5, 0.5], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5]])
    np.testing.assert_allclose(got.sum(axis=1).to_numpy(), 1.0)
    # a NaN score on a real bar (warm-up) is not filled from earlier bars
    warm = panel.set_bars(frame.assign(B=[9.0, NAN, NAN]), np.ones((3, 3), dtype=bool))
    assert run("top_n", {"x": warm}, n=2)["weights"].loc[STAMPS[1], "B"] == 0.0


def test_top_n_breaks_ties_by_symbol_name(x) -> None:
    got = run("top_n", {"x": x}, n=1)["weights"]
    assert got.loc[STAMPS[1]].tolist() == [1.0, 0.0, 0.0, 0.0]  # A and B tie: A
    tied = panel.set_bars(x[["D", "C", "B", "A"]].sort_index(axis=1), panel.bars(x))
    assert run("top_n", {"x": tied}, n=1)["weights"].loc[STAMPS[1], "A"] == 1.0


def test_top_n_long_short_is_dollar_neutral_and_scales_to_gross(x) -> None:
    got = run("top_n", {"x": x}, n=1, bottom=1, gross=2.0)["weights"]
    # t0: long B (3), short A (1); t1: long A (tie with B), short C (1); t2: only C: long
    _same(got, [[-1.0, 1.0, 0.0, 0.0], [1.0, 0.0, -1.0, 0.0], [0.0, 0.0, 1.0, 0.0]])


def test_top_n_score_weighting_is_proportional_and_skips_non_positive_scores(x) -> None:
    got = run("top_n", {"x": x}, n=2, weighting="score")["weights"]
    assert got.loc[STAMPS[0]].tolist()[:3] == pytest.approx([0.0, 0.6, 0.4])
    negative = panel.set_bars(-x.abs(), panel.bars(x))
    assert (
        (run("top_n", {"x": negative}, n=2, weighting="score")["weights"].fillna(0) == 0)
        .all()
        .all()
    )


def test_weights_normalise_scores_to_the_gross(x) -> None:
    got = run("weights", {"x": x})["weights"]
    _same(got, [[1 / 6, 0.5, 1 / 3, 0.0], [5 / 13, 5 / 13, 1 / 13, 2 / 13], [0.0, 0.0, 1.0, 0.0]])
    centred = panel.set_bars(x - 2.0, panel.bars(x))
    ls = run("weights", {"x": centred}, long_only=False, gross=1.0)["weights"]
    assert ls.loc[STAMPS[0]].tolist()[:3] == pytest.approx([-0.5, 0.5, 0.0])


@pytest.mark.parametrize("name", ["rank", "zscore_xs", "top_n", "weights"])
def test_cross_sectional_nodes_refuse_one_symbols_series(name) -> None:
    series = pd.Series([1.0, 2.0, 3.0], index=STAMPS)
    with pytest.raises(NodeError, match=f"^{name} compares symbols with each other"):
        run(name, {"x": series})


def test_outputs_keep_the_inputs_bars_for_the_next_per_symbol_node(x) -> None:
    ranked = run("rank", {"x": x})["value"]
    assert (panel.bars(ranked) == panel.bars(x)).all()
    smooth = run("sma", {"series": ranked}, window=2)["value"]
    want = [(1 / 3 + 0.875) / 2, (1.0 + 0.875) / 2, (2 / 3 + 0.25) / 2]
    assert _rows(smooth)[1][:3] == [round(v, 6) for v in want]
    assert math.isnan(smooth.loc[STAMPS[1], "D"])  # D's first bar: no window yet
