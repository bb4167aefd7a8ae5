"""The bar source a stream block names, built (``source = replay(...)``, ``binance(...)``).

- ``replay(dataset=..., path=..., speed=0, start=N|date, symbol=..., interval=..., limit=...)``
  is a :class:`runners.papertrade.replay.ReplaySource` over a catalog dataset (``"name"`` or
  ``"name@version"``, in the settings' namespace), a CSV or Parquet file (relative paths from
  the ``.af`` file's folder, read and checked as ``csv_ohlcv`` / ``parquet_ohlcv`` read them),
  or, with neither, what the pipeline's own data step loads. ``start`` defaults to the warm-up
  (that many bars a symbol are history, the rest is replayed as live); the interval is
  ``interval=``, else the block's ``every``, else the recording's most common step.
- ``binance(symbols=[...], interval=...)`` is a ``live.sources.binance.BinanceKlineSource``
  (imported when used) on Binance spot; ``binance_futures`` the same source on Binance's USD-M
  futures (``market="usdm"``: stream ``wss://fstream.binance.com/market``, REST
  ``https://fapi.binance.com`` ``/fapi/v1/klines``). ``ws_url`` / ``rest_url`` override the
  market's endpoints (a proxy, a local replay).
- ``events()`` is no bar source: the pipeline is fed by other pipelines' ``trigger`` sinks
  (``live.stream.service``).

A name or a param the compiler did not check (an IR written by hand) gets the same message
the compiler gives, as a :class:`StreamError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dsl.ir import StreamIR
from dsl.streamspec import SOURCES, canonical, check_params, interval_text
from live.sources.binance_markets import USDM
from live.stream.errors import StreamError
from runners.papertrade.bars import BarSource, interval_seconds
from runners.papertrade.replay import ReplaySource

__all__ = [
    "BINANCE_FUTURES_REST",
    "BINANCE_FUTURES_WS",
    "SourcePlan",
    "build_source",
    "infer_interval",
    "is_recorded",
    "source_params",
]

#: Binance USD-M futures endpoints (``binance_futures``; the source's defaults for ``usdm``).
BINANCE_FUTURES_WS = USDM.ws_url
BINANCE_FUTURES_REST = USDM.rest_url
#: The market each Binance source name reads.
_BINANCE_MARKETS = {"binance": "spot", "binance_futures": "usdm"}


@dataclass
class SourcePlan:
    """What the stream block says about its bars before any is read."""

    kind: str
    params: dict[str, Any]
    interval: str | None  # None: a replay finds it in its recording
    calendar: str | None  # None: the interval's default


def source_params(stream: StreamIR, where: str) -> SourcePlan:
    """The block's source checked against the table (dsl.streamspec) and its interval."""
    spec = SOURCES.get(stream.source)
    if spec is None:
        raise StreamError(
            f"{where}: unknown stream source `{stream.source}` (the sources: {', '.join(SOURCES)})"
        )
    problems = check_params(spec, stream.source_params, f"source `{stream.source}`")
    if problems:
        raise StreamError(f"{where}: " + "; ".join(m for _, m in problems))
    params = canonical(spec, stream.source_params)
    given = interval_text(params.get("interval"))
    every = stream.every
    if given and every and stream.every_seconds and stream.every_seconds % interval_seconds(given):
        raise StreamError(
            f"{where}: `every {every}` is not a whole multiple of the source's {given} bars"
        )
    interval = given or (every if stream.source != "replay" or every else None)
    if stream.source.startswith("binance") and interval is None:
        raise StreamError(f"{where}: source `{stream.source}` needs `interval=` or `every`")
    return SourcePlan(stream.source, params, interval, params.get("calendar"))


def is_recorded(source: object) -> bool:
    """Whether the source replays recorded bars (never waits for a wall-clock buffer)."""
    return isinstance(source, ReplaySource) or bool(getattr(source, "recorded", False))


