"""The tick backtest's loop, compiled by numba: hftbacktest's backtester driven at a fixed step,
every order and fill captured, the state recorded at a fixed interval, and the two built-in
strategies (a grid market maker and a queue-aware order-imbalance taker).

Imported only when a tick backtest runs (numba and hftbacktest load then). The functions take
hftbacktest's jitclass backtester, which numba cannot cache on disk (it holds ctypes
pointers), so they compile once per process (≈ 20–60 s on a loaded 2-core machine, mostly
LLVM) and are kept in :data:`_COMPILED`.

Arrays (columns by the constants below): ``oi`` / ``of`` one row per order (int64 / float64
parts, row = order id - 1), ``fi`` / ``ff`` one row per fill, ``ri`` / ``rf`` one row per
record. Timestamps stay int64 nanoseconds: a float64 cannot hold an epoch timestamp exactly.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Callable
from typing import Any

import numpy as np
from hftbacktest.order import GTX, IOC, LIMIT, NEW, NONE, PARTIALLY_FILLED

__all__ = ["FF", "FI", "GRID_MM", "IMBALANCE_TAKER", "OF", "OI", "RF", "compiled_helpers", "kernel"]

GRID_MM, IMBALANCE_TAKER = 0, 1

# order rows: int64 part, float64 part
OI_ID, OI_SUBMIT, OI_SIDE, OI_TIF, OI_STATUS, OI_FIRST_FILL, OI_LAST_FILL, OI_CANCEL = range(8)
OI = 8
OF_PRICE, OF_QTY, OF_FILLED, OF_AHEAD = range(4)
OF = 4
# fill rows
FI_TS, FI_SEEN, FI_ORDER, FI_SIDE, FI_MAKER = range(5)
FI = 5
FF_PRICE, FF_QTY = range(2)
FF = 2
# record rows (ri is the timestamp)
RF_MID, RF_POSITION, RF_BALANCE, RF_FEE, RF_BID, RF_ASK = range(6)
RF = 6

#: status written for an order still working when the data ends
STATUS_OPEN_AT_END = 7
_INVALID_MIN = np.iinfo(np.int64).min
_INVALID_MAX = np.iinfo(np.int64).max

_COMPILED: dict[Any, Callable[..., Any]] = {}
#: the strategy step :func:`_run` calls; each compiled loop gets its own (:func:`kernel`)
_STEP: Any = None
_LOCK = threading.Lock()


def _grow(a: np.ndarray, n: int) -> np.ndarray:
    """``a`` with room for at least ``n`` rows (doubling), its rows kept."""
    if n <= a.shape[0]:
        return a
    b = np.empty((max(n, 2 * a.shape[0]), a.shape[1]), a.dtype)
    b[: a.shape[0]] = a
    return b


def _submit(hbt, book, oi, of, side, price_tick, tick, qty, tif, ahead):  # type: ignore[no-untyped-def]
    """Submit a limit order and log it; the (possibly grown) order arrays."""
    oid = book[0]
    book[0] += 1
    n = book[1]
    oi = _grow(oi, n + 1)
    of = _grow(of, n + 1)
    price = price_tick * tick
    if side > 0:
        hbt.submit_buy_order(0, oid, price, qty, tif, LIMIT, False)
    else:
        hbt.submit_sell_order(0, oid, price, qty, tif, LIMIT, False)
    oi[n, OI_ID] = oid
    oi[n, OI_SUBMIT] = hbt.current_timestamp
    oi[n, OI_SIDE] = side
    oi[n, OI_TIF] = tif
    oi[n, OI_STATUS] = NONE
    oi[n, OI_FIRST_FILL] = -1
    oi[n, OI_LAST_FILL] = -1
    oi[n, OI_CANCEL] = -1
    of[n, OF_PRICE] = price
    of[n, OF_QTY] = qty
    of[n, OF_FILLED] = 0.0
    of[n, OF_AHEAD] = ahead
    book[1] = n + 1
    return oi, of


def _cancel(hbt, oi, oid):  # type: ignore[no-untyped-def]
    hbt.cancel(0, oid, False)
    if oi[oid - 1, OI_CANCEL] < 0:
        oi[oid - 1, OI_CANCEL] = hbt.current_timestamp


def _scan(hbt, book, oi, of, fi, ff, work):  # type: ignore[no-untyped-def]
    """Log the fills and status changes since the last scan, list the working orders, then
    drop the finished ones from hftbacktest's order dict. Returns the grown fill arrays."""
    values = hbt.orders(0).values()
    k = 0
    now = hbt.current_timestamp
    while values.has_next():
        o = values.get()
        row = o.order_id - 1
        cum = o.qty - o.leaves_qty
        if cum > of[row, OF_FILLED] + 1e-12:
            n = book[2]
            fi = _grow(fi, n + 1)
            ff = _grow(ff, n + 1)
            fi[n, FI_TS] = o.exch_timestamp
            fi[n, FI_SEEN] = now
            fi[n, FI_ORDER] = o.order_id
            fi[n, FI_SIDE] = o.side
            fi[n, FI_MAKER] = 1 if o.arr[0].maker else 0
            ff[n, FF_PRICE] = o.exec_price_tick * o.arr[0].tick_size
            ff[n, FF_QTY] = cum - of[row, OF_FILLED]
            book[2] = n + 1
            of[row, OF_FILLED] = cum
            if oi[row, OI_FIRST_FILL] < 0:
                oi[row, OI_FIRST_FILL] = o.exch_timestamp
            oi[row, OI_LAST_FILL] = o.exch_timestamp
        oi[row, OI_STATUS] = o.status
        if (o.status == NEW or o.status == PARTIALLY_FILLED or o.status == NONE) and k < len(work):
            work[k, 0] = o.order_id
            work[k, 1] = o.side
            work[k, 2] = o.price_tick
            work[k, 3] = 0 if o.req == NONE else 1
            k += 1
    book[4] = k
    hbt.clear_inactive_orders(0)
    return fi, ff


