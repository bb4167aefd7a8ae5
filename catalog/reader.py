"""Pruned reads of a version: only the partitions, columns and rows asked for.

Symbols and time pick the files from the manifest (each file is one symbol and one calendar
year, with its first and last bar recorded): no other file is opened. Columns prune the Parquet
read; the time range also filters rows (pyarrow skips row groups by their statistics).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from catalog.errors import CatalogError
from catalog.partitions import arrow_schema
from catalog.storage import Storage
from nodes.base import OHLCV_COLUMNS

__all__ = ["read_version"]


def read_version(
    storage: Storage,
    manifest: dict[str, Any],
    *,
    symbols: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    start: datetime | date | None = None,
    end: datetime | date | None = None,
) -> pd.DataFrame:
    """The canonical long frame of a version (see :meth:`catalog.Catalog.read`)."""
    version = manifest["version"]
    known_symbols = [s["symbol"] for s in manifest["symbols"]]
    wanted = _check_symbols(symbols, known_symbols, version)
    cols = _check_columns(columns, list(manifest["columns"]), version)
    lo, hi = _bound(start), _bound(end)
    if lo is not None and hi is not None and lo > hi:
        raise CatalogError(f"start {start} is after end {end}")
    files = [
        f
        for f in manifest["files"]
        if (wanted is None or f["symbol"] in wanted)
        and (lo is None or pd.Timestamp(f["end"]) >= lo)
        and (hi is None or pd.Timestamp(f["start"]) <= hi)
    ]
    full = arrow_schema([(n, t) for n, t in manifest["schema"]])
    names = ["ts", "symbol", *cols]
    schema = pa.schema([full.field(n) for n in names])
    if not files:
        table = schema.empty_table()
    else:
        files.sort(key=lambda f: (f["symbol"], f["year"]))  # rows grouped by symbol, in order
        paths = [storage.path(f"objects/{version}/{f['path']}") for f in files]
        with storage.io(f"reading version {version[:12]}"):
            as_read = full.set(full.get_field_index("symbol"), _SYMBOL_AS_READ)
            dataset = ds.dataset(
                paths, schema=as_read, format=_FORMAT, filesystem=storage.arrow_filesystem()
            )
            table = dataset.to_table(columns=names, filter=_filter(lo, hi), use_threads=True)
        table = _by_time_then_symbol(table)
    frame = table.to_pandas(split_blocks=True).set_index("ts")
    # the loaders' column order: the OHLCV columns, symbol, then the extra columns
    ohlcv = [c for c in cols if c in OHLCV_COLUMNS]
    return frame[[*ohlcv, "symbol", *(c for c in cols if c not in OHLCV_COLUMNS)]]


# symbol read as a dictionary: sorting and reordering move small integers, not strings
_FORMAT = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=["symbol"]))
_SYMBOL_AS_READ = pa.field("symbol", pa.dictionary(pa.int32(), pa.string()))


def _by_time_then_symbol(table: pa.Table) -> pa.Table:
    """The rows sorted by (ts, symbol), symbol as plain strings.

    Files are sorted in time and read grouped by symbol in symbol order, so a stable sort on
    time alone gives the order (numpy's stable sort merges the runs); if the reader did not keep
    the files' order, a two-key sort does it."""
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    ranks = _symbol_ranks(table.column("symbol"))
    grouped = bool(np.all(ranks[1:] >= ranks[:-1]))
    order = np.argsort(ts, kind="stable") if grouped else np.lexsort((ranks, ts))
    if not np.array_equal(order, np.arange(len(order))):
        table = table.take(pa.array(order))
    index = table.schema.get_field_index("symbol")
    return table.set_column(index, "symbol", pc.cast(table.column("symbol"), pa.string()))


def _symbol_ranks(column: pa.ChunkedArray) -> np.ndarray:
    """Each row's symbol as its rank among the symbols (per-chunk dictionaries unified)."""
    chunks = [c for c in column.chunks if len(c)]
    names = sorted({s for c in chunks for s in c.dictionary.to_pylist()})
    rank = {s: i for i, s in enumerate(names)}
    parts = [
        np.array([rank[s] for s in c.dictionary.to_pylist()], dtype=np.int64)[
            c.indices.to_numpy(zero_copy_only=False)
        ]
        for c in chunks
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _check_symbols(
    symbols: Sequence[str] | None, known: list[str], version: str
) -> set[str] | None:
    if symbols is None:
        return None
    if isinstance(symbols, str):
        symbols = [symbols]
    unknown = [s for s in symbols if s not in known]
    if unknown:
        hint = _close(unknown[0], known)
        shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
        msg = f"version {version[:12]} has no symbol {unknown[0]!r}{hint}; it has: {shown}"
        raise CatalogError(msg)
    return set(symbols)


def _check_columns(columns: Sequence[str] | None, known: list[str], version: str) -> list[str]:
    if columns is None:
        return known
    if isinstance(columns, str):
        columns = [columns]
    unknown = [c for c in columns if c not in known and c not in ("ts", "symbol")]
    if unknown:
        hint = _close(unknown[0], known)
        msg = (
            f"version {version[:12]} has no column {unknown[0]!r}{hint}; it has: "
            f"{', '.join(['ts', 'symbol', *known])}"
        )
        raise CatalogError(msg)
    asked = set(columns)
    return [c for c in known if c in asked]  # the stored order


def _close(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def _bound(when: datetime | date | None) -> pd.Timestamp | None:
    if when is None:
        return None
    stamp = pd.Timestamp(when)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _filter(lo: pd.Timestamp | None, hi: pd.Timestamp | None) -> ds.Expression | None:
    expr: ds.Expression | None = None
    ts_type = pa.timestamp("ns", tz="UTC")
    if lo is not None:
        expr = ds.field("ts") >= pa.scalar(lo.as_unit("ns").value, ts_type)
    if hi is not None:
        upper = ds.field("ts") <= pa.scalar(hi.as_unit("ns").value, ts_type)
        expr = upper if expr is None else expr & upper
    return expr
