"""The bar backtest's inner loop (one pass over the bars), plain Python or compiled by numba.

The functions here are plain Python so that small backtests (the sample's 900 bars) pay neither
numba's import nor its cache load (together ~0.9 s). :func:`simulate_for` picks the numba-compiled
twin of the very same code for long inputs; a test checks both give identical results.

The rules are documented on the ``backtest`` node (nodes/builtin/backtest.py) and in
docs/backtest.md; this module only implements them. Trades are round trips of a position: from flat
(or a flip) to flat (or the next flip); adding to or reducing a position stays in the same trade,
with volume-weighted entry and exit prices.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nodes.lazy import lazy_module, resolve_lazy

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals(), "np")


# Below this many bars the interpreted loop is faster than loading numba (~2 µs per bar vs 0.9 s).
JIT_MIN_BARS = 50_000


def _round_lot(units: float, lot: float) -> float:
    """Round toward zero to a multiple of ``lot``, tolerating float noise (0.3 / 0.1)."""
    q = units / lot
    nearest = np.round(q)
    if abs(q - nearest) < 1e-9:
        return nearest * lot
    return np.trunc(q) * lot


def _vwap(price: float, units: float, fill: float, more: float) -> float:
    """Volume-weighted price after adding ``more`` units at ``fill`` (exact for one price)."""
    if units == 0.0:
        return fill
    return price + (fill - price) * more / (units + more)


def simulate(
    open_: np.ndarray,
    close: np.ndarray,
    target: np.ndarray,
    cash0: float,
    fee_rate: float,
    slip_rate: float,
    lot: float,
) -> tuple:
    """:func:`simulate_stops` without stop-loss or take-profit (high and low are not read): the
    18 arrays described there, without the trades' exit reasons."""
    r = simulate_stops(
        open_, close, close, close, target, cash0, fee_rate, slip_rate, lot, 0.0, 0.0
    )
    return (
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8],
        r[9], r[10], r[11], r[12], r[13], r[14], r[15], r[16], r[17],
    )  # fmt: skip