def _working(book, work, side, tick):  # type: ignore[no-untyped-def]
    """The working order's index in ``work`` on ``side`` at ``tick``, or -1."""
    for j in range(book[4]):
        if work[j, 1] == side and work[j, 2] == tick:
            return j
    return -1


def _grid_step(hbt, p, s, book, oi, of, work):  # type: ignore[no-untyped-def]
    """The grid market maker: ``levels`` post-only quotes a side, ``spacing`` ticks apart,
    the first ``half_spread`` ticks from a reservation price that moves ``skew`` ticks against
    each ``qty`` of inventory; a side stops quoting at ``max_position``. Quotes no longer on
    the grid are cancelled, missing ones submitted."""
    levels, spacing, half, qty, max_pos, skew = int(p[0]), int(p[1]), p[2], p[3], p[4], p[5]
    depth = hbt.depth(0)
    bid_t, ask_t = depth.best_bid_tick, depth.best_ask_tick
    if bid_t == _INVALID_MIN or ask_t == _INVALID_MAX or bid_t >= ask_t:
        return oi, of
    tick = depth.tick_size
    pos = hbt.position(0)
    reservation = (bid_t + ask_t) / 2.0 - skew * pos / qty
    top_bid = min(int(np.floor(reservation - half)), bid_t)
    top_ask = max(int(np.ceil(reservation + half)), ask_t)
    want_bid = pos < max_pos - 1e-12
    want_ask = pos > -max_pos + 1e-12
    for j in range(book[4]):  # cancel what is off the grid
        if work[j, 3] != 0:
            continue
        t, side = work[j, 2], work[j, 1]
        if side > 0:
            off = t > top_bid or (top_bid - t) % spacing != 0 or top_bid - t >= levels * spacing
            if off or not want_bid:
                _cancel(hbt, oi, work[j, 0])
        else:
            off = t < top_ask or (t - top_ask) % spacing != 0 or t - top_ask >= levels * spacing
            if off or not want_ask:
                _cancel(hbt, oi, work[j, 0])
    for i in range(levels):
        if want_bid:
            t = top_bid - i * spacing
            if _working(book, work, 1, t) < 0:
                ahead = depth.bid_qty_at_tick(t)
                oi, of = _submit(hbt, book, oi, of, 1, t, tick, qty, GTX, ahead)
        if want_ask:
            t = top_ask + i * spacing
            if _working(book, work, -1, t) < 0:
                ahead = depth.ask_qty_at_tick(t)
                oi, of = _submit(hbt, book, oi, of, -1, t, tick, qty, GTX, ahead)
    return oi, of


