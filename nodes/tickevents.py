"""Building event arrays (:mod:`nodes.ticks`) row by row, and putting them in replay order.

Converters and the generator append rows to an :class:`EventBuilder` (columns in Python lists,
one numpy array at the end); :func:`replay_order` then sets the exchange / local flags the way
hftbacktest needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nodes import ticks
from nodes.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals(), "np")

__all__ = ["EventBuilder", "replay_order"]


class EventBuilder:
    """Rows of events (without EXCH/LOCAL flags) collected in arrival order."""

    def __init__(self) -> None:
        self.ev: list[int] = []
        self.exch_ts: list[int] = []
        self.local_ts: list[int] = []
        self.px: list[float] = []
        self.qty: list[float] = []

    def __len__(self) -> int:
        return len(self.ev)

    def add(self, ev: int, exch_ts: int, local_ts: int, px: float, qty: float) -> None:
        """One row: ``ev`` is the kind with BUY_EVENT / SELL_EVENT."""
        self.ev.append(ev)
        self.exch_ts.append(exch_ts)
        self.local_ts.append(local_ts)
        self.px.append(px)
        self.qty.append(qty)

    def snapshot(
        self,
        exch_ts: int,
        local_ts: int,
        bids: list[tuple[float, float]],
        asks: list[tuple[float, float]],
    ) -> None:
        """A full book: per side a DEPTH_CLEAR_EVENT up to its deepest level, then one
        DEPTH_SNAPSHOT_EVENT per level (``bids`` best first, ``asks`` best first) — the layout
        hftbacktest's own converters write."""
        for side, levels in ((ticks.BUY_EVENT, bids), (ticks.SELL_EVENT, asks)):
            if not levels:
                continue
            self.add(ticks.DEPTH_CLEAR_EVENT | side, exch_ts, local_ts, levels[-1][0], 0.0)
            for px, qty in levels:
                self.add(ticks.DEPTH_SNAPSHOT_EVENT | side, exch_ts, local_ts, px, qty)

    def build(self) -> np.ndarray:
        """The rows as an :data:`~nodes.ticks.EVENT_DTYPE` array in :func:`replay_order`."""
        data = np.zeros(len(self.ev), ticks.EVENT_DTYPE)
        data["ev"] = np.asarray(self.ev, dtype=np.uint64)
        data["exch_ts"] = np.asarray(self.exch_ts, dtype=np.int64)
        data["local_ts"] = np.asarray(self.local_ts, dtype=np.int64)
        data["px"] = np.asarray(self.px, dtype=np.float64)
        data["qty"] = np.asarray(self.qty, dtype=np.float64)
        return replay_order(data)


def replay_order(data: np.ndarray) -> np.ndarray:
    """``data`` (rows in arrival order, flags ignored) in the order hftbacktest replays.

    Rows are stably sorted by ``exch_ts``. When their ``local_ts`` then never goes back, every
    row is both an exchange and a local event. Otherwise (feed latency reordered them) each row
    is split in two, as hftbacktest's ``correct_event_order`` does: an exchange-only copy in
    ``exch_ts`` order and a local-only copy in ``local_ts`` order, merged by their own time
    (exchange first on ties).
    """
    both = np.uint64(ticks.EXCH_EVENT | ticks.LOCAL_EVENT)
    base = data.copy()
    base["ev"] &= ~both
    base = base[np.argsort(base["exch_ts"], kind="stable")]
    if len(base) < 2 or bool(np.all(np.diff(base["local_ts"]) >= 0)):
        base["ev"] |= both
        return base
    exch = base.copy()
    exch["ev"] |= np.uint64(ticks.EXCH_EVENT)
    local = base[np.argsort(base["local_ts"], kind="stable")]
    local["ev"] |= np.uint64(ticks.LOCAL_EVENT)
    merged = np.concatenate([exch, local])
    key = np.concatenate([exch["exch_ts"], local["local_ts"]])
    side = np.concatenate([np.zeros(len(exch), np.int8), np.ones(len(local), np.int8)])
    seq = np.concatenate([np.arange(len(exch)), np.arange(len(local))])
    return merged[np.lexsort((seq, side, key))]