def simulate_stops(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    target: np.ndarray,
    cash0: float,
    fee_rate: float,
    slip_rate: float,
    lot: float,
    sl_rate: float,
    tp_rate: float,
) -> tuple:
    """Run the backtest. ``lot`` <= 0 means fractional units; ``sl_rate`` / ``tp_rate`` <= 0
    mean no stop-loss / take-profit (then ``high`` and ``low`` are not read).

    Sizing: at a target change to s, the fill is the open moved by the slippage against the
    order; the new position is sized so that its value at the fill is |s| times the equity left
    after this order's fee, with equity = cash + units x fill. So a full long (s = 1) spends the
    cash exactly, fee included, and a full short's notional plus its fee is the equity; without
    fee and slippage it is s x equity / open. With ``lot`` it is rounded toward zero.

    Returns the curve — equity, cash, position and drawdown per bar, as the rows of one
    ``(4, n)`` array (the equity table is built on it without a copy) — the orders (bar, signed
    units, price, fee, target), the trades (entry bar, exit bar, side, units, entry price, exit
    price, fees, pnl, is_open) and the target changes that gave no order because they were
    smaller than one lot (bar, value of one lot at the fill, equity at the open), each trimmed
    to its count, then the trades' exit reasons (0 signal, 1 stop-loss, 2 take-profit; 0 for
    the open one).

    Stops: from the bar after a trade's entry fill, a long trade whose entry price (its
    volume-weighted fill, slippage included) is E exits within the bar whose low reaches
    E x (1 - sl) at that price, or at the bar's open if the open is already at or below it;
    else within the bar whose high reaches E x (1 + tp), at that price or the open if higher. A
    bar reaching both exits at the stop. Shorts mirror it. The exit is a fill like any other
    (slippage against it, fee); afterwards the target's side counts as 0 until the target
    leaves it (0 or the other side), so re-entry needs a new signal.
    """
    n = open_.shape[0]
    curve = np.empty((4, n))
    equity, cash_out, position, drawdown = curve[0], curve[1], curve[2], curve[3]
    o_bar = np.empty(n, np.int64)
    o_units = np.empty(n)
    o_price = np.empty(n)
    o_fee = np.empty(n)
    o_target = np.empty(n)
    t_entry = np.empty(n, np.int64)
    t_exit = np.empty(n, np.int64)
    t_side = np.empty(n, np.int8)
    t_units = np.empty(n)
    t_entry_px = np.empty(n)
    t_exit_px = np.empty(n)
    t_fees = np.empty(n)
    t_pnl = np.empty(n)
    t_open = np.zeros(n, np.bool_)
    t_reason = np.zeros(n, np.int8)
    s_bar = np.empty(n, np.int64)
    s_lot_value = np.empty(n)
    s_equity = np.empty(n)
    n_skipped = 0
    n_orders = 0
    n_trades = 0
    # the trade in progress: side (0 = none), units and value entered and exited, fees
    side = 0
    entry_bar = 0
    in_units = 0.0
    in_value = 0.0
    in_px = 0.0
    out_units = 0.0
    out_value = 0.0
    out_px = 0.0
    fees = 0.0

    cash = cash0
    units = 0.0
    prev = 0.0
    peak = -np.inf
    stops = sl_rate > 0.0 or tp_rate > 0.0
    blocked = 0  # after a stop exit: the side not re-entered until the target leaves it
    for i in range(n):
        s = prev
        if i > 0:
            s = target[i - 1]
            if blocked != 0:
                if (blocked > 0 and s > 0.0) or (blocked < 0 and s < 0.0):
                    s = 0.0
                else:
                    blocked = 0
        if s != prev:
            prev = s
            px = open_[i]
            wealth = cash + units * px
            if s * wealth != units * px:
                buy = s * wealth > units * px  # the direction, before costs
                fill = px * (1.0 + slip_rate) if buy else px * (1.0 - slip_rate)
                # Fee-inclusive size: the new position at the fill is |s| x the equity left
                # after this order's fee, all marked at the fill (inlined: the compiled twin
                # sees only the helpers it is given).
                exact = 0.0
                if s != 0.0:
                    sign = 1.0 if s > 0.0 else -1.0
                    a = abs(s)
                    at_fill = cash + units * fill
                    held = sign * units * fill  # value held on the target's side (< 0: other)
                    if held < a * at_fill:  # grow toward the target: fee on (value - held)
                        value = a * (at_fill + fee_rate * held) / (1.0 + a * fee_rate)
                    else:  # shrink toward it: fee on (held - value)
                        value = a * (at_fill - fee_rate * held) / (1.0 - a * fee_rate)
                    if value > 0.0:
                        exact = sign * value / fill
                new_units = _round_lot(exact, lot) if lot > 0.0 else exact
                traded = new_units - units
                fills = (buy and traded > 0.0) or (not buy and traded < 0.0)
                wanted = (buy and exact > units) or (not buy and exact < units)
                if lot > 0.0 and wanted and not fills:  # the change was smaller than one lot
                    s_bar[n_skipped] = i
                    s_lot_value[n_skipped] = lot * fill
                    s_equity[n_skipped] = wealth
                    n_skipped += 1
                if fills:
                    fee = fee_rate * abs(traded * fill)
                    cash -= traded * fill + fee
                    if s >= 1.0 and buy and cash < 0.0 and cash > -1e-9 * traded * fill:
                        cash = 0.0  # a full long spends the cash exactly: drop float dust
                    o_bar[n_orders] = i
                    o_units[n_orders] = traded
                    o_price[n_orders] = fill
                    o_fee[n_orders] = fee
                    o_target[n_orders] = s
                    n_orders += 1
                    old = units
                    units = new_units
                    # -- trade bookkeeping --------------------------------------------------
                    closing = 0.0  # units of the current trade closed by this fill
                    opening = 0.0  # units of a new trade opened by this fill
                    if side == 0:
                        opening = abs(units)
                    elif (old > 0.0) == (units > 0.0) and units != 0.0:
                        q = abs(traded)
                        if abs(units) > abs(old):
                            in_px = _vwap(in_px, in_units, fill, q)
                            in_units += q
                            in_value += q * fill
                        else:
                            out_px = _vwap(out_px, out_units, fill, q)
                            out_units += q
                            out_value += q * fill
                        fees += fee
                    else:
                        closing = abs(old)
                        opening = abs(units)
                    if closing > 0.0:
                        share = fee * closing / (closing + opening)
                        out_px = _vwap(out_px, out_units, fill, closing)
                        out_units += closing
                        out_value += closing * fill
                        fees += share
                        t_entry[n_trades] = entry_bar
                        t_exit[n_trades] = i
                        t_side[n_trades] = side
                        t_units[n_trades] = in_units
                        t_entry_px[n_trades] = in_px
                        t_exit_px[n_trades] = out_px
                        t_fees[n_trades] = fees
                        t_pnl[n_trades] = side * (out_value - in_value) - fees
                        n_trades += 1
                        side = 0
                        fee -= share
                    if opening > 0.0:
                        side = 1 if units > 0.0 else -1
                        entry_bar = i
                        in_units = opening
                        in_value = opening * fill
                        in_px = fill
                        out_units = 0.0
                        out_value = 0.0
                        out_px = 0.0
                        fees = fee
        if stops and side != 0 and entry_bar < i:
            reason = 0
            level = 0.0
            if side > 0:
                if sl_rate > 0.0 and low[i] <= in_px * (1.0 - sl_rate):
                    reason = 1
                    level = min(open_[i], in_px * (1.0 - sl_rate))
                elif tp_rate > 0.0 and high[i] >= in_px * (1.0 + tp_rate):
                    reason = 2
                    level = max(open_[i], in_px * (1.0 + tp_rate))
            else:
                if sl_rate > 0.0 and high[i] >= in_px * (1.0 + sl_rate):
                    reason = 1
                    level = max(open_[i], in_px * (1.0 + sl_rate))
                elif tp_rate > 0.0 and low[i] <= in_px * (1.0 - tp_rate):
                    reason = 2
                    level = min(open_[i], in_px * (1.0 - tp_rate))
            if reason != 0:
                fill = level * (1.0 - slip_rate) if side > 0 else level * (1.0 + slip_rate)
                traded = -units
                fee = fee_rate * abs(traded * fill)
                cash -= traded * fill + fee
                o_bar[n_orders] = i
                o_units[n_orders] = traded
                o_price[n_orders] = fill
                o_fee[n_orders] = fee
                o_target[n_orders] = 0.0
                n_orders += 1
                closing = abs(units)
                out_px = _vwap(out_px, out_units, fill, closing)
                out_units += closing
                out_value += closing * fill
                fees += fee
                t_entry[n_trades] = entry_bar
                t_exit[n_trades] = i
                t_side[n_trades] = side
                t_units[n_trades] = in_units
                t_entry_px[n_trades] = in_px
                t_exit_px[n_trades] = out_px
                t_fees[n_trades] = fees
                t_pnl[n_trades] = side * (out_value - in_value) - fees
                t_reason[n_trades] = reason
                n_trades += 1
                blocked = side
                side = 0
                units = 0.0
                prev = 0.0
        cash_out[i] = cash
        position[i] = units
        wealth_close = cash + units * close[i]
        equity[i] = wealth_close
        if wealth_close > peak:
            peak = wealth_close
        drawdown[i] = wealth_close / peak - 1.0
    if side != 0:
        rest = abs(units)
        mark = out_value + rest * close[n - 1]
        t_entry[n_trades] = entry_bar
        t_exit[n_trades] = n - 1
        t_side[n_trades] = side
        t_units[n_trades] = in_units
        t_entry_px[n_trades] = in_px
        t_exit_px[n_trades] = _vwap(out_px, out_units, close[n - 1], rest)
        t_fees[n_trades] = fees
        t_pnl[n_trades] = side * (mark - in_value) - fees
        t_open[n_trades] = True
        n_trades += 1
    return (
        curve,
        o_bar[:n_orders],
        o_units[:n_orders],
        o_price[:n_orders],
        o_fee[:n_orders],
        o_target[:n_orders],
        t_entry[:n_trades],
        t_exit[:n_trades],
        t_side[:n_trades],
        t_units[:n_trades],
        t_entry_px[:n_trades],
        t_exit_px[:n_trades],
        t_fees[:n_trades],
        t_pnl[:n_trades],
        t_open[:n_trades],
        s_bar[:n_skipped],
        s_lot_value[:n_skipped],
        s_equity[:n_skipped],
        t_reason[:n_trades],
    )


