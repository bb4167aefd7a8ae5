"""The ``ticks`` port type's value: order-book events in hftbacktest's layout.

A tick value is a one-dimensional numpy structured array of :data:`EVENT_DTYPE` — the same
dtype as ``hftbacktest.types.event_dtype`` (fields ``ev, exch_ts, local_ts, px, qty, order_id,
ival, fval``, aligned, 64 bytes a row; timestamps in nanoseconds since the Unix epoch) — holding
the events of ONE asset, in the order hftbacktest replays them: the rows flagged
:data:`EXCH_EVENT` by non-decreasing ``exch_ts``, the rows flagged :data:`LOCAL_EVENT` by
non-decreasing ``local_ts`` (a row may carry both flags). The array may be a :class:`TickArray`,
which adds hints the data knows (symbol, tick size, lot size); a plain array has none.

The constants are hftbacktest's own values (``tests/nodes/test_ticks.py`` checks them against
the installed package); defining them here keeps this module free of hftbacktest's numba import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nodes.errors import DataError
from nodes.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals(), "np")

__all__ = [
    "BUY_EVENT",
    "DEPTH_CLEAR_EVENT",
    "DEPTH_EVENT",
    "DEPTH_SNAPSHOT_EVENT",
    "EVENT_DTYPE",
    "EVENT_FIELDS",
    "EXCH_EVENT",
    "KIND_MASK",
    "LOCAL_EVENT",
    "SELL_EVENT",
    "TRADE_EVENT",
    "TickArray",
    "TickMeta",
    "check_dtype",
    "check_order",
    "summary",
    "tick_array",
    "tick_meta",
]

DEPTH_EVENT = 1  # a price level's quantity is now ``qty`` (0 removes the level)
TRADE_EVENT = 2  # a trade of ``qty`` at ``px``; BUY_EVENT = the taker bought
DEPTH_CLEAR_EVENT = 3  # one side's levels up to ``px`` (inclusive) are cleared
DEPTH_SNAPSHOT_EVENT = 4  # one level of a snapshot (after a DEPTH_CLEAR_EVENT)
EXCH_EVENT = 1 << 31  # the exchange processor sees the row at ``exch_ts``
LOCAL_EVENT = 1 << 30  # the strategy sees the row at ``local_ts``
BUY_EVENT = 1 << 29  # bid side (depth) / buyer-initiated (trade)
SELL_EVENT = 1 << 28  # ask side (depth) / seller-initiated (trade)
KIND_MASK = 0xFF  # ``ev & KIND_MASK`` is the event kind (DEPTH_EVENT, TRADE_EVENT, ...)

EVENT_FIELDS: tuple[tuple[str, str], ...] = (
    ("ev", "u8"),
    ("exch_ts", "i8"),
    ("local_ts", "i8"),
    ("px", "f8"),
    ("qty", "f8"),
    ("order_id", "u8"),
    ("ival", "i8"),
    ("fval", "f8"),
)
# EVENT_DTYPE and TickArray are made on first use (module __getattr__ below): importing the node
# modules must not import numpy (tests/nodes/test_backtest_kernel_twins.py).
if TYPE_CHECKING:
    EVENT_DTYPE: np.dtype


@dataclass(frozen=True)
class TickMeta:
    """What a tick value knows about itself; None = not known (the consumer's params decide)."""

    symbol: str | None = None
    tick_size: float | None = None
    lot_size: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The non-None hints, for a file's marker."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


if TYPE_CHECKING:

    class TickArray(np.ndarray):
        """An event array that carries its :class:`TickMeta` (kept through slicing and views)."""

        meta: TickMeta


def _make_tick_array() -> type:
    class TickArray(np.ndarray):
        """An event array that carries its :class:`TickMeta` (kept through slicing and views)."""

        meta: TickMeta

        def __array_finalize__(self, obj: Any) -> None:
            self.meta = getattr(obj, "meta", TickMeta())

    TickArray.__module__ = __name__
    return TickArray


def _lazy(name: str) -> Any:
    return globals()[name] if name in globals() else __getattr__(name)


def __getattr__(name: str) -> Any:
    if name == "EVENT_DTYPE":
        value: Any = np.dtype(list(EVENT_FIELDS), align=True)
    elif name == "TickArray":
        value = _make_tick_array()
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def tick_array(
    data: np.ndarray,
    *,
    symbol: str | None = None,
    tick_size: float | None = None,
    lot_size: float | None = None,
) -> TickArray:
    """``data`` (an :data:`EVENT_DTYPE` array) as a :class:`TickArray` with these hints."""
    out: TickArray = np.asarray(data).view(_lazy("TickArray"))
    out.meta = TickMeta(symbol=symbol, tick_size=tick_size, lot_size=lot_size)
    return out


def tick_meta(value: np.ndarray) -> TickMeta:
    """The hints of a tick value (empty for a plain array)."""
    meta = getattr(value, "meta", None)
    return meta if isinstance(meta, TickMeta) else TickMeta()


def check_dtype(dtype: np.dtype, where: str) -> None:
    """Refuse a dtype that is not :data:`EVENT_DTYPE` field by field (names, order, types);
    ``where`` names the value or file (a :class:`DataError`, kind ``BAD_EVENT_DTYPE``)."""
    names = dtype.names
    if names is None:
        raise DataError(
            "BAD_EVENT_DTYPE",
            f"expected a structured array of hftbacktest events, got dtype {dtype}",
            source=where,
        )
    want = [name for name, _ in EVENT_FIELDS]
    if list(names) != want:
        raise DataError(
            "BAD_EVENT_DTYPE",
            f"event fields must be {want} in this order, got {list(names)}",
            source=where,
        )
    for name, code in EVENT_FIELDS:
        got = dtype.fields[name][0]  # type: ignore[index]
        if got != np.dtype(code):
            raise DataError(
                "BAD_EVENT_DTYPE",
                f"field {name!r} must be {np.dtype(code)} ({code}), got {got}",
                source=where,
            )


def check_order(data: np.ndarray, where: str) -> None:
    """Refuse events hftbacktest would replay wrongly: exchange-flagged rows out of ``exch_ts``
    order, local-flagged rows out of ``local_ts`` order (``UNSORTED``, naming the first row)."""
    ev = data["ev"]
    for flag, field, who in (
        (EXCH_EVENT, "exch_ts", "exchange"),
        (LOCAL_EVENT, "local_ts", "local"),
    ):
        rows = np.flatnonzero(ev & flag)
        if len(rows) < 2:
            continue
        back = np.flatnonzero(np.diff(data[field][rows]) < 0)
        if len(back):
            row = int(rows[back[0] + 1])
            raise DataError(
                "UNSORTED",
                f"{who} events must be in {field} order; row {row} goes back in time",
                source=where,
                row=row,
            )


def summary(data: np.ndarray) -> dict[str, Any]:
    """Counts and time range of an event array: ``events``, ``depth``, ``trades``, ``start_ns``,
    ``end_ns`` (of ``exch_ts``; None when empty) plus the value's hints."""
    kinds = data["ev"] & KIND_MASK
    out: dict[str, Any] = {
        "events": len(data),
        "depth": int(np.count_nonzero(kinds != TRADE_EVENT)),
        "trades": int(np.count_nonzero(kinds == TRADE_EVENT)),
        "start_ns": int(data["exch_ts"].min()) if len(data) else None,
        "end_ns": int(data["exch_ts"].max()) if len(data) else None,
    }
    out.update(tick_meta(data).to_json())
    return out
