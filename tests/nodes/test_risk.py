"""risk_size (fraction of equity, volatility targeting, leverage cap) and the backtest's
stop-loss / take-profit (docs/backtest.md#stop-loss-and-take-profit), on bars small enough to
check by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nodes.builtin import _kernel
from nodes.errors import NodeError
from tests.nodes.conftest import make_bars, run_node


def _ohlc(rows: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=len(rows), freq="D", tz="UTC", name="ts")
    o, h, lo, c = (list(x) for x in zip(*rows, strict=True))
    return pd.DataFrame(
        {"open": o, "high": h, "low": lo, "close": c, "volume": [1.0] * len(rows)}, index=index
    )


def _size(signal: list[float], bars: pd.DataFrame, **params: object) -> list[float]:
    sig = pd.Series(signal, index=bars.index, dtype="float64")
    out = run_node("risk_size", {"signal": sig, "data": bars}, **params)["signal"]
    assert out.index.equals(bars.index)
    return out.tolist()


# -- risk_size -------------------------------------------------------------------------------


def test_fraction_of_equity_scales_the_signal_and_nan_is_flat() -> None:
    bars = make_bars([10.0] * 5)
    assert _size([1, np.nan, 0, -1, 1], bars, fraction=0.5) == [0.5, 0.0, 0.0, -0.5, 0.5]
    # the backtest takes the fraction as is: half the equity at the next open
    sig = pd.Series(_size([1, 1, 1, 1, 1], bars, fraction=0.5), index=bars.index)
    out = run_node("backtest", {"data": bars, "signal": sig}, cash=1000.0)
    assert out["orders"]["units"].tolist() == pytest.approx([50.0])  # 0.5 x 1000 / 10
    assert out["orders"]["target"].tolist() == [0.5]


# closes with returns +10 %, -10 %, +10 %, +10 %, -20 %: with vol_window=2 and ppy=2 the
# annualised vol is std(ddof=1) x sqrt(2): bar 2: std(.1, -.1) = .1 sqrt 2 -> 0.2; bar 3 the
# same; bar 4: std(.1, .1) = 0 -> undefined, the last scale holds; bar 5: std(.1, -.2) =
# .3 / sqrt 2 -> 0.3.
VOL_CLOSES = [100.0, 110.0, 99.0, 108.9, 119.79, 95.832]


def _vol_bars(closes: list[float] = VOL_CLOSES) -> pd.DataFrame:
    return make_bars(closes, closes)


def test_volatility_targeting_by_hand() -> None:
    bars = _vol_bars()
    got = _size([1] * 6, bars, vol_target=0.1, vol_window=2, ppy=2)
    assert got == pytest.approx([0, 0, 0.5, 0.5, 0.5, 1 / 3])
    got = _size([1, 1, -1, 1, 0, -1], bars, vol_target=0.1, vol_window=2, ppy=2, fraction=0.5)
    assert got == pytest.approx([0, 0, -0.25, 0.25, 0, -1 / 6])
    # capped by max_leverage (0.1 / 0.2 = 0.5 > 0.4), and by 1 for a high target
    got = _size([1] * 6, bars, vol_target=0.1, vol_window=2, ppy=2, max_leverage=0.4)
    assert got == pytest.approx([0, 0, 0.4, 0.4, 0.4, 1 / 3])
    got = _size([-1] * 6, bars, vol_target=0.5, vol_window=2, ppy=2)
    assert got == pytest.approx([0, 0, -1, -1, -1, -1])


def test_volatility_sizing_uses_no_later_bar() -> None:
    bars = _vol_bars()
    full = _size([1] * 6, bars, vol_target=0.1, vol_window=2, ppy=2)
    changed = bars.copy()
    changed.loc[changed.index[5], ["open", "high", "low", "close"]] = [50.0, 51.0, 49.0, 50.0]
    later = _size([1] * 6, changed, vol_target=0.1, vol_window=2, ppy=2)
    assert later[:5] == full[:5] and later[5] != full[5]
    for n in range(2, 6):  # a prefix of the bars gives the same sizes
        assert _size([1] * n, bars.iloc[:n], vol_target=0.1, vol_window=2, ppy=2) == full[:n]


def test_volatility_needs_periods_per_year_and_checks_the_signal() -> None:
    bars = _vol_bars()
    one = bars.iloc[:1]
    with pytest.raises(NodeError, match="ppy"):
        _size([1], one, vol_target=0.1)
    with pytest.raises(NodeError, match=r"not a position in \[-1, 1\]"):
        _size([2, 0, 0, 0, 0, 0], bars)
    other = pd.Series([1.0], index=[pd.Timestamp("2030-01-01", tz="UTC")])
    with pytest.raises(NodeError, match="not in the data"):
        run_node("risk_size", {"signal": other, "data": bars})
    with pytest.raises(NodeError, match="max_leverage"):  # no leverage in the backtest
        run_node("risk_size", {"signal": other, "data": bars}, max_leverage=2)


# -- stop-loss / take-profit -------------------------------------------------------------------


def _bt(
    rows: list[tuple[float, float, float, float]], signal: list[float], **params: float
) -> dict:
    bars = _ohlc(rows)
    sig = pd.Series(signal, index=bars.index, dtype="float64")
    params.setdefault("cash", 1000.0)
    return run_node("backtest", {"data": bars, "signal": sig}, **params)


FLAT = (100.0, 100.5, 99.5, 100.0)  # a bar that touches no level below


def test_stop_loss_fills_at_the_stop_within_the_bar() -> None:
    # long 10 units at bar 1's open 100; stop 200 bps = 98; bar 2's low 97 reaches it
    rows = [FLAT, FLAT, (100.0, 101.0, 97.0, 99.0), FLAT, FLAT]
    out = _bt(rows, [1, 1, 1, 1, 1], stop_loss_bps=200)
    (trade,) = out["trades"].to_dict("records")
    assert trade["exit_reason"] == "stop_loss" and not trade["is_open"]
    assert trade["exit_price"] == pytest.approx(98.0)
    assert trade["pnl"] == pytest.approx(-20.0)
    assert trade["exit_ts"] == out["equity"].index[2] and trade["bars_held"] == 1
    assert out["orders"]["price"].tolist() == pytest.approx([100.0, 98.0])
    assert out["orders"]["target"].tolist() == [1.0, 0.0]
    # flat from the stop on, though the signal stays long: no re-entry without a new signal
    assert out["equity"]["position"].tolist() == pytest.approx([0, 10, 0, 0, 0])
    assert out["equity"]["equity"].tolist() == pytest.approx([1000, 1000, 980, 980, 980])


def test_stop_loss_gap_through_fills_at_the_open() -> None:
    rows = [FLAT, FLAT, (96.0, 97.0, 95.0, 96.5), FLAT]
    out = _bt(rows, [1, 1, 1, 1], stop_loss_bps=200)
    assert out["trades"]["exit_price"].tolist() == pytest.approx([96.0])
    assert out["trades"]["pnl"].tolist() == pytest.approx([-40.0])


def test_take_profit_at_the_level_or_the_open_above_it() -> None:
    rows = [FLAT, FLAT, (100.0, 104.0, 99.0, 101.0), FLAT]
    out = _bt(rows, [1, 1, 1, 1], take_profit_bps=300)
    assert out["trades"]["exit_reason"].tolist() == ["take_profit"]
    assert out["trades"]["exit_price"].tolist() == pytest.approx([103.0])
    rows = [FLAT, FLAT, (105.0, 106.0, 104.0, 105.0), FLAT]
    out = _bt(rows, [1, 1, 1, 1], take_profit_bps=300, stop_loss_bps=200)
    assert out["trades"]["exit_price"].tolist() == pytest.approx([105.0])
    assert out["trades"]["pnl"].tolist() == pytest.approx([50.0])


def test_a_bar_touching_both_levels_exits_at_the_stop() -> None:
    rows = [FLAT, FLAT, (100.0, 104.0, 97.0, 101.0), FLAT]
    out = _bt(rows, [1, 1, 1, 1], take_profit_bps=300, stop_loss_bps=200)
    assert out["trades"]["exit_reason"].tolist() == ["stop_loss"]
    assert out["trades"]["exit_price"].tolist() == pytest.approx([98.0])
    # even when it opened above the take-profit (bars cannot say which came first)
    rows = [FLAT, FLAT, (105.0, 106.0, 97.0, 101.0), FLAT]
    out = _bt(rows, [1, 1, 1, 1], take_profit_bps=300, stop_loss_bps=200)
    assert out["trades"]["exit_price"].tolist() == pytest.approx([98.0])


def test_the_entry_bar_is_not_checked() -> None:
    # bar 1 (the entry fill's bar) dips to 90, below the stop: the order rests from bar 2 on
    rows = [FLAT, (100.0, 100.5, 90.0, 100.0), FLAT, FLAT]
    out = _bt(rows, [1, 1, 1, 1], stop_loss_bps=200)
    assert out["trades"]["exit_reason"].tolist() == ["open"]
    assert out["trades"]["is_open"].tolist() == [True]


def test_short_stop_and_take_profit_mirror_the_long() -> None:
    # short 10 units at 100: stop 102 on the high, take-profit 97 on the low
    rows = [FLAT, FLAT, (100.0, 103.0, 99.0, 101.0), FLAT]
    out = _bt(rows, [-1, -1, -1, -1], stop_loss_bps=200)
    assert out["trades"]["side"].tolist() == ["short"]
    assert out["trades"]["exit_price"].tolist() == pytest.approx([102.0])
    assert out["trades"]["pnl"].tolist() == pytest.approx([-20.0])
    assert out["orders"]["side"].tolist() == ["sell", "buy"]
    rows = [FLAT, FLAT, (100.0, 100.5, 96.0, 97.0), FLAT]
    out = _bt(rows, [-1, -1, -1, -1], stop_loss_bps=200, take_profit_bps=300)
    assert out["trades"]["exit_reason"].tolist() == ["take_profit"]
    assert out["trades"]["exit_price"].tolist() == pytest.approx([97.0])
    rows = [FLAT, FLAT, (104.0, 105.0, 103.0, 104.0), FLAT]  # gaps through the short's stop
    out = _bt(rows, [-1, -1, -1, -1], stop_loss_bps=200)
    assert out["trades"]["exit_price"].tolist() == pytest.approx([104.0])


def test_fees_and_slippage_on_the_stop_exit() -> None:
    rows = [FLAT, FLAT, (100.0, 101.0, 95.0, 99.0), FLAT]
    out = _bt(rows, [1, 1, 1, 1], stop_loss_bps=200, fee_bps=10, slippage_bps=10)
    entry = 100.0 * 1.001  # the fill, slippage included, is the stop's reference
    units = 1000.0 / (entry * 1.001)  # the full long spends the cash, fee included
    exit_ = entry * 0.98 * 0.999  # the stop level, then slippage against the sell
    fee_in, fee_out = 0.001 * units * entry, 0.001 * units * exit_
    (trade,) = out["trades"].to_dict("records")
    assert trade["entry_price"] == pytest.approx(entry)
    assert trade["exit_price"] == pytest.approx(exit_)
    assert trade["fees"] == pytest.approx(fee_in + fee_out)
    assert trade["pnl"] == pytest.approx(units * (exit_ - entry) - fee_in - fee_out)
    assert out["orders"]["fee"].tolist() == pytest.approx([fee_in, fee_out])
    assert out["equity"]["cash"].iloc[-1] == pytest.approx(units * exit_ - fee_out)
    assert out["equity"]["equity"].iloc[-1] == pytest.approx(1000.0 + trade["pnl"])
    assert out["metrics"]["total_fees"] == pytest.approx(fee_in + fee_out)


def test_after_a_stop_only_a_new_signal_re_enters() -> None:
    dip = (100.0, 100.5, 97.0, 100.0)
    # stopped at bar 2; the size changes (1 -> 0.5, same side): still flat; 0 at bar 4 then 1
    # at bar 5: long again at bar 6's open
    rows = [FLAT, FLAT, dip, FLAT, FLAT, FLAT, FLAT, FLAT]
    out = _bt(rows, [1, 1, 1, 0.5, 0, 1, 1, 1], stop_loss_bps=200)
    assert out["equity"]["position"].tolist() == pytest.approx([0, 10, 0, 0, 0, 0, 9.8, 9.8])
    assert out["trades"]["exit_reason"].tolist() == ["stop_loss", "open"]
    # a flip to the other side enters it at the next open
    out = _bt(rows, [1, 1, 1, -1, -1, -1, -1, -1], stop_loss_bps=200)
    assert out["equity"]["position"].tolist()[3:6] == pytest.approx([0, -9.8, -9.8])


def test_signal_exits_are_labelled_and_stops_need_high_and_low() -> None:
    rows = [FLAT, FLAT, FLAT, FLAT]
    out = _bt(rows, [1, 0, 0, 0], stop_loss_bps=200)
    assert out["trades"]["exit_reason"].tolist() == ["signal"]
    bars = _ohlc(rows).drop(columns=["high", "low"])
    sig = pd.Series([1.0, 0, 0, 0], index=bars.index)
    with pytest.raises(NodeError, match="high and low"):
        run_node("backtest", {"data": bars, "signal": sig}, stop_loss_bps=200)
    plain = run_node("backtest", {"data": bars, "signal": sig})  # no stops: no high/low needed
    assert "exit_reason" not in plain["trades"].columns


def test_stops_far_away_change_nothing() -> None:
    rng = np.random.default_rng(5)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 300)))
    bars = make_bars(np.r_[close[0], close[:-1]], close)
    sig = pd.Series(np.repeat(rng.choice([-1.0, 0.0, 0.5, 1.0], 60), 5), index=bars.index)
    plain = run_node("backtest", {"data": bars, "signal": sig}, fee_bps=5, slippage_bps=2)
    far = run_node(
        "backtest",
        {"data": bars, "signal": sig},
        fee_bps=5,
        slippage_bps=2,
        stop_loss_bps=9_999,
        take_profit_bps=900_000,
    )
    pd.testing.assert_frame_equal(plain["equity"], far["equity"])
    pd.testing.assert_frame_equal(plain["trades"], far["trades"].drop(columns="exit_reason"))


def test_interpreted_and_compiled_stop_kernels_agree() -> None:
    rng = np.random.default_rng(11)
    n = 3_000
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[close[0], close[:-1]] * (1 + rng.normal(0, 0.002, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.005, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.005, n)))
    target = np.repeat(rng.choice([-1.0, -0.5, 0.0, 0.3, 1.0], size=n // 10 + 1), 10)[:n]
    args = (open_, high, low, close, target, 1e5, 5e-4, 2e-4, 0.0, 0.01, 0.015)
    plain = _kernel.simulate_stops(*args)
    fast = _kernel.compiled_simulate_stops()(*args)
    assert (plain[18] == 1).sum() > 10 and (plain[18] == 2).sum() > 10
    for a, b in zip(plain, fast, strict=True):
        np.testing.assert_array_equal(a, b)
