"""The tick simulation, without the pipeline: events and params in, hftbacktest run by our
kernel, raw arrays out (:class:`TickRun`); :mod:`nodes.builtin._tickoutputs` shapes them.

Checks at the door (``DataError``, AF600, with the row): an empty or mistyped event array,
timestamps that go back, prices off ``tick_size``, a recorded-latency table without its
columns or out of order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nodes.errors import DataError, NodeError

if TYPE_CHECKING:
    import pandas as pd

    from nodes.builtin.tickparams import TickBacktestParams, TickVenueParams

__all__ = ["ORDER_LATENCY_DTYPE", "TickRun", "as_events", "as_order_latency", "simulate"]

_SOURCE = "tick_backtest: ticks"
ORDER_LATENCY_DTYPE = np.dtype(
    [("req_ts", "i8"), ("exch_ts", "i8"), ("resp_ts", "i8"), ("_padding", "i8")], align=True
)
_LOCAL_EVENT = 1 << 30


@dataclass(frozen=True)
class TickRun:
    """What the kernel produced, as int64 / float64 arrays (columns: ``_tickkernel``)."""

    orders_i: np.ndarray
    orders_f: np.ndarray
    fills_i: np.ndarray
    fills_f: np.ndarray
    records_ts: np.ndarray
    records_f: np.ndarray
    events: int
    steps: int
    #: the account the fills make, in order id order within a scan (``_tickkernel``)
    final_fee: float
    final_balance: float
    final_position: float
    #: hftbacktest's own local account (fee, balance, position): a cross-check only; its last
    #: bits depend on a per-process hash order, and with partial fills it counts only each
    #: order's last fill (2.4)
    venue: tuple[float, float, float]
    #: strategy turns and the seconds they took after the first (which compiles), for the
    #: custom strategy loop's steps / second (nodes/builtin/_tickstep.py); 0 elsewhere
    turns: int = 0
    turns_s: float = 0.0


def as_events(ticks: Any, tick_size: float) -> np.ndarray:
    """The ticks as a C-contiguous event array, checked in one pass: the dtype, not empty,
    the replay order, every priced event a finite whole number of ``tick_size``."""
    from nodes.builtin import _tickfast as fast
    from nodes.ticks import check_dtype, check_order

    if not isinstance(ticks, np.ndarray):
        raise DataError(
            "NOT_EVENTS",
            f"expected an order-book event array (ticks), got {type(ticks).__name__}",
            source=_SOURCE,
        )
    check_dtype(ticks.dtype, _SOURCE)
    if len(ticks) == 0:
        raise DataError("EMPTY", "no events: the tick data is empty", source=_SOURCE)
    events = np.ascontiguousarray(ticks).view(np.ndarray)
    problem, row, count = fast.check(events, tick_size)
    if problem in (fast.UNSORTED_EXCH, fast.UNSORTED_LOCAL):
        check_order(events, _SOURCE)  # raises, with the ticks module's own message
    if problem == fast.NAN_PRICE:
        raise DataError("NAN_PRICE", f"event {row} has no finite price", source=_SOURCE, row=row)
    if problem == fast.OFF_TICK:
        raise DataError(
            "OFF_TICK_PRICE",
            f"price {float(events['px'][row])!r} at event {row} is not a multiple of "
            f"tick_size={tick_size:g} ({count} such events); give the instrument's tick size",
            source=_SOURCE,
            row=row,
        )
    return events


def as_order_latency(table: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Recorded order latencies (``req_ts``, ``exch_ts``, ``resp_ts`` in ns, or timestamps)
    as hftbacktest's order latency rows, checked."""
    source = "tick_backtest: order_latency"
    cols = ("req_ts", "exch_ts", "resp_ts")
    names = table.dtype.names if isinstance(table, np.ndarray) else tuple(table.columns)
    if names is None or not set(cols) <= set(names):
        raise DataError(
            "MISSING_COLUMNS", f"needs columns {', '.join(cols)} (nanoseconds)", source=source
        )
    out = np.zeros(len(table), ORDER_LATENCY_DTYPE)
    for c in cols:
        values = np.asarray(table[c])
        if np.issubdtype(values.dtype, np.datetime64):
            values = values.astype("datetime64[ns]").astype(np.int64)
        out[c] = values.astype(np.int64)
    if len(out) == 0:
        raise DataError("EMPTY", "no recorded order latencies", source=source)
    bad = np.flatnonzero((out["exch_ts"] < out["req_ts"]) | (out["resp_ts"] < out["exch_ts"]))
    if len(bad):
        raise DataError(
            "LATENCY_ORDER",
            f"row {int(bad[0])}: needs req_ts <= exch_ts <= resp_ts",
            source=source,
            row=int(bad[0]),
        )
    back = np.flatnonzero(np.diff(out["req_ts"]) < 0)
    if len(back):
        row = int(back[0]) + 1
        raise DataError("UNSORTED", f"req_ts goes back at row {row}", source=source, row=row)
    return out