def _imbalance(depth, levels):  # type: ignore[no-untyped-def]
    bid_t, ask_t = depth.best_bid_tick, depth.best_ask_tick
    b = 0.0
    a = 0.0
    for i in range(levels):
        b += depth.bid_qty_at_tick(bid_t - i)
        a += depth.ask_qty_at_tick(ask_t + i)
    return (b - a) / (b + a) if b + a > 0 else 0.0


def _taker_step(hbt, p, s, book, oi, of, work):  # type: ignore[no-untyped-def]
    """The queue-aware order-imbalance taker. The book's imbalance over ``levels`` ticks a side
    sets a target (+/- ``max_position`` beyond +/- ``threshold``, else unchanged). Toward it,
    it joins the best price post-only when the queue there is at most ``max_ahead``; a resting
    order that still has queue ahead of it after ``patience`` ns (estimated as the least
    quantity seen at its price since it was sent: a queue only shrinks from the front; at the
    front it keeps waiting for the next trade), or whose price is no longer the best, is
    cancelled and the quantity taken with an IOC order at the opposite best. ``s`` holds the
    resting order: id, side, tick, queue ahead, since."""
    threshold, levels, qty, max_pos, max_ahead, patience = p[0], int(p[1]), p[2], p[3], p[4], p[5]
    depth = hbt.depth(0)
    bid_t, ask_t = depth.best_bid_tick, depth.best_ask_tick
    if bid_t == _INVALID_MIN or ask_t == _INVALID_MAX or bid_t >= ask_t:
        return oi, of
    tick = depth.tick_size
    now = hbt.current_timestamp
    pos = hbt.position(0)
    imb = _imbalance(depth, levels)
    resting = int(s[0])
    if resting > 0 and _find(book, work, resting) < 0:
        resting = 0  # filled, cancelled or expired since
        s[0] = 0
    if imb > threshold:
        target = max_pos
    elif imb < -threshold:
        target = -max_pos
    else:
        target = pos
    need = target - pos
    side = 1 if need > 0 else -1
    if resting > 0:
        j = _find(book, work, resting)
        if work[j, 3] != 0:
            return oi, of  # a request is on its way: wait for the answer
        r_side, r_tick = int(s[1]), int(s[2])
        level = depth.bid_qty_at_tick(r_tick) if r_side > 0 else depth.ask_qty_at_tick(r_tick)
        s[3] = min(s[3], level)
        best = bid_t if r_side > 0 else ask_t
        stale = r_tick != best or (s[3] > 0 and now - s[4] >= patience)
        if abs(need) < 1e-12 or r_side != side or stale:
            _cancel(hbt, oi, resting)
            if stale and r_side == side and abs(need) >= 1e-12:
                take = ask_t if side > 0 else bid_t
                oi, of = _submit(hbt, book, oi, of, side, take, tick, min(qty, abs(need)), IOC, 0.0)
        return oi, of
    if abs(need) < 1e-12:
        return oi, of
    size = min(qty, abs(need))
    join = bid_t if side > 0 else ask_t
    ahead = depth.bid_qty_at_tick(join) if side > 0 else depth.ask_qty_at_tick(join)
    if ahead <= max_ahead:
        oi, of = _submit(hbt, book, oi, of, side, join, tick, size, GTX, ahead)
        s[0], s[1], s[2], s[3], s[4] = book[0] - 1, side, join, ahead, now
    else:
        take = ask_t if side > 0 else bid_t
        oi, of = _submit(hbt, book, oi, of, side, take, tick, size, IOC, 0.0)
    return oi, of


def _find(book, work, oid):  # type: ignore[no-untyped-def]
    for j in range(book[4]):
        if work[j, 0] == oid:
            return j
    return -1


