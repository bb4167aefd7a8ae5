"""The files of an import: expand folders, download URLs, and read each file as validated
chunks of canonical bars (the loader rules of ``nodes.data``), never a whole file in memory.

A folder stands for every ``*.csv`` / ``*.parquet`` directly inside it, sorted by name. A URL
(``http://`` or ``https://``) is downloaded first, streamed to a temporary file. Each chunk comes
out with a ``symbol`` column: the file's own (``symbol_col`` renames one to it), else the
``symbol`` given, else the file's stem (one file per symbol).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd

from catalog.errors import CatalogError
from nodes.data import iter_ohlcv_csv, validate_ohlcv
from nodes.errors import DataError

__all__ = ["CHUNK_ROWS", "Chunk", "SourceFile", "expand_sources", "read_chunks"]

CHUNK_ROWS = 200_000
SUFFIXES = (".csv", ".parquet", ".pq")


@dataclass(frozen=True)
class SourceFile:
    """One file to import: where it is on disk and how messages and the report name it."""

    path: Path
    label: str

    @property
    def kind(self) -> str:
        """``csv`` or ``parquet`` (by suffix)."""
        return "csv" if self.path.suffix.lower() == ".csv" else "parquet"


@dataclass(frozen=True)
class Chunk:
    """Validated canonical bars of one file, with a ``symbol`` column; ``first_row`` is the
    row number (as errors give it) of the chunk's first bar; ``bytes_done`` how far into the
    file the chunk ends (an estimate for CSV)."""

    bars: pd.DataFrame
    first_row: int
    bytes_done: int


def expand_sources(sources: Sequence[str | Path], download_dir: Path) -> list[SourceFile]:
    """The files ``sources`` stand for, in order (folders sorted by name; URLs downloaded into
    ``download_dir``). Raises CatalogError for a missing path, an empty folder or a failed
    download, and DataError for a file that is neither CSV nor Parquet."""
    if not sources:
        raise CatalogError("nothing to import: give one or more files, folders or URLs")
    out: list[SourceFile] = []
    for src in sources:
        text = str(src)
        if text.startswith(("http://", "https://")):
            out.append(_download(text, download_dir))
            continue
        path = Path(text).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and _importable(p))
            if not found:
                raise CatalogError(f"no *.csv or *.parquet files in the folder {path}")
            out.extend(SourceFile(p, str(p)) for p in found)
        elif path.is_file():
            if not _importable(path):
                msg = "not a CSV or Parquet file (by its suffix: .csv, .parquet)"
                raise DataError("UNSUPPORTED_FILE", msg, source=str(path))
            out.append(SourceFile(path, str(path)))
        else:
            raise DataError("FILE_NOT_FOUND", "no such file or folder", source=str(path))
    return out


def _importable(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES


def _download(url: str, download_dir: Path) -> SourceFile:
    """Stream ``url`` to a file in ``download_dir`` named after the URL's last path segment."""
    import httpx

    name = Path(unquote(urlparse(url).path)).name
    if not _importable(Path(name)):
        msg = "the URL's file name must end in .csv or .parquet"
        raise DataError("UNSUPPORTED_FILE", msg, source=url)
    target = download_dir / f"{len(list(download_dir.iterdir()))}" / name
    target.parent.mkdir(parents=True)
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=60.0) as resp:
            if resp.status_code != 200:
                raise CatalogError(f"downloading {url} failed: HTTP {resp.status_code}")
            with target.open("wb") as fh:
                for block in resp.iter_bytes(1 << 20):
                    fh.write(block)
    except httpx.HTTPError as exc:
        raise CatalogError(f"downloading {url} failed: {exc}") from exc
    return SourceFile(target, url)


def read_chunks(
    src: SourceFile,
    *,
    symbol_col: str | None,
    symbol: str | None,
    timezone: str,
    chunk_rows: int | None = None,
) -> Iterator[Chunk]:
    """Validated chunks of one file (of :data:`CHUNK_ROWS` bars unless ``chunk_rows``), each
    with a ``symbol`` column (see the module doc)."""
    rename = _rename(src, symbol_col)
    chunk_rows = chunk_rows or CHUNK_ROWS
    if src.kind == "csv":
        chunks = _csv_chunks(src, rename, timezone, chunk_rows)
    else:
        chunks = _parquet_chunks(src, rename, timezone, chunk_rows)
    for chunk in chunks:
        yield Chunk(_with_symbol(chunk.bars, src, symbol), chunk.first_row, chunk.bytes_done)


