"""resample and align: a hand-worked case, pandas' resample per symbol, and fill policies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nodes import panel
from nodes.errors import NodeError
from tests.nodes.panels import DAYS, long_panel, run, symbol_bars, three_symbols

AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


def _minutes(stamps: list[str], symbol: str | None = None) -> pd.DataFrame:
    index = pd.DatetimeIndex(stamps, tz="UTC", name="ts")
    n = len(index)
    close = np.arange(1, n + 1, dtype=float) * 10.0
    frame = pd.DataFrame(
        {
            "open": close - 1.0,
            "high": close + np.arange(n) % 3,
            "low": close - 2.0 - np.arange(n) % 2,
            "close": close,
            "volume": np.arange(1, n + 1, dtype=float),
        },
        index=index,
    )
    if symbol is not None:
        frame["symbol"] = symbol
    return frame


def test_resample_by_hand_labels_the_interval_start_and_drops_empty_hours() -> None:
    bars = _minutes(
        ["2024-03-01 10:00", "2024-03-01 10:01", "2024-03-01 10:59", "2024-03-01 12:30"]
    )
    out = run("resample", {"bars": bars}, rule="1h")["bars"]
    assert [str(t) for t in out.index] == ["2024-03-01 10:00:00+00:00", "2024-03-01 12:00:00+00:00"]
    # 10:00 hour: opens 9, 19, 29 / closes 10, 20, 30 / highs 10, 21, 32 / lows 8, 17, 28
    assert out.iloc[0].tolist() == [9.0, 32.0, 8.0, 30.0, 6.0]
    assert out.iloc[1].tolist() == [39.0, 40.0, 37.0, 40.0, 4.0]  # the 12:30 bar alone
    assert list(out.columns) == ["open", "high", "low", "close", "volume"]


@pytest.mark.parametrize("rule", ["15min", "1h", "4h", "1d"])
def test_resample_of_a_panel_matches_pandas_per_symbol(rule: str) -> None:
    rng = np.random.default_rng(5)
    minutes = pd.date_range("2024-03-01", periods=3 * 24 * 60, freq="min", tz="UTC", name="ts")
    parts = {}
    for i, s in enumerate(["AAA", "BBB", "CCC"]):
        keep = np.sort(rng.choice(len(minutes), size=len(minutes) // (i + 2), replace=False))
        parts[s] = symbol_bars(10 + i, minutes[keep], s)
    out = run("resample", {"bars": long_panel(parts)}, rule=rule)["bars"]
    order = list(zip(out.index, out["symbol"], strict=True))
    assert order == sorted(order) and len(set(order)) == len(order)
    for s, frame in parts.items():
        pandas_rule = rule.replace("d", "D")  # pandas 3 spells a day "D"
        want = frame[list(AGG)].resample(pandas_rule, label="left", closed="left").agg(AGG)
        want = want.dropna(subset=["open"])
        got = out[out["symbol"] == s][list(AGG)]
        pd.testing.assert_frame_equal(got, want, check_freq=False)


def test_resample_weeks_start_on_monday() -> None:
    bars = _minutes(["2024-03-03 23:00", "2024-03-04 00:00", "2024-03-10 23:59"])  # Sun, Mon, Sun
    out = run("resample", {"bars": bars}, rule="1w")["bars"]
    assert [str(t.date()) for t in out.index] == ["2024-02-26", "2024-03-04"]
    assert out["volume"].tolist() == [1.0, 5.0]


def test_resample_of_a_prefix_changes_only_the_last_partial_bar() -> None:
    minutes = pd.date_range("2024-03-01", periods=600, freq="min", tz="UTC", name="ts")
    bars = symbol_bars(4, minutes, "X")
    whole = run("resample", {"bars": bars}, rule="1h")["bars"]
    for cut in (61, 150, 299, 420):
        part = run("resample", {"bars": bars.iloc[:cut]}, rule="1h")["bars"]
        pd.testing.assert_frame_equal(part.iloc[:-1], whole.iloc[: len(part) - 1])


def test_resample_refuses_an_unknown_rule() -> None:
    with pytest.raises(NodeError, match="rule '1month'"):
        run("resample", {"bars": _minutes(["2024-03-01 10:00"])}, rule="1month")


# ---- align ------------------------------------------------------------------------------------


@pytest.fixture
def bars() -> pd.DataFrame:
    return long_panel(three_symbols())  # BBB from day 20, CCC without days 10-12 and 40


def _of(frame: pd.DataFrame, symbol: str) -> pd.DataFrame:
    return frame[frame["symbol"] == symbol]


def test_align_intersection_keeps_the_days_every_symbol_has(bars) -> None:
    out = run("align", {"bars": bars}, calendar="intersection")["bars"]
    days = DAYS[20:].delete(20)  # from BBB's listing, without CCC's missing day 40
    for s in ("AAA", "BBB", "CCC"):
        assert _of(out, s).index.equals(days)
    assert not out["filled"].any()


def test_align_union_without_fill_changes_nothing(bars) -> None:
    out = run("align", {"bars": bars})["bars"]
    pd.testing.assert_frame_equal(out.drop(columns="filled"), bars)
    assert out["filled"].dtype == bool and not out["filled"].any()


def test_align_ffill_fills_gaps_flat_with_no_volume_and_never_backfills(bars) -> None:
    out = run("align", {"bars": bars}, fill="ffill")["bars"]
    ccc = _of(out, "CCC")
    assert ccc.index.equals(DAYS)
    filled = ccc[ccc["filled"]]
    assert filled.index.equals(DAYS[[10, 11, 12, 40]])
    day9 = ccc.loc[DAYS[9], "close"]
    for col in ("open", "high", "low", "close"):
        assert (filled.loc[DAYS[10:13], col] == day9).all()
    assert (filled["volume"] == 0.0).all()
    assert _of(out, "BBB").index[0] == DAYS[20]  # nothing before its first bar
    real = out[~out["filled"]].drop(columns="filled")
    pd.testing.assert_frame_equal(real, bars)


def test_align_max_fill_limits_a_run_of_fills(bars) -> None:
    out = run("align", {"bars": bars}, fill="ffill", max_fill=2)["bars"]
    filled = _of(out, "CCC")
    assert filled[filled["filled"]].index.equals(DAYS[[10, 11, 40]])


def test_align_fills_after_a_symbols_last_bar_only_with_extend() -> None:
    parts = three_symbols()
    parts["BBB"] = parts["BBB"].iloc[:10]  # delisted after day 29
    frame = long_panel(parts)
    plain = run("align", {"bars": frame}, fill="ffill")["bars"]
    assert _of(plain, "BBB").index[-1] == DAYS[29]
    extended = run("align", {"bars": frame}, fill="ffill", extend=True)["bars"]
    bbb = _of(extended, "BBB")
    assert bbb.index.equals(DAYS[20:]) and bbb["filled"].sum() == 30


def test_align_output_feeds_per_symbol_indicators(bars) -> None:
    out = run("align", {"bars": bars}, fill="ffill")["bars"]
    close = panel.wide(out, "close")
    assert close["CCC"].notna().all() and close["BBB"].iloc[:20].isna().all()


def test_align_options_need_ffill() -> None:
    with pytest.raises(NodeError, match="need fill"):
        run("align", {"bars": _minutes(["2024-03-01 10:00"])}, max_fill=3)
