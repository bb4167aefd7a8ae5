"""A version's manifest: the files, their hashes and the schema; the version hash over them.

``version = sha256(canonical JSON of {"format", "schema", "files": sorted [path, sha256,
rows]})``: the same bars give the same Parquet bytes (see ``catalog.partitions``), so the same
data gives the same version. The rest of the manifest (symbols, time range, sources, who first
imported it) describes the version and is not hashed.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from catalog.model import SymbolInfo, VersionInfo, parse_time

__all__ = ["FORMAT", "build_manifest", "canonical_hash", "dumps", "version_info"]

FORMAT = 1


def dumps(obj: Any) -> bytes:
    """Stable JSON bytes (sorted keys, no spaces): what is hashed and what is stored."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def canonical_hash(schema: list[list[str]], files: list[dict[str, Any]]) -> str:
    """The version of a dataset with ``schema`` and ``files`` (each: path, sha256, rows)."""
    listed = sorted([f["path"], f["sha256"], int(f["rows"])] for f in files)
    body = {"format": FORMAT, "schema": schema, "files": listed}
    return hashlib.sha256(dumps(body)).hexdigest()


def build_manifest(
    schema: list[list[str]],
    files: list[dict[str, Any]],
    sources: list[dict[str, Any]],
    origin: dict[str, Any],
) -> dict[str, Any]:
    """The manifest of a new version. ``files``: path, sha256, rows, bytes, symbol, year,
    start, end (ISO) per Parquet file."""
    symbols: dict[str, dict[str, Any]] = {}
    for f in sorted(files, key=lambda f: (f["symbol"], f["year"])):
        entry = symbols.setdefault(f["symbol"], {"symbol": f["symbol"], "rows": 0})
        entry["rows"] += f["rows"]
        entry.setdefault("start", f["start"])
        entry["end"] = f["end"]
    starts = [s["start"] for s in symbols.values()]
    ends = [s["end"] for s in symbols.values()]
    return {
        "format": FORMAT,
        "version": canonical_hash(schema, files),
        "schema": schema,
        "columns": [name for name, _ in schema if name not in ("ts", "symbol")],
        "files": sorted(files, key=lambda f: f["path"]),
        "rows": sum(f["rows"] for f in files),
        "bytes": sum(f["bytes"] for f in files),
        "symbols": list(symbols.values()),
        "start": min(starts, key=pd.Timestamp) if starts else None,
        "end": max(ends, key=pd.Timestamp) if ends else None,
        "sources": sources,
        "origin": origin,
    }


def version_info(manifest: dict[str, Any], entry: dict[str, Any] | None = None) -> VersionInfo:
    """The VersionInfo of a manifest, as listed by one name (``entry``: that name's list entry
    with namespace, name, created_at, message), or as first imported when ``entry`` is None."""
    who = {**manifest.get("origin", {}), **(entry or {})}
    return VersionInfo(
        version=manifest["version"],
        name=str(who.get("name", "")),
        namespace=str(who.get("namespace", "")),
        created_at=_time(who.get("created_at")),
        message=str(who.get("message", "")),
        rows=int(manifest["rows"]),
        columns=list(manifest["columns"]),
        symbols=[
            SymbolInfo(s["symbol"], int(s["rows"]), parse_time(s["start"]), parse_time(s["end"]))
            for s in manifest["symbols"]
        ],
        start=parse_time(manifest["start"]) if manifest.get("start") else None,
        end=parse_time(manifest["end"]) if manifest.get("end") else None,
        sources=list(manifest.get("sources", [])),
        bytes=int(manifest["bytes"]),
        kind=str(manifest.get("kind", "ohlcv")),
    )


def _time(text: Any) -> datetime:
    return parse_time(str(text)) if text else datetime.fromtimestamp(0, UTC)
