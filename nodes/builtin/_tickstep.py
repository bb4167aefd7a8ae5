"""The custom tick strategy's loop: hftbacktest on the host, the strategy behind a callback.

The clock advances in numba (``_advance``: the built-in loop's elapse / scan / record, stopping
at each strategy turn, every ``step_ms``), the state snapshot goes to ``on_step`` (a Python
callable: the sandbox session), its intents are checked here and applied in numba (``_apply``).
Turns happen at the same points of the clock as the built-in strategies' (``_tickkernel._run``),
so a custom strategy with the built-in grid's logic sends the same orders and gets the same
fills. The arrays and the :class:`~nodes.builtin._tickcore.TickRun` are the kernel's, shaped by
the same code (nodes/builtin/_tickoutputs.py).
"""

from __future__ import annotations

import math
import threading
import time
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from nodes.builtin import _tickkernel as k
from nodes.builtin._tickcore import (
    TickRun,
    account,
    as_events,
    as_order_latency,
    build_asset,
    final_account,
    venue_account,
)

# the kernel's helpers, by name: _compiled() puts their numba versions in the loop's namespace
from nodes.builtin._tickkernel import (
    ACCT_BALANCE,
    ACCT_FEE,
    ACCT_POS,
    MF,
    MI,
    OB,
    OBF,
    _cancel,
    _close_open,
    _market,
    _record_row,
    _scan,
    _send,
    _submit,
)
from nodes.errors import NodeError

if TYPE_CHECKING:
    from nodes.builtin.tickparams import TickVenueParams

__all__ = ["MAX_INTENTS", "MAX_WORKING", "TIFS", "simulate_custom"]

#: time in force by name, as hftbacktest numbers them
TIFS = {"GTC": 0, "GTX": 1, "FOK": 2, "IOC": 3}
_STATUS = ("pending", "new", "expired", "filled", "cancelled", "partial", "rejected")
MAX_INTENTS = 1000  # per step
MAX_WORKING = 2000  # orders working or on their way at once
_WORK_ROWS = 4096
_SNAP = 7  # best bid, best ask, bid qty, ask qty, position, balance, fee
_MIN, _MAX = np.iinfo(np.int64).min, np.iinfo(np.int64).max


def _snapshot(hbt, book, work, snap, lv, wq, acct):  # type: ignore[no-untyped-def]
    """The book's top levels, the account (ours: ``_tickkernel._scan_rows``) and each working
    order's level quantity."""
    depth = hbt.depth(0)
    bid_t, ask_t = depth.best_bid_tick, depth.best_ask_tick
    snap[0] = depth.best_bid if bid_t != _MIN else np.nan
    snap[1] = depth.best_ask if ask_t != _MAX else np.nan
    snap[2] = depth.bid_qty_at_tick(bid_t) if bid_t != _MIN else 0.0
    snap[3] = depth.ask_qty_at_tick(ask_t) if ask_t != _MAX else 0.0
    snap[4], snap[5], snap[6] = acct[ACCT_POS], acct[ACCT_BALANCE], acct[ACCT_FEE]
    for i in range(lv.shape[0]):
        lv[i, 0] = bid_t - i if bid_t != _MIN else _MIN
        lv[i, 1] = ask_t + i if ask_t != _MAX else _MAX
        lv[i, 2] = depth.bid_qty_at_tick(bid_t - i) if bid_t != _MIN else 0.0
        lv[i, 3] = depth.ask_qty_at_tick(ask_t + i) if ask_t != _MAX else 0.0
    for j in range(book[4]):
        t = work[j, 2]
        wq[j] = depth.bid_qty_at_tick(t) if work[j, 1] > 0 else depth.ask_qty_at_tick(t)


def _advance(hbt, book, oi, of, fi, ff, work, ri, rf, mid, step, update_every, record_every,
             kk, snap, lv, wq, buf):  # type: ignore[no-untyped-def]  # fmt: skip
    """Run the clock to the strategy's next turn (``_run``'s order: elapse, scan, record, turn).
    Returns the (grown) fill arrays, the last mid, the step counter and whether the data ended."""
    obi, obf, mi, mf, s, bq, aq, acct = buf
    while hbt.elapse(step) == 0:
        fi, ff, obi, obf = _scan(hbt, book, oi, of, fi, ff, work, obi, obf, acct)
        if kk % record_every == 0 and book[3] < len(ri):
            _market(hbt, mi, mf, s, bq, aq, acct)
            mid = _record_row(book, ri, rf, mid, False, mi, mf)
        turn = kk % update_every == 0
        kk += 1
        if turn:
            _snapshot(hbt, book, work, snap, lv, wq, acct)
            return fi, ff, mid, kk, False, (obi, obf, mi, mf, s, bq, aq, acct)
    return fi, ff, mid, kk, True, (obi, obf, mi, mf, s, bq, aq, acct)


