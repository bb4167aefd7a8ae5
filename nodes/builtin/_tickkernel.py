"""The tick backtest's loop, compiled by numba: hftbacktest's backtester driven at a fixed step,
every order and fill captured, the state recorded at a fixed interval, and the two built-in
strategies (a grid market maker and a queue-aware order-imbalance taker).

Imported only when a tick backtest runs (numba and hftbacktest load then). Two parts:

- what touches hftbacktest's jitclass backtester (:data:`_PER_PROCESS`: copy its orders out,
  read the book and the account, send the queued orders, the loop itself) is small and
  compiles in each process: numba cannot cache a function of a jitclass on disk (it holds
  ctypes pointers);
- the strategies and the bookkeeping (:data:`_CACHED`) take plain arrays only and are cached
  on disk by numba: a new process (each flow run, each sweep chunk) loads them instead of
  compiling them again, which was most of the LLVM time (≈ 10 of 14 s unloaded, 20–60 s on a
  loaded 2-core machine).

A strategy turn reads the market the loop copied (``mi`` / ``mf``, the ``bq`` / ``aq`` levels
from the best), logs its orders and queues the actions (``ops`` / ``opq``); the loop then
sends them in that order, all at the same exchange time.

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

__all__ = [
    "ACCT",
    "FF",
    "FI",
    "GRID_MM",
    "IMBALANCE_TAKER",
    "OF",
    "OI",
    "RF",
    "compiled_helpers",
    "kernel",
]

GRID_MM, IMBALANCE_TAKER = 0, 1

# order rows: int64 part, float64 part
OI_ID, OI_SUBMIT, OI_SIDE, OI_TIF, OI_STATUS, OI_FIRST_FILL, OI_LAST_FILL, OI_CANCEL = range(8)
OI = 8
OF_PRICE, OF_QTY, OF_FILLED, OF_AHEAD = range(4)
OF = 4
# fill rows
FI_TS, FI_SEEN, FI_ORDER, FI_SIDE, FI_MAKER, FI_MERGED = range(6)
FI = 6
FF_PRICE, FF_QTY = range(2)
FF = 2
# record rows (ri is the timestamp)
RF_MID, RF_POSITION, RF_BALANCE, RF_FEE, RF_BID, RF_ASK = range(6)
RF = 6
# hftbacktest's orders as the loop copies them: int64 part, float64 part
OB_ID, OB_STATUS, OB_EXCH_TS, OB_SIDE, OB_MAKER, OB_EXEC_TICK, OB_PRICE_TICK, OB_REQ = range(8)
OB = 8
OBF_QTY, OBF_LEAVES, OBF_TICK, OBF_EXEC_QTY = range(4)
OBF = 4
# the account kept from the logged fills, and the fee rates (fractions of the traded value)
ACCT_POS, ACCT_BALANCE, ACCT_FEE, ACCT_MAKER_RATE, ACCT_TAKER_RATE = range(5)
ACCT = 5
# the market the loop reads for a turn or a record: int64 part, float64 part
MI_BID, MI_ASK, MI_NOW = range(3)
MI = 3
MF_TICK, MF_BEST_BID, MF_BEST_ASK, MF_POS, MF_BALANCE, MF_FEE, MF_WATCH = range(7)
MF = 7
WORK_ROWS = 4096  # working orders a scan lists
MAX_OPS = WORK_ROWS + 2 * 100 + 8  # a turn's actions: every cancel and a full grid

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


# -- cached part: plain arrays in and out (no hftbacktest object) ---------------------------


def _log_submit(book, oi, of, side, price_tick, tick, qty, tif, now, ahead):  # type: ignore[no-untyped-def]
    """Log a new limit order (its id is ``book[0]``; ``ahead`` NaN: the loop reads the level
    when it sends it); the (possibly grown) order arrays."""
    oid = book[0]
    book[0] += 1
    n = book[1]
    oi = _grow(oi, n + 1)
    of = _grow(of, n + 1)
    oi[n, OI_ID] = oid
    oi[n, OI_SUBMIT] = now
    oi[n, OI_SIDE] = side
    oi[n, OI_TIF] = tif
    oi[n, OI_STATUS] = NONE
    oi[n, OI_FIRST_FILL] = -1
    oi[n, OI_LAST_FILL] = -1
    oi[n, OI_CANCEL] = -1
    of[n, OF_PRICE] = price_tick * tick
    of[n, OF_QTY] = qty
    of[n, OF_FILLED] = 0.0
    of[n, OF_AHEAD] = ahead
    book[1] = n + 1
    return oi, of


def _log_cancel(oi, oid, now):  # type: ignore[no-untyped-def]
    if oi[oid - 1, OI_CANCEL] < 0:
        oi[oid - 1, OI_CANCEL] = now


def _op(ops, opq, n, kind, oid, side, price_tick, tif, qty):  # type: ignore[no-untyped-def]
    """Queue an order action for the loop to send: (kind 0 submit / 1 cancel, order id, side,
    price tick, time in force) and its quantity; the new count."""
    ops[n, 0] = kind
    ops[n, 1] = oid
    ops[n, 2] = side
    ops[n, 3] = price_tick
    ops[n, 4] = tif
    opq[n] = qty
    return n + 1


def _submit(book, oi, of, ops, opq, n, side, price_tick, tick, qty, tif, now, ahead):  # type: ignore[no-untyped-def]
    """Log a new order and queue its submission: the grown order arrays and the op count."""
    oid = book[0]
    oi, of = _log_submit(book, oi, of, side, price_tick, tick, qty, tif, now, ahead)
    n = _op(ops, opq, n, 0, oid, side, price_tick, tif, qty)
    return oi, of, n


def _cancel(oi, ops, opq, n, oid, now):  # type: ignore[no-untyped-def]
    _log_cancel(oi, oid, now)
    return _op(ops, opq, n, 1, oid, 0, 0, 0, 0.0)


def _scan_rows(book, oi, of, fi, ff, work, obi, obf, m, now, acct):  # type: ignore[no-untyped-def]
    """Log the fills and status changes the loop read off hftbacktest's ``m`` orders
    (:func:`_gather`), book each fill into ``acct`` and list the working ones, in order id
    order. Returns the grown fill arrays.

    The account is ours, not hftbacktest's: its order dict iterates in a per-process hash
    order, so its balance's last bits differ between processes, and (2.4) its local account
    counts only the last of an order's partial fills. A fill row is what changed since the
    last scan: several fills of one order reported together make one row (``FI_MERGED``) with
    their quantity and the last one's price, exact for a resting order (a maker fills at its
    own price), the last level's for a taker walking the book."""
    _sort_by_id(obi, obf, m)
    k = 0
    for i in range(m):
        oid = obi[i, OB_ID]
        row = oid - 1
        status = obi[i, OB_STATUS]
        cum = obf[i, OBF_QTY] - obf[i, OBF_LEAVES]
        if cum > of[row, OF_FILLED] + 1e-12:
            n = book[2]
            fi = _grow(fi, n + 1)
            ff = _grow(ff, n + 1)
            ts = obi[i, OB_EXCH_TS]
            qty = cum - of[row, OF_FILLED]
            price = obi[i, OB_EXEC_TICK] * obf[i, OBF_TICK]
            side = obi[i, OB_SIDE]
            maker = obi[i, OB_MAKER]
            fi[n, FI_TS] = ts
            fi[n, FI_SEEN] = now
            fi[n, FI_ORDER] = oid
            fi[n, FI_SIDE] = side
            fi[n, FI_MAKER] = maker
            fi[n, FI_MERGED] = 1 if qty > obf[i, OBF_EXEC_QTY] * (1.0 + 1e-9) + 1e-12 else 0
            ff[n, FF_PRICE] = price
            ff[n, FF_QTY] = qty
            book[2] = n + 1
            of[row, OF_FILLED] = cum
            if oi[row, OI_FIRST_FILL] < 0:
                oi[row, OI_FIRST_FILL] = ts
            oi[row, OI_LAST_FILL] = ts
            signed = qty if side > 0 else -qty
            acct[ACCT_POS] += signed
            acct[ACCT_BALANCE] -= signed * price
            rate = acct[ACCT_MAKER_RATE] if maker == 1 else acct[ACCT_TAKER_RATE]
            acct[ACCT_FEE] += rate * qty * price
        oi[row, OI_STATUS] = status
        working = (status == NEW) | (status == PARTIALLY_FILLED) | (status == NONE)
        if working and k < len(work):
            work[k, 0] = oid
            work[k, 1] = obi[i, OB_SIDE]
            work[k, 2] = obi[i, OB_PRICE_TICK]
            work[k, 3] = 0 if obi[i, OB_REQ] == NONE else 1
            k += 1
    book[4] = k
    return fi, ff


