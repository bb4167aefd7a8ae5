"""Tick datasets in the catalog: versions whose data are tick files (:mod:`nodes.tickfile`).

Layout, beside the OHLCV versions (same ``objects/`` and ``names/``)::

    objects/<version>/data/symbol=<SYM>/<YYYY-MM-DD>.npz   one asset's events of one UTC day
    objects/<version>/report.json, manifest.json           manifest written last

A day holds the rows whose replay time (``exch_ts`` for exchange rows, ``local_ts`` for
local-only rows) falls on it, so the day files of a symbol, in order, are its events. Tick files
are byte-deterministic, so the same events and hints give the same version. The manifest says
``"kind": "ticks"``, and per symbol its events, trades, time range, tick and lot size.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from catalog.errors import CatalogError
from catalog.importer import _add_to_name, _undo
from catalog.manifest import build_manifest, dumps
from catalog.model import check_name, encode_symbol, iso
from catalog.storage import Storage
from nodes import tickfile, ticks
from nodes.errors import DataError
from nodes.lazy import lazy_module
from nodes.tickevents import EventBuilder

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from nodes.ticks import TickArray
else:
    np = lazy_module("numpy", globals(), "np")
    pd = lazy_module("pandas", globals(), "pd")

__all__ = ["KIND", "SCHEMA", "import_ticks", "read_ticks"]

KIND = "ticks"
SCHEMA = [["kind", KIND], *[[name, code] for name, code in ticks.EVENT_FIELDS]]
_DAY_NS = 86_400 * 10**9


def _replay_time(data: np.ndarray) -> np.ndarray:
    exch = (data["ev"] & np.uint64(ticks.EXCH_EVENT)) != 0
    return np.where(exch, data["exch_ts"], data["local_ts"])


def _hint(
    value: float | Mapping[str, float] | None, symbol: str, own: float | None
) -> float | None:
    if isinstance(value, Mapping):
        return value.get(symbol, own)
    return value if value is not None else own


def import_ticks(
    storage: Storage,
    namespace: str,
    name: str,
    events: Mapping[str, np.ndarray],
    *,
    tick_size: float | Mapping[str, float] | None = None,
    lot_size: float | Mapping[str, float] | None = None,
    sources: Sequence[Mapping[str, Any]] = (),
    message: str = "",
) -> dict[str, Any]:
    """Store ``events`` (symbol -> event array) as a version of ``namespace/name``; the sizes
    are per dataset or per symbol (default: the arrays' own hints)."""
    check_name("namespace", namespace)
    check_name("dataset name", name)
    if not events:
        raise DataError("NO_EVENTS", "nothing to import: no symbols")
    parts: list[tuple[str, bytes, dict[str, Any]]] = []
    per_symbol: dict[str, dict[str, Any]] = {}
    for symbol in sorted(events):
        data = events[symbol]
        where = f"events of {symbol}"
        if not isinstance(data, np.ndarray) or data.ndim != 1 or len(data) == 0:
            raise DataError("NO_EVENTS", "expected a non-empty 1-d event array", source=where)
        ticks.check_dtype(data.dtype, where)
        ticks.check_order(data, where)
        own = ticks.tick_meta(data)
        meta = ticks.TickMeta(
            symbol, _hint(tick_size, symbol, own.tick_size), _hint(lot_size, symbol, own.lot_size)
        )
        for label, size in (("tick_size", meta.tick_size), ("lot_size", meta.lot_size)):
            if size is not None and not size > 0:
                raise DataError("BAD_SIZE", f"{label} must be > 0, got {size}", source=where)
        folder = f"data/symbol={encode_symbol(symbol)}"
        days = _replay_time(data) // _DAY_NS
        cuts = np.flatnonzero(np.diff(days)) + 1
        for chunk in np.split(np.asarray(data), cuts):
            day = pd.Timestamp(int(_replay_time(chunk)[0] // _DAY_NS * _DAY_NS), tz="UTC")
            raw = tickfile.dumps(chunk, meta)
            entry = {
                "path": f"{folder}/{day.strftime('%Y-%m-%d')}.npz",
                "sha256": hashlib.sha256(raw).hexdigest(),
                "rows": len(chunk),
                "bytes": len(raw),
                "symbol": symbol,
                "year": day.strftime("%Y-%m-%d"),  # build_manifest orders a symbol's files by it
                "start": iso(int(chunk["exch_ts"].min())),
                "end": iso(int(chunk["exch_ts"].max())),
                "trades": int(
                    np.count_nonzero((chunk["ev"] & ticks.KIND_MASK) == ticks.TRADE_EVENT)
                ),
            }
            parts.append((entry["path"], raw, entry))
        per_symbol[symbol] = meta.to_json()
    return _publish(storage, namespace, name, parts, per_symbol, list(sources), message)


def _publish(
    storage: Storage,
    namespace: str,
    name: str,
    parts: list[tuple[str, bytes, dict[str, Any]]],
    per_symbol: dict[str, dict[str, Any]],
    sources: list[Mapping[str, Any]],
    message: str,
) -> dict[str, Any]:
    now = datetime.now(UTC)
    origin = {
        "namespace": namespace,
        "name": name,
        "created_at": now.isoformat(),
        "message": message,
    }
    files = [entry for _, _, entry in parts]
    manifest = build_manifest(SCHEMA, files, [dict(s) for s in sources], origin)
    manifest["kind"] = KIND
    manifest["columns"] = []
    for s in manifest["symbols"]:
        s.update(per_symbol[s["symbol"]])
        s["trades"] = sum(f["trades"] for f in files if f["symbol"] == s["symbol"])
    obj = f"objects/{manifest['version']}"
    staging = f"staging/{uuid.uuid4().hex}"
    created = wrote = False
    try:
        if storage.exists(f"{obj}/manifest.json"):
            manifest = json.loads(storage.read_bytes(f"{obj}/manifest.json"))
        else:
            created = True
            for path, raw, _ in parts:
                storage.write_bytes(f"{staging}/{path}", raw)
            storage.remove_tree(obj)
            storage.move_tree(f"{staging}/data", f"{obj}/data")
            report = {
                "version": manifest["version"],
                "kind": KIND,
                "checks": ["event dtype field by field", "replay order (exchange and local)"],
                "sources": manifest["sources"],
                "events": manifest["rows"],
                "symbols": manifest["symbols"],
            }
            storage.write_bytes(f"{obj}/report.json", dumps(report))
            storage.write_bytes(f"{obj}/manifest.json", dumps(manifest))
            wrote = True
        entry = _add_to_name(storage, namespace, name, manifest["version"], now, message)
    except BaseException:
        if created:
            _undo(storage, obj, wrote)
        raise
    finally:
        storage.remove_quietly(staging)
    return {"manifest": manifest, "entry": entry}


def read_ticks(
    storage: Storage,
    manifest: Mapping[str, Any],
    *,
    symbols: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, TickArray]:
    """Events per symbol of a tick version, with their hints. ``start`` / ``end`` (inclusive)
    keep the rows whose replay time lies between; with ``start``, the book as it stood at
    ``start`` (replayed from the symbol's first file) opens the result as a snapshot, so a
    backtest from ``start`` sees a full book."""
    if manifest.get("kind") != KIND:
        raise CatalogError(
            f"version {manifest['version'][:12]} is not a tick dataset (it holds bars)"
        )
    known = {s["symbol"]: s for s in manifest["symbols"]}
    wanted = list(symbols) if symbols is not None else sorted(known)
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise CatalogError(
            f"version {manifest['version'][:12]} has no symbol {unknown[0]!r} "
            f"(symbols: {', '.join(sorted(known))})"
        )
    lo, hi = _ns(start), _ns(end)
    out: dict[str, TickArray] = {}
    for symbol in wanted:
        paths = sorted(f["path"] for f in manifest["files"] if f["symbol"] == symbol)
        if hi is not None:
            paths = [p for p in paths if pd.Timestamp(p[-14:-4], tz="UTC").value <= hi]
        chunks = [
            np.asarray(
                tickfile.loads(storage.read_bytes(f"objects/{manifest['version']}/{p}"), name=p)
            )
            for p in paths
        ]
        data = np.concatenate(chunks) if chunks else np.zeros(0, ticks.EVENT_DTYPE)
        key = _replay_time(data)
        keep = np.ones(len(data), bool)
        if hi is not None:
            keep &= key <= hi
        if lo is not None:
            keep &= key >= lo
            before = data[key < lo]
            opening = _book_at(before, lo) if len(before) else before[:0]
            data = np.concatenate([opening, data[keep]])
        else:
            data = data[keep]
        hints = known[symbol]
        out[symbol] = ticks.tick_array(
            data, symbol=symbol, tick_size=hints.get("tick_size"), lot_size=hints.get("lot_size")
        )
    return out


def _ns(when: datetime | None) -> int | None:
    if when is None:
        return None
    ts = pd.Timestamp(when)
    return int((ts.tz_convert("UTC") if ts.tzinfo else ts.tz_localize("UTC")).value)


def _book_at(before: np.ndarray, at: int) -> np.ndarray:
    """The exchange book after ``before`` as a snapshot at time ``at`` (a clear empties a
    side; a level's last quantity wins; 0 removes it)."""
    rows = before[(before["ev"] & np.uint64(ticks.EXCH_EVENT)) != 0]
    kind = rows["ev"] & np.uint64(ticks.KIND_MASK)
    sides = []
    for flag in (ticks.BUY_EVENT, ticks.SELL_EVENT):
        on_side = (rows["ev"] & np.uint64(flag)) != 0
        clears = np.flatnonzero(on_side & (kind == ticks.DEPTH_CLEAR_EVENT))
        first = clears[-1] + 1 if len(clears) else 0
        depth = on_side & ((kind == ticks.DEPTH_EVENT) | (kind == ticks.DEPTH_SNAPSHOT_EVENT))
        depth[:first] = False
        levels = pd.DataFrame({"px": rows["px"][depth], "qty": rows["qty"][depth]})
        levels = levels.drop_duplicates("px", keep="last")
        levels = levels[levels["qty"] > 0].sort_values("px", ascending=flag != ticks.BUY_EVENT)
        sides.append(list(zip(levels["px"].tolist(), levels["qty"].tolist(), strict=True)))
    builder = EventBuilder()
    builder.snapshot(at, at, sides[0], sides[1])
    return builder.build() if len(builder) else np.zeros(0, ticks.EVENT_DTYPE)