def _rename(src: SourceFile, symbol_col: str | None) -> dict[str, str] | None:
    if not symbol_col or symbol_col == "symbol":
        return None
    columns = _header(src)
    if symbol_col not in columns:
        have = ", ".join(columns) or "none"
        msg = f"no column {symbol_col!r} to use as the symbol; the file has: {have}"
        raise DataError("MISSING_COLUMNS", msg, source=src.label)
    return {symbol_col: "symbol"}


def _header(src: SourceFile) -> list[str]:
    if src.kind == "csv":
        try:
            head = pd.read_csv(src.path, nrows=0, index_col=False, encoding="utf-8-sig")
        except Exception:  # the full read reports what is wrong, with the row
            return []
        return [str(c) for c in head.columns]
    import pyarrow.parquet as pq

    try:
        return [str(n) for n in pq.read_schema(src.path).names]
    except Exception as exc:
        msg = f"cannot read Parquet: {exc}"
        raise DataError("MALFORMED_PARQUET", msg, source=src.label) from None


def _with_symbol(bars: pd.DataFrame, src: SourceFile, symbol: str | None) -> pd.DataFrame:
    if "symbol" in bars.columns:
        if symbol is not None:
            msg = (
                f"the file has a symbol column, so --symbol {symbol!r} does not apply "
                "(it names the symbol of files without one)"
            )
            raise DataError("SYMBOL_CONFLICT", msg, source=src.label)
        return bars
    name = symbol if symbol is not None else src.path.stem
    return bars.assign(symbol=pd.Series(name, index=bars.index, dtype="str"))


def _csv_chunks(
    src: SourceFile, rename: dict[str, str] | None, timezone: str, chunk_rows: int
) -> Iterator[Chunk]:
    size = os.path.getsize(src.path)
    per_row = _bytes_per_row(src.path)
    row = 2  # the header is line 1; blank lines between bars are refused by the loader
    for bars in iter_ohlcv_csv(
        src.path,
        source=src.label,
        timezone=timezone,
        chunk_rows=chunk_rows,
        rename=rename,
        keep_extra=True,
    ):
        done = min(size, int((row - 2 + len(bars)) * per_row))
        yield Chunk(bars, row, done)
        row += len(bars)


def _bytes_per_row(path: Path) -> float:
    """Average bytes per line of the file's first 64 KiB (for a progress estimate)."""
    with path.open("rb") as fh:
        head = fh.read(1 << 16)
    return len(head) / max(1, head.count(b"\n"))


def _parquet_chunks(
    src: SourceFile, rename: dict[str, str] | None, timezone: str, chunk_rows: int
) -> Iterator[Chunk]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    size = os.path.getsize(src.path)
    try:
        pfile = pq.ParquetFile(src.path)
        total = max(1, pfile.metadata.num_rows)
        batches = pfile.iter_batches(batch_size=chunk_rows)
    except Exception as exc:
        msg = f"cannot read Parquet: {exc}"
        raise DataError("MALFORMED_PARQUET", msg, source=src.label) from None
    row = 1
    seen = False
    while True:
        try:
            batch = next(batches, None)
            raw = None if batch is None else pa.Table.from_batches([batch]).to_pandas()
        except Exception as exc:
            msg = f"cannot read Parquet: {exc}"
            raise DataError("MALFORMED_PARQUET", msg, source=src.label) from None
        if raw is None:
            break
        if rename:
            raw = raw.rename(columns=rename)
        seen = True
        bars = validate_ohlcv(raw, src.label, timezone=timezone, first_row=row, keep_extra=True)
        row += len(bars)
        yield Chunk(bars, row - len(bars), int(size * (row - 1) / total))
    if not seen:
        raise DataError("EMPTY", "no bars", source=src.label)


ProgressFn = Callable[[int, int], None]