def _sort_by_id(obi, obf, m):  # type: ignore[no-untyped-def]
    """Sort the first ``m`` rows of ``obi`` / ``obf`` by order id, in place (an insertion
    sort: a scan holds a few orders, mostly in order already; no allocation per step).
    hftbacktest's order dict iterates in a hash order that differs between processes; by id,
    the fills of one scan, the account and the working list are the same in every process."""
    for i in range(1, m):
        j = i
        while j > 0 and obi[j - 1, OB_ID] > obi[j, OB_ID]:
            for c in range(OB):
                obi[j - 1, c], obi[j, c] = obi[j, c], obi[j - 1, c]
            for c in range(OBF):
                obf[j - 1, c], obf[j, c] = obf[j, c], obf[j - 1, c]
            j -= 1


def _working(book, work, side, tick):  # type: ignore[no-untyped-def]
    """The working order's index in ``work`` on ``side`` at ``tick``, or -1."""
    for j in range(book[4]):
        if work[j, 1] == side and work[j, 2] == tick:
            return j
    return -1


def _grid_step(p, s, book, oi, of, work, mi, mf, bq, aq, ops, opq):  # type: ignore[no-untyped-def]
    """The grid market maker: ``levels`` post-only quotes a side, ``spacing`` ticks apart,
    the first ``half_spread`` ticks from a reservation price that moves ``skew`` ticks against
    each ``qty`` of inventory; a side stops quoting at ``max_position``. Quotes no longer on
    the grid are cancelled, missing ones submitted. Returns the order arrays and the number of
    queued actions (``ops``)."""
    n = 0
    levels, spacing, half, qty, max_pos, skew = int(p[0]), int(p[1]), p[2], p[3], p[4], p[5]
    bid_t, ask_t, now = mi[MI_BID], mi[MI_ASK], mi[MI_NOW]
    if bid_t == _INVALID_MIN or ask_t == _INVALID_MAX or bid_t >= ask_t:
        return oi, of, n
    tick, pos = mf[MF_TICK], mf[MF_POS]
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
                n = _cancel(oi, ops, opq, n, work[j, 0], now)
        else:
            off = t < top_ask or (t - top_ask) % spacing != 0 or t - top_ask >= levels * spacing
            if off or not want_ask:
                n = _cancel(oi, ops, opq, n, work[j, 0], now)
    for i in range(levels):
        if want_bid:
            t = top_bid - i * spacing
            if _working(book, work, 1, t) < 0:
                oi, of, n = _submit(book, oi, of, ops, opq, n, 1, t, tick, qty, GTX, now, np.nan)
        if want_ask:
            t = top_ask + i * spacing
            if _working(book, work, -1, t) < 0:
                oi, of, n = _submit(book, oi, of, ops, opq, n, -1, t, tick, qty, GTX, now, np.nan)
    return oi, of, n


