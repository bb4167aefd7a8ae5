"""The portfolio backtest's inner loop (bars × symbols, one shared cash account), plain Python or
compiled by numba.

As in :mod:`nodes.builtin._kernel`, the functions are plain Python so that small portfolios pay
neither numba's import nor its cache load; :func:`simulate_for` picks the numba-compiled twin of
the same code above :data:`JIT_MIN_CELLS` bar × symbol cells, and a test checks both agree
exactly. The rules are documented on the ``portfolio_backtest`` node (nodes/builtin/portfolio.py)
and in docs/backtest.md; this module only implements them.

Trades are per symbol, as the single-asset kernel's: a round trip from flat (or a flip) to flat
(or the next flip), volume-weighted entry and exit prices, the fill's fee split by units on a
flip; here a trade also carries the borrow cost charged while it was short.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nodes.builtin._kernel import _round_lot, _vwap
from nodes.lazy import lazy_module, resolve_lazy

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals(), "np")

# Below this many bar × symbol cells the interpreted loop is faster than loading numba.
JIT_MIN_CELLS = 20_000

#: the columns of the kernel's order rows (bar and symbol as floats: exact below 2**53)
O_BAR, O_SYM, O_UNITS, O_PRICE, O_FEE, O_TARGET = range(6)
#: the columns of its trade rows
(
    T_SYM, T_ENTRY, T_EXIT, T_SIDE, T_UNITS, T_ENTRY_PX, T_EXIT_PX, T_FEES, T_BORROW, T_PNL,
    T_OPEN,
) = range(11)  # fmt: skip
# a symbol's trade in progress (the rows of ``book``)
_SIDE, _BAR, _IN_U, _IN_V, _IN_PX, _OUT_U, _OUT_V, _OUT_PX, _FEES, _BORROW = range(10)


def _grow(buf: np.ndarray) -> np.ndarray:
    """``buf`` with twice the rows, the old ones copied."""
    out = np.empty((2 * buf.shape[0], buf.shape[1]))
    out[: buf.shape[0]] = buf
    return out


def _close_trade(
    book: np.ndarray, s: int, bar: int, trades: np.ndarray, n: int, is_open: bool
) -> tuple[np.ndarray, int]:
    """Write symbol ``s``'s trade in progress as row ``n`` of ``trades`` (grown if full)."""
    if n == trades.shape[0]:
        trades = _grow(trades)
    side = book[_SIDE, s]
    trades[n, T_SYM] = s
    trades[n, T_ENTRY] = book[_BAR, s]
    trades[n, T_EXIT] = bar
    trades[n, T_SIDE] = side
    trades[n, T_UNITS] = book[_IN_U, s]
    trades[n, T_ENTRY_PX] = book[_IN_PX, s]
    trades[n, T_EXIT_PX] = book[_OUT_PX, s]
    trades[n, T_FEES] = book[_FEES, s]
    trades[n, T_BORROW] = book[_BORROW, s]
    trades[n, T_PNL] = side * (book[_OUT_V, s] - book[_IN_V, s]) - book[_FEES, s] - book[_BORROW, s]
    trades[n, T_OPEN] = 1.0 if is_open else 0.0
    return trades, n + 1


def _book_fill(
    book: np.ndarray,
    s: int,
    old: float,
    new: float,
    fill: float,
    fee: float,
    bar: int,
    trades: np.ndarray,
    n: int,
) -> tuple[np.ndarray, int]:
    """Account one fill of symbol ``s`` (``old`` → ``new`` units) in its trade in progress;
    a fill that closes (or flips) it appends the closed trade to ``trades``."""
    closing = 0.0  # units of the current trade closed by this fill
    opening = 0.0  # units of a new trade opened by this fill
    if book[_SIDE, s] == 0.0:
        opening = abs(new)
    elif (old > 0.0) == (new > 0.0) and new != 0.0:
        q = abs(new - old)
        if abs(new) > abs(old):
            book[_IN_PX, s] = _vwap(book[_IN_PX, s], book[_IN_U, s], fill, q)
            book[_IN_U, s] += q
            book[_IN_V, s] += q * fill
        else:
            book[_OUT_PX, s] = _vwap(book[_OUT_PX, s], book[_OUT_U, s], fill, q)
            book[_OUT_U, s] += q
            book[_OUT_V, s] += q * fill
        book[_FEES, s] += fee
    else:
        closing = abs(old)
        opening = abs(new)
    if closing > 0.0:
        share = fee * closing / (closing + opening)
        book[_OUT_PX, s] = _vwap(book[_OUT_PX, s], book[_OUT_U, s], fill, closing)
        book[_OUT_U, s] += closing
        book[_OUT_V, s] += closing * fill
        book[_FEES, s] += share
        trades, n = _close_trade(book, s, bar, trades, n, False)
        book[_SIDE, s] = 0.0
        fee -= share
    if opening > 0.0:
        book[_SIDE, s] = 1.0 if new > 0.0 else -1.0
        book[_BAR, s] = bar
        book[_IN_U, s] = opening
        book[_IN_V, s] = opening * fill
        book[_IN_PX, s] = fill
        book[_OUT_U, s] = 0.0
        book[_OUT_V, s] = 0.0
        book[_OUT_PX, s] = 0.0
        book[_FEES, s] = fee
        book[_BORROW, s] = 0.0
    return trades, n


