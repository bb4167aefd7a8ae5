"""The bar backtest, rule by rule (BACKTEST.md), on bars small enough to check by hand."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nodes.base import NodeContext, registry
from nodes.errors import NodeError
from tests.nodes.conftest import make_bars, run_node

OPENS = [10.0, 11.0, 12.0, 13.0, 14.0]
CLOSES = [10.5, 11.5, 12.5, 13.5, 14.5]


def _bt(signal: list[float], **params: float) -> dict:
    bars = make_bars(OPENS, CLOSES)
    sig = pd.Series(signal, index=bars.index, dtype="float64")
    params.setdefault("cash", 1000.0)
    return run_node("backtest", {"data": bars, "signal": sig}, **params)


def test_backtest_executes_signal_at_next_open() -> None:
    out = _bt([0, 1, 1, 1, 1])
    orders = out["orders"]
    assert len(orders) == 1
    assert orders["ts"].iloc[0] == pd.Timestamp("2024-01-03", tz="UTC")  # bar 2
    assert orders["price"].iloc[0] == 12.0  # its open
    assert orders["side"].iloc[0] == "buy"
    assert orders["units"].iloc[0] == pytest.approx(1000 / 12)


def test_backtest_first_bar_counts_as_change_from_zero() -> None:
    out = _bt([1, 1, 1, 1, 1])
    assert out["orders"]["ts"].tolist() == [pd.Timestamp("2024-01-02", tz="UTC")]
    assert out["equity"]["position"].tolist()[0] == 0.0


def test_backtest_never_executes_the_last_bars_signal() -> None:
    out = _bt([0, 0, 0, 0, 1])
    assert len(out["orders"]) == 0 and len(out["trades"]) == 0
    assert out["equity"]["equity"].tolist() == [1000.0] * 5


def test_backtest_marks_equity_at_each_close() -> None:
    out = _bt([1, 1, 1, 1, 1])
    units = 1000 / 11
    eq = out["equity"]
    assert eq["equity"].tolist() == pytest.approx(
        [1000, units * 11.5, units * 12.5, units * 13.5, units * 14.5]
    )
    assert eq["cash"].tolist() == pytest.approx([1000, 0, 0, 0, 0], abs=1e-9)
    assert eq["position"].tolist() == pytest.approx([0, units, units, units, units])
    peak = np.maximum.accumulate(eq["equity"].to_numpy())
    assert eq["drawdown"].tolist() == pytest.approx((eq["equity"].to_numpy() / peak - 1).tolist())


def test_backtest_slippage_moves_buys_up_and_sells_down() -> None:
    out = _bt([1, 0, 0, 0, 0], slippage_bps=100.0)  # 1 %
    orders = out["orders"]
    assert orders["price"].tolist() == pytest.approx([11 * 1.01, 12 * 0.99])
    units = 1000 / (11 * 1.01)
    assert orders["units"].tolist() == pytest.approx([units, units])
    trade = out["trades"].iloc[0]
    assert trade["pnl"] == pytest.approx(units * (12 * 0.99 - 11 * 1.01))
    assert out["equity"]["equity"].iloc[-1] == pytest.approx(1000 + units * (12 * 0.99 - 11.11))


def test_backtest_fees_are_taken_from_cash_on_every_fill() -> None:
    # Sizing includes the fee (it used to leave cash at -1.0, the fee, after a full buy):
    # units * 11 * (1 + 0.001) = 1000, so the buy spends the cash exactly.
    out = _bt([1, 0, 0, 0, 0], fee_bps=10.0)  # 0.1 %
    units = 1000 / (11 * 1.001)
    fees = [0.001 * units * 11, 0.001 * units * 12]
    assert out["orders"]["units"].tolist() == pytest.approx([units, units])
    assert out["orders"]["fee"].tolist() == pytest.approx(fees)
    assert out["equity"]["cash"].iloc[1] == 0.0  # fully invested, fee included, never negative
    assert out["equity"]["cash"].iloc[-1] == pytest.approx(units * 12 - fees[1])
    trade = out["trades"].iloc[0]
    assert trade["fees"] == pytest.approx(sum(fees))
    assert trade["pnl"] == pytest.approx(units * (12 - 11) - sum(fees))
    assert out["metrics"]["total_fees"] == pytest.approx(sum(fees))


def test_backtest_partial_target_is_that_share_of_the_equity_left_after_the_fee() -> None:
    out = _bt([0.5, 0, 0, 0, 0], fee_bps=100.0)  # 1 %
    units = out["orders"]["units"].iloc[0]
    value, fee = units * 11, out["orders"]["fee"].iloc[0]
    assert value == pytest.approx(0.5 * (1000 - fee))  # position = 0.5 x equity after the fee
    assert fee == pytest.approx(0.01 * value)
    assert value == pytest.approx(0.5 * 1000 / (1 + 0.5 * 0.01))  # the closed form


def test_backtest_short_side_mirrors_the_long_one() -> None:
    out = _bt([-1, 0, 0, 0, 0], fee_bps=10.0)
    units = 1000 / (11 * 1.001)  # notional + fee = equity, as backtesting.py sizes a short
    assert out["equity"]["position"].iloc[1] == pytest.approx(-units)
    assert out["equity"]["cash"].iloc[1] == pytest.approx(1000 + units * 11 * (1 - 0.001))


def test_backtest_short_profits_when_price_falls() -> None:
    bars = make_bars([10.0, 11.0, 9.0, 8.0], [10.0, 10.0, 8.5, 8.0])
    sig = pd.Series([-1.0, -1.0, 0.0, 0.0], index=bars.index)
    out = run_node("backtest", {"data": bars, "signal": sig}, cash=1000.0)
    units = 1000 / 11
    assert out["equity"]["position"].iloc[1] == pytest.approx(-units)
    assert out["equity"]["equity"].iloc[1] == pytest.approx(1000 + units * (11 - 10))
    trade = out["trades"].iloc[0]
    assert (trade["side"], trade["entry_price"], trade["exit_price"]) == ("short", 11.0, 8.0)
    assert trade["pnl"] == pytest.approx(units * 3)
    assert trade["return"] == pytest.approx(3 / 11)
    assert out["orders"]["side"].tolist() == ["sell", "buy"]


def test_backtest_flip_closes_one_trade_and_opens_another_at_the_same_fill() -> None:
    out = _bt([1, -1, -1, 0, 0], fee_bps=10.0)
    f = 0.001
    long_units = 1000 / (11 * (1 + f))  # cash 0 after the buy
    # the flip: the short is sized on the equity left after the whole fill's fee
    # (short * 12 = 12 * long - f * (long + short) * 12), i.e. the equity after closing the
    # long, divided by 12 * (1 + f): what backtesting.py does in two steps
    short_units = long_units * 12 * (1 - f) / (12 * (1 + f))
    orders, trades = out["orders"], out["trades"]
    assert len(orders) == 3
    assert orders["units"].iloc[1] == pytest.approx(long_units + short_units)  # one fill
    assert len(trades) == 2
    first, second = trades.iloc[0], trades.iloc[1]
    assert first["exit_ts"] == second["entry_ts"] == pd.Timestamp("2024-01-03", tz="UTC")
    assert first["exit_price"] == second["entry_price"] == 12.0
    assert (first["side"], second["side"]) == ("long", "short")
    flip_fee = f * (long_units + short_units) * 12
    # the flip's fee is split between the trades by units
    first_fee = f * long_units * 11 + flip_fee * long_units / (long_units + short_units)
    assert first["fees"] == pytest.approx(first_fee)
    assert first["fees"] + second["fees"] == pytest.approx(out["orders"]["fee"].sum())
    assert second["exit_price"] == 14.0 and second["units"] == pytest.approx(short_units)


def test_backtest_long_targets_never_leave_cash_negative() -> None:
    # the old sizing left cash at -fee after every full buy (vectorbt and backtesting.py cap)
    rng = np.random.default_rng(11)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 400)))
    opens = np.concatenate(([100.0], closes[:-1] * np.exp(rng.normal(0, 0.01, 399))))
    bars = make_bars(opens, closes)
    sig = pd.Series(rng.choice([0.0, 0.25, 0.7, 1.0], 400), index=bars.index)
    for lot in (None, 0.5):
        params = {"cash": 10_000.0, "fee_bps": 25.0, "slippage_bps": 15.0}
        if lot is not None:
            params["lot_size"] = lot
        out = run_node("backtest", {"data": bars, "signal": sig}, **params)
        assert len(out["orders"]) > 100
        assert (out["equity"]["cash"] >= 0.0).all()


def test_backtest_rounds_units_toward_zero_to_the_lot_size() -> None:
    long = _bt([1, 0, 0, 0, 0], lot_size=1.0)
    assert long["orders"]["units"].tolist() == [90.0, 90.0]  # 1000 / 11 = 90.9
    short = _bt([-1, 0, 0, 0, 0], lot_size=1.0)
    assert short["equity"]["position"].iloc[1] == -90.0  # toward zero, not -91
    tenths = _bt([0.3, 0, 0, 0, 0], cash=11.0, lot_size=0.1)  # 0.3 * 11 / 11 = 0.3 exactly
    assert tenths["orders"]["units"].iloc[0] == pytest.approx(0.3)


def test_backtest_lot_size_larger_than_the_target_means_no_order_and_a_warning() -> None:
    bars = make_bars(OPENS, CLOSES)
    sig = pd.Series([1.0, 1, 0, 1, 1], index=bars.index)
    lines: list[str] = []
    node_type = registry().get("backtest")
    node = node_type(NodeContext(log=lines.append))
    out = node.run(
        {"data": bars, "signal": sig},
        node_type.validated_params({"cash": 1000.0, "lot_size": 500.0}),
    )
    assert len(out["orders"]) == 0 and out["metrics"]["exposure"] == 0.0
    # bar 1 (target 1) and bar 4 (target 1 again); the change to 0 at bar 3 is no order anyway
    warning = out["metrics"]["warnings"][0]
    assert warning.startswith("lot_size=500: 2 signal change(s) gave no order")
    assert "first at 2024-01-02T00:00:00+00:00, where one lot cost 5,500.00" in warning
    assert "equity was 1,000.00" in warning
    assert f"warning: {warning}" in lines  # the run log's line (tagged by the runner)


def test_backtest_affordable_lots_give_no_warning() -> None:
    out = _bt([1, 0, 1, 0, 0], lot_size=1.0)
    assert len(out["orders"]) == 4 and out["metrics"]["warnings"] == []


def test_backtest_reports_an_open_trade_at_the_end_marked_at_last_close() -> None:
    out = _bt([1, 1, 1, 1, 1])
    trades = out["trades"]
    assert len(trades) == 1
    trade = trades.iloc[0]
    assert bool(trade["is_open"]) is True
    assert trade["exit_ts"] == pd.Timestamp("2024-01-05", tz="UTC")
    assert trade["exit_price"] == 14.5
    assert trade["bars_held"] == 3
    assert trade["pnl"] == pytest.approx(1000 / 11 * (14.5 - 11))
    metrics = out["metrics"]
    assert metrics["num_trades"] == 0  # open trades are left out of trade metrics
    assert metrics["win_rate"] is None and metrics["avg_trade_return"] is None


def test_backtest_does_not_rebalance_while_the_signal_is_unchanged() -> None:
    out = _bt([0.5, 0.5, 0.5, 0.5, 0.5])
    assert len(out["orders"]) == 1
    assert out["orders"]["units"].iloc[0] == pytest.approx(0.5 * 1000 / 11)


def test_backtest_scaling_in_stays_one_trade_with_weighted_entry() -> None:
    out = _bt([0.5, 1, 0, 0, 0])
    u1 = 0.5 * 1000 / 11
    u2 = (500 + u1 * 12) / 12  # equity at bar 2's open = cash 500 + u1 * 12
    trades = out["trades"]
    assert len(trades) == 1 and len(out["orders"]) == 3
    trade = trades.iloc[0]
    assert trade["units"] == pytest.approx(u2)
    assert trade["entry_price"] == pytest.approx((u1 * 11 + (u2 - u1) * 12) / u2)
    assert trade["exit_price"] == 13.0
    assert trade["pnl"] == pytest.approx(u2 * 13 - (u1 * 11 + (u2 - u1) * 12))


def test_backtest_trade_pnl_adds_up_to_the_equity_change() -> None:
    rng = np.random.default_rng(3)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 300)))
    opens = np.concatenate(([100.0], closes[:-1] * np.exp(rng.normal(0, 0.005, 299))))
    bars = make_bars(opens, closes)
    sig = pd.Series(rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], 300), index=bars.index)
    out = run_node(
        "backtest",
        {"data": bars, "signal": sig},
        cash=10_000.0,
        fee_bps=7.0,
        slippage_bps=3.0,
        lot_size=0.5,
    )
    final = out["equity"]["equity"].iloc[-1]
    assert out["trades"]["pnl"].sum() == pytest.approx(final - 10_000.0, rel=1e-9)
    assert out["trades"]["fees"].sum() == pytest.approx(out["orders"]["fee"].sum(), rel=1e-9)
    assert (out["equity"]["position"] % 0.5 == 0).all()


def test_backtest_leading_nan_signal_is_warmup_zero() -> None:
    out = _bt([float("nan"), float("nan"), 1, 1, 1])
    assert out["orders"]["ts"].tolist() == [pd.Timestamp("2024-01-04", tz="UTC")]


def test_backtest_refuses_nan_after_the_signal_started() -> None:
    with pytest.raises(NodeError, match="2024-01-04"):
        _bt([0, 1, 1, float("nan"), 1])


def test_backtest_refuses_a_signal_missing_a_data_bar() -> None:
    bars = make_bars(OPENS, CLOSES)
    sig = pd.Series(1.0, index=bars.index.delete(2))
    with pytest.raises(NodeError, match="2024-01-03"):
        run_node("backtest", {"data": bars, "signal": sig})


def test_backtest_refuses_signal_timestamps_not_in_the_data() -> None:
    bars = make_bars(OPENS, CLOSES)
    sig = pd.Series(1.0, index=bars.index.shift(1, freq="h"))
    with pytest.raises(NodeError, match="not in the data"):
        run_node("backtest", {"data": bars, "signal": sig})


def test_backtest_reindexes_a_signal_given_in_another_order() -> None:
    bars = make_bars(OPENS, CLOSES)
    sig = pd.Series([1.0, 1, 1, 1, 1], index=bars.index)[::-1]
    out = run_node("backtest", {"data": bars, "signal": sig}, cash=1000.0)
    assert out["orders"]["ts"].tolist() == [pd.Timestamp("2024-01-02", tz="UTC")]


def test_backtest_refuses_a_signal_outside_minus_one_one() -> None:
    with pytest.raises(NodeError, match="outside"):
        _bt([0, 2, 0, 0, 0])


def test_backtest_frames_have_the_documented_columns_and_types() -> None:
    out = _bt([1, -1, 0, 1, 1])
    assert list(out["equity"].columns) == ["equity", "cash", "position", "drawdown"]
    assert out["equity"].index.name == "ts"
    assert list(out["trades"].columns) == [
        "entry_ts",
        "exit_ts",
        "side",
        "units",
        "entry_price",
        "exit_price",
        "fees",
        "pnl",
        "return",
        "bars_held",
        "is_open",
    ]
    assert list(out["orders"].columns) == ["ts", "side", "units", "price", "fee", "target"]
    assert str(out["trades"]["entry_ts"].dtype.tz) == "UTC"
    assert out["trades"]["bars_held"].dtype == "int64" and out["trades"]["is_open"].dtype == bool
    assert out["orders"]["target"].tolist() == [1.0, -1.0, 0.0, 1.0]
    json.dumps(out["metrics"], allow_nan=False)


def test_backtest_empty_frames_keep_their_columns() -> None:
    out = _bt([0, 0, 0, 0, 0])
    assert len(out["trades"]) == 0 and "is_open" in out["trades"].columns
    assert len(out["orders"]) == 0 and "price" in out["orders"].columns


def test_backtest_is_deterministic() -> None:
    a = _bt([1, -0.5, 0, 1, 1], fee_bps=5.0, slippage_bps=2.0)
    b = _bt([1, -0.5, 0, 1, 1], fee_bps=5.0, slippage_bps=2.0)
    for port in ("equity", "trades", "orders"):
        pd.testing.assert_frame_equal(a[port], b[port])
    assert a["metrics"] == b["metrics"]


def test_backtest_equity_on_a_prefix_equals_the_full_equity(random_walk: pd.Series) -> None:
    bars = make_bars(random_walk.shift(1).fillna(100.0).to_numpy(), random_walk.to_numpy())
    sig = pd.Series(np.sign(np.sin(np.arange(500) / 9.0)), index=bars.index)
    full = run_node("backtest", {"data": bars, "signal": sig}, fee_bps=5.0)["equity"]
    part = run_node("backtest", {"data": bars.iloc[:200], "signal": sig.iloc[:200]}, fee_bps=5.0)
    pd.testing.assert_frame_equal(part["equity"], full.iloc[:200])


@pytest.mark.parametrize(
    "params",
    [
        {"cash": 10_000.0},
        {"cash": 10_000.0, "fee_bps": 7.0, "slippage_bps": 3.0},
        {"cash": 10_000.0, "fee_bps": 5.0, "lot_size": 5.0},  # some changes give no order
        {"cash": 10_000.0, "ppy": 252.0, "risk_free": 0.03},
    ],
)
def test_backtest_metrics_without_the_tables_equal_those_of_the_tables(params: dict) -> None:
    """A sweep's trial asks for metrics and equity only: the backtest then skips building the
    trades and orders tables, and its metrics must be the ones the metrics node computes from
    those tables, bit for bit (shorts, flips, partial targets, an open trade at the end)."""
    from nodes.builtin.backtest import BacktestParams, run_backtest
    from nodes.builtin.metrics import compute_metrics

    rng = np.random.default_rng(11)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 400)))
    bars = make_bars(closes * (1 + rng.normal(0, 0.002, 400)), closes)
    levels = rng.choice([-1.0, -0.5, 0.0, 0.3, 1.0], 40)
    levels[-1] = 1.0  # a trade still open at the end
    signal = pd.Series(np.repeat(levels, 10), index=bars.index)
    p = BacktestParams(**params)
    full = run_backtest(bars, signal, p)
    lean = run_backtest(bars, signal, p, tables=False)
    assert set(lean) == {"equity", "metrics"} and set(full) >= {"trades", "orders"}
    assert lean["metrics"] == full["metrics"]
    pd.testing.assert_frame_equal(lean["equity"], full["equity"])
    from_tables = compute_metrics(
        full["equity"],
        full["trades"],
        ppy=p.ppy,
        risk_free=p.risk_free,
        orders=full["orders"],
        calendar=p.calendar,
    )
    expected = {k: v for k, v in from_tables.items() if k != "warnings"}
    assert {k: v for k, v in lean["metrics"].items() if k != "warnings"} == expected
    assert full["metrics"]["num_trades"] > 5 and full["trades"]["is_open"].iloc[-1]


def test_backtest_node_told_its_read_outputs_skips_the_tables() -> None:
    bars = make_bars(OPENS, CLOSES)
    sig = pd.Series([1.0, 0.0, -1.0, 0.0, 0.0], index=bars.index)
    node_type = registry().get("backtest")
    params = node_type.validated_params({"cash": 1000.0})
    node = node_type(NodeContext(outputs=frozenset({"metrics"})))
    out = node.run({"data": bars, "signal": sig}, params)
    assert "trades" not in out and "orders" not in out
    assert out["metrics"] == _bt([1.0, 0.0, -1.0, 0.0, 0.0])["metrics"]
    told = node_type(NodeContext(outputs=frozenset({"metrics", "trades"})))
    assert len(told.run({"data": bars, "signal": sig}, params)["trades"]) == 2