def infer_interval(frame: pd.DataFrame) -> str:
    """The most common step between consecutive bars of a symbol, as an interval's text."""
    data = frame.reset_index() if "ts" not in frame.columns else frame
    ts = pd.to_datetime(data["ts"], utc=True)
    groups = data["symbol"] if "symbol" in data.columns else pd.Series(0, index=data.index)
    steps = ts.groupby(groups.to_numpy()).diff().dropna()
    if steps.empty:
        raise StreamError("replay: too few bars to tell their interval; give `interval=`")
    seconds = int(steps.mode().iloc[0].total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def build_source(
    plan: SourcePlan,
    *,
    where: str,
    base_dir: Path,
    warmup: int,
    data_step: Any,
    after: pd.Timestamp | None = None,
    catalog: Any = None,
) -> tuple[BarSource, str]:
    """The bar source and its interval. ``data_step()`` gives the pipeline's data step's
    output (a replay with neither ``dataset`` nor ``path``); ``catalog`` a
    :class:`runners.catalogsource.CatalogSource` (a replay of a dataset); ``after`` skips the
    bars a restarted pipeline already processed (a replay resumes there; a Binance source
    first fills every kline that closed after it from REST, so the bars that closed while the
    pipeline was down are evaluated, not lost to the warm-up)."""
    params = plan.params
    if plan.kind == "replay":
        frame = _recording(params, where, base_dir, data_step, catalog)
        interval = plan.interval or infer_interval(frame)
        start = params.get("start", warmup)
        begin: pd.Timestamp | int = start if isinstance(start, int) else _utc(start)
        try:
            source = ReplaySource(
                frame,
                interval=interval,
                speed=float(params.get("speed", 0)),
                symbol=params.get("symbol"),
                start=begin,
                after=after,
                limit=params.get("limit"),
            )
        except ValueError as exc:
            raise StreamError(f"{where}: replay: {exc}") from None
        return source, interval
    if plan.kind in _BINANCE_MARKETS:
        try:
            from live.sources.binance import BinanceKlineSource
        except ImportError as exc:
            raise StreamError(
                f"{where}: the binance source is not available in this build ({exc})"
            ) from None
        assert plan.interval is not None
        market = _BINANCE_MARKETS[plan.kind]
        ws_url, rest_url = params.get("ws_url"), params.get("rest_url")
        try:
            binance = BinanceKlineSource(
                list(params["symbols"]),
                plan.interval,
                market=market,
                ws_url=None if ws_url is None else str(ws_url),
                rest_url=None if rest_url is None else str(rest_url),
                after=after,
            )
        except ValueError as exc:
            raise StreamError(f"{where}: source `{plan.kind}`: {exc}") from None
        return binance, plan.interval
    raise StreamError(f"{where}: source `{plan.kind}` has no bars to build")


def _recording(
    params: Mapping[str, Any], where: str, base_dir: Path, data_step: Any, catalog: Any
) -> pd.DataFrame:
    from nodes.data import read_ohlcv_csv, read_ohlcv_parquet
    from nodes.errors import AlphaForgeError

    symbol = params.get("symbol")
    try:
        if "path" in params:
            path = Path(params["path"])
            path = path if path.is_absolute() else base_dir / path
            if not path.is_file():
                raise StreamError(f"{where}: replay: no file {path}")
            reader = read_ohlcv_parquet if path.suffix.lower() == ".parquet" else read_ohlcv_csv
            frame = reader(path, source=str(params["path"]))
        elif "dataset" in params:
            frame = _dataset(str(params["dataset"]), symbol, where, catalog)
        else:
            frame = data_step()
    except StreamError:
        raise
    except AlphaForgeError as exc:
        raise StreamError(f"{where}: replay: {exc}") from None
    if symbol is not None and "symbol" in frame.columns:
        frame = frame[frame["symbol"] == symbol]
        if frame.empty:
            raise StreamError(f"{where}: replay: no bars of symbol {symbol!r}")
    if frame.empty:
        raise StreamError(f"{where}: replay: the recording has no bars")
    return frame


def _dataset(reference: str, symbol: str | None, where: str, catalog: Any) -> pd.DataFrame:
    from nodes.base import split_dataset_reference

    if catalog is None:
        raise StreamError(f"{where}: replay(dataset=...) needs the dataset catalog")
    name, version = split_dataset_reference(reference)
    full = catalog.resolve(name, version)
    frame: pd.DataFrame = catalog.read(full, symbols=[symbol] if symbol else None)
    return frame


def _utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