def simulate(
    open_: np.ndarray,
    close: np.ndarray,
    target: np.ndarray,
    trigger: np.ndarray,
    threshold: float,
    cash0: float,
    fee_rate: float,
    slip_rate: float,
    lot: float,
    borrow: np.ndarray,
    leverage: bool,
) -> tuple:
    """Run the portfolio backtest on ``(bars, symbols)`` arrays (NaN: no bar).

    ``target[t]`` are the weights decided on bar t; ``trigger[t]`` says whether they are
    traded (at bar t+1's open: every symbol that has a bar then, the others at their next bar);
    with ``threshold`` >= 0 instead every bar is considered and a symbol trades when its weight
    at the open is more than ``threshold`` from its target. ``lot`` <= 0: fractional units.
    ``borrow[t]``: the fraction of the short notional (marked at t's close) charged at t's close.
    Without ``leverage`` the buys of a bar are scaled down together to the cash left after its
    sells and their fees.

    Returns the curve (equity, cash, gross and net exposure, leverage, drawdown as the rows of
    a ``(6, bars)`` array); units, realized weights and cumulative PnL per bar and symbol
    (``(bars, symbols)`` arrays); the orders and the trades (rows, columns ``O_*`` / ``T_*``);
    the borrow cost per symbol; the bars whose buys were scaled to the cash (count, first bar,
    smallest fraction kept) and the rebalances that gave no order because of the lot (count,
    first bar, value of one lot at that fill, equity at the open).
    """
    n, m = open_.shape
    curve = np.empty((6, n))
    pos_out = np.empty((n, m))
    w_out = np.empty((n, m))
    pnl_out = np.empty((n, m))
    orders = np.empty((max(16, 2 * m), 6))
    trades = np.empty((max(16, m), 11))
    book = np.zeros((10, m))
    units = np.zeros(m)
    last = np.zeros(m)  # last close (the mark of a symbol without a bar)
    flow = np.zeros(m)  # cash each symbol brought in: sales - purchases - fees - borrow
    borrowed = np.zeros(m)
    pending = np.zeros(m, np.bool_)
    buy_sym = np.empty(m, np.int64)
    buy_units = np.empty(m)
    buy_fill = np.empty(m)
    buy_target = np.empty(m)
    n_orders = 0
    n_trades = 0
    n_scaled = 0
    first_scaled = -1
    least_kept = 1.0
    n_lot = 0
    first_lot = -1
    lot_value = 0.0
    lot_equity = 0.0
    cash = cash0
    peak = -np.inf
    for i in range(n):
        if i > 0:
            if threshold < 0.0 and trigger[i - 1]:
                for s in range(m):
                    pending[s] = True
            wealth = cash
            for s in range(m):
                px = open_[i, s]
                wealth += units[s] * (px if px == px else last[s])
            n_buys = 0
            for s in range(m):
                px = open_[i, s]
                if px != px:
                    continue
                w = target[i - 1, s]
                if threshold >= 0.0:
                    now = units[s] * px / wealth if wealth != 0.0 else 0.0
                    if not abs(now - w) > threshold:
                        continue
                elif not pending[s]:
                    continue
                pending[s] = False
                value = w * wealth
                held = units[s] * px
                if value == held:
                    continue
                buy = value > held
                fill = px * (1.0 + slip_rate) if buy else px * (1.0 - slip_rate)
                new = value / fill
                if lot > 0.0:
                    new = _round_lot(new, lot)
                traded = new - units[s]
                if (buy and traded <= 0.0) or (not buy and traded >= 0.0):
                    if lot > 0.0:  # the change was smaller than one lot
                        if n_lot == 0:
                            first_lot = i
                            lot_value = lot * fill
                            lot_equity = wealth
                        n_lot += 1
                    continue
                if buy:  # after every sell of the bar
                    buy_sym[n_buys] = s
                    buy_units[n_buys] = traded
                    buy_fill[n_buys] = fill
                    buy_target[n_buys] = w
                    n_buys += 1
                    continue
                fee = fee_rate * abs(traded * fill)
                cash -= traded * fill + fee
                flow[s] -= traded * fill + fee
                if n_orders == orders.shape[0]:
                    orders = _grow(orders)
                orders[n_orders, O_BAR] = i
                orders[n_orders, O_SYM] = s
                orders[n_orders, O_UNITS] = traded
                orders[n_orders, O_PRICE] = fill
                orders[n_orders, O_FEE] = fee
                orders[n_orders, O_TARGET] = w
                n_orders += 1
                trades, n_trades = _book_fill(
                    book, s, units[s], new, fill, fee, i, trades, n_trades
                )
                units[s] = new
            if n_buys > 0:
                cost = 0.0
                for j in range(n_buys):
                    cost += buy_units[j] * buy_fill[j] * (1.0 + fee_rate)
                keep = 1.0
                if not leverage and cost > cash:
                    keep = cash / cost if cash > 0.0 else 0.0
                    if keep < 1e-9:  # float dust left by an earlier full investment
                        keep = 0.0
                    if keep < 1.0 - 1e-9:  # not mere float noise in a full investment
                        if n_scaled == 0:
                            first_scaled = i
                        n_scaled += 1
                        least_kept = min(least_kept, keep)
                for j in range(n_buys):
                    s = buy_sym[j]
                    traded = buy_units[j]
                    if keep < 1.0:
                        traded *= keep
                        if lot > 0.0:
                            traded = _round_lot(traded, lot)
                    if traded <= 0.0:
                        continue
                    fill = buy_fill[j]
                    fee = fee_rate * traded * fill
                    cash -= traded * fill + fee
                    flow[s] -= traded * fill + fee
                    if n_orders == orders.shape[0]:
                        orders = _grow(orders)
                    orders[n_orders, O_BAR] = i
                    orders[n_orders, O_SYM] = s
                    orders[n_orders, O_UNITS] = traded
                    orders[n_orders, O_PRICE] = fill
                    orders[n_orders, O_FEE] = fee
                    orders[n_orders, O_TARGET] = buy_target[j]
                    n_orders += 1
                    new = units[s] + traded
                    trades, n_trades = _book_fill(
                        book, s, units[s], new, fill, fee, i, trades, n_trades
                    )
                    units[s] = new
                if keep < 1.0 and cash < 0.0 and cash > -1e-9 * cost:
                    cash = 0.0  # the scaled buys spend the cash exactly: drop float dust
        gross = 0.0
        net = 0.0
        for s in range(m):
            c = close[i, s]
            if c == c:
                last[s] = c
            u = units[s]
            if u < 0.0 and borrow[i] > 0.0:
                charge = -u * last[s] * borrow[i]
                cash -= charge
                flow[s] -= charge
                borrowed[s] += charge
                book[_BORROW, s] += charge
            v = u * last[s]
            gross += abs(v)
            net += v
        wealth = cash + net
        for s in range(m):
            v = units[s] * last[s]
            pos_out[i, s] = units[s]
            w_out[i, s] = v / wealth if wealth != 0.0 else np.nan
            pnl_out[i, s] = flow[s] + v
        curve[0, i] = wealth
        curve[1, i] = cash
        curve[2, i] = gross
        curve[3, i] = net
        curve[4, i] = gross / wealth if wealth > 0.0 else np.nan
        if wealth > peak:
            peak = wealth
        curve[5, i] = wealth / peak - 1.0
    for s in range(m):  # the positions still open: trades marked at the last close
        if book[_SIDE, s] != 0.0:
            rest = abs(units[s])
            book[_OUT_PX, s] = _vwap(book[_OUT_PX, s], book[_OUT_U, s], last[s], rest)
            book[_OUT_V, s] += rest * last[s]
            trades, n_trades = _close_trade(book, s, n - 1, trades, n_trades, True)
    return (
        curve,
        pos_out,
        w_out,
        pnl_out,
        orders[:n_orders],
        trades[:n_trades],
        borrowed,
        np.array([n_scaled, first_scaled, n_lot, first_lot], np.int64),
        np.array([least_kept, lot_value, lot_equity]),
    )


