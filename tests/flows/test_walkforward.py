"""Walk-forward folds (flows.walkforward) on real calendars: rolling and anchored windows,
calendar months and years, an embargo gap, no overlap between test windows and no test bar at
or before a bar its fold trained on."""

from __future__ import annotations

import pandas as pd
import pytest

from dsl.ir import WalkForwardIR
from flows.walkforward import duration_offset, efficiency, folds


def _wf(train: str, test: str, step: str | None = None, anchored: bool = False) -> WalkForwardIR:
    # the seconds are not used by the folds (calendar offsets are): fill them with zeros
    return WalkForwardIR(
        train=train,
        test=test,
        step=step or test,
        train_seconds=0,
        test_seconds=0,
        step_seconds=0,
        anchored=anchored,
    )


def _bdays(start: str, end: str) -> pd.DatetimeIndex:
    return pd.bdate_range(start, end, tz="UTC", name="ts")


def test_rolling_folds_of_two_years_and_six_months_on_business_days() -> None:
    index = _bdays("2018-01-01", "2021-12-31")
    got = folds(index, _wf("2y", "6M"))
    # trains 2018-01-01..2020-01-01, tests 2020-01-01..2020-07-01, then every 6 months
    begins = [(f.train_begin.date().isoformat(), f.test_begin.date().isoformat()) for f in got]
    assert begins == [
        ("2018-01-01", "2020-01-01"),
        ("2018-07-01", "2020-07-01"),
        ("2019-01-01", "2021-01-01"),
        ("2019-07-01", "2021-07-01"),
    ]
    assert [f.partial for f in got] == [False, False, False, False]
    first = got[0]
    assert index[first.train][0] == pd.Timestamp("2018-01-01", tz="UTC")
    assert index[first.train][-1] == pd.Timestamp("2019-12-31", tz="UTC")
    assert index[first.test][0] == pd.Timestamp("2020-01-01", tz="UTC")
    assert index[first.test][-1] == pd.Timestamp("2020-06-30", tz="UTC")
    assert first.test_bars == len(pd.bdate_range("2020-01-01", "2020-06-30"))


def test_no_test_bar_is_seen_in_training_and_tests_never_overlap() -> None:
    index = pd.date_range("2020-01-01", "2023-03-15 12:00", freq="4h", tz="UTC")
    for wf in (_wf("1y", "3M"), _wf("9M", "2M", "3M"), _wf("1y", "1M", anchored=True)):
        for embargo in (None, "5d"):
            got = folds(index, wf, embargo)
            assert got, (wf, embargo)
            tested: set[int] = set()
            for f in got:
                train, test = (
                    set(range(f.train.start, f.train.stop)),
                    set(range(f.test.start, f.test.stop)),
                )
                assert index[f.test.start] > index[f.train.stop - 1]  # strictly later
                assert not tested & test  # no bar judged twice
                tested |= test
                assert not train & test
                if embargo:
                    gap = index[f.test.start] - index[f.train.stop - 1]
                    assert gap > pd.Timedelta(days=5)
            assert got[-1].test.stop <= len(index)


def test_anchored_folds_keep_the_start_and_grow() -> None:
    index = _bdays("2019-01-01", "2021-12-31")
    got = folds(index, _wf("1y", "6M", anchored=True))
    assert {f.train_begin for f in got} == {pd.Timestamp("2019-01-01", tz="UTC")}
    assert [f.train_end.date().isoformat() for f in got] == [
        "2020-01-01",
        "2020-07-01",
        "2021-01-01",
        "2021-07-01",
    ]
    assert [f.train_bars for f in got] == sorted(f.train_bars for f in got)


def test_an_unfinished_last_window_is_partial_and_kept() -> None:
    index = _bdays("2018-01-01", "2020-09-15")
    got = folds(index, _wf("2y", "6M"))
    assert [f.partial for f in got] == [False, True]
    assert index[got[-1].test][-1] == pd.Timestamp("2020-09-15", tz="UTC")


