"""The import's checks beyond one file's loader rules, and what the report says of each file.

- :class:`OrderTracker`: per symbol, bars strictly increase across chunks and files (files of
  one symbol cover successive periods, in the order given).
- :class:`ExtraColumns`: every file has the same extra columns, each of one type (float64 when
  every value is a number, else text).
- :class:`FileStats`: rows, symbols, first and last bar, notes of one file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from catalog.model import iso, symbol_problem
from nodes.base import OHLCV_COLUMNS
from nodes.data import VOLUME_MISSING_NOTE
from nodes.errors import DataError

__all__ = ["CHECKS", "ExtraColumns", "FileStats", "OrderTracker", "check_symbols"]

#: The checks every import runs, in order (the report lists them).
CHECKS: list[str] = [
    "MISSING_COLUMNS",
    "AMBIGUOUS_COLUMNS",
    "EMPTY",
    "UNPARSEABLE_TIMESTAMP",
    "UNPARSEABLE_NUMBER",
    "NAN_PRICE",
    "NAN_VOLUME",
    "MISSING_SYMBOL",
    "NON_POSITIVE_PRICE",
    "NEGATIVE_VOLUME",
    "HIGH_BELOW_LOW",
    "PRICE_OUTSIDE_RANGE",
    "UNSORTED",
    "DUPLICATE_TIMESTAMP",
    "BAD_SYMBOL",
    "SYMBOL_CONFLICT",
    "ORDER_ACROSS_FILES",
    "COLUMNS_DIFFER",
]


def check_symbols(bars: pd.DataFrame, source: str, first_row: int) -> np.ndarray:
    """The chunk's distinct symbols; DataError ``BAD_SYMBOL`` (with the row) for one that
    cannot name a partition."""
    names = bars["symbol"].to_numpy(dtype=object)
    unique, first = np.unique(names, return_index=True)
    for sym, pos in zip(unique, first, strict=True):
        problem = symbol_problem(str(sym))
        if problem:
            raise DataError("BAD_SYMBOL", problem, source=source, row=first_row + int(pos))
    return unique


class OrderTracker:
    """Remembers each symbol's last bar (time, file, row) over all chunks of all files."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, str, int]] = {}

    def check(self, bars: pd.DataFrame, source: str, first_row: int) -> None:
        """Each symbol's first bar in ``bars`` comes after its last bar so far, else
        DataError ``DUPLICATE_TIMESTAMP`` / ``UNSORTED`` naming both places."""
        ts = bars.index.asi8
        keys = bars["symbol"].to_numpy(dtype=object)
        names, first = np.unique(keys, return_index=True)
        _, from_end = np.unique(keys[::-1], return_index=True)
        final = len(keys) - 1 - from_end
        for key, pos in zip(names, first, strict=True):
            prev = self._last.get(key)
            if prev is None or ts[pos] > prev[0]:
                continue
            prev_ts, prev_src, prev_row = prev
            when = pd.Timestamp(int(ts[pos]), tz="UTC")
            where = f"row {prev_row}" if prev_src == source else f"{prev_src}, row {prev_row}"
            row = first_row + int(pos)
            if ts[pos] == prev_ts:
                msg = f"{when} for symbol {key!r} already appears in {where}"
                raise DataError("DUPLICATE_TIMESTAMP", msg, source=source, row=row)
            before = pd.Timestamp(prev_ts, tz="UTC")
            msg = f"{when} for symbol {key!r} comes before {before} in {where}"
            if prev_src != source:
                msg += (
                    "; files of one symbol must cover successive periods, in the order given "
                    "(a folder's files by name)"
                )
            raise DataError("UNSORTED", msg, source=source, row=row)
        for key, pos in zip(names, final, strict=True):
            self._last[key] = (int(ts[pos]), source, first_row + int(pos))


class ExtraColumns:
    """The extra (non-OHLCV) columns of an import: the same in every file, one type each."""

    def __init__(self) -> None:
        self.types: dict[str, str] | None = None  # name -> "double" | "string", file order
        self._first_source = ""

    def normalize(self, bars: pd.DataFrame, source: str, first_row: int) -> pd.DataFrame:
        """``bars`` with its extras as float64 or text, checked against the earlier files."""
        extras = [c for c in bars.columns if c not in (*OHLCV_COLUMNS, "symbol")]
        if self.types is None:
            self.types = {}
            self._first_source = source
            for col in extras:
                self.types[col] = "double" if _numeric(bars[col]) is not None else "string"
        elif set(extras) != set(self.types):
            msg = (
                f"extra columns {sorted(extras)} differ from {sorted(self.types)} in "
                f"{self._first_source}; every file of a dataset has the same columns"
            )
            raise DataError("COLUMNS_DIFFER", msg, source=source)
        out = bars.copy() if extras else bars
        for col, kind in self.types.items():
            if kind == "double":
                values = _numeric(bars[col])
                if values is None:
                    pos = _first_non_number(bars[col])
                    value = bars[col].iloc[pos]
                    msg = f"{col} {value!r} is not a number (earlier rows of {col} are numbers)"
                    raise DataError("UNPARSEABLE_NUMBER", msg, source=source, row=first_row + pos)
                out[col] = values
            else:
                out[col] = bars[col].astype("str")
        return out


def _numeric(col: pd.Series) -> np.ndarray | None:
    """The column as float64 when every non-blank value is a number, else None."""
    if pd.api.types.is_bool_dtype(col.dtype) or pd.api.types.is_numeric_dtype(col.dtype):
        return col.to_numpy(dtype="float64", na_value=np.nan)
    if not (pd.api.types.is_string_dtype(col.dtype) or col.dtype == object):
        return None
    text = col.astype("str").str.strip()
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    blank = (text.isna() | (text == "") | text.str.lower().isin(["nan", "na", "null"])).to_numpy()
    return None if (np.isnan(values) & ~blank).any() else values


def _first_non_number(col: pd.Series) -> int:
    text = col.astype("str").str.strip()
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    blank = (text.isna() | (text == "") | text.str.lower().isin(["nan", "na", "null"])).to_numpy()
    return int(np.argmax(np.isnan(values) & ~blank))


@dataclass
class FileStats:
    """What the report says of one file."""

    label: str
    rows: int = 0
    first: int | None = None
    last: int | None = None
    symbols: set[str] = field(default_factory=set)
    has_volume: bool = False

    def add(self, bars: pd.DataFrame, symbols: np.ndarray) -> None:
        """Count one validated chunk."""
        ts = bars.index.asi8
        self.rows += len(bars)
        lo, hi = int(ts.min()), int(ts.max())
        self.first = lo if self.first is None else min(self.first, lo)
        self.last = hi if self.last is None else max(self.last, hi)
        self.symbols.update(str(s) for s in symbols)
        self.has_volume = self.has_volume or not bool(bars["volume"].isna().all())

    def to_json(self, sha256: str, size: int) -> dict[str, Any]:
        """The report's entry for the file."""
        notes = [] if self.has_volume else [VOLUME_MISSING_NOTE]
        return {
            "file": self.label,
            "sha256": sha256,
            "bytes": size,
            "rows": self.rows,
            "symbols": sorted(self.symbols),
            "start": iso(self.first) if self.first is not None else None,
            "end": iso(self.last) if self.last is not None else None,
            "notes": notes,
        }