_compiled: dict[str, Callable[..., tuple]] = {}


def compiled_simulate() -> Callable[..., tuple]:
    """:func:`simulate` compiled by numba (``cache=True``), built on first use."""
    if not _compiled:
        from numba import njit

        # numba reads the globals when it compiles and cannot type the lazy ``np`` stand-in
        resolve_lazy(globals())
        namespace: dict[str, Any] = dict(globals())
        helpers: dict[str, Callable[..., Any]] = {"_round_lot": _round_lot, "_vwap": _vwap}
        helpers["_grow"] = _grow
        for name, fn in helpers.items():
            namespace[name] = njit(cache=True)(_rebind(fn, namespace, f"p{name}"))
        callers: tuple[Callable[..., Any], ...] = (_close_trade, _book_fill)
        for fn in callers:  # in call order: each sees the one before
            namespace[fn.__name__] = njit(cache=True)(_rebind(fn, namespace, f"{fn.__name__}_jit"))
        _compiled["simulate"] = njit(cache=True)(_rebind(simulate, namespace, "simulate_jit"))
    return _compiled["simulate"]


def _rebind(fn: Callable[..., Any], namespace: dict[str, Any], qualname: str) -> Any:
    """A copy of ``fn`` whose globals are ``namespace`` (so it calls the compiled helpers)."""
    twin = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__)
    twin.__qualname__ = qualname
    return twin


def simulate_for(cells: int) -> Callable[..., tuple]:
    """The kernel for ``cells`` bar × symbol cells: interpreted when few, compiled when many."""
    return simulate if cells < JIT_MIN_CELLS else compiled_simulate()
