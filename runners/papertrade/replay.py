"""Recorded bars fed as if live: the default source for tests, demos and the examples.

:class:`ReplaySource` takes a long ``ohlcv`` frame (``ts``, ``symbol``, OHLCV; one symbol
without a ``symbol`` column is named by ``symbol=``) and yields its bars in time order, the
symbols of one timestamp together. ``speed`` is how many bars' worth of time pass per second of
wall time, scaled to the interval: ``speed=0`` yields as fast as the consumer takes them, and
``speed=60`` replays 1-minute bars at one per second (a bar's interval / speed seconds apart).
``start`` is where the "live" part begins: a timestamp, or a number of bars per symbol held back
as history (what :meth:`ReplaySource.history` serves for a warm-up); ``after`` skips every bar
up to and including that timestamp (a restart resuming where it was). History is always served
from the whole recording.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pandas as pd

from runners.papertrade.bars import Bar, interval_seconds

__all__ = ["ReplaySource"]


class ReplaySource:
    """Bars of ``frame`` in (ts, symbol) order, ``speed`` bar intervals per second (0: no wait)."""

    def __init__(
        self,
        frame: pd.DataFrame,
        *,
        interval: str = "1d",
        speed: float = 0.0,
        symbol: str | None = None,
        start: pd.Timestamp | int | None = None,
        after: pd.Timestamp | None = None,
        limit: int | None = None,
    ) -> None:
        if speed < 0:
            raise ValueError("replay speed must be 0 (no wait) or positive")
        self.interval = interval
        self.speed = speed
        self.seconds = interval_seconds(interval)
        data = frame.copy()
        if "ts" not in data.columns:
            data = data.reset_index().rename(columns={data.index.name or "index": "ts"})
        if "symbol" not in data.columns:
            data["symbol"] = symbol or "ASSET"
        missing = {"open", "high", "low", "close"} - set(data.columns)
        if missing:
            raise ValueError(f"replay data lacks the column(s) {', '.join(sorted(missing))}")
        if "volume" not in data.columns:
            data["volume"] = 0.0
        data["ts"] = pd.to_datetime(data["ts"], utc=True)
        data = data.sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)
        self.recording = data[["ts", "symbol", "open", "high", "low", "close", "volume"]]
        if isinstance(start, int):
            times = data["ts"].drop_duplicates().sort_values()
            if start > 0:
                cut = times.iloc[start] if start < len(times) else times.iloc[-1] + pd.Timedelta(1)
                data = data[data["ts"] >= cut]
        elif start is not None:
            data = data[data["ts"] >= _utc(start)]
        if after is not None:
            data = data[data["ts"] > _utc(after)]
        if limit is not None:
            data = data.head(limit)
        self.frame = data

    def __len__(self) -> int:
        return len(self.frame)

    def history(self, end: pd.Timestamp, count: int) -> pd.DataFrame:
        """The last ``count`` bars of each symbol before ``end`` (the warm-up)."""
        before = self.recording[self.recording["ts"] < _utc(end)]
        tail = before.groupby("symbol", sort=False).tail(count) if count > 0 else before.head(0)
        return tail.sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)

    def bars(self, stop: threading.Event) -> Iterator[Bar]:
        last: pd.Timestamp | None = None
        cols = ["symbol", "ts", "open", "high", "low", "close", "volume"]
        for symbol, ts, o, h, lo, c, v in self.frame[cols].itertuples(index=False, name=None):
            if stop.is_set():
                return
            if self.speed > 0 and last is not None and ts != last:
                bars_apart = (ts - last).total_seconds() / self.seconds
                if stop.wait(max(0.0, bars_apart / self.speed)):
                    return
            last = ts
            yield Bar(str(symbol), ts, float(o), float(h), float(lo), float(c), float(v),
                      self.interval)  # fmt: skip


def _utc(ts: pd.Timestamp | str) -> pd.Timestamp:
    stamp = pd.Timestamp(ts)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
