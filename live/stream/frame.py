"""The bars a stream pipeline computes on: a bounded trailing window per symbol.

:class:`LiveFrame` holds the last ``keep`` bars of each symbol (a ring buffer: the oldest bar
of a symbol goes when a new one comes past ``keep``) and gives them in the shape the
pipeline's data step gives in a batch run (:meth:`LiveFrame.frame`): one symbol, a frame
indexed by ``ts`` with ``open, high, low, close, volume``; several, a long panel with a
``symbol`` column, rows sorted by (ts, symbol). A bar of a (ts, symbol) already held is
ignored, or replaces the held one with ``replace=True`` (an event source: a later event of
the same bar wins).
"""

from __future__ import annotations

from collections import deque

import pandas as pd

from runners.papertrade.bars import Bar

__all__ = ["LiveFrame"]

_COLUMNS = ["open", "high", "low", "close", "volume"]


class LiveFrame:
    """The trailing window of bars (see the module doc)."""

    def __init__(self, keep: int) -> None:
        if keep < 1:
            raise ValueError("a live frame keeps at least one bar per symbol")
        self.keep = keep
        self._rows: dict[str, deque[Bar]] = {}
        self._held: dict[str, set[pd.Timestamp]] = {}

    @property
    def symbols(self) -> list[str]:
        """The symbols seen, sorted."""
        return sorted(self._rows)

    def __len__(self) -> int:
        return sum(len(rows) for rows in self._rows.values())

    def last_ts(self, symbol: str) -> pd.Timestamp | None:
        """The newest bar's ``ts`` of ``symbol`` (None before its first)."""
        rows = self._rows.get(symbol)
        return max(b.ts for b in rows) if rows else None

    def has(self, symbol: str, ts: pd.Timestamp) -> bool:
        """Whether the bar (ts, symbol) is held."""
        return ts in self._held.get(symbol, ())

    def add(self, bar: Bar, *, replace: bool = False) -> bool:
        """Hold ``bar``; False when its (ts, symbol) was held already (and, with ``replace``,
        was replaced by it)."""
        rows = self._rows.setdefault(bar.symbol, deque())
        held = self._held.setdefault(bar.symbol, set())
        if bar.ts in held:
            if replace:
                for i, old in enumerate(rows):
                    if old.ts == bar.ts:
                        rows[i] = bar
                        break
            return False
        if rows and bar.ts < rows[-1].ts:  # late: keep the window in time order
            items = sorted([*rows, bar], key=lambda b: b.ts)
            rows.clear()
            rows.extend(items)
        else:
            rows.append(bar)
        held.add(bar.ts)
        while len(rows) > self.keep:
            held.discard(rows.popleft().ts)
        return True

    def add_history(self, history: pd.DataFrame) -> int:
        """Hold the bars of a long ``ohlcv`` history panel (``ts``, ``symbol``, OHLCV);
        returns how many were new."""
        added = 0
        cols = ["symbol", "ts", "open", "high", "low", "close", "volume"]
        for symbol, ts, o, h, lo, c, v in history[cols].itertuples(index=False, name=None):
            stamp = pd.Timestamp(ts)
            stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
            bar = Bar(str(symbol), stamp, float(o), float(h), float(lo), float(c), float(v))
            added += self.add(bar)
        return added

    def frame(self) -> pd.DataFrame:
        """The bars as the data step's output (module doc)."""
        bars = [b for rows in self._rows.values() for b in rows]
        data = pd.DataFrame(
            {
                "ts": pd.DatetimeIndex([b.ts for b in bars], tz="UTC"),
                "symbol": [b.symbol for b in bars],
                "open": [b.open for b in bars],
                "high": [b.high for b in bars],
                "low": [b.low for b in bars],
                "close": [b.close for b in bars],
                "volume": [b.volume for b in bars],
            }
        )
        data = data.sort_values(["ts", "symbol"], kind="stable").set_index("ts")
        if len(self._rows) <= 1:
            return data[_COLUMNS]
        return data[["symbol", *_COLUMNS]]