_compiled: dict[str, Callable[..., tuple]] = {}


def _compile() -> dict[str, Callable[..., tuple]]:
    """:func:`simulate_stops` and :func:`simulate` compiled by numba (``cache=True``), built on
    first use."""
    if not _compiled:
        from numba import njit

        # numba reads the globals when it compiles (on the first call, for simulate and the
        # helpers alike) and cannot type the lazy ``np`` stand-in: bind the real modules first.
        resolve_lazy(globals())
        # Copies whose globals see the compiled helpers; the plain functions are untouched.
        namespace: dict[str, Any] = dict(globals())
        namespace["_round_lot"] = njit(cache=True)(_round_lot)
        namespace["_vwap"] = njit(cache=True)(_vwap)
        core = types.FunctionType(simulate_stops.__code__, namespace, "simulate_stops")
        core.__qualname__ = "simulate_stops_jit"
        namespace["simulate_stops"] = _compiled["simulate_stops"] = njit(cache=True)(core)
        twin = types.FunctionType(simulate.__code__, namespace, "simulate")
        twin.__qualname__ = "simulate_jit"
        _compiled["simulate"] = njit(cache=True)(twin)
    return _compiled


def compiled_simulate() -> Callable[..., tuple]:
    """:func:`simulate` compiled by numba (``cache=True``), built on first use."""
    return _compile()["simulate"]


def compiled_simulate_stops() -> Callable[..., tuple]:
    """:func:`simulate_stops` compiled by numba (``cache=True``), built on first use."""
    return _compile()["simulate_stops"]


def simulate_for(n_bars: int) -> Callable[..., tuple]:
    """The kernel to use for ``n_bars`` bars: interpreted when short, compiled when long."""
    return simulate if n_bars < JIT_MIN_BARS else compiled_simulate()


def simulate_stops_for(n_bars: int) -> Callable[..., tuple]:
    """:func:`simulate_for` for :func:`simulate_stops`."""
    return simulate_stops if n_bars < JIT_MIN_BARS else compiled_simulate_stops()
