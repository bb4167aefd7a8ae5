"""Imports: validate every file, partition the bars, store a new version atomically.

The order of writes is what makes a version appear whole or not at all:

1. every Parquet file into ``staging/<random>/data/...``;
2. the version hash from their sha256s (``catalog.manifest``); if ``objects/<v>/manifest.json``
   exists the data is already there (dedup) and nothing is moved;
3. ``staging/<random>/data`` moved to ``objects/<v>/data``, then ``report.json``, then
   ``manifest.json`` LAST: a version exists only when its manifest does;
4. the name's list (``names/<ns>/<name>.json``) rewritten whole (local: temp file + replace;
   S3: one PUT).

A failure anywhere removes what this import created (its staging folder, a version without its
name entry) where the storage still answers, and raises: DataError for bad data (nothing is
written before all files passed), CatalogError for storage.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from catalog.checks import CHECKS, ExtraColumns, FileStats, OrderTracker, check_symbols
from catalog.errors import CatalogError
from catalog.manifest import build_manifest, dumps
from catalog.model import check_name, iso
from catalog.partitions import GapStats, Spool, parquet_bytes, schema_columns, sha256_hex
from catalog.sources import expand_sources, read_chunks
from catalog.storage import Storage
from nodes.data import check_timezone, file_sha256, validate_ohlcv

__all__ = ["import_files", "import_frame", "name_path"]

Progress = Callable[[int, int], None]


def name_path(namespace: str, name: str) -> str:
    """Where the list of a name's versions is stored."""
    return f"names/{namespace}/{name}.json"


