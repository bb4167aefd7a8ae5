"""An instance's feed → its bar source (the engine's :data:`~live.engine.SourceFactory`).

A feed is the JSON an instance was created with (:func:`live.instances.check_feed`):

- ``{"kind": "replay", "path": "data/btc_1h.csv"}`` or ``{"kind": "replay", "dataset":
  "name[@version]"}``: recorded bars (CSV or Parquet file, or a catalog dataset of the owner's
  namespace) replayed by :class:`~runners.papertrade.replay.ReplaySource` at
  ``speed`` (bar intervals
  per second; 0 = as fast as they are taken), the live part starting at ``start`` (bars held
  back as history for the warm-up; default the feed's ``warmup``, itself 100 by default),
  resumed after the last bar the instance processed;
- ``{"kind": "binance", "interval": "1m"}``: Binance's public spot kline stream for the
  instance's market (:class:`~live.sources.binance.BinanceKlineSource`);
- ``{"kind": "binance_futures", "interval": "1m"}``: the same on Binance USD-M futures (the
  instance's market a perpetual such as ``BTCUSDT`` or a delivery contract ``BTCUSDT_261225``).

Every feed resumes after the last bar the instance processed (``Desired.last_bar_ts``): a
replay skips to the bar after it; a Binance source (``after``) first fills every kline that
closed since it from REST, then goes on with the live stream, so an instance whose engine was
down for a while processes the bars it missed, in order, before the live ones, and its warm-up
(``history(first bar, warmup)``) ends on its last processed bar.

``binance`` / ``binance_futures`` are extra keyword arguments of those sources (other
endpoints, back-off), e.g. a local replay server's URLs in tests.

Relative paths resolve against ``base_dir``; with ``confine`` a path outside it is refused (the
web app's instances read only what the operator put there, or their datasets).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from live.engine import DEFAULT_WARMUP_BARS
from live.store import Desired
from runners.papertrade.bars import BarSource
from runners.papertrade.replay import ReplaySource

__all__ = ["FeedError", "source_factory"]

DatasetReader = Callable[[Desired, str], pd.DataFrame]


class FeedError(ValueError):
    """A feed that cannot be opened; says which and why."""


def source_factory(
    base_dir: Path,
    *,
    confine: bool = False,
    datasets: DatasetReader | None = None,
    binance: dict[str, Any] | None = None,
    binance_futures: dict[str, Any] | None = None,
) -> Callable[[Desired], BarSource]:
    """The engine's source factory for feeds of this installation."""

    def make(want: Desired) -> BarSource:
        feed = want.feed
        kind = feed.get("kind")
        interval = str(feed.get("interval", "1d"))
        if kind == "replay":
            frame = _recording(want, feed, base_dir, confine, datasets)
            if "symbol" in frame.columns:
                frame = frame[frame["symbol"].astype(str) == want.market]
                if frame.empty:
                    raise FeedError(f"the replay data has no bars of {want.market}")
            warmup = int(feed.get("warmup", DEFAULT_WARMUP_BARS) or 0)
            start = feed.get("start", warmup)
            after = pd.Timestamp(want.last_bar_ts) if want.last_bar_ts is not None else None
            return ReplaySource(
                frame,
                interval=interval,
                speed=float(feed.get("speed", 0) or 0),
                symbol=want.market,
                start=int(start) if isinstance(start, int | float) else pd.Timestamp(start),
                after=after,
            )
        if kind in ("binance", "binance_futures"):
            from live.sources.binance import BinanceKlineSource

            futures = kind == "binance_futures"
            options = (binance_futures if futures else binance) or {}
            resume = pd.Timestamp(want.last_bar_ts) if want.last_bar_ts is not None else None
            try:
                return BinanceKlineSource(
                    [want.market], interval, market="usdm" if futures else "spot",
                    **{**options, "after": resume},
                )  # fmt: skip
            except ValueError as exc:
                raise FeedError(f"the {kind} feed of {want.market}: {exc}") from None
        raise FeedError(f"unknown feed kind {kind!r} (replay, binance or binance_futures)")

    return make


def _recording(
    want: Desired,
    feed: dict[str, Any],
    base_dir: Path,
    confine: bool,
    datasets: DatasetReader | None,
) -> pd.DataFrame:
    if feed.get("dataset"):
        if datasets is None:
            raise FeedError("this engine cannot read catalog datasets (no catalog configured)")
        return datasets(want, str(feed["dataset"]))
    raw = Path(str(feed.get("path")))
    path = raw if raw.is_absolute() else base_dir / raw
    path = path.resolve()
    if confine and not path.is_relative_to(base_dir.resolve()):
        raise FeedError(f"the replay path {raw} is outside {base_dir}")
    if not path.is_file():
        raise FeedError(f"the replay file {raw} does not exist (looked in {base_dir})")
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    return pd.read_csv(path)
