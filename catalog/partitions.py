"""Bars into partitions (one symbol, one calendar year each) and deterministic Parquet files.

Chunks arrive in file order (many symbols interleaved). :class:`Spool` splits each chunk by
(symbol, year), keeps the pieces in memory up to :data:`SPOOL_ROWS` bars, and beyond that writes
them to Arrow IPC files in a local temporary folder: memory is bounded by the spool and by one
partition, whatever the size of the import. :meth:`Spool.partitions` then yields each partition's
bars in order (symbol, then year); the import's order check guarantees they are sorted by time.

A Parquet file's bytes depend only on its rows: fixed writer options and no key-value metadata
(no pandas schema, no times), so the same bars give the same file and the same sha256.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from catalog.model import encode_symbol
from nodes.base import OHLCV_COLUMNS

__all__ = ["Partition", "Spool", "arrow_schema", "parquet_bytes", "partition_path"]

SPOOL_ROWS = 2_000_000
ROW_GROUP_ROWS = 1 << 20
# Writer options are part of the content hash: change them and every import gets new versions.
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,
    "use_dictionary": ["symbol"],
    "write_statistics": True,
    "version": "2.6",
    "data_page_version": "1.0",
    "store_schema": False,
}
TYPES: dict[str, pa.DataType] = {
    "timestamp[ns, tz=UTC]": pa.timestamp("ns", tz="UTC"),
    "string": pa.string(),
    "double": pa.float64(),
}


def arrow_schema(columns: list[tuple[str, str]]) -> pa.Schema:
    """The Arrow schema of ``[(name, type name)]`` (type names as the manifest stores them)."""
    return pa.schema([pa.field(name, TYPES[kind]) for name, kind in columns])


def schema_columns(extras: dict[str, str]) -> list[tuple[str, str]]:
    """The stored columns: ts, symbol, the OHLCV columns, then the extras in file order."""
    cols = [("ts", "timestamp[ns, tz=UTC]"), ("symbol", "string")]
    cols += [(c, "double") for c in OHLCV_COLUMNS]
    return cols + list(extras.items())


def partition_path(symbol: str, year: int) -> str:
    """``data/symbol=<encoded symbol>/<year>.parquet`` (relative to the version's folder)."""
    return f"data/symbol={encode_symbol(symbol)}/{year:04d}.parquet"


def parquet_bytes(table: pa.Table) -> bytes:
    """The table as Parquet bytes, deterministically."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=ROW_GROUP_ROWS, **PARQUET_OPTIONS)
    return bytes(sink.getvalue().to_pybytes())


@dataclass(frozen=True)
class Partition:
    """One partition's bars, ready to store."""

    symbol: str
    year: int
    table: pa.Table

    @property
    def path(self) -> str:
        """Where it goes inside the version."""
        return partition_path(self.symbol, self.year)


class Spool:
    """Collects chunks by (symbol, year), spilling to ``folder`` past :data:`SPOOL_ROWS`."""

    def __init__(self, folder: Path, columns: list[tuple[str, str]]) -> None:
        self.folder = folder
        self.schema = arrow_schema(columns)
        self._buffers: dict[tuple[str, int], list[pa.Table]] = {}
        self._spilled: dict[tuple[str, int], list[Path]] = {}
        self._buffered = 0
        self._files = 0

    def add(self, bars: pd.DataFrame) -> None:
        """Split a validated chunk (with ``symbol``) by symbol and year and keep the pieces."""
        years = bars.index.year.to_numpy()
        symbols = bars["symbol"].to_numpy(dtype=object)
        table = pa.Table.from_pandas(
            bars.reset_index(), schema=self.schema, preserve_index=False
        ).replace_schema_metadata(None)
        order = np.lexsort((years, symbols))  # stable: time order kept within a key
        sym, year = symbols[order], years[order]
        change = (sym[1:] != sym[:-1]) | (year[1:] != year[:-1])
        bounds = [0, *(np.flatnonzero(change) + 1).tolist(), len(order)]
        for lo, hi in pairwise(bounds):
            piece = table.take(pa.array(order[lo:hi])) if len(bounds) > 2 else table
            self._buffers.setdefault((str(sym[lo]), int(year[lo])), []).append(piece)
        self._buffered += len(bars)
        if self._buffered >= SPOOL_ROWS:
            self._spill()

    def _spill(self) -> None:
        for key, pieces in self._buffers.items():
            path = self.folder / f"{self._files}.arrow"
            self._files += 1
            with ipc.new_file(path, self.schema) as writer:
                for piece in pieces:
                    writer.write_table(piece)
            self._spilled.setdefault(key, []).append(path)
        self._buffers.clear()
        self._buffered = 0

    def partitions(self) -> Iterator[Partition]:
        """Each partition's bars, by symbol then year (one partition in memory at a time)."""
        keys = sorted(set(self._buffers) | set(self._spilled))
        for key in keys:
            tables = [ipc.open_file(p).read_all() for p in self._spilled.get(key, [])]
            tables += self._buffers.get(key, [])
            table = pa.concat_tables(tables).combine_chunks()
            yield Partition(key[0], key[1], table)
            for path in self._spilled.pop(key, []):
                path.unlink()
            self._buffers.pop(key, None)


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


class GapStats:
    """Per symbol, the spacing of its bars: median, largest gap, gaps over 3x the median.

    Fed one partition at a time in (symbol, year) order, so only one symbol's spacings are in
    memory."""

    def __init__(self) -> None:
        self.out: dict[str, dict[str, Any]] = {}
        self._symbol: str | None = None
        self._ts: list[np.ndarray] = []

    def add(self, symbol: str, ts: np.ndarray) -> None:
        """The bars' times (int64 ns, sorted) of the symbol's next partition."""
        if symbol != self._symbol:
            self.finish()
            self._symbol = symbol
        self._ts.append(ts)

    def finish(self) -> dict[str, dict[str, Any]]:
        """Close the current symbol; the summary so far (symbol -> figures)."""
        if self._symbol is not None:
            ts = np.concatenate(self._ts)
            self.out[self._symbol] = _gaps(ts)
        self._symbol, self._ts = None, []
        return self.out


def _gaps(ts: np.ndarray) -> dict[str, Any]:
    if len(ts) < 2:
        return {"median_spacing_s": None, "largest_gap_s": None, "gaps_over_3x_median": 0}
    step = np.diff(ts)
    median = float(np.median(step))
    big = int(np.argmax(step))
    return {
        "median_spacing_s": median / 1e9,
        "largest_gap_s": float(step[big]) / 1e9,
        "largest_gap_after": pd.Timestamp(int(ts[big]), tz="UTC").isoformat(),
        "gaps_over_3x_median": int((step > 3 * median).sum()),
    }