def _imbalance(bq, aq, levels):  # type: ignore[no-untyped-def]
    b = 0.0
    a = 0.0
    for i in range(levels):
        b += bq[i]
        a += aq[i]
    return (b - a) / (b + a) if b + a > 0 else 0.0


def _taker_step(p, s, book, oi, of, work, mi, mf, bq, aq, ops, opq):  # type: ignore[no-untyped-def]
    """The queue-aware order-imbalance taker. The book's imbalance over ``levels`` ticks a side
    sets a target (+/- ``max_position`` beyond +/- ``threshold``, else unchanged). Toward it,
    it joins the best price post-only when the queue there is at most ``max_ahead``; a resting
    order that still has queue ahead of it after ``patience`` ns (estimated as the least
    quantity seen at its price since it was sent: a queue only shrinks from the front; at the
    front it keeps waiting for the next trade), or whose price is no longer the best, is
    cancelled and the quantity taken with an IOC order at the opposite best. ``s`` holds the
    resting order: id, side, tick, queue ahead, since (the loop reads the level at its tick
    into ``mf[MF_WATCH]``)."""
    n = 0
    threshold, levels, qty, max_pos, max_ahead, patience = p[0], int(p[1]), p[2], p[3], p[4], p[5]
    bid_t, ask_t, now = mi[MI_BID], mi[MI_ASK], mi[MI_NOW]
    if bid_t == _INVALID_MIN or ask_t == _INVALID_MAX or bid_t >= ask_t:
        return oi, of, n
    tick, pos = mf[MF_TICK], mf[MF_POS]
    imb = _imbalance(bq, aq, levels)
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
            return oi, of, n  # a request is on its way: wait for the answer
        r_side, r_tick = int(s[1]), int(s[2])
        s[3] = min(s[3], mf[MF_WATCH])
        best = bid_t if r_side > 0 else ask_t
        stale = r_tick != best or (s[3] > 0 and now - s[4] >= patience)
        if abs(need) < 1e-12 or r_side != side or stale:
            n = _cancel(oi, ops, opq, n, resting, now)
            if stale and r_side == side and abs(need) >= 1e-12:
                take = ask_t if side > 0 else bid_t
                size = min(qty, abs(need))
                oi, of, n = _submit(
                    book, oi, of, ops, opq, n, side, take, tick, size, IOC, now, 0.0
                )
        return oi, of, n
    if abs(need) < 1e-12:
        return oi, of, n
    size = min(qty, abs(need))
    join = bid_t if side > 0 else ask_t
    ahead = bq[0] if side > 0 else aq[0]
    if ahead <= max_ahead:
        oi, of, n = _submit(book, oi, of, ops, opq, n, side, join, tick, size, GTX, now, ahead)
        s[0], s[1], s[2], s[3], s[4] = book[0] - 1, side, join, ahead, now
    else:
        take = ask_t if side > 0 else bid_t
        oi, of, n = _submit(book, oi, of, ops, opq, n, side, take, tick, size, IOC, now, 0.0)
    return oi, of, n