def build_asset(events: np.ndarray, params: TickVenueParams, latency: np.ndarray | None) -> Any:
    """hftbacktest's ``BacktestAsset`` for one linear instrument, as ``params`` say."""
    from hftbacktest import BacktestAsset

    from nodes.builtin.tickparams import QUEUE_MODELS

    asset = BacktestAsset().data(events).linear_asset(1.0)
    if params.latency == "recorded":
        if latency is None:
            raise NodeError(
                "tick_backtest: latency='recorded' needs the order_latency input (a table of "
                "req_ts, exch_ts, resp_ts) or order_latency_file; or use latency='constant'"
            )
        asset = asset.intp_order_latency(latency, params.latency_offset_ns)
    else:
        asset = asset.constant_order_latency(params.entry_latency_ns, params.response_latency_ns)
    method = getattr(asset, QUEUE_MODELS[params.queue_model])
    asset = method(params.queue_power) if params.queue_model.startswith("power") else method()
    asset = (
        asset.no_partial_fill_exchange()
        if params.exchange == "no_partial_fill"
        else asset.partial_fill_exchange()
    )
    return (
        asset.trading_value_fee_model(params.maker_fee_bps / 1e4, params.taker_fee_bps / 1e4)
        .tick_size(params.tick_size)
        .lot_size(params.lot_size)
    )


def simulate(ticks: Any, params: TickBacktestParams, order_latency: Any | None = None) -> TickRun:
    """Run the params' strategy over ``ticks`` in hftbacktest (see the module doc)."""
    from hftbacktest import HashMapMarketDepthBacktest

    from nodes.builtin import _tickkernel as k

    if params.tick_size is None or params.lot_size is None:
        raise NodeError("tick_backtest: tick_size and lot_size must be known to simulate")
    events = as_events(ticks, params.tick_size)
    latency = as_order_latency(order_latency) if order_latency is not None else None
    if params.latency == "constant" and latency is not None:
        raise NodeError(
            "tick_backtest: order latencies are given (the order_latency input or "
            "order_latency_file) but latency='constant'; set latency='recorded' to use them"
        )
    step = math.gcd(params.record_ns, params.update_ns)
    local = events["local_ts"][(events["ev"] & _LOCAL_EVENT) != 0]
    span = int(local[-1] - local[0]) if len(local) else 0
    capacity = span // params.record_ns + 3
    records_ts = np.zeros(capacity, np.int64)
    records_f = np.full((capacity, k.RF), np.nan)
    hbt = HashMapMarketDepthBacktest([build_asset(events, params, latency)])
    try:
        run = k.kernel(k.GRID_MM if params.strategy == "grid_mm" else k.IMBALANCE_TAKER)
        acct = account(params)
        book, oi, of, fi, ff, steps = run(
            hbt,
            _strategy_params(params),
            step,
            params.update_ns // step,
            params.record_ns // step,
            records_ts,
            records_f,
            # the levels a side the strategy reads from the best: the taker's imbalance window
            params.imbalance_levels if params.strategy == "imbalance_taker" else 1,
            acct,
        )
        venue = venue_account(hbt)
    finally:
        hbt.close()
    n = int(book[3])
    return TickRun(
        oi, of, fi, ff, records_ts[:n], records_f[:n], len(events), int(steps),
        *final_account(acct), venue,
    )  # fmt: skip


def account(params: TickVenueParams) -> np.ndarray:
    """A zero account with ``params``' fee rates (``_tickkernel.ACCT``)."""
    from nodes.builtin import _tickkernel as k

    acct = np.zeros(k.ACCT)
    acct[k.ACCT_MAKER_RATE] = params.maker_fee_bps / 1e4
    acct[k.ACCT_TAKER_RATE] = params.taker_fee_bps / 1e4
    return acct


def final_account(acct: np.ndarray) -> tuple[float, float, float]:
    """Fee, balance and position of an account the kernel kept."""
    from nodes.builtin import _tickkernel as k

    return float(acct[k.ACCT_FEE]), float(acct[k.ACCT_BALANCE]), float(acct[k.ACCT_POS])


def venue_account(hbt: Any) -> tuple[float, float, float]:
    """hftbacktest's own fee, balance and position (:attr:`TickRun.venue`)."""
    sv = hbt.state_values(0)
    return float(sv.fee), float(sv.balance), float(sv.position)


def _strategy_params(p: TickBacktestParams) -> np.ndarray:
    if p.strategy == "grid_mm":
        values = [
            p.grid_levels,
            p.grid_spacing_ticks,
            p.half_spread_ticks,
            p.order_qty,
            p.max_position,
            p.skew_ticks,
        ]
    else:
        values = [
            p.imbalance_threshold,
            p.imbalance_levels,
            p.order_qty,
            p.max_position,
            p.max_queue_ahead,
            p.patience_ms * 1e6,
        ]
    return np.array(values, dtype=np.float64)
