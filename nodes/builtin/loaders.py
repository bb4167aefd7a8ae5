"""Data nodes: OHLCV bars from a CSV file, a Parquet file or a web-app dataset."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator

from nodes.base import Node, Params, Port, PortType, register
from nodes.data import (
    check_timezone,
    file_sha256,
    filter_range,
    read_ohlcv_csv,
    read_ohlcv_parquet,
    select_symbol,
)
from nodes.errors import DataError
from nodes.lazy import lazy_module
from nodes.panel import is_panel

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas", globals(), "pd")

__all__ = ["CsvOhlcv", "DatasetOhlcv", "FileOhlcvParams", "ParquetOhlcv"]

_BARS = Port("bars", PortType.OHLCV, "bars by UTC timestamp: open, high, low, close, volume")


class _RangeParams(Params):
    start: date | datetime | None = Field(
        None, description="First bar kept (inclusive); a date means from that day's start."
    )
    end: date | datetime | None = Field(
        None, description="Last bar kept (inclusive); a date keeps that whole day."
    )

    @model_validator(mode="after")
    def _start_before_end(self) -> _RangeParams:
        if (
            self.start is not None
            and self.end is not None
            and _wall_clock(self.start) > _wall_clock(self.end)
        ):
            raise ValueError("start must not be after end")
        return self


def _describe(bars: pd.DataFrame) -> str:
    """What a loader read, for its log: bars, dates and, for a panel, the symbols."""
    what = f"{len(bars)} bars from {bars.index[0]} to {bars.index[-1]}"
    if is_panel(bars):
        what += f" for {bars['symbol'].nunique()} symbols (a panel)"
    return what


def _wall_clock(when: date | datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(when)
    return stamp.tz_localize(None) if stamp.tzinfo is not None else stamp


class FileOhlcvParams(_RangeParams):
    """Params of the file loaders."""

    path: str = Field(
        min_length=1, description="The file; a relative path is taken from the pipeline's folder."
    )
    symbol: str | None = Field(
        None,
        description="Keep this symbol's rows (files with a symbol column) or label the bars. "
        "Left out, a file of several symbols gives them all, as a panel.",
    )
    timezone: str = Field(
        "UTC", description="IANA time zone of timestamps written without a UTC offset."
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            check_timezone(value)
        except DataError as exc:
            raise ValueError(exc.message) from None
        return value


class DatasetParams(_RangeParams):
    """Params of ``dataset_ohlcv``."""

    name: str = Field(min_length=1, description="The dataset's name in the web app.")


class _FileLoader(Node):
    category = "data"
    panel = "native"
    outputs = (_BARS,)
    params_model = FileOhlcvParams

    def _read(self, path: Path, source: str, timezone: str) -> pd.DataFrame:
        raise NotImplementedError

    def _path(self, params: FileOhlcvParams) -> Path:
        return self.ctx.resolve_path(params.path)

    def _existing(self, params: FileOhlcvParams) -> Path:
        path = self._path(params)
        if not path.is_file():
            raise DataError(
                "FILE_NOT_FOUND", self.ctx.missing_file(params.path), source=params.path
            )
        return path

    def run(self, inputs: Mapping[str, Any], params: FileOhlcvParams) -> dict[str, Any]:
        """Read, validate, select the symbol and the date range."""
        bars = self._read(self._existing(params), params.path, params.timezone)
        bars = select_symbol(bars, params.symbol, params.path)
        bars = filter_range(
            bars, params.start, params.end, timezone=params.timezone, source=params.path
        )
        self.ctx.log(f"{params.path}: {_describe(bars)}")
        return {"bars": bars}

    def fingerprint(self, params: FileOhlcvParams) -> str:
        """sha256 of the file's bytes."""
        return file_sha256(self._existing(params))


@register
class CsvOhlcv(_FileLoader):
    """OHLCV bars from a CSV file, validated at the door.

    Needs a timestamp column (``ts``, ``timestamp``, ``date``, ``datetime`` or ``time``) and
    ``open, high, low, close, volume`` (names in any case); a ``symbol`` column is optional.
    Timestamps without a UTC offset are read in ``timezone`` and converted to UTC. Bad data
    stops the run with the file, the line (as an editor numbers it, header = 1) and a kind:
    MISSING_COLUMNS, EMPTY, UNPARSEABLE_TIMESTAMP, UNPARSEABLE_NUMBER, NAN_PRICE, NAN_VOLUME,
    NON_POSITIVE_PRICE, NEGATIVE_VOLUME, HIGH_BELOW_LOW, PRICE_OUTSIDE_RANGE, UNSORTED,
    DUPLICATE_TIMESTAMP. Nothing is silently dropped, reordered or repaired. ``start``/``end``
    keep a date range (inclusive).

    A file with a ``symbol`` column holding several symbols gives one of them with
    ``symbol="..."``, else all of them as a panel (rows sorted by time, then symbol; each
    symbol's bars are checked for order and repeats on their own): indicators then run per
    symbol, cross-sectional nodes (``rank``, ``top_n``) across them.
    """

    name = "csv_ohlcv"
    summary = "OHLCV bars from a CSV file"

    def _read(self, path: Path, source: str, timezone: str) -> pd.DataFrame:
        return read_ohlcv_csv(path, source=source, timezone=timezone)


@register
class ParquetOhlcv(_FileLoader):
    """OHLCV bars from a Parquet file, with the same columns and checks as ``csv_ohlcv``.

    The timestamps may be a column or the index; error rows are 1-based row positions.
    """

    name = "parquet_ohlcv"
    summary = "OHLCV bars from a Parquet file"

    def _read(self, path: Path, source: str, timezone: str) -> pd.DataFrame:
        return read_ohlcv_parquet(path, source=source, timezone=timezone)


@register
class DatasetOhlcv(Node):
    """OHLCV bars of a dataset uploaded to the web app, by name, optionally cut to a date range.

    Datasets are validated when uploaded and checked again when read. A dataset of several
    symbols is read as a panel (as ``csv_ohlcv`` reads such a file without ``symbol``).
    """

    name = "dataset_ohlcv"
    category = "data"
    panel = "native"
    summary = "OHLCV bars of a stored dataset"
    outputs = (_BARS,)
    params_model = DatasetParams

    def _path(self, params: DatasetParams) -> Path:
        path = self.ctx.datasets.get(params.name)
        if path is None:
            close = difflib.get_close_matches(params.name, list(self.ctx.datasets), n=3)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise DataError("UNKNOWN_DATASET", f"no dataset named {params.name!r}{hint}")
        return Path(path)

    def run(self, inputs: Mapping[str, Any], params: DatasetParams) -> dict[str, Any]:
        """Read the dataset's Parquet file and keep the date range."""
        source = f"dataset {params.name!r}"
        bars = read_ohlcv_parquet(self._path(params), source=source)
        bars = select_symbol(bars, None, source)
        bars = filter_range(bars, params.start, params.end, source=source)
        self.ctx.log(f"{source}: {_describe(bars)}")
        return {"bars": bars}

    def fingerprint(self, params: DatasetParams) -> str:
        """sha256 of the dataset file's bytes."""
        return file_sha256(self._path(params))