def _find(book, work, oid):  # type: ignore[no-untyped-def]
    for j in range(book[4]):
        if work[j, 0] == oid:
            return j
    return -1


def _record_row(book, ri, rf, last_mid, final, mi, mf):  # type: ignore[no-untyped-def]
    """Append the state the loop read (:func:`_market`; mid carried over while a side of the
    book is empty); ``final``: the data has ended and the clock may not have moved, so the
    state replaces the last row."""
    bid_t, ask_t, now = mi[MI_BID], mi[MI_ASK], mi[MI_NOW]
    mid = last_mid
    if bid_t != _INVALID_MIN and ask_t != _INVALID_MAX:
        mid = (mf[MF_BEST_BID] + mf[MF_BEST_ASK]) / 2.0
    if np.isnan(mid):
        return mid  # no two-sided book yet: nothing to mark at
    n = book[3]
    if n > 0 and ri[n - 1] >= now:
        if not final:
            return mid
        n -= 1
    ri[n] = now
    rf[n, RF_MID] = mid
    rf[n, RF_POSITION] = mf[MF_POS]
    rf[n, RF_BALANCE] = mf[MF_BALANCE]
    rf[n, RF_FEE] = mf[MF_FEE]
    rf[n, RF_BID] = mf[MF_BEST_BID] if bid_t != _INVALID_MIN else np.nan
    rf[n, RF_ASK] = mf[MF_BEST_ASK] if ask_t != _INVALID_MAX else np.nan
    book[3] = n + 1
    return mid


def _close_open(book, oi, work):  # type: ignore[no-untyped-def]
    for j in range(book[4]):
        oi[work[j, 0] - 1, OI_STATUS] = STATUS_OPEN_AT_END