def _apply(hbt, book, oi, of, ops, qty, n, kops, kopq):  # type: ignore[no-untyped-def]
    """Send ``n`` checked intents: rows (0 submit, side, price tick, tif) with ``qty``, or
    (1 cancel, order id, 0, 0), logged and queued as the built-in strategies' are (the queue
    ahead read when sent). Returns the (grown) order arrays."""
    tick = hbt.depth(0).tick_size
    now = hbt.current_timestamp
    m = 0
    for i in range(n):
        if ops[i, 0] == 0:
            oi, of, m = _submit(book, oi, of, kops, kopq, m, ops[i, 1], ops[i, 2], tick, qty[i],
                                ops[i, 3], now, np.nan)  # fmt: skip
        else:
            m = _cancel(oi, kops, kopq, m, ops[i, 1], now)
    _send(hbt, of, kops, kopq, m)
    return oi, of


def _finish(hbt, book, oi, of, fi, ff, work, ri, rf, mid, buf):  # type: ignore[no-untyped-def]
    """The data ended: the last scan and record; orders still working marked open."""
    obi, obf, mi, mf, s, bq, aq, acct = buf
    fi, ff, obi, obf = _scan(hbt, book, oi, of, fi, ff, work, obi, obf, acct)
    if book[3] < len(ri):
        _market(hbt, mi, mf, s, bq, aq, acct)
        _record_row(book, ri, rf, mid, True, mi, mf)
    _close_open(book, oi, work)
    return fi, ff


_COMPILED: dict[str, Any] = {}
_LOCK = threading.Lock()


def _compiled() -> dict[str, Any]:
    """The loop's functions compiled by numba once per process, over the kernel's helpers."""
    with _LOCK:
        if not _COMPILED:
            from numba import njit

            helpers = k.compiled_helpers()
            ns = dict(globals())
            used = ("_scan", "_market", "_record_row", "_send", "_submit", "_cancel", "_close_open")
            ns.update({n: helpers[n] for n in used})
            for name in ("_snapshot", "_advance", "_apply", "_finish"):
                ns[name] = njit(types.FunctionType(globals()[name].__code__, ns, name))
            _COMPILED.update(ns)
        return _COMPILED


OnStep = Callable[[dict[str, Any], str], Any]


