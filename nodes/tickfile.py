"""Tick files: one asset's event array (:mod:`nodes.ticks`) as an ``.npz``.

The file is what ``np.savez_compressed`` writes and ``np.load(path, allow_pickle=False)`` reads
— members ``data.npy`` (the :data:`~nodes.ticks.EVENT_DTYPE` array) and ``meta.npy`` (a 0-d
unicode array holding a JSON marker: ``{"kind": "ticks", "format": 1, "events", "start_ns",
"end_ns"}`` plus the hints that are known: ``symbol``, ``tick_size``, ``lot_size``) — but
written by :func:`dumps` with fixed zip timestamps, so the same events and hints always give the
same bytes (numpy's own writer stamps the wall clock). Reading checks the dtype field by field
and the event order; a file that is not a tick file says so with its name
(:class:`~nodes.errors.DataError`).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodes import ticks
from nodes.errors import DataError
from nodes.lazy import lazy_module
from nodes.ticks import (
    TickMeta,
    check_dtype,
    check_order,
    tick_array,
    tick_meta,
)

if TYPE_CHECKING:
    import numpy as np

    from nodes.ticks import TickArray
else:
    np = lazy_module("numpy", globals(), "np")

__all__ = ["FORMAT", "dumps", "load", "loads", "read_marker", "save"]

FORMAT = 1
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the zip format's earliest date: no wall clock in the bytes


def dumps(data: np.ndarray, meta: TickMeta | None = None) -> bytes:
    """The tick file of ``data`` (hints: ``meta``, else the array's own)."""
    check_dtype(data.dtype, "tick value")
    hints = meta if meta is not None else tick_meta(data)
    first = data["exch_ts"].min() if len(data) else None
    last = data["exch_ts"].max() if len(data) else None
    marker = {
        "kind": "ticks",
        "format": FORMAT,
        "events": len(data),
        "start_ns": None if first is None else int(first),
        "end_ns": None if last is None else int(last),
        **hints.to_json(),
    }
    members = {
        "data": np.ascontiguousarray(np.asarray(data), dtype=ticks.EVENT_DTYPE),
        "meta": np.array(json.dumps(marker, sort_keys=True)),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, array in members.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            member = io.BytesIO()
            np.lib.format.write_array(member, array, allow_pickle=False)
            zf.writestr(info, member.getvalue())
    return buffer.getvalue()


def save(data: np.ndarray, path: Path, meta: TickMeta | None = None) -> None:
    """Write :func:`dumps` of ``data`` to ``path``."""
    Path(path).write_bytes(dumps(data, meta))


def load(path: str | Path) -> TickArray:
    """The events in the tick file ``path``, with the hints it holds."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DataError("BAD_TICK_FILE", f"cannot read it: {exc}", source=str(p)) from None
    return loads(raw, name=str(p))


def loads(raw: bytes, *, name: str = "tick file") -> TickArray:
    """The events in tick-file bytes ``raw``; ``name`` is what errors call it."""
    members = _members(raw, name)
    marker = _marker(members, name)
    data = members["data"]
    if data.ndim != 1:
        raise DataError(
            "BAD_TICK_FILE", f"events must be one-dimensional, got {data.shape}", source=name
        )
    check_dtype(data.dtype, name)
    if marker.get("events") != len(data):
        raise DataError(
            "BAD_TICK_FILE",
            f"its marker says {marker.get('events')} events, it holds {len(data)}",
            source=name,
        )
    if data.dtype != ticks.EVENT_DTYPE:  # same fields, other offsets (packed): hftbacktest's layout
        data = data.astype(ticks.EVENT_DTYPE)
    check_order(data, name)
    return tick_array(
        data,
        symbol=marker.get("symbol"),
        tick_size=marker.get("tick_size"),
        lot_size=marker.get("lot_size"),
    )


def read_marker(path: str | Path) -> dict[str, Any]:
    """The marker of the tick file ``path`` (counts, time range, hints) without the events."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as npz:
            meta = npz["meta"] if "meta" in npz.files else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError("BAD_TICK_FILE", f"not a tick file ({exc})", source=str(p)) from None
    return _marker({} if meta is None else {"meta": meta}, str(p))


def _members(raw: bytes, name: str) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            missing = {"data", "meta"} - set(npz.files)
            if missing:
                raise DataError(
                    "BAD_TICK_FILE",
                    f"not a tick file: it lacks {sorted(missing)} (has {sorted(npz.files)})",
                    source=name,
                )
            return {key: npz[key] for key in ("data", "meta")}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        # np.load raises ValueError for object arrays it will not unpickle, OSError otherwise
        raise DataError("BAD_TICK_FILE", f"not a tick file ({exc})", source=name) from None


def _marker(members: dict[str, np.ndarray], name: str) -> dict[str, Any]:
    meta = members.get("meta")
    try:
        marker = json.loads(str(meta[()])) if meta is not None and meta.ndim == 0 else None
    except (ValueError, TypeError):
        marker = None
    if not isinstance(marker, dict) or marker.get("kind") != "ticks":
        raise DataError("BAD_TICK_FILE", "its 'meta' member is not a tick marker", source=name)
    if marker.get("format") != FORMAT:
        raise DataError(
            "BAD_TICK_FILE",
            f"tick file format {marker.get('format')!r}; this version reads format {FORMAT}",
            source=name,
        )
    return marker
