"""The unit of the live side: a closed bar of one symbol, and the protocol of a bar source.

A :class:`Bar` is what sources yield, what stream pipelines append to their frames and what a
strategy's ``on_tick`` receives (as :meth:`Bar.tick`, plain JSON). ``ts`` is the bar's open
time in UTC, as in the catalog and the backtester (BACKTEST.md): a bar is acted on once it has
closed, at ``ts + interval``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

__all__ = ["Bar", "BarSource", "interval_seconds"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_INTERVAL = re.compile(r"^(\d+)([smhdw])$")


def interval_seconds(interval: str) -> int:
    """``"1m"``, ``"15m"``, ``"1h"``, ``"1d"`` ... as seconds; ValueError with a sentence."""
    found = _INTERVAL.match(interval.strip())
    if not found or int(found.group(1)) <= 0:
        raise ValueError(
            f"{interval!r} is not a bar interval: a number and one of s, m, h, d, w (e.g. 1h)"
        )
    return int(found.group(1)) * _UNITS[found.group(2)]


@dataclass(frozen=True)
class Bar:
    """One closed bar: ``ts`` its open time (UTC)."""

    symbol: str
    ts: pd.Timestamp
    open: float
    high: float
    low: float
    close: float
    volume: float
    interval: str = "1d"

    @property
    def key(self) -> tuple[str, str]:
        """The de-duplication key ``(ts, symbol)``."""
        return (self.ts.isoformat(), self.symbol)

    def tick(self) -> dict[str, Any]:
        """The bar as a strategy sees it in ``on_tick``: plain JSON, ``price`` = close."""
        return {
            "symbol": self.symbol,
            "ts": self.ts.isoformat(),
            "interval": self.interval,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
            "price": self.close,
        }

    def row(self) -> dict[str, Any]:
        """The bar as a row of a long ``ohlcv`` panel."""
        return {
            "ts": self.ts,
            "symbol": self.symbol,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
        }


class BarSource(Protocol):
    """Where live bars come from.

    ``bars`` yields closed bars in time order until ``stop`` is set or the source ends (a
    replay at its last bar). A source that reconnects does so inside ``bars``; it may yield a
    bar it yielded before (consumers de-duplicate by :attr:`Bar.key`).

    ``history(end, count)`` is the warm-up: the last ``count`` bars of each symbol with
    ``ts < end``, as a long ``ohlcv`` panel (``ts``, ``symbol``, OHLCV), sorted by (ts,
    symbol). A consumer starts ``bars`` first, takes the first live bar's ``ts`` as ``end`` and
    so gets history that ends exactly where the live bars begin (no gap, no overlap).
    """

    interval: str

    def bars(self, stop: threading.Event) -> Iterator[Bar]: ...

    def history(self, end: pd.Timestamp, count: int) -> pd.DataFrame: ...
