"""The tick backtest's per-event and per-fill loops that numpy would do in several passes:
the events' door checks in one pass, and the round trips. Compiled by numba with
``cache=True`` (no hftbacktest object in them, so the cache works), on first use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["NAN_PRICE", "OFF_TICK", "OK", "UNSORTED_EXCH", "UNSORTED_LOCAL", "check", "trips"]

OK, OFF_TICK, NAN_PRICE, UNSORTED_EXCH, UNSORTED_LOCAL = range(5)
_COMPILED: dict[str, Callable[..., Any]] = {}


def _check(ev, exch_ts, local_ts, px, tick):  # type: ignore[no-untyped-def]
    """(problem, first row, rows with that problem): prices of depth / trade / snapshot /
    BBO events a whole number of ticks and finite, exchange-flagged rows in exch_ts order,
    local-flagged rows in local_ts order."""
    last_exch = np.iinfo(np.int64).min
    last_local = np.iinfo(np.int64).min
    off_row = -1
    off_count = 0
    for i in range(len(ev)):
        e = ev[i]
        if e & np.uint64(1 << 31):
            if exch_ts[i] < last_exch:
                return UNSORTED_EXCH, i, 1
            last_exch = exch_ts[i]
        if e & np.uint64(1 << 30):
            if local_ts[i] < last_local:
                return UNSORTED_LOCAL, i, 1
            last_local = local_ts[i]
        kind = e & np.uint64(0xFF)
        if kind == 1 or kind == 2 or kind == 4 or kind == 5:
            p = px[i]
            if not np.isfinite(p):
                return NAN_PRICE, i, 1
            ratio = p / tick
            if abs(ratio - np.round(ratio)) > 1e-6 * max(1.0, abs(ratio)):
                if off_row < 0:
                    off_row = i
                off_count += 1
    if off_row >= 0:
        return OFF_TICK, off_row, off_count
    return OK, -1, 0


def _trips(ts, signed, price, fee, last_ts, last_mid):  # type: ignore[no-untyped-def]
    """Round trips from fills in time order (see ``_tickoutputs._round_trips``): int64 rows
    (entry ts, exit ts, side, fills, open) and float64 rows (units, entry price, exit price,
    fees, pnl, cost)."""
    n = len(signed)
    ti = np.zeros((n + 1, 5), np.int64)
    tf = np.zeros((n + 1, 6), np.float64)
    k = 0
    pos = 0.0
    active = False
    units = cost = out_units = out_value = fees = flow = 0.0
    count = 0
    for i in range(n):
        remaining = signed[i]
        while abs(remaining) > 1e-12:
            if not active:
                active = True
                ti[k, 0] = ts[i]
                ti[k, 2] = 1 if remaining > 0 else -1
                units = cost = out_units = out_value = fees = flow = 0.0
                count = 0
            opening = pos == 0 or (pos > 0) == (remaining > 0)
            part = remaining if opening or abs(remaining) < abs(pos) else -pos
            fees += fee[i] * abs(part) / abs(signed[i])
            flow -= part * price[i]
            count += 1
            if opening:
                units += abs(part)
                cost += abs(part) * price[i]
            else:
                out_units += abs(part)
                out_value += abs(part) * price[i]
            pos += part
            remaining -= part
            if abs(pos) < 1e-12:
                pos = 0.0
                active = False
                ti[k, 1] = ts[i]
                ti[k, 3] = count
                tf[k, 0] = units
                tf[k, 1] = cost / units
                tf[k, 2] = out_value / out_units
                tf[k, 3] = fees
                tf[k, 4] = flow - fees
                tf[k, 5] = cost
                k += 1
    if active:
        ti[k, 1] = last_ts
        ti[k, 3] = count
        ti[k, 4] = 1
        tf[k, 0] = units
        tf[k, 1] = cost / units
        tf[k, 2] = last_mid
        tf[k, 3] = fees
        tf[k, 4] = flow + pos * last_mid - fees
        tf[k, 5] = cost
        k += 1
    return ti[:k], tf[:k]


def _compiled(name: str) -> Callable[..., Any]:
    if name not in _COMPILED:
        from numba import njit

        from nodes.lazy import resolve_lazy

        resolve_lazy(globals())
        _COMPILED[name] = njit(cache=True)(globals()[f"_{name}"])
    return _COMPILED[name]


def check(events: np.ndarray, tick: float) -> tuple[int, int, int]:
    """:func:`_check` on an event array."""
    out = _compiled("check")(
        events["ev"], events["exch_ts"], events["local_ts"], events["px"], float(tick)
    )
    return int(out[0]), int(out[1]), int(out[2])


def trips(
    ts: np.ndarray,
    signed: np.ndarray,
    price: np.ndarray,
    fee: np.ndarray,
    last_ts: int,
    last_mid: float,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_trips` on the fills' arrays."""
    return _compiled("trips")(  # type: ignore[no-any-return]
        np.ascontiguousarray(ts, np.int64),
        np.ascontiguousarray(signed, np.float64),
        np.ascontiguousarray(price, np.float64),
        np.ascontiguousarray(fee, np.float64),
        int(last_ts),
        float(last_mid),
    )
