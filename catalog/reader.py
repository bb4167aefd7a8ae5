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
    # the loaders' column order: the OHLCV columns, symbol, then the extra columns
    ohlcv = [c for c in cols if c in OHLCV_COLUMNS]
    order = [*ohlcv, "symbol", *(c for c in cols if c not in OHLCV_COLUMNS)]
    if not files:
        return schema.empty_table().to_pandas().set_index("ts")[order]
    files.sort(key=lambda f: (f["symbol"], f["year"]))  # rows grouped by symbol, in order
    paths = [storage.path(f"objects/{version}/{f['path']}") for f in files]
    with storage.io(f"reading version {version[:12]}"):
        as_read = full.set(full.get_field_index("symbol"), _SYMBOL_AS_READ)
        dataset = ds.dataset(
            paths, schema=as_read, format=_FORMAT, filesystem=storage.arrow_filesystem()
        )
        table = dataset.to_table(columns=names, filter=_filter(lo, hi), use_threads=True)
    return _frame(table, order)


def _frame(table: pa.Table, columns: list[str]) -> pd.DataFrame:
    """The table as the canonical frame, rows by (ts, symbol), ``columns`` in that order.

    Files are read grouped by symbol (in symbol order), each in time order, so the rows'
    order is a merge of sorted runs: a transposition when every symbol has the same bars
    (an aligned panel), else a stable sort on time. Numbers are gathered with numpy (far
    cheaper than Arrow's take over many chunks); text moves as Arrow."""
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    ranks, names = _symbol_ranks(table.column("symbol"))
    order = _row_order(ts, ranks, len(names))
    numeric = [
        c for c in columns if c != "symbol" and (pa.types.is_floating(table.schema.field(c).type))
    ]
    # the float columns gathered straight into one block (pandas keeps it as is: no copy)
    block = np.empty((len(numeric), len(ts)), dtype=np.float64)
    for i, name in enumerate(numeric):
        values = table.column(name).to_numpy()
        if order is None:
            block[i] = values
        else:
            np.take(values, order, out=block[i])
    stamps = ts if order is None else ts[order]
    index = _pandas_array(pa.array(stamps).cast(table.schema.field("ts").type))
    frame = pd.DataFrame(block.T, index=pd.Index(index, name="ts"), columns=numeric, copy=False)
    for name in columns:
        if name in numeric:
            continue
        if name == "symbol":
            codes = ranks if order is None else ranks[order]
            values = pa.DictionaryArray.from_arrays(
                pa.array(codes.astype(np.int32)), pa.array(names, pa.string())
            ).cast(pa.string())
        else:
            column = table.column(name)
            values = column if order is None else column.take(pa.array(order))
        frame[name] = _pandas_array(values)
    return frame[columns]


def _pandas_array(values: pa.Array | pa.ChunkedArray) -> Any:
    """An Arrow column as the array pandas makes of it in a table (the same dtype a
    ``to_pandas()`` of the whole table gives), without an index to align on."""
    return pa.table({"v": values}).to_pandas()["v"].array


def _row_order(ts: np.ndarray, ranks: np.ndarray, symbols: int) -> np.ndarray | None:
    """The permutation that puts rows grouped by symbol into (ts, symbol) order; None when
    they already are."""
    n = len(ts)
    if n == 0 or symbols <= 1:
        return None
    grouped = bool(np.all(ranks[1:] >= ranks[:-1]))
    if not grouped:  # the reader did not keep the files' order: a two-key sort does it
        return np.lexsort((ranks, ts))
    counts = np.bincount(ranks, minlength=symbols)
    if np.all(counts == counts[0]):
        grid = ts.reshape(symbols, counts[0])
        if np.array_equal(grid, np.broadcast_to(grid[0], grid.shape)):  # aligned: transpose
            return np.arange(n).reshape(symbols, counts[0]).T.ravel()
    return np.argsort(ts, kind="stable")  # numpy's stable sort merges the sorted runs


# symbol read as a dictionary: sorting and reordering move small integers, not strings
_FORMAT = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=["symbol"]))
_SYMBOL_AS_READ = pa.field("symbol", pa.dictionary(pa.int32(), pa.string()))


def _symbol_ranks(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """Each row's symbol as its rank among the symbols (per-chunk dictionaries unified), and
    the symbols in rank order."""
    chunks = [c for c in column.chunks if len(c)]
    names = sorted({s for c in chunks for s in c.dictionary.to_pylist()})
    rank = {s: i for i, s in enumerate(names)}
    parts = [
        np.array([rank[s] for s in c.dictionary.to_pylist()], dtype=np.int64)[
            c.indices.to_numpy(zero_copy_only=False)
        ]
        for c in chunks
    ]
    return (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)), names


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