class _Collector:
    """The checks across chunks and files, and the spool the bars go to."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.tracker = OrderTracker()
        self.extras = ExtraColumns()
        self.spool: Spool | None = None

    def add(self, bars: pd.DataFrame, source: str, first_row: int, stats: FileStats) -> None:
        symbols = check_symbols(bars, source, first_row)
        bars = self.extras.normalize(bars, source, first_row)
        self.tracker.check(bars, source, first_row)
        stats.add(bars, symbols)
        if self.spool is None:
            self.spool = Spool(self.folder, schema_columns(self.extras.types or {}))
        self.spool.add(bars)


def import_files(
    storage: Storage,
    namespace: str,
    name: str,
    sources: Sequence[str | Path],
    *,
    symbol_col: str | None = None,
    symbol: str | None = None,
    timezone: str = "UTC",
    message: str = "",
    progress: Progress | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """Import files, folders and URLs as a new version of ``namespace/name``; returns the
    manifest and the name's list entry (``{"manifest", "entry"}``). ``label`` names a single
    file in messages and the report (an upload's name as the user gave it, not the server's
    spool path)."""
    check_name("namespace", namespace)
    check_name("dataset name", name)
    check_timezone(timezone)
    with tempfile.TemporaryDirectory(prefix="af-catalog-") as tmp:
        downloads = Path(tmp) / "download"
        downloads.mkdir()
        files = expand_sources(sources, downloads)
        if label is not None:
            if len(files) != 1:
                raise CatalogError("a label names one file: give exactly one file to import")
            files = [replace(files[0], label=label)]
        sizes = [os.path.getsize(f.path) for f in files]
        total, done = sum(sizes), 0
        collector = _Collector(Path(tmp))
        reported: list[dict[str, Any]] = []
        for src, size in zip(files, sizes, strict=True):
            stats = FileStats(src.label)
            chunks = read_chunks(src, symbol_col=symbol_col, symbol=symbol, timezone=timezone)
            for chunk in chunks:
                collector.add(chunk.bars, src.label, chunk.first_row, stats)
                if progress is not None:
                    progress(done + chunk.bytes_done, total)
            done += size
            if progress is not None:
                progress(done, total)
            reported.append(stats.to_json(file_sha256(src.path), size))
        return _publish(storage, namespace, name, collector, reported, message, timezone)


def import_frame(
    storage: Storage, namespace: str, name: str, frame: pd.DataFrame, *, source: str, message: str
) -> dict[str, Any]:
    """Import one in-memory frame (the web upload) as a new version; it is validated again
    (the catalog's rule: every import) and labelled ``source`` in the report."""
    check_name("namespace", namespace)
    check_name("dataset name", name)
    bars = validate_ohlcv(frame, source, keep_extra=True)
    if "symbol" not in bars.columns:
        bars = bars.assign(symbol=pd.Series(Path(source).stem, index=bars.index, dtype="str"))
    with tempfile.TemporaryDirectory(prefix="af-catalog-") as tmp:
        collector = _Collector(Path(tmp))
        stats = FileStats(source)
        collector.add(bars, source, 1, stats)
        digest = hashlib.sha256(pd.util.hash_pandas_object(bars, index=True).to_numpy().tobytes())
        reported = [stats.to_json(digest.hexdigest(), 0)]
        return _publish(storage, namespace, name, collector, reported, message, "UTC")


def _publish(
    storage: Storage,
    namespace: str,
    name: str,
    collector: _Collector,
    reported: list[dict[str, Any]],
    message: str,
    timezone: str,
) -> dict[str, Any]:
    spool = collector.spool
    if spool is None:
        raise CatalogError("nothing to import: the files hold no bars")
    staging = f"staging/{uuid.uuid4().hex}"
    obj: str | None = None
    created = wrote_manifest = False
    try:
        files, gaps = _write_partitions(storage, staging, spool)
        now = datetime.now(UTC)
        origin = {"namespace": namespace, "name": name, "created_at": now.isoformat()}
        origin["message"] = message
        schema = [[n, t] for n, t in schema_columns(collector.extras.types or {})]
        sources = [{"file": r["file"], "sha256": r["sha256"], "rows": r["rows"]} for r in reported]
        manifest = build_manifest(schema, files, sources, origin)
        obj = f"objects/{manifest['version']}"
        if storage.exists(f"{obj}/manifest.json"):
            manifest = json.loads(storage.read_bytes(f"{obj}/manifest.json"))
        else:
            created = True
            storage.remove_tree(obj)  # what a failed import of the same data left
            storage.move_tree(f"{staging}/data", f"{obj}/data")
            report = _report(manifest, reported, gaps, timezone)
            storage.write_bytes(f"{obj}/report.json", dumps(report))
            storage.write_bytes(f"{obj}/manifest.json", dumps(manifest))
            wrote_manifest = True
        entry = _add_to_name(storage, namespace, name, manifest["version"], now, message)
    except BaseException:
        if created and obj is not None:
            _undo(storage, obj, wrote_manifest)
        raise
    finally:
        storage.remove_quietly(staging)
    return {"manifest": manifest, "entry": entry}


def _undo(storage: Storage, obj: str, wrote_manifest: bool) -> None:
    """Remove the version folder this import was creating, unless another import of the same
    data published it meanwhile (its manifest is there and this import did not write it)."""
    try:
        published = not wrote_manifest and storage.exists(f"{obj}/manifest.json")
    except CatalogError:
        published = False  # the storage does not answer: try the clean-up anyway
    if not published:
        storage.remove_quietly(f"{obj}/manifest.json")
        storage.remove_quietly(obj)


def _write_partitions(
    storage: Storage, staging: str, spool: Spool
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    files: list[dict[str, Any]] = []
    gaps = GapStats()
    for part in spool.partitions():
        data = parquet_bytes(part.table)
        ts = part.table.column("ts").to_numpy().view("int64")
        storage.write_bytes(f"{staging}/{part.path}", data)
        files.append(
            {
                "path": part.path,
                "sha256": sha256_hex(data),
                "rows": part.table.num_rows,
                "bytes": len(data),
                "symbol": part.symbol,
                "year": part.year,
                "start": iso(int(ts[0])),
                "end": iso(int(ts[-1])),
            }
        )
        gaps.add(part.symbol, ts)
    return files, gaps.finish()


def _report(
    manifest: dict[str, Any],
    reported: list[dict[str, Any]],
    gaps: dict[str, Any],
    timezone: str,
) -> dict[str, Any]:
    return {
        "version": manifest["version"],
        "checks": CHECKS,
        "timezone": timezone,
        "files": reported,
        "rows": manifest["rows"],
        "symbols": len(manifest["symbols"]),
        "columns": manifest["columns"],
        "gaps": gaps,
    }


def _add_to_name(
    storage: Storage, namespace: str, name: str, version: str, when: datetime, message: str
) -> dict[str, Any]:
    """Append ``version`` to the name's list unless it is already the latest; the entry."""
    path = name_path(namespace, name)
    listing = read_name(storage, namespace, name)
    if listing is None:
        listing = {"namespace": namespace, "name": name, "versions": []}
    versions = listing["versions"]
    if versions and versions[-1]["version"] == version:
        return {"namespace": namespace, "name": name, **versions[-1]}
    entry = {"version": version, "created_at": when.isoformat(), "message": message}
    versions.append(entry)
    storage.write_bytes(path, dumps(listing))
    return {"namespace": namespace, "name": name, **entry}


def read_name(storage: Storage, namespace: str, name: str) -> dict[str, Any] | None:
    """The name's list (None when the name has no versions)."""
    path = name_path(namespace, name)
    if not storage.exists(path):
        return None
    try:
        listing: dict[str, Any] = json.loads(storage.read_bytes(path))
    except ValueError as exc:
        raise CatalogError(f"{path} in the catalog at {storage.url} is not valid JSON") from exc
    return listing
