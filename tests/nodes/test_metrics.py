"""Metrics against hand-computed values on tiny equity curves, None where undefined, ppy rules."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from nodes.base import NodeContext, registry
from nodes.builtin.metrics import (
    METRIC_KEYS,
    MIN_RETURNS_ANNUALISED,
    MIN_YEARS_COMPOUNDED,
    compute_metrics,
    infer_ppy,
    resolve_ppy,
)
from tests.nodes.conftest import run_node


def _equity(values: list[float], index: pd.DatetimeIndex | None = None, **cols) -> pd.DataFrame:
    if index is None:
        index = pd.date_range("2024-01-01", periods=len(values), freq="D", tz="UTC", name="ts")
    return pd.DataFrame({"equity": values, **cols}, index=index)


def _trades(pnl: list[float], ret: list[float], is_open: list[bool] | None = None) -> pd.DataFrame:
    n = len(pnl)
    return pd.DataFrame(
        {
            "units": [1.0] * n,
            "entry_price": [100.0] * n,
            "exit_price": [100.0 + p for p in pnl],
            "fees": [0.5] * n,
            "pnl": pnl,
            "return": ret,
            "is_open": is_open if is_open is not None else [False] * n,
        }
    )


# 40 per-bar returns (at least MIN_RETURNS_ANNUALISED) with a known mean and std.
RETURNS = [0.01, -0.02, 0.015, 0.005] * 10


def _curve(returns: list[float], last_day: float) -> pd.DataFrame:
    """Equity from 100 compounding ``returns``; bars a day apart, the last one at ``last_day``."""
    values = [100.0]
    for r in returns:
        values.append(values[-1] * (1 + r))
    start = pd.Timestamp("2020-01-01", tz="UTC")
    offsets = [float(d) for d in range(len(values) - 1)] + [last_day]
    index = pd.DatetimeIndex([start + pd.Timedelta(days=d) for d in offsets], name="ts")
    return _equity(values, index)


def test_curve_metrics_match_hand_values() -> None:
    eq = _curve(RETURNS, 365.25)  # exactly one year
    m = compute_metrics(eq, None, ppy=252.0)
    n = len(RETURNS)
    mean = sum(RETURNS) / n
    std = math.sqrt(sum((r - mean) ** 2 for r in RETURNS) / (n - 1))  # ddof = 1
    growth = math.prod(1 + r for r in RETURNS)
    assert m["total_return"] == pytest.approx(growth - 1)
    assert m["cagr"] == pytest.approx(growth - 1)  # one year
    assert m["volatility"] == pytest.approx(std * math.sqrt(252))
    assert m["sharpe"] == pytest.approx(mean / std * math.sqrt(252))
    downside = math.sqrt(sum(min(r, 0) ** 2 for r in RETURNS) / n)
    assert m["sortino"] == pytest.approx(mean / downside * math.sqrt(252))
    assert m["max_drawdown"] == pytest.approx(-0.02)
    assert m["calmar"] == pytest.approx((growth - 1) / 0.02)
    assert (m["bars"], m["ppy"], m["ppy_source"]) == (41, 252.0, "given: ppy=252")
    assert m["start"] == "2020-01-01T00:00:00+00:00"
    assert m["warnings"] == []
    assert m["notes"] == ["win_rate, profit_factor, avg_trade_return: null, no closed trades"]


def test_cagr_over_two_years() -> None:
    start = pd.Timestamp("2020-01-01", tz="UTC")
    index = pd.DatetimeIndex([start, start + pd.Timedelta(days=2 * 365.25)], name="ts")
    m = compute_metrics(_equity([100.0, 121.0], index), None, ppy=1.0)
    assert m["cagr"] == pytest.approx(0.1)


def test_risk_free_is_annual_and_taken_per_bar() -> None:
    m = compute_metrics(_curve(RETURNS, 39.0), None, ppy=4.0, risk_free=0.04)
    excess = [r - 0.01 for r in RETURNS]
    n = len(RETURNS)
    mean = sum(excess) / n
    std = math.sqrt(sum((r - sum(RETURNS) / n) ** 2 for r in RETURNS) / (n - 1))
    assert m["sharpe"] == pytest.approx(mean / std * 2)
    downside = math.sqrt(sum(min(r, 0) ** 2 for r in excess) / n)
    assert m["sortino"] == pytest.approx(mean / downside * 2)


def test_a_two_bar_run_has_no_cagr_and_says_why() -> None:
    # the cross-check found cagr = 6.9e10 for a 2-bar run: (1 + r) ** (365.25 / 1) - 1
    m = compute_metrics(_equity([100.0, 107.0]), None, ppy=252.0)
    assert m["total_return"] == pytest.approx(0.07)
    assert m["cagr"] is None and m["calmar"] is None
    assert m["volatility"] is None and m["sharpe"] is None and m["sortino"] is None
    assert any(n.startswith("cagr, calmar: null, the run spans 0.00274 years") for n in m["notes"])
    assert (
        "volatility, sharpe, sortino: null, 1 return(s); annualised figures need at least 30"
        in (m["notes"])
    )


def test_annualised_figures_start_at_the_minimums() -> None:
    short = compute_metrics(_curve(RETURNS[: MIN_RETURNS_ANNUALISED - 1], 364.0), None, ppy=252.0)
    assert short["sharpe"] is None and short["cagr"] is None
    enough = compute_metrics(_curve(RETURNS[:MIN_RETURNS_ANNUALISED], 365.25), None, ppy=252.0)
    assert enough["sharpe"] is not None and enough["cagr"] is not None
    assert MIN_YEARS_COMPOUNDED == 1.0


def test_flat_equity_gives_none_for_ratios_never_nan() -> None:
    m = compute_metrics(_equity([100.0] * 40, position=[0.0] * 40), None, ppy=252.0)
    assert m["volatility"] == 0.0
    assert m["sharpe"] is None and m["sortino"] is None
    assert m["max_drawdown"] == 0.0 and m["calmar"] is None
    assert m["num_trades"] == 0
    assert m["win_rate"] is None and m["profit_factor"] is None and m["avg_trade_return"] is None
    assert m["exposure"] == 0.0
    assert "sharpe: null, the returns do not vary" in m["notes"]
    assert "win_rate, profit_factor, avg_trade_return: null, no closed trades" in m["notes"]
    json.dumps(m, allow_nan=False)


def test_single_bar_has_no_return_statistics() -> None:
    m = compute_metrics(_equity([100.0]), None)
    assert m["ppy"] is None and m["cagr"] is None and m["volatility"] is None
    assert m["sharpe"] is None and m["total_return"] == 0.0
    assert set(m) == set(METRIC_KEYS)


def test_trade_metrics_use_closed_trades_only() -> None:
    trades = _trades([10.0, -5.0, 20.0, 100.0], [0.1, -0.05, 0.2, 1.0], [False, False, False, True])
    m = compute_metrics(_equity([100.0, 101.0, 102.0]), trades, ppy=252.0)
    assert m["num_trades"] == 3
    assert m["win_rate"] == pytest.approx(2 / 3)
    assert m["profit_factor"] == pytest.approx(30 / 5)
    assert m["avg_trade_return"] == pytest.approx(0.25 / 3)
    assert m["total_fees"] == pytest.approx(2.0)  # fees of every trade, open ones included


def test_profit_factor_is_none_without_losses_and_zero_without_wins() -> None:
    winners = compute_metrics(_equity([1.0, 2.0]), _trades([1.0, 2.0], [0.1, 0.2]))
    assert winners["profit_factor"] is None and winners["win_rate"] == 1.0
    losers = compute_metrics(_equity([1.0, 2.0]), _trades([-1.0], [-0.1]))
    assert losers["profit_factor"] == 0.0 and losers["win_rate"] == 0.0


def test_exposure_and_turnover_from_orders() -> None:
    eq = _equity([100.0, 100.0, 110.0, 90.0], position=[0.0, 1.0, 1.0, 0.0])
    orders = pd.DataFrame({"units": [1.0, 1.0], "price": [100.0, 110.0], "fee": [0.1, 0.2]})
    m = compute_metrics(eq, _trades([], []), orders=orders)
    assert m["exposure"] == 0.5
    assert m["turnover"] == pytest.approx(210.0 / 100.0)
    assert m["total_fees"] == pytest.approx(0.3)


def test_turnover_from_trades_counts_both_legs_of_closed_trades() -> None:
    eq = _equity([100.0, 100.0])
    trades = _trades([10.0, 5.0], [0.1, 0.05], [False, True])
    m = compute_metrics(eq, trades)
    assert m["turnover"] == pytest.approx((100 + 110 + 100) / 100)


def test_metrics_node_equals_the_backtest_metrics() -> None:
    from tests.nodes.conftest import make_bars

    bars = make_bars([10, 11, 12, 11, 13, 12], [10.5, 11.5, 11.0, 12.0, 12.5, 12.0])
    sig = pd.Series([1.0, 0, -1, -1, 0.5, 0.5], index=bars.index)
    bt = run_node("backtest", {"data": bars, "signal": sig}, fee_bps=3.0, ppy=252.0)
    inputs = {"equity": bt["equity"], "trades": bt["trades"], "orders": bt["orders"]}
    assert run_node("metrics", inputs, ppy=252.0)["metrics"] == bt["metrics"]
    without_orders = run_node(
        "metrics", {"equity": bt["equity"], "trades": bt["trades"]}, ppy=252.0
    )
    assert without_orders["metrics"]["turnover"] == pytest.approx(bt["metrics"]["turnover"])
    bare = bt["equity"][["equity"]]  # max_drawdown recomputed from the equity alone
    m = compute_metrics(bare, bt["trades"], ppy=252.0)
    assert m["max_drawdown"] == pytest.approx(bt["metrics"]["max_drawdown"])
    assert m["max_drawdown"] < 0


def _days(start: str, n: int, freq: str) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq=freq, tz="UTC")


def test_ppy_is_252_for_business_day_bars() -> None:
    assert infer_ppy(_days("2024-01-01", 300, "B")) == 252.0


def test_ppy_of_a_seven_day_market_is_365_days() -> None:
    # was 365.25 days / spacing; a 7-day market is now the 24x7 calendar's 365 days a year,
    # as backtesting.py and vectorbt (year_freq 365 days) count it
    assert infer_ppy(_days("2024-01-01", 300, "D")) == 365.0
    assert infer_ppy(_days("2024-01-01", 3000, "h")) == 365.0 * 24


def test_ppy_is_252_times_bars_per_session_for_intraday_bars() -> None:
    days = pd.bdate_range("2024-01-01", periods=20, tz="UTC")
    index = pd.DatetimeIndex(
        [
            d + pd.Timedelta(hours=14, minutes=30) + pd.Timedelta(minutes=m)
            for d in days
            for m in range(390)
        ]
    )
    assert infer_ppy(index) == 252.0 * 390


def test_ppy_of_daily_bars_shifted_by_a_time_zone_is_still_252() -> None:
    # Tokyo midnight is 15:00 UTC the day before: Monday bars fall on Sunday in UTC.
    index = pd.bdate_range("2024-01-01", periods=300).tz_localize("Asia/Tokyo").tz_convert("UTC")
    assert infer_ppy(index) == 252.0


def test_ppy_of_sparse_bars_counts_them_as_quantstats_and_backtesting_py_do() -> None:
    # weekly bars were 365.25 / 7 = 52.18 a year; now 52, monthly 12
    assert infer_ppy(_days("2024-01-05", 100, "7D")) == 52.0
    assert infer_ppy(_days("2020-01-31", 60, "ME")) == 12.0
    assert infer_ppy(_days("2020-01-01", 20, "10D")) == pytest.approx(365.25 / 10)


def _weekdays_with(extra: list[str], n: int = 500) -> pd.DatetimeIndex:
    days = pd.bdate_range("2015-01-05", periods=n, tz="UTC", name="ts")
    return days.append(pd.DatetimeIndex(extra, tz="UTC", name="ts")).sort_values()


def test_two_stray_weekend_bars_keep_252_and_warn() -> None:
    # the cross-check: two weekend bars switched ppy from 252 to 365.25 (+20 % Sharpe) silently
    choice = resolve_ppy(_weekdays_with(["2015-03-07", "2016-02-14"]))
    assert choice.ppy == 252.0
    assert choice.source.startswith("inferred calendar equities (bars on 5 days of the week")
    (warning,) = choice.warnings
    assert warning.startswith("irregular bars: 2 of 502 days with bars fall on days of the week")
    assert "Saturday ×1, Sunday ×1; first 2015-03-07" in warning


def test_a_mixed_seven_day_pattern_warns() -> None:
    # every day in the first year, weekdays only afterwards: weekends in ~half the weeks
    first = pd.date_range("2020-01-06", "2020-12-27", freq="D", tz="UTC")
    later = pd.bdate_range("2021-01-04", "2021-09-30", tz="UTC")
    choice = resolve_ppy(first.append(later))
    assert choice.ppy == 365.0
    assert choice.warnings and "taken as a 7-day market" in choice.warnings[0]


def test_gaps_shorter_than_the_spacing_warn() -> None:
    index = (
        _days("2024-01-01 00:00", 200, "h")
        .append(pd.DatetimeIndex(["2024-01-03 05:30"], tz="UTC"))
        .sort_values()
    )
    (warning,) = resolve_ppy(index).warnings
    assert warning.startswith("irregular bars: 2 gap(s) shorter than the usual spacing of 1 h")


@pytest.mark.parametrize(
    ("calendar", "freq", "expected"),
    [
        ("equities", "B", 252.0),
        ("crypto", "D", 365.0),
        ("24x7", "h", 365.0 * 24),
        ("fx", "B", 260.0),
        ("24x5", "15min", 260.0 * 96),
    ],
)
def test_declared_calendar_sets_ppy(calendar: str, freq: str, expected: float) -> None:
    choice = resolve_ppy(_days("2024-01-01", 3000, freq), calendar=calendar)
    assert choice.ppy == pytest.approx(expected)
    assert choice.source.startswith(f"calendar {calendar}: ")


def test_declared_equities_calendar_counts_bars_per_session_from_the_data() -> None:
    days = pd.bdate_range("2024-01-01", periods=20, tz="UTC")
    index = pd.DatetimeIndex(
        [
            d + pd.Timedelta(hours=14, minutes=30) + pd.Timedelta(minutes=5 * m)
            for d in days
            for m in range(78)
        ]
    )
    choice = resolve_ppy(index, calendar="equities")
    assert choice.ppy == 252.0 * 78
    assert "78 bars a day (median bars per UTC day)" in choice.source


def test_a_declared_calendar_wins_over_stray_bars_and_is_checked_against_the_data() -> None:
    stray = _weekdays_with(["2015-03-07", "2016-02-14"])
    declared = resolve_ppy(stray, calendar="equities")
    assert declared.ppy == 252.0 and declared.source.startswith("calendar equities: ")
    (warning,) = declared.warnings  # still bad data (a weekend bar trades), without "taken as"
    assert warning.endswith("(Saturday ×1, Sunday ×1; first 2015-03-07)")
    assert resolve_ppy(stray, calendar="crypto").ppy == 365.0
    (warning,) = resolve_ppy(_days("2024-01-01", 300, "D"), calendar="equities").warnings
    assert warning == "calendar equities declared but the bars trade on all 7 days of the week"
    assert resolve_ppy(stray, ppy=250.0).ppy == 250.0


def test_an_unknown_calendar_is_refused_by_name() -> None:
    from nodes.errors import NodeError

    with pytest.raises(NodeError, match="unknown calendar 'nyse'; known calendars: equities"):
        resolve_ppy(_days("2024-01-01", 10, "D"), calendar="nyse")


def test_ppy_and_calendar_together_are_refused() -> None:
    from nodes.errors import NodeError

    for name in ("metrics", "backtest", "position_sizer"):
        with pytest.raises(NodeError, match="give ppy or calendar, not both"):
            registry().get(name).validated_params({"ppy": 252.0, "calendar": "equities"})


def test_metrics_node_logs_how_ppy_was_chosen_and_the_warnings() -> None:
    index = _weekdays_with(["2015-03-07", "2016-02-14"])
    eq = pd.DataFrame({"equity": np.linspace(100.0, 130.0, len(index))}, index=index)
    lines: list[str] = []
    node_type = registry().get("metrics")
    out = node_type(NodeContext(log=lines.append)).run(
        {"equity": eq, "trades": _trades([], [])}, node_type.validated_params({})
    )["metrics"]
    assert lines[0] == f"ppy 252.0: {out['ppy_source']}"
    assert f"warning: {out['warnings'][0]}" in lines
    assert "note: win_rate, profit_factor, avg_trade_return: null, no closed trades" in lines
