"""Metrics against hand-computed values on tiny equity curves, None where undefined, ppy rules."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from nodes.builtin.metrics import METRIC_KEYS, compute_metrics, infer_ppy
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


def test_curve_metrics_match_hand_values() -> None:
    # returns 0.1, -0.1, 0.1 over exactly 365.25 days
    start = pd.Timestamp("2020-01-01", tz="UTC")
    offsets = [0.0, 1.0, 2.0, 365.25]
    index = pd.DatetimeIndex([start + pd.Timedelta(days=d) for d in offsets], name="ts")
    m = compute_metrics(_equity([100.0, 110.0, 99.0, 108.9], index), None, ppy=252.0)
    mean = 0.1 / 3
    std = math.sqrt(((0.1 - mean) ** 2 * 2 + (-0.1 - mean) ** 2) / 2)
    assert m["total_return"] == pytest.approx(0.089)
    assert m["cagr"] == pytest.approx(0.089)  # one year
    assert m["volatility"] == pytest.approx(std * math.sqrt(252))
    assert m["sharpe"] == pytest.approx(mean / std * math.sqrt(252))
    assert m["sortino"] == pytest.approx(mean / math.sqrt(0.01 / 3) * math.sqrt(252))
    assert m["max_drawdown"] == pytest.approx(-0.1)
    assert m["calmar"] == pytest.approx(0.89)
    assert (m["bars"], m["final_equity"], m["ppy"]) == (4, pytest.approx(108.9), 252.0)
    assert m["start"] == "2020-01-01T00:00:00+00:00"


def test_cagr_over_two_years() -> None:
    start = pd.Timestamp("2020-01-01", tz="UTC")
    index = pd.DatetimeIndex([start, start + pd.Timedelta(days=2 * 365.25)], name="ts")
    m = compute_metrics(_equity([100.0, 121.0], index), None, ppy=1.0)
    assert m["cagr"] == pytest.approx(0.1)


def test_risk_free_is_annual_and_taken_per_bar() -> None:
    eq = _equity([100.0, 110.0, 99.0, 108.9])
    m = compute_metrics(eq, None, ppy=4.0, risk_free=0.04)
    excess = [0.1 - 0.01, -0.1 - 0.01, 0.1 - 0.01]
    mean = sum(excess) / 3
    std = math.sqrt(((0.1 - 1 / 30) ** 2 * 2 + (-0.1 - 1 / 30) ** 2) / 2)
    assert m["sharpe"] == pytest.approx(mean / std * 2)
    assert m["sortino"] == pytest.approx(mean / math.sqrt(0.11**2 / 3) * 2)


def test_flat_equity_gives_none_for_ratios_never_nan() -> None:
    m = compute_metrics(_equity([100.0] * 5, position=[0.0] * 5), None, ppy=252.0)
    assert m["volatility"] == 0.0
    assert m["sharpe"] is None and m["sortino"] is None
    assert m["max_drawdown"] == 0.0 and m["calmar"] is None
    assert m["num_trades"] == 0
    assert m["win_rate"] is None and m["profit_factor"] is None and m["avg_trade_return"] is None
    assert m["exposure"] == 0.0
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


def test_ppy_uses_calendar_days_when_there_are_weekend_bars() -> None:
    assert infer_ppy(_days("2024-01-01", 300, "D")) == pytest.approx(365.25)
    assert infer_ppy(_days("2024-01-01", 3000, "h")) == pytest.approx(365.25 * 24)


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


def test_ppy_of_weekly_bars_is_weeks_per_year() -> None:
    assert infer_ppy(_days("2024-01-05", 100, "7D")) == pytest.approx(365.25 / 7)