def test_calendar_months_are_calendar_months() -> None:
    assert pd.Timestamp("2020-01-31") + duration_offset("1M") == pd.Timestamp("2020-02-29")
    assert pd.Timestamp("2020-02-29") + duration_offset("1y") == pd.Timestamp("2021-02-28")
    index = pd.date_range("2020-01-31", "2021-12-31", freq="D", tz="UTC")
    got = folds(index, _wf("1M", "1M"))
    # k steps of one month from Jan 31: Feb 29, Mar 31, Apr 30 (not Mar 29, Apr 29 as a chain)
    assert [f.train_end.date().isoformat() for f in got[:3]] == [
        "2020-02-29",
        "2020-03-31",
        "2020-04-30",
    ]


def test_bad_layouts_are_refused_with_a_sentence() -> None:
    index = _bdays("2020-01-01", "2020-12-31")
    with pytest.raises(ValueError, match="step=1M is shorter than test=3M"):
        folds(index, _wf("3M", "3M", "1M"))
    with pytest.raises(ValueError, match=r"too short for one walk-forward fold: it needs train=2y"):
        folds(index, _wf("2y", "1M"))
    with pytest.raises(ValueError, match="not a duration"):
        duration_offset("2 years")
    with pytest.raises(ValueError, match="no bars"):
        folds(index[:0], _wf("1M", "1M"))


# ---- walk-forward efficiency ---------------------------------------------------------------


def test_efficiency_of_a_maximised_objective_is_mean_oos_over_mean_is() -> None:
    # IS 1.2, 0.8, 1.0 -> mean 1.0; OOS 0.6, 0.2, 0.4 -> mean 0.4; 0.4 / 1.0 = 0.4
    assert efficiency([(1.2, 0.6), (0.8, 0.2), (1.0, 0.4)], "maximize") == (0.4, None)
    # losing out of sample after winning in sample is a negative efficiency, and says so
    assert efficiency([(1.0, -0.5), (1.0, -0.3)], "maximize") == (-0.4, None)


def test_no_efficiency_over_an_in_sample_mean_that_is_not_positive() -> None:
    # OOS -0.5 over IS -1.0 would be 0.5, a "good" number for a strategy that lost both times
    value, note = efficiency([(-1.0, -0.5)], "maximize")
    assert value is None and note is not None
    assert note.startswith("the mean in-sample objective is -1, not above 0")
    # a mean of exactly 0 (1.0 and -1.0): no ratio either (the old code divided only by != 0)
    value, note = efficiency([(1.0, 0.3), (-1.0, 0.1)], "maximize")
    assert value is None and note is not None and "is 0, not above 0" in note


def test_efficiency_of_a_minimised_objective_is_mean_is_over_mean_oos() -> None:
    # a drawdown's size: IS 0.10, 0.20 -> mean 0.15; OOS 0.25, 0.35 -> mean 0.30; 0.15 / 0.30
    assert efficiency([(0.10, 0.25), (0.20, 0.35)], "minimize") == (0.5, None)
    assert efficiency([(0.2, 0.2)], "minimize") == (1.0, None)
    # a minimised quantity at or below 0 on either side: no ratio, with both means
    value, note = efficiency([(-0.2, 0.1), (0.1, 0.3)], "minimize")
    assert value is None and note is not None and "here -0.05 and 0.2" in note
    value, note = efficiency([(0.2, 0.0)], "minimize")
    assert value is None and note is not None and "here 0.2 and 0" in note


def test_folds_without_a_best_trial_are_left_out_and_a_missing_oos_is_said() -> None:
    # fold 2 found no best trial (neither number): IS mean 1.0, OOS mean 0.5
    assert efficiency([(1.5, 0.5), (None, None), (0.5, 0.5)], "maximize") == (0.5, None)
    value, note = efficiency([(1.0, 0.5), (1.0, None)], "maximize")
    assert (value, note) == (None, "the out-of-sample run of fold 2 gave no objective")
    value, note = efficiency([(None, None)], "maximize")
    assert value is None and note is not None and "no fold found a best trial" in note
