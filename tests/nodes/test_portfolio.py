"""The portfolio backtest, rule by rule (docs/backtest.md#portfolio-backtest), on two or three
symbols and a few bars: every expected number is worked out by hand in the test."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import pytest

from nodes.base import registry
from nodes.errors import NodeError
from runners.io import _check_metrics
from tests.nodes.conftest import make_bars, run_node

Prices = Mapping[str, Sequence[float | None]]


def panel(opens: Prices, closes: Prices | None = None, start: str = "2024-01-01") -> pd.DataFrame:
    """A long panel: one row per (day, symbol) whose open is not None; closes default to opens."""
    closes = closes or opens
    n = len(next(iter(opens.values())))
    days = pd.date_range(start, periods=n, freq="D", tz="UTC")
    rows = [
        (days[i], sym, opens[sym][i], closes[sym][i])
        for i in range(n)
        for sym in sorted(opens)
        if opens[sym][i] is not None
    ]
    frame = pd.DataFrame(rows, columns=["ts", "symbol", "open", "close"])
    frame["symbol"] = frame["symbol"].astype("str")
    return frame.set_index(pd.DatetimeIndex(frame.pop("ts"), name="ts"))


def weights(bars: pd.DataFrame, **columns: Sequence[float]) -> pd.DataFrame:
    index = bars.index.unique()
    return pd.DataFrame({k: np.asarray(v, dtype="float64") for k, v in columns.items()}, index)


def run(bars: pd.DataFrame, w: pd.DataFrame | pd.Series, **params: object) -> dict:
    params.setdefault("cash", 1000.0)
    return run_node("portfolio_backtest", {"bars": bars, "weights": w}, **params)


def orders_list(out: dict) -> list[tuple[int, str, str, float]]:
    """(bar number, symbol, side, units) of every fill, in execution order."""
    o = out["orders"]
    bar = out["equity"].index.get_indexer(o["ts"])
    return list(zip(bar, o["symbol"], o["side"], o["units"], strict=True))


# ---- timing ----------------------------------------------------------------------------------


def test_portfolio_fills_at_the_next_open_and_never_trades_the_last_bars_weights() -> None:
    bars = panel({"A": [10, 20, 30, 40], "B": [50, 40, 30, 20]})
    out = run(bars, weights(bars, A=[0.5, 0.5, 0.5, 0.0], B=[0.5, 0.5, 0.5, 1.0]))
    # weights of bar 0 filled at bar 1's open; the last bar's change (A → 0) is never traded
    assert orders_list(out) == [(1, "A", "buy", 500 / 20), (1, "B", "buy", 500 / 40)]
    assert out["orders"]["price"].tolist() == [20.0, 40.0]
    assert out["equity"]["equity"].iloc[0] == 1000.0  # nothing held on the first bar


def test_portfolio_equity_is_the_shared_cash_plus_positions_marked_at_the_closes() -> None:
    bars = panel(
        {"A": [10, 20, 30, 40], "B": [50, 40, 30, 20]},
        {"A": [11, 21, 31, 41], "B": [51, 41, 31, 21]},
    )
    out = run(bars, weights(bars, A=[0.25, 0.25, 0.25, 0.25], B=[0.5, 0.5, 0.5, 0.5]))
    a, b = 250 / 20, 500 / 40  # bought at bar 1's opens with one cash account
    cash = 1000 - 250 - 500
    eq = out["equity"]
    assert eq["cash"].tolist() == pytest.approx([1000, cash, cash, cash])
    expected = [1000] + [cash + a * ca + b * cb for ca, cb in [(21, 41), (31, 31), (41, 21)]]
    assert eq["equity"].tolist() == pytest.approx(expected)
    assert eq["gross_exposure"].iloc[2] == pytest.approx(a * 31 + b * 31)
    assert eq["net_exposure"].iloc[2] == pytest.approx(a * 31 + b * 31)
    assert eq["leverage"].iloc[2] == pytest.approx((a * 31 + b * 31) / expected[2])
    realized = out["weights"]
    assert realized.loc[realized.index[3], "A"] == pytest.approx(a * 41 / expected[3])
    assert out["positions"]["B"].tolist() == pytest.approx([0, b, b, b])
    peak = np.maximum.accumulate(expected)
    assert eq["drawdown"].tolist() == pytest.approx(list(np.array(expected) / peak - 1))


# ---- rebalancing -----------------------------------------------------------------------------


def test_portfolio_sells_before_it_buys_so_the_sale_funds_the_purchase() -> None:
    # all in B, then all in A: A sorts first, yet B is sold first and its cash buys A
    bars = panel({"A": [10, 10, 10, 12], "B": [20, 20, 25, 25]})
    out = run(bars, weights(bars, A=[0, 1, 1, 1], B=[1, 0, 0, 0]))
    b = 1000 / 20
    assert orders_list(out) == [
        (1, "B", "buy", b),
        (2, "B", "sell", b),
        (2, "A", "buy", b * 25 / 10),
    ]
    assert out["equity"]["cash"].tolist() == pytest.approx([1000, 0, 0, 0], abs=1e-9)
    assert out["metrics"]["warnings"] == []  # nothing scaled: the sale paid for the buy


def test_portfolio_bar_rebalancing_trades_whenever_the_weights_change_and_not_otherwise() -> None:
    bars = panel({"A": [10, 10, 20, 20, 20], "B": [10, 10, 10, 10, 10]})
    out = run(bars, weights(bars, A=[0.5] * 5, B=[0.5, 0.5, 0.5, 0.4, 0.4]))
    # bar 1: the first weights; A doubles but nothing trades on unchanged weights (drift kept);
    # bar 4: B's target changed, so every symbol goes back to its target at that open
    fills = orders_list(out)
    assert [f[0] for f in fills] == [1, 1, 4, 4]
    equity = 50 * 20 + 50 * 10  # 50 units each, A now at 20
    assert fills[2] == (4, "A", "sell", pytest.approx(50 - 0.5 * equity / 20))
    assert fills[3] == (4, "B", "buy", pytest.approx(0.4 * equity / 10 - 50))


def test_portfolio_every_n_rebalances_on_every_nth_bar_towards_the_latest_weights() -> None:
    bars = panel({"A": [10] * 6, "B": [10, 10, 10, 10, 20, 20]})
    w = weights(bars, A=[0.5, 0.2, 0.5, 0.5, 0.5, 0.5], B=[0.5, 0.8, 0.5, 0.5, 0.5, 0.5])
    out = run(bars, w, rebalance="every", rebalance_every=2)
    # decisions on bars 0, 2, 4 (fills at 1, 3, 5); bar 1's 0.2 / 0.8 is never traded; at bar
    # 3 the holdings are on target (no order)
    fills = orders_list(out)
    assert [f[0] for f in fills] == [1, 1, 5, 5]
    # at bar 5 the weights are those of bar 2, yet the drift is traded back (B doubled)
    equity = 50 * 10 + 50 * 20
    assert fills[2] == (5, "B", "sell", pytest.approx(50 - 0.5 * equity / 20))
    assert fills[3] == (5, "A", "buy", pytest.approx(0.5 * equity / 10 - 50))


def test_portfolio_threshold_trades_only_symbols_that_drifted_past_it() -> None:
    bars = panel({"A": [10, 10, 11, 16, 16], "B": [10, 10, 10, 10, 10], "C": [10] * 5})
    w = weights(bars, A=[0.3] * 5, B=[0.3] * 5, C=[0.3] * 5)
    out = run(bars, w, rebalance="threshold", threshold=0.05)
    fills = orders_list(out)
    assert [f[:3] for f in fills[:3]] == [(1, "A", "buy"), (1, "B", "buy"), (1, "C", "buy")]
    # bar 2: A at 11 weighs 33/1030 = 0.320: within 0.05, no order. bar 3: A at 16 weighs
    # 480/1180 = 0.407 > 0.35: A alone is sold back to 0.3 (B, C at 0.254 are within 0.05)
    assert [f[:3] for f in fills[3:]] == [(3, "A", "sell")]
    equity = 100 + 30 * 16 + 30 * 10 + 30 * 10
    assert fills[3][3] == pytest.approx(30 - 0.3 * equity / 16)


# ---- costs -----------------------------------------------------------------------------------


def test_portfolio_fills_pay_slippage_against_the_order_and_fees_from_cash() -> None:
    bars = panel({"A": [10, 10, 12, 12], "B": [20, 20, 20, 20]})
    w = weights(bars, A=[0.4, 0, 0, 0], B=[0.4, 0.4, 0.4, 0.4])
    out = run(bars, w, fee_bps=10, slippage_bps=100)
    fee, slip = 0.001, 0.01
    buy_a, buy_b = 10 * (1 + slip), 20 * (1 + slip)
    ua, ub = 400 / buy_a, 400 / buy_b  # w × equity at the open / fill price
    cash1 = 1000 - ua * buy_a * (1 + fee) - ub * buy_b * (1 + fee)
    sell_a = 12 * (1 - slip)
    cash2 = cash1 + ua * sell_a * (1 - fee)
    orders = out["orders"]
    assert orders["price"].tolist() == pytest.approx([buy_a, buy_b, sell_a, buy_b])
    assert orders["fee"].tolist()[:3] == pytest.approx([fee * 400, fee * 400, fee * ua * sell_a])
    # bar 2 rebalances B too (the weights changed): its target 0.5 × equity at the open
    e2 = cash1 + ua * 12 + ub * 20
    ub2 = 0.4 * e2 / buy_b
    cash2 -= (ub2 - ub) * buy_b * (1 + fee)
    assert orders["units"].iloc[3] == pytest.approx(ub2 - ub)
    assert out["equity"]["cash"].iloc[2] == pytest.approx(cash2)
    assert out["metrics"]["total_fees"] == pytest.approx(orders["fee"].sum())
    trade = out["trades"].query("symbol == 'A'").iloc[0]
    assert trade["pnl"] == pytest.approx(ua * (sell_a - buy_a) - fee * 400 - fee * ua * sell_a)


def test_portfolio_without_leverage_scales_the_buys_to_the_cash_left() -> None:
    bars = panel({"A": [10, 10, 10], "B": [20, 20, 20]})
    out = run(bars, weights(bars, A=[0.8, 0.8, 0.8], B=[0.8, 0.8, 0.8]), fee_bps=100)
    # wanted 800 + 800 (+1 % fee) = 1,616 with 1,000 of cash: both scaled by 1000/1616
    keep = 1000 / 1616
    assert out["orders"]["units"].tolist() == pytest.approx([80 * keep, 40 * keep])
    assert out["equity"]["cash"].tolist() == [1000.0, 0.0, 0.0]
    assert (out["equity"]["cash"] >= 0).all()
    warning = out["metrics"]["warnings"][0]
    assert "long target weights sum above 1" in warning
    assert "scaled down to the cash" in out["metrics"]["warnings"][1]
    assert "each kept at least 61.9% of its buys" in out["metrics"]["warnings"][1]


def test_portfolio_with_leverage_borrows_cash_and_reports_the_leverage() -> None:
    bars = panel({"A": [10, 10, 12], "B": [20, 20, 20]})
    out = run(bars, weights(bars, A=[0.8, 0.8, 0.8], B=[0.8, 0.8, 0.8]), leverage=True)
    assert out["orders"]["units"].tolist() == pytest.approx([80, 40])
    cash = 1000 - 1600
    assert out["equity"]["cash"].tolist() == pytest.approx([1000, cash, cash])
    equity = cash + 80 * 12 + 40 * 20
    assert out["equity"]["equity"].iloc[2] == pytest.approx(equity)
    assert out["metrics"]["max_leverage"] == pytest.approx(1.6)  # bar 1: 1,600 held on 1,000
    assert out["equity"]["leverage"].iloc[2] == pytest.approx((80 * 12 + 800) / equity)
    assert not any("scaled down" in w for w in out["metrics"]["warnings"])


def test_portfolio_short_sales_add_cash_and_pay_borrow_at_each_close() -> None:
    bars = panel(
        {"A": [10, 10, 10, 8], "B": [10, 10, 10, 10]}, {"A": [10, 10, 9, 8], "B": [10] * 4}
    )
    # 3652.5 bps a year over a one-day bar: 0.1 % of the short notional per close
    out = run(bars, weights(bars, A=[-0.5] * 4, B=[0.5] * 4), borrow_bps=3652.5)
    units = 50.0  # 500 / 10, short
    charges = [0.0, 0.001 * units * 10, 0.001 * units * 9, 0.001 * units * 8]
    cash = np.array([1000, 1000 + 500 - 500, 1000, 1000]) - np.cumsum(charges)
    assert out["equity"]["cash"].tolist() == pytest.approx(list(cash))
    assert out["equity"]["net_exposure"].iloc[2] == pytest.approx(-units * 9 + 500)
    assert out["equity"]["gross_exposure"].iloc[2] == pytest.approx(units * 9 + 500)
    assert out["metrics"]["total_borrow_cost"] == pytest.approx(sum(charges))
    contribution = out["contribution"].set_index("symbol")
    assert contribution.loc["A", "borrow_cost"] == pytest.approx(sum(charges))
    assert contribution.loc["A", "pnl"] == pytest.approx(units * (10 - 8) - sum(charges))
    trade = out["trades"].query("symbol == 'A'").iloc[0]
    assert (trade["side"], trade["is_open"]) == ("short", True)
    assert trade["borrow_cost"] == pytest.approx(sum(charges))
    assert trade["pnl"] == pytest.approx(units * 2 - sum(charges))


def test_portfolio_scales_targets_beyond_the_gross_then_the_net_limit() -> None:
    bars = panel({"A": [10] * 3, "B": [10] * 3, "C": [10] * 3})
    w = weights(bars, A=[0.8] * 3, B=[-0.8] * 3, C=[0.4] * 3)
    out = run(bars, w, max_gross=1.0, max_net=0.1, leverage=True)
    # gross 2.0 → × 0.5: 0.4, -0.4, 0.2 (net 0.2) → net 0.1 → × 0.5: 0.2, -0.2, 0.1
    targets = out["orders"].set_index("symbol")["target"]
    assert targets.to_dict() == pytest.approx({"A": 0.2, "B": -0.2, "C": 0.1})
    assert out["positions"].iloc[1].tolist() == pytest.approx([20, -20, 10])
    warnings = out["metrics"]["warnings"]
    assert any(w.startswith("max_gross=1: the target weights of 3 of 3 bars") for w in warnings)
    assert any(w.startswith("max_net=0.1: the target weights of 3 of 3 bars") for w in warnings)


# ---- missing bars, lots, NaN -----------------------------------------------------------------


def test_portfolio_symbol_without_a_bar_keeps_its_position_and_trades_at_its_next_bar() -> None:
    bars = panel(
        {"A": [10, 10, 10, 10, 10], "B": [20, 20, None, 30, 30]},
        {"A": [10] * 5, "B": [20, 22, None, 30, 30]},
    )
    w = weights(bars, A=[0.5, 0.2, 0.2, 0.2, 0.2], B=[0.5, 0.8, 0.8, 0.8, 0.8])
    out = run(bars, w)
    fills = orders_list(out)
    # bar 2: A trades to 0.2; B has no bar: it keeps 25 units, marked at its last close (22),
    # and trades at bar 3's open instead, towards the latest target (0.8)
    assert [f[:3] for f in fills] == [
        (1, "A", "buy"),
        (1, "B", "buy"),
        (2, "A", "sell"),
        (3, "B", "buy"),
    ]
    equity_open_2 = 500 + 25 * 22  # cash + A at its open + B at its last close
    assert fills[2][3] == pytest.approx(50 - 0.2 * equity_open_2 / 10)
    cash2 = 0 + fills[2][3] * 10
    assert out["equity"]["equity"].iloc[2] == pytest.approx(
        cash2 + (50 - fills[2][3]) * 10 + 25 * 22
    )
    assert out["positions"]["B"].iloc[2] == 25
    equity_open_3 = cash2 + (50 - fills[2][3]) * 10 + 25 * 30
    assert fills[3][3] == pytest.approx(0.8 * equity_open_3 / 30 - 25)


def test_portfolio_lot_size_rounds_units_toward_zero() -> None:
    bars = panel({"A": [10, 7, 7], "B": [10, 3, 3]})
    out = run(bars, weights(bars, A=[0.5] * 3, B=[0.5] * 3), lot_size=10)
    # 500 / 7 = 71.4 → 70 units; 500 / 3 = 166.7 → 160 units
    assert out["orders"]["units"].tolist() == [70.0, 160.0]
    assert out["equity"]["cash"].iloc[1] == pytest.approx(1000 - 490 - 480)


def test_portfolio_nan_weights_are_zero_but_hold_on_a_bar_the_symbol_lacks() -> None:
    bars = panel({"A": [10, 10, 10, 10, 10], "B": [10, 10, None, 10, 10]})
    w = weights(bars, A=[np.nan, 0.5, 0.5, np.nan, 0.0], B=[0.5, 0.5, np.nan, 0.5, 0.5])
    out = run(bars, w)
    fills = orders_list(out)
    # A: NaN on bar 0 is 0 (bought at bar 2 from bar 1's 0.5), NaN on bar 3 (it has a bar) is 0:
    # sold at bar 4. B: NaN on bar 2 (no bar) keeps 0.5: no sale, no rebuy.
    assert [f[:3] for f in fills] == [(1, "B", "buy"), (2, "A", "buy"), (4, "A", "sell")]


# ---- inputs ----------------------------------------------------------------------------------


def test_portfolio_on_one_symbol_without_fees_matches_the_single_asset_backtest() -> None:
    bars = make_bars([10, 11, 12, 11, 10, 12, 13], [10.5, 11.5, 11.0, 10.0, 11.0, 12.5, 13.0])
    signal = pd.Series([0, 1, 1, -0.5, -0.5, 0.3, 0], index=bars.index, name="close")
    single = run_node("backtest", {"data": bars, "signal": signal}, cash=1000.0)
    out = run(bars, signal)
    assert out["equity"]["equity"].tolist() == pytest.approx(single["equity"]["equity"].tolist())
    assert out["orders"]["units"].tolist() == pytest.approx(single["orders"]["units"].tolist())
    assert out["trades"]["pnl"].tolist() == pytest.approx(single["trades"]["pnl"].tolist())
    # bars without a symbol column: the one symbol is called "asset" (the series' name is the
    # column it came from, not a symbol)
    assert out["positions"].columns.tolist() == ["asset"]
    assert out["trades"]["symbol"].unique().tolist() == ["asset"]


@pytest.mark.parametrize(
    ("w", "message"),
    [
        (
            lambda b: weights(b, A=[0.5] * 3, Z=[0.5] * 3),
            "weights for Z, which the bars do not have",
        ),
        (
            lambda b: weights(b, A=[0.5] * 3).iloc[:2],
            "no row for 1 bar timestamp(s) (first 2024-01-03",
        ),
        (
            lambda b: weights(b, A=[0.5] * 3).set_axis(
                pd.date_range("2024-01-02", periods=3, tz="UTC")
            ),
            "1 timestamp(s) the bars lack (first 2024-01-04",
        ),
        (
            lambda b: weights(b, A=[0.5, np.inf, 0.5]),
            "weight of A at 2024-01-02 00:00:00+00:00 is inf",
        ),
        (
            lambda b: pd.DataFrame({"A": ["x"] * 3}, b.index.unique()),
            "weights of A are not numbers",
        ),
        (lambda b: pd.Series([0.5] * 3, index=b.index.unique()), "one series on several symbols"),
    ],
)
def test_portfolio_refuses_weights_that_do_not_fit_the_bars(
    w: Callable[[pd.DataFrame], object], message: str
) -> None:
    bars = panel({"A": [10, 10, 10], "B": [10, 10, 10]})
    with pytest.raises(NodeError, match=re.escape(message)):
        run(bars, w(bars))


def test_portfolio_refuses_two_bars_of_one_symbol_at_one_time_and_unsorted_bars() -> None:
    bars = panel({"A": [10, 10, 10], "B": [10, 10, 10]})
    doubled = pd.concat([bars.iloc[:3], bars.iloc[2:3], bars.iloc[3:]])
    with pytest.raises(NodeError, match="two bars of A at 2024-01-02"):
        run(doubled, weights(bars, A=[0.5] * 3, B=[0.5] * 3))
    with pytest.raises(NodeError, match="bars must be sorted by ts"):
        run(bars.iloc[::-1], weights(bars, A=[0.5] * 3, B=[0.5] * 3))


def test_portfolio_params_need_their_rebalancing_companion() -> None:
    node = registry().get("portfolio_backtest")
    with pytest.raises(NodeError, match="needs rebalance_every"):
        node.validated_params({"rebalance": "every"})
    with pytest.raises(NodeError, match="threshold is only read"):
        node.validated_params({"threshold": 0.1})


# ---- outputs ---------------------------------------------------------------------------------


def test_portfolio_pnl_by_symbol_adds_up_to_the_equity_and_contribution_to_the_return() -> None:
    rng = np.random.default_rng(5)
    n = 40
    opens = {s: list(100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))) for s in "ABC"}
    bars = panel(opens)
    w = weights(bars, **{s: rng.choice([-0.3, 0.0, 0.2, 0.4], n) for s in "ABC"})
    out = run(bars, w, fee_bps=5, slippage_bps=3, borrow_bps=200)
    pnl_sum = out["pnl"].sum(axis=1).to_numpy()
    np.testing.assert_allclose(pnl_sum, out["equity"]["equity"].to_numpy() - 1000, atol=1e-9)
    contribution = out["contribution"]
    assert contribution["contribution"].sum() == pytest.approx(out["metrics"]["total_return"])
    assert contribution["fees"].sum() == pytest.approx(out["metrics"]["total_fees"])
    trades = out["trades"]
    assert contribution["trades"].tolist() == [int((trades["symbol"] == s).sum()) for s in "ABC"]
    by_symbol = trades.groupby("symbol")["pnl"].sum()
    assert by_symbol.to_numpy() == pytest.approx(contribution["pnl"].to_numpy())
    metrics = out["metrics"]
    best = contribution.loc[contribution["contribution"].idxmax(), "symbol"]
    assert metrics["top_contributor"] == best
    notional = (out["orders"]["units"] * out["orders"]["price"]).sum()
    assert metrics["turnover"] == pytest.approx(notional / out["equity"]["equity"].mean())
    _check_metrics(metrics, "portfolio_backtest")  # numbers finite, the rest text: JSON-safe
    node = registry().get("portfolio_backtest")
    assert set(metrics) == set(node.metric_keys)
    assert node.panel == "native"