# -- per-process part: what touches hftbacktest's jitclass (numba cannot cache it) ----------


def _gather(hbt, obi, obf):  # type: ignore[no-untyped-def]
    """Copy hftbacktest's orders into ``obi`` / ``obf`` (grown), then drop its finished ones.
    Returns the arrays and the count."""
    values = hbt.orders(0).values()
    m = 0
    while values.has_next():
        o = values.get()
        if m >= obi.shape[0]:
            obi = _grow(obi, m + 1)
            obf = _grow(obf, m + 1)
        obi[m, OB_ID] = o.order_id
        obi[m, OB_STATUS] = o.status
        obi[m, OB_EXCH_TS] = o.exch_timestamp
        obi[m, OB_SIDE] = o.side
        obi[m, OB_MAKER] = 1 if o.arr[0].maker else 0
        obi[m, OB_EXEC_TICK] = o.exec_price_tick
        obi[m, OB_PRICE_TICK] = o.price_tick
        obi[m, OB_REQ] = o.req
        obf[m, OBF_QTY] = o.qty
        obf[m, OBF_LEAVES] = o.leaves_qty
        obf[m, OBF_TICK] = o.arr[0].tick_size
        obf[m, OBF_EXEC_QTY] = o.exec_qty
        m += 1
    hbt.clear_inactive_orders(0)
    return obi, obf, m


def _scan(hbt, book, oi, of, fi, ff, work, obi, obf, acct):  # type: ignore[no-untyped-def]
    """:func:`_gather` then :func:`_scan_rows`: the fill arrays and the order buffers."""
    obi, obf, m = _gather(hbt, obi, obf)
    fi, ff = _scan_rows(book, oi, of, fi, ff, work, obi, obf, m, hbt.current_timestamp, acct)
    return fi, ff, obi, obf


def _market(hbt, mi, mf, s, bq, aq, acct):  # type: ignore[no-untyped-def]
    """The clock, the best prices, the account (``acct``, :func:`_scan_rows`), ``len(bq)``
    levels a side from the best and the level at the taker's resting order (``s``), into
    ``mi`` / ``mf`` / ``bq`` / ``aq``."""
    depth = hbt.depth(0)
    bid_t, ask_t = depth.best_bid_tick, depth.best_ask_tick
    mi[MI_BID], mi[MI_ASK], mi[MI_NOW] = bid_t, ask_t, hbt.current_timestamp
    mf[MF_TICK] = depth.tick_size
    mf[MF_BEST_BID], mf[MF_BEST_ASK] = depth.best_bid, depth.best_ask
    mf[MF_POS], mf[MF_BALANCE], mf[MF_FEE] = acct[ACCT_POS], acct[ACCT_BALANCE], acct[ACCT_FEE]
    for i in range(bq.shape[0]):
        bq[i] = depth.bid_qty_at_tick(bid_t - i) if bid_t != _INVALID_MIN else 0.0
        aq[i] = depth.ask_qty_at_tick(ask_t + i) if ask_t != _INVALID_MAX else 0.0
    mf[MF_WATCH] = 0.0
    if s[0] > 0:
        t = int(s[2])
        mf[MF_WATCH] = depth.bid_qty_at_tick(t) if s[1] > 0 else depth.ask_qty_at_tick(t)


def _send(hbt, of, ops, opq, n):  # type: ignore[no-untyped-def]
    """Send the ``n`` queued actions in order; a submission logged with a NaN queue ahead gets
    the level's quantity now (the book does not move between the actions of one turn)."""
    depth = hbt.depth(0)
    for i in range(n):
        oid = ops[i, 1]
        if ops[i, 0] == 0:
            side, t, tif, row = ops[i, 2], ops[i, 3], ops[i, 4], oid - 1
            if np.isnan(of[row, OF_AHEAD]):
                of[row, OF_AHEAD] = (
                    depth.bid_qty_at_tick(t) if side > 0 else depth.ask_qty_at_tick(t)
                )
            if side > 0:
                hbt.submit_buy_order(0, oid, of[row, OF_PRICE], opq[i], tif, LIMIT, False)
            else:
                hbt.submit_sell_order(0, oid, of[row, OF_PRICE], opq[i], tif, LIMIT, False)
        else:
            hbt.cancel(0, oid, False)