def _record(hbt, book, ri, rf, last_mid, final):  # type: ignore[no-untyped-def]
    """Append the state now (mid carried over while a side of the book is empty); ``final``:
    the data has ended and the clock may not have moved, so the state replaces the last row."""
    depth = hbt.depth(0)
    bid_t, ask_t = depth.best_bid_tick, depth.best_ask_tick
    mid = last_mid
    if bid_t != _INVALID_MIN and ask_t != _INVALID_MAX:
        mid = (depth.best_bid + depth.best_ask) / 2.0
    if np.isnan(mid):
        return mid  # no two-sided book yet: nothing to mark at
    n = book[3]
    if n > 0 and ri[n - 1] >= hbt.current_timestamp:
        if not final:
            return mid
        n -= 1
    sv = hbt.state_values(0)
    ri[n] = hbt.current_timestamp
    rf[n, RF_MID] = mid
    rf[n, RF_POSITION] = sv.position
    rf[n, RF_BALANCE] = sv.balance
    rf[n, RF_FEE] = sv.fee
    rf[n, RF_BID] = depth.best_bid if bid_t != _INVALID_MIN else np.nan
    rf[n, RF_ASK] = depth.best_ask if ask_t != _INVALID_MAX else np.nan
    book[3] = n + 1
    return mid


def _run(hbt, p, step, update_every, record_every, ri, rf):  # type: ignore[no-untyped-def]
    """Drive ``hbt`` to the end of its data: every ``step`` ns scan the orders; every
    ``update_every`` steps run the strategy; every ``record_every`` steps record.

    ``book`` (int64): next order id, orders, fills, records, working orders in ``work``
    (id, side, price tick, 1 while a request is pending) as the last scan found them.
    """
    book = np.zeros(6, np.int64)
    book[0] = 1
    oi = np.empty((1024, OI), np.int64)
    of = np.empty((1024, OF), np.float64)
    fi = np.empty((1024, FI), np.int64)
    ff = np.empty((1024, FF), np.float64)
    work = np.zeros((4096, 4), np.int64)
    s = np.zeros(5)
    last_mid = np.nan
    k = 0
    while hbt.elapse(step) == 0:
        fi, ff = _scan(hbt, book, oi, of, fi, ff, work)
        if k % record_every == 0 and book[3] < len(ri):
            last_mid = _record(hbt, book, ri, rf, last_mid, False)
        if k % update_every == 0:
            oi, of = _STEP(hbt, p, s, book, oi, of, work)
        k += 1
    fi, ff = _scan(hbt, book, oi, of, fi, ff, work)
    if book[3] < len(ri):
        _record(hbt, book, ri, rf, last_mid, True)
    for j in range(book[4]):
        oi[work[j, 0] - 1, OI_STATUS] = STATUS_OPEN_AT_END
    return book, oi[: book[1]], of[: book[1]], fi[: book[2]], ff[: book[2]], k


def kernel(strategy: int) -> Callable[..., Any]:
    """The loop with ``strategy``'s step (:data:`GRID_MM`, :data:`IMBALANCE_TAKER`), compiled
    by numba on first use in this process (two flow branches may ask at once: one builds)."""
    with _LOCK:
        if strategy not in _COMPILED:
            from numba import njit

            g = _helpers()
            step = g["_grid_step"] if strategy == GRID_MM else g["_taker_step"]
            # the loop's source, with this strategy's step as its _STEP global
            namespace = dict(g, _STEP=step)
            run = types.FunctionType(_run.__code__, namespace, "_run")
            _COMPILED[strategy] = njit(run)
        return _COMPILED[strategy]


def compiled_helpers() -> dict[str, Any]:
    """This module's namespace with its helpers compiled (``_scan``, ``_record``, ``_submit``,
    ``_cancel``, ...): for other loops over the same arrays (nodes/builtin/_tickstep.py)."""
    with _LOCK:
        return dict(_helpers())


def _helpers() -> dict[str, Any]:
    """The module's globals, its helpers replaced by their numba versions once (lock held)."""
    from numba import njit

    g = globals()
    if "_grow" not in _COMPILED:
        for name in _HELPERS:
            g[name] = njit(g[name])
        _COMPILED["_grow"] = g["_grow"]
    return g


_HELPERS = (
    "_grow",
    "_submit",
    "_cancel",
    "_scan",
    "_working",
    "_find",
    "_grid_step",
    "_imbalance",
    "_taker_step",
    "_record",
)
