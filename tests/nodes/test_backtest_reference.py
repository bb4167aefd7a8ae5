"""Cross-checks on real GOOG daily bars (shipped in the backtesting.py wheel).

1. An independent, deliberately plain pure-Python loop written from docs/backtest.md must give
   the same trades and final equity as the kernel, with fees, slippage and lot sizes. It finds
   the fee-inclusive size by bisection on its defining equation, not by the kernel's closed form.
2. backtesting.py must open and close the same trades at the same prices (no costs), and with
   a commission it must size every order to the same whole units (both spend the available
   cash, fee included), giving the same PnL, fees, equity curve and CAGR.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nodes.data import read_ohlcv_csv
from tests.nodes.conftest import run_node

# one xdist worker runs the whole module, so its module-scoped GOOG frame (backtesting.py's import)
# is made once (spread test by test, each worker made its own)
pytestmark = pytest.mark.xdist_group("backtest_reference")


@pytest.fixture(scope="module")
def goog() -> pd.DataFrame:
    import backtesting

    return read_ohlcv_csv(Path(backtesting.__file__).parent / "test" / "GOOG.csv")


def _sma_signal(bars: pd.DataFrame, fast: int, slow: int, mode: str) -> pd.Series:
    f = run_node("sma", {"series": bars["close"]}, window=fast)["value"]
    s = run_node("sma", {"series": bars["close"]}, window=slow)["value"]
    return run_node("crossover", {"fast": f, "slow": s}, mode=mode)["signal"]


def _fee_inclusive_units(target: float, cash: float, units: float, fill: float, f: float) -> float:
    """Solve |new| * fill = |target| * (cash + units * fill - f * |new - units| * fill) for the
    new position on the target's side, by bisection (the left side minus the right grows with
    |new|), to 1e-13 relative."""
    if target == 0:
        return 0.0
    sign = 1.0 if target > 0 else -1.0

    def excess(x: float) -> float:
        after_fee = cash + units * fill - f * abs(sign * x - units) * fill
        return x * fill - abs(target) * after_fee

    lo, hi = 0.0, 1.0
    if excess(lo) >= 0:
        return 0.0
    while excess(hi) < 0:
        hi *= 2
    while hi - lo > 1e-13 * hi:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if excess(mid) < 0 else (lo, mid)
    return sign * (lo + hi) / 2


def _reference(
    opens: list[float],
    closes: list[float],
    signal: list[float],
    cash: float,
    fee_bps: float,
    slip_bps: float,
    lot: float | None,
) -> tuple[list[dict], float]:
    """BACKTEST.md read literally, one bar at a time, with plain floats and lists.

    Only whole round trips (flat -> position -> flat or flip) are tracked, which is all a
    crossover signal produces.
    """
    units = 0.0
    trades: list[dict] = []
    current: dict | None = None
    prev_target = 0.0
    for t in range(1, len(opens)):
        target = signal[t - 1]
        if target != prev_target:
            prev_target = target
            open_price = opens[t]
            equity_at_open = cash + units * open_price
            wanted = target * equity_at_open / open_price
            if wanted > units:
                fill = open_price * (1 + slip_bps / 1e4)
            else:
                fill = open_price * (1 - slip_bps / 1e4)
            new_units = _fee_inclusive_units(target, cash, units, fill, fee_bps / 1e4)
            if lot is not None:
                new_units = float(int(new_units / lot)) * lot  # int() truncates toward zero
            traded = new_units - units
            if traded != 0:
                fee = fee_bps / 1e4 * abs(traded * fill)
                cash = cash - traded * fill - fee
                closing = abs(units) if current is not None else 0.0
                opening = abs(new_units)
                if current is not None:
                    share = fee * closing / (closing + opening)
                    current["exit_bar"] = t
                    current["exit_price"] = fill
                    current["fees"] += share
                    sign = 1 if current["side"] == "long" else -1
                    gross = sign * (fill - current["entry_price"]) * current["units"]
                    current["pnl"] = gross - current["fees"]
                    trades.append(current)
                    current = None
                    fee -= share
                if opening > 0:
                    current = {
                        "entry_bar": t,
                        "side": "long" if new_units > 0 else "short",
                        "units": opening,
                        "entry_price": fill,
                        "fees": fee,
                    }
                units = new_units
    final_equity = cash + units * closes[-1]
    return trades, final_equity


@pytest.mark.parametrize(
    ("mode", "fee_bps", "slip_bps", "lot"),
    [
        ("long_short", 10.0, 5.0, None),
        ("long_short", 0.0, 0.0, None),
        ("long_only", 25.0, 10.0, 1.0),
        ("long_short", 3.0, 20.0, 5.0),
    ],
)
def test_backtest_matches_a_plain_python_reference_on_goog(
    goog: pd.DataFrame, mode: str, fee_bps: float, slip_bps: float, lot: float | None
) -> None:
    signal = _sma_signal(goog, 10, 30, mode)
    params = {"cash": 100_000.0, "fee_bps": fee_bps, "slippage_bps": slip_bps}
    if lot is not None:
        params["lot_size"] = lot
    out = run_node("backtest", {"data": goog, "signal": signal}, **params)
    ref_trades, ref_final = _reference(
        goog["open"].tolist(),
        goog["close"].tolist(),
        signal.tolist(),
        100_000.0,
        fee_bps,
        slip_bps,
        lot,
    )
    closed = out["trades"][~out["trades"]["is_open"]]
    assert len(closed) == len(ref_trades) > 30
    index = goog.index
    assert closed["entry_ts"].tolist() == [index[r["entry_bar"]] for r in ref_trades]
    assert closed["exit_ts"].tolist() == [index[r["exit_bar"]] for r in ref_trades]
    assert closed["side"].tolist() == [r["side"] for r in ref_trades]
    for col in ("units", "entry_price", "exit_price", "fees", "pnl"):
        np.testing.assert_allclose(
            closed[col].to_numpy(), [r[col] for r in ref_trades], rtol=1e-9, err_msg=col
        )
    assert out["equity"]["equity"].iloc[-1] == pytest.approx(ref_final, rel=1e-9)
    assert out["metrics"]["final_equity"] == pytest.approx(ref_final, rel=1e-9)


def test_backtest_trades_match_backtesting_py_on_goog(goog: pd.DataFrame) -> None:
    from backtesting import Backtest
    from backtesting.test import GOOG

    signal = _sma_signal(goog, 10, 30, "long_short")
    Follow = _Follow.make(signal.to_numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "some trades remain open at the end"
        stats = Backtest(GOOG, Follow, cash=1_000_000, exclusive_orders=True).run()
    theirs = stats._trades
    ours = run_node("backtest", {"data": goog, "signal": signal}, cash=1_000_000.0, lot_size=1.0)
    closed = ours["trades"][~ours["trades"]["is_open"]]
    assert len(closed) == len(theirs) > 30
    their_entry = pd.DatetimeIndex(theirs["EntryTime"]).tz_localize("UTC").as_unit("ns")
    their_exit = pd.DatetimeIndex(theirs["ExitTime"]).tz_localize("UTC").as_unit("ns")
    assert closed["entry_ts"].tolist() == their_entry.tolist()
    assert closed["exit_ts"].tolist() == their_exit.tolist()
    assert closed["side"].tolist() == ["long" if s > 0 else "short" for s in theirs["Size"]]
    np.testing.assert_allclose(closed["entry_price"], theirs["EntryPrice"], rtol=1e-12)
    np.testing.assert_allclose(closed["exit_price"], theirs["ExitPrice"], rtol=1e-12)
    np.testing.assert_allclose(closed["return"], theirs["ReturnPct"], rtol=1e-9)
    # sizing differs by design (they keep 0.01 % of cash back), so units agree only roughly
    np.testing.assert_allclose(closed["units"], theirs["Size"].abs(), rtol=2e-3)


class _Follow:
    """A backtesting.py strategy trading toward our targets (orders fill at the next open)."""

    @staticmethod
    def make(targets: np.ndarray) -> type:
        from backtesting import Strategy

        class Follow(Strategy):
            def init(self) -> None:
                self.prev = 0.0

            def next(self) -> None:
                target = targets[len(self.data) - 1]
                if target != self.prev:
                    self.prev = target
                    if target > 0:
                        self.buy()  # all the available cash, commission included
                    elif target < 0:
                        self.sell()
                    else:
                        self.position.close()

        return Follow


@pytest.mark.parametrize("mode", ["long_only", "long_short"])
def test_cash_capped_sizing_matches_backtesting_py_with_a_commission(
    goog: pd.DataFrame, mode: str
) -> None:
    from backtesting import Backtest
    from backtesting.test import GOOG

    signal = _sma_signal(goog, 10, 30, mode)
    commission = 0.002
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "some trades remain open at the end"
        stats = Backtest(
            GOOG,
            _Follow.make(signal.to_numpy()),
            cash=100_000,
            commission=commission,
            exclusive_orders=True,
        ).run()
    theirs = stats._trades
    ours = run_node(
        "backtest",
        {"data": goog, "signal": signal},
        cash=100_000.0,
        fee_bps=commission * 1e4,
        lot_size=1.0,
    )
    trades = ours["trades"]
    closed = trades[~trades["is_open"]]
    assert len(closed) == len(theirs) > 30
    np.testing.assert_array_equal(closed["units"], theirs["Size"].abs())  # whole units, equal
    np.testing.assert_allclose(closed["entry_price"], theirs["EntryPrice"], rtol=1e-12)
    np.testing.assert_allclose(closed["exit_price"], theirs["ExitPrice"], rtol=1e-12)
    np.testing.assert_allclose(closed["fees"], theirs["Commission"], rtol=1e-9)
    np.testing.assert_allclose(closed["pnl"], theirs["PnL"], rtol=1e-9)
    # the same equity at every close (theirs includes the trade left open at the end)
    their_equity = stats._equity_curve["Equity"].to_numpy()
    np.testing.assert_allclose(ours["equity"]["equity"].to_numpy(), their_equity, rtol=1e-11)
    if mode == "long_only":
        assert (ours["equity"]["cash"] >= 0).all()
    # CAGR: both use years = (last ts - first ts) / 365.25 days on the same equity
    assert ours["metrics"]["cagr"] == pytest.approx(stats["CAGR [%]"] / 100, rel=1e-10)
    assert ours["metrics"]["max_drawdown"] == pytest.approx(
        stats["Max. Drawdown [%]"] / 100, rel=1e-10
    )
    # profit factor differs by design: ours is in money (PnL), theirs sums trade returns (%)
    pnl = closed["pnl"].to_numpy()
    assert ours["metrics"]["profit_factor"] == pytest.approx(
        pnl[pnl > 0].sum() / -pnl[pnl < 0].sum(), rel=1e-12
    )
    ret = theirs["ReturnPct"].to_numpy()
    assert stats["Profit Factor"] == pytest.approx(ret[ret > 0].sum() / -ret[ret < 0].sum())
    assert ours["metrics"]["profit_factor"] != pytest.approx(stats["Profit Factor"], rel=1e-3)


def test_two_stray_weekend_bars_in_goog_keep_ppy_252_with_a_warning(goog: pd.DataFrame) -> None:
    # The cross-check's finding: these two bars switched the inferred ppy to 365.25 and raised
    # Sharpe by sqrt(365.25 / 252) - 1 = 20 % without a word.
    extra = goog.loc[["2006-03-03", "2009-07-10"]].copy()  # two Fridays, repeated on a weekend
    extra.index = pd.DatetimeIndex(["2006-03-04", "2009-07-12"], tz="UTC", name="ts")
    bars = pd.concat([goog, extra]).sort_index()
    signal = _sma_signal(bars, 10, 30, "long_short")
    inferred = run_node("backtest", {"data": bars, "signal": signal})["metrics"]
    assert inferred["ppy"] == 252.0
    assert "2 of" in inferred["warnings"][0] and "first 2006-03-04" in inferred["warnings"][0]
    declared = run_node("backtest", {"data": bars, "signal": signal}, calendar="equities")
    assert declared["metrics"]["sharpe"] == inferred["sharpe"]
    assert declared["metrics"]["ppy_source"].startswith("calendar equities: 252 daily bars")
    as_before = run_node("backtest", {"data": bars, "signal": signal}, ppy=365.25)["metrics"]
    ratio = as_before["sharpe"] / inferred["sharpe"]
    assert ratio == pytest.approx(np.sqrt(365.25 / 252), rel=1e-12)