def _run(hbt, p, step, update_every, record_every, ri, rf, window, acct):  # type: ignore[no-untyped-def]
    """Drive ``hbt`` to the end of its data: every ``step`` ns scan the orders; every
    ``update_every`` steps run the strategy; every ``record_every`` steps record.

    ``book`` (int64): next order id, orders, fills, records, working orders in ``work``
    (id, side, price tick, 1 while a request is pending) as the last scan found them.
    ``acct``: the account the fills make (:data:`ACCT`; the caller sets the fee rates).
    """
    book = np.zeros(6, np.int64)
    book[0] = 1
    oi = np.empty((1024, OI), np.int64)
    of = np.empty((1024, OF), np.float64)
    fi = np.empty((1024, FI), np.int64)
    ff = np.empty((1024, FF), np.float64)
    work = np.zeros((WORK_ROWS, 4), np.int64)
    obi = np.empty((256, OB), np.int64)
    obf = np.empty((256, OBF), np.float64)
    ops = np.zeros((MAX_OPS, 5), np.int64)
    opq = np.zeros(MAX_OPS)
    mi = np.zeros(MI, np.int64)
    mf = np.zeros(MF)
    bq = np.zeros(window)
    aq = np.zeros(window)
    s = np.zeros(5)
    last_mid = np.nan
    k = 0
    while hbt.elapse(step) == 0:
        fi, ff, obi, obf = _scan(hbt, book, oi, of, fi, ff, work, obi, obf, acct)
        record = k % record_every == 0 and book[3] < len(ri)
        turn = k % update_every == 0
        if record or turn:
            _market(hbt, mi, mf, s, bq, aq, acct)
        if record:
            last_mid = _record_row(book, ri, rf, last_mid, False, mi, mf)
        if turn:
            oi, of, n = _STEP(p, s, book, oi, of, work, mi, mf, bq, aq, ops, opq)
            _send(hbt, of, ops, opq, n)
        k += 1
    fi, ff, obi, obf = _scan(hbt, book, oi, of, fi, ff, work, obi, obf, acct)
    if book[3] < len(ri):
        _market(hbt, mi, mf, s, bq, aq, acct)
        _record_row(book, ri, rf, last_mid, True, mi, mf)
    _close_open(book, oi, work)
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
    """This module's namespace with its helpers compiled (``_scan``, ``_market``, ``_send``,
    ``_submit``, ...): for other loops over the same arrays (nodes/builtin/_tickstep.py)."""
    with _LOCK:
        return dict(_helpers())


def cached_jit(fn: Callable[..., Any]) -> Any:
    """``fn`` compiled by numba with its disk cache (``__pycache__`` beside this file, else
    numba's user-wide cache or ``NUMBA_CACHE_DIR``); without a cache where no directory is
    writable (it then compiles once per process, as before)."""
    from numba import njit

    try:
        return njit(cache=True)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return njit(fn)


def _helpers() -> dict[str, Any]:
    """The module's globals, its helpers replaced by their numba versions once (lock held)."""
    from numba import njit

    g = globals()
    if "_grow" not in _COMPILED:
        for name in _CACHED:
            g[name] = cached_jit(g[name])
        for name in _PER_PROCESS:
            g[name] = njit(g[name])
        _COMPILED["_grow"] = g["_grow"]
    return g


#: compiled once and kept on disk: they take plain arrays only (the strategies, the
#: bookkeeping), so a new process loads them instead of compiling (most of the LLVM time)
_CACHED = (
    "_grow",
    "_log_submit",
    "_log_cancel",
    "_op",
    "_submit",
    "_cancel",
    "_scan_rows",
    "_sort_by_id",
    "_working",
    "_find",
    "_grid_step",
    "_imbalance",
    "_taker_step",
    "_record_row",
    "_close_open",
)
#: they take hftbacktest's jitclass backtester, which numba cannot cache (it holds ctypes
#: pointers): small, compiled in each process
_PER_PROCESS = ("_gather", "_scan", "_market", "_send")