def simulate_custom(
    ticks: Any,
    params: TickVenueParams,
    step_ms: float,
    depth_levels: int,
    on_step: OnStep,
    order_latency: Any | None = None,
    *,
    name: str = "custom",
) -> TickRun:
    """Run ``ticks`` in hftbacktest, calling ``on_step(state, where)`` every ``step_ms`` of
    exchange time and applying the intents it returns (checked: NodeError naming ``name``, the
    step and its time, and the intent)."""
    from hftbacktest import HashMapMarketDepthBacktest

    fns = _compiled()
    assert params.tick_size is not None and params.lot_size is not None
    events = as_events(ticks, params.tick_size)
    latency = as_order_latency(order_latency) if order_latency is not None else None
    if params.latency == "constant" and latency is not None:
        raise NodeError(
            "tick_strategy_backtest: order latencies are given but latency='constant'; set "
            "latency='recorded' to use them"
        )
    update_ns = round(step_ms * 1e6)
    step = math.gcd(params.record_ns, update_ns)
    local = events["local_ts"][(events["ev"] & (1 << 30)) != 0]
    span = int(local[-1] - local[0]) if len(local) else 0
    capacity = span // params.record_ns + 3
    ri = np.zeros(capacity, np.int64)
    rf = np.full((capacity, k.RF), np.nan)
    book = np.zeros(6, np.int64)
    book[0] = 1
    oi, of = np.empty((1024, k.OI), np.int64), np.empty((1024, k.OF), np.float64)
    fi, ff = np.empty((1024, k.FI), np.int64), np.empty((1024, k.FF), np.float64)
    work = np.zeros((_WORK_ROWS, 4), np.int64)
    snap, wq = np.zeros(_SNAP), np.zeros(_WORK_ROWS)
    lv = np.zeros((depth_levels, 4))
    ops, qty = np.zeros((MAX_INTENTS, 4), np.int64), np.zeros(MAX_INTENTS)
    kops, kopq = np.zeros((MAX_INTENTS, 5), np.int64), np.zeros(MAX_INTENTS)
    # the loop's buffers: hftbacktest's orders copied out, the market for a record (no
    # taker's resting order to watch: s stays 0), one level a side, the account
    acct = account(params)
    buf = (np.empty((256, OB), np.int64), np.empty((256, OBF)), np.zeros(MI, np.int64),
           np.zeros(MF), np.zeros(5), np.zeros(1), np.zeros(1), acct)  # fmt: skip
    check = _Checker(params.tick_size, params.lot_size, name)
    mid, kk, turns, seen, t1 = np.nan, 0, 0, 0, 0.0
    hbt = HashMapMarketDepthBacktest([build_asset(events, params, latency)])
    try:
        while True:
            fi, ff, mid, kk, done, buf = fns["_advance"](
                hbt, book, oi, of, fi, ff, work, ri, rf, mid, step, update_ns // step,
                params.record_ns // step, kk, snap, lv, wq, buf,
            )  # fmt: skip
            if done:
                break
            now = int(hbt.current_timestamp)
            where = f"step {turns} ({_iso(now)})"
            state = _state(now, turns, book, oi, of, fi, ff, work, snap, lv, wq, seen, params)
            seen = int(book[2])
            n = check(on_step(state, where), book, work, ops, qty, where)
            if n:
                oi, of = fns["_apply"](hbt, book, oi, of, ops, qty, n, kops, kopq)
            turns += 1
            if turns == 1:
                t1 = time.perf_counter()  # the first turn compiled the loop's functions
        turns_s = time.perf_counter() - t1 if turns > 1 else 0.0
        fi, ff = fns["_finish"](hbt, book, oi, of, fi, ff, work, ri, rf, mid, buf)
        venue = venue_account(hbt)
    finally:
        hbt.close()
    n_rec, n_ord, n_fill = int(book[3]), int(book[1]), int(book[2])
    return TickRun(
        oi[:n_ord], of[:n_ord], fi[:n_fill], ff[:n_fill], ri[:n_rec], rf[:n_rec], len(events),
        kk, *final_account(acct), venue, turns, turns_s,
    )  # fmt: skip


def _iso(ns: int) -> str:
    return str(np.datetime64(ns, "ns")).replace("T", " ")[:23] + " UTC"


def _px(t: np.ndarray, tick: float) -> list[float]:
    return np.round(t * tick, 10).tolist()  # type: ignore[no-any-return]


def _state(now, turn, book, oi, of, fi, ff, work, snap, lv, wq, seen, params):  # type: ignore[no-untyped-def]
    """The plain snapshot ``on_step`` gets (docs/tick-backtest.md, "Custom strategies")."""
    tick = params.tick_size
    w = work[: book[4]]
    rows = w[:, 0] - 1
    orders = [
        {"id": int(i), "side": "buy" if s > 0 else "sell", "price": p, "qty": q, "filled": f,
         "status": _STATUS[st] if 0 <= st < len(_STATUS) else str(st), "pending": bool(r),
         "queue_ahead_at_submit": a, "level_qty": lq}
        for i, s, p, q, f, st, r, a, lq in zip(
            w[:, 0].tolist(), w[:, 1].tolist(), _px(w[:, 2], tick), of[rows, k.OF_QTY].tolist(),
            of[rows, k.OF_FILLED].tolist(), oi[rows, k.OI_STATUS].tolist(), w[:, 3].tolist(),
            of[rows, k.OF_AHEAD].tolist(), wq[: len(w)].tolist(), strict=True,
        )
    ]  # fmt: skip
    new = slice(seen, int(book[2]))
    fills = [
        {"order_id": o, "side": "buy" if s > 0 else "sell", "price": p, "qty": q, "ts": t,
         "maker": bool(m)}
        for o, s, p, q, t, m in zip(
            fi[new, k.FI_ORDER].tolist(), fi[new, k.FI_SIDE].tolist(),
            np.round(ff[new, k.FF_PRICE], 10).tolist(), ff[new, k.FF_QTY].tolist(),
            fi[new, k.FI_TS].tolist(), fi[new, k.FI_MAKER].tolist(), strict=True,
        )
    ]  # fmt: skip
    bid, ask = snap[0], snap[1]
    has_bid, has_ask = not math.isnan(bid), not math.isnan(ask)
    bids = [[p, q] for p, q in zip(_px(lv[:, 0], tick), lv[:, 2].tolist(), strict=True)]
    asks = [[p, q] for p, q in zip(_px(lv[:, 1], tick), lv[:, 3].tolist(), strict=True)]
    return {
        "ts": now,
        "step": turn,
        "best_bid": float(bid) if has_bid else None,
        "best_ask": float(ask) if has_ask else None,
        "bid_qty": float(snap[2]),
        "ask_qty": float(snap[3]),
        "bids": bids if has_bid else [],
        "asks": asks if has_ask else [],
        "position": float(snap[4]),
        "balance": float(snap[5]),
        "fee": float(snap[6]),
        "orders": orders,
        "fills": fills,
        "next_order_id": int(book[0]),
    }


class _Checker:
    """Turns a reply's intents into the ``_apply`` rows, or a NodeError saying which intent is
    wrong and why (the sandbox's answer is untrusted: every field is checked here)."""

    def __init__(self, tick: float, lot: float, name: str) -> None:
        self.tick, self.lot, self.name = tick, lot, name

    def __call__(self, intents: Any, book: np.ndarray, work: np.ndarray, ops: np.ndarray,
                 qty: np.ndarray, where: str) -> int:  # fmt: skip
        if not isinstance(intents, list):
            self._fail(where, f"on_step must return a list, got {type(intents).__name__}")
        if len(intents) > MAX_INTENTS:
            self._fail(where, f"{len(intents)} intents in one step (at most {MAX_INTENTS})")
        working = {int(w[0]): int(w[3]) for w in work[: book[4]]}
        submits = 0
        for i, intent in enumerate(intents):
            op = intent.get("op") if isinstance(intent, dict) else None
            if op == "submit":
                ops[i] = (0, *self._submit(intent, i, where))
                qty[i] = float(intent["qty"])
                submits += 1
            elif op == "cancel":
                oid = intent.get("order_id")
                if isinstance(oid, bool) or not isinstance(oid, int) or not 0 < oid < book[0]:
                    self._fail(where, f"intent {i}: cancel of unknown order id {oid!r}")
                # an order finished or with a request on its way is left alone
                ops[i] = (1, oid, 0, 0) if working.get(oid) == 0 else (2, 0, 0, 0)
            else:
                self._fail(where, f"intent {i}: not submit(...) or cancel(...): {intent!r:.200}")
        if len(working) + submits > MAX_WORKING:
            self._fail(where, f"over {MAX_WORKING} orders working at once")
        return _compact(ops, qty, len(intents))

    def _submit(self, intent: dict[str, Any], i: int, where: str) -> tuple[int, int, int]:
        side, price, q, tif = (intent.get(x) for x in ("side", "price", "qty", "tif"))
        if side not in ("buy", "sell"):
            self._fail(where, f"intent {i}: side must be 'buy' or 'sell', got {side!r}")
        if tif not in TIFS:
            self._fail(where, f"intent {i}: tif must be one of {', '.join(TIFS)}, got {tif!r}")
        for label, v in (("price", price), ("qty", q)):
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                self._fail(where, f"intent {i}: {label} must be a finite number, got {v!r}")
        assert isinstance(price, int | float) and isinstance(q, int | float)
        if q <= 0 or not _multiple(q, self.lot):
            self._fail(where, f"intent {i}: qty {q!r} must be a positive multiple of "
                       f"lot_size={self.lot:g}")  # fmt: skip
        if price <= 0 or not _multiple(price, self.tick):
            self._fail(where, f"intent {i}: price {price!r} is off the tick grid "
                       f"(tick_size={self.tick:g})")  # fmt: skip
        return (1 if side == "buy" else -1), round(price / self.tick), TIFS[str(tif)]

    def _fail(self, where: str, what: str) -> None:
        raise NodeError(f"tick strategy {self.name!r}: bad intent at {where}: {what}")


def _compact(ops: np.ndarray, qty: np.ndarray, n: int) -> int:
    """Drop the skipped cancels (kind 2) in place; the rows left."""
    keep = np.flatnonzero(ops[:n, 0] != 2)
    if len(keep) < n:
        ops[: len(keep)] = ops[keep]
        qty[: len(keep)] = qty[keep]
    return len(keep)


def _multiple(value: float, unit: float) -> bool:
    ratio = value / unit
    return math.isclose(ratio, round(ratio), rel_tol=1e-9, abs_tol=1e-7)
