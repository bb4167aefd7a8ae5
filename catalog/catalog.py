"""The catalog: named datasets with immutable, content-addressed versions on a local directory
or S3 (see ``catalog/README.md`` for the layout)."""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from catalog.errors import CatalogError
from catalog.importer import import_files, import_frame, name_path, read_name
from catalog.manifest import canonical_hash, version_info
from catalog.model import HEX_RE, VersionInfo, check_name
from catalog.reader import read_version
from catalog.storage import Storage, open_storage
from catalog.ticks.store import import_ticks, read_ticks

if TYPE_CHECKING:
    import numpy as np

    from nodes.ticks import TickArray

__all__ = ["Catalog"]

MIN_PREFIX = 6


class Catalog:
    """Datasets by ``namespace/name``, each a list of immutable versions (oldest first).

    Open one with :meth:`open`. Manifests are cached in memory: a version never changes.
    """

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.url = storage.url
        self._manifests: dict[str, dict[str, Any]] = {}

    @classmethod
    def open(
        cls,
        url: str | Path,
        *,
        endpoint_url: str | None = None,
        key: str | None = None,
        secret: str | None = None,
        region: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> Catalog:
        """The catalog at a directory / ``file://`` URL (created if missing) or at
        ``s3://bucket/prefix`` (an S3-compatible server at ``endpoint_url``; ``options`` go
        to ``s3fs.S3FileSystem``, e.g. retry settings)."""
        storage = open_storage(
            url, endpoint_url=endpoint_url, key=key, secret=secret, region=region, options=options
        )
        return cls(storage)

    def __repr__(self) -> str:
        return f"Catalog({self.url!r})"

    # -- writing --------------------------------------------------------------------------

    def import_files(
        self,
        namespace: str,
        name: str,
        sources: Sequence[str | Path],
        *,
        symbol_col: str | None = None,
        symbol: str | None = None,
        timezone: str = "UTC",
        message: str = "",
        progress: Callable[[int, int], None] | None = None,
        label: str | None = None,
    ) -> VersionInfo:
        """Validate and import CSV / Parquet files, folders and http(s) URLs as the next
        version of ``namespace/name``; the same data as an existing version gives that version
        (and no new object). Raises DataError for bad data, CatalogError for storage."""
        if isinstance(sources, str | Path):
            sources = [sources]
        done = import_files(
            self.storage,
            namespace,
            name,
            sources,
            symbol_col=symbol_col,
            symbol=symbol,
            timezone=timezone,
            message=message,
            progress=progress,
            label=label,
        )
        return self._done(done)

    def import_frame(
        self, namespace: str, name: str, frame: pd.DataFrame, *, source: str, message: str = ""
    ) -> VersionInfo:
        """Import an in-memory OHLCV frame (the web upload) as the next version; ``source``
        names it in the report (and, without a symbol column, its stem is the symbol)."""
        done = import_frame(self.storage, namespace, name, frame, source=source, message=message)
        return self._done(done)

    def _done(self, done: dict[str, Any]) -> VersionInfo:
        manifest = done["manifest"]
        self._manifests[manifest["version"]] = manifest
        return version_info(manifest, done["entry"])

    # -- looking up -----------------------------------------------------------------------

    def names(self, namespace: str) -> list[str]:
        """The dataset names in ``namespace``, sorted."""
        check_name("namespace", namespace)
        found = self.storage.list_names(f"names/{namespace}")
        return sorted(n.removesuffix(".json") for n in found if n.endswith(".json"))

    def namespaces(self) -> list[str]:
        """The namespaces that hold at least one name."""
        return self.storage.list_names("names")

    def versions(self, namespace: str, name: str) -> list[VersionInfo]:
        """The versions of ``namespace/name``, oldest first (a version imported again after
        another appears again). CatalogError for an unknown name."""
        listing = self._listing(namespace, name)
        out = []
        for entry in listing["versions"]:
            who = {"namespace": namespace, "name": name, **entry}
            out.append(version_info(self._manifest(entry["version"]), who))
        return out

    def resolve(self, namespace: str, name: str, version: str | None = None) -> VersionInfo:
        """The version of ``namespace/name``: the latest when ``version`` is None, else the one
        whose hash is or starts with ``version`` (at least 6 hex digits, unique)."""
        listing = self._listing(namespace, name)
        entries = listing["versions"]
        if version is None:
            entry = entries[-1]
        else:
            text = version.strip().lower()
            if len(text) < MIN_PREFIX or not HEX_RE.fullmatch(text):
                msg = f"version {version!r}: give at least {MIN_PREFIX} hex digits of the hash"
                raise CatalogError(msg)
            matches = {e["version"] for e in entries if e["version"].startswith(text)}
            if len(matches) != 1:
                shown = ", ".join(e["version"][:12] for e in entries)
                what = "matches several" if matches else "is not one of the"
                msg = f"version {version!r} {what} versions of {namespace}/{name} ({shown})"
                raise CatalogError(msg)
            found = matches.pop()
            entry = [e for e in entries if e["version"] == found][-1]
        who = {"namespace": namespace, "name": name, **entry}
        return version_info(self._manifest(entry["version"]), who)

    def info(self, version: str) -> VersionInfo:
        """A version by its full hash (name and message of the import that first wrote it)."""
        return version_info(self._manifest(version))

    def report(self, version: str) -> dict[str, Any]:
        """The validation report stored beside the version."""
        self._manifest(version)
        data = self.storage.read_bytes(f"objects/{version}/report.json")
        report: dict[str, Any] = json.loads(data)
        return report

    def manifest(self, version: str) -> dict[str, Any]:
        """The version's manifest (files with hashes, rows and time ranges; schema)."""
        return self._manifest(version)

    # -- reading --------------------------------------------------------------------------

    def read(
        self,
        version: str,
        *,
        symbols: Sequence[str] | None = None,
        columns: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pd.DataFrame:
        """The canonical long frame of a version: UTC ``ts`` index, ``symbol``, the value
        columns; rows by (ts, symbol). Only the partitions of ``symbols`` overlapping
        ``[start, end]`` (both inclusive) are opened and only ``columns`` (plus ts and symbol)
        read. CatalogError names the known symbols / columns for unknown ones."""
        manifest = self._manifest(version)
        if manifest.get("kind", "ohlcv") != "ohlcv":
            kind = manifest["kind"]
            msg = f"version {version[:12]} is a {kind} dataset, not bars: read it with read_ticks"
            raise CatalogError(msg)
        return read_version(
            self.storage, manifest, symbols=symbols, columns=columns, start=start, end=end
        )

    def import_ticks(
        self,
        namespace: str,
        name: str,
        events: Mapping[str, np.ndarray],
        *,
        tick_size: float | Mapping[str, float] | None = None,
        lot_size: float | Mapping[str, float] | None = None,
        sources: Sequence[Mapping[str, Any]] = (),
        message: str = "",
    ) -> VersionInfo:
        """Store order-book events (symbol -> :mod:`nodes.ticks` array) as the next version of
        ``namespace/name`` (:mod:`catalog.ticks.store`); the same events give the same
        version."""
        done = import_ticks(
            self.storage,
            namespace,
            name,
            events,
            tick_size=tick_size,
            lot_size=lot_size,
            sources=sources,
            message=message,
        )
        return self._done(done)

    def read_ticks(
        self,
        version: str,
        *,
        symbols: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> dict[str, TickArray]:
        """The events per symbol of a tick version (:func:`catalog.ticks.store.read_ticks`)."""
        return read_ticks(
            self.storage, self._manifest(version), symbols=symbols, start=start, end=end
        )

    def verify(self, version: str) -> None:
        """Re-hash every file of the version against its manifest, and the manifest against
        the version; CatalogError naming the first file that differs."""
        manifest = self._manifest(version, cached=False)
        for f in manifest["files"]:
            rel = f"objects/{version}/{f['path']}"
            digest = hashlib.sha256(self.storage.read_bytes(rel)).hexdigest()
            if digest != f["sha256"]:
                msg = f"{rel} in {self.url} does not match the manifest (sha256 {digest[:12]})"
                raise CatalogError(msg)
        if canonical_hash(manifest["schema"], manifest["files"]) != version:
            raise CatalogError(f"objects/{version}/manifest.json does not hash to its version")

    # -- helpers --------------------------------------------------------------------------

    def _listing(self, namespace: str, name: str) -> dict[str, Any]:
        check_name("namespace", namespace)
        check_name("dataset name", name)
        listing = read_name(self.storage, namespace, name)
        if listing is None or not listing.get("versions"):
            known = self.names(namespace)
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            shown = ", ".join(known[:20]) or "none"
            msg = f"no dataset {namespace}/{name} in {self.url}{hint} (datasets: {shown})"
            raise CatalogError(msg)
        return listing

    def _manifest(self, version: str, *, cached: bool = True) -> dict[str, Any]:
        if cached and version in self._manifests:
            return self._manifests[version]
        if len(version) != 64 or not HEX_RE.fullmatch(version):
            raise CatalogError(f"{version!r} is not a version hash (64 hex digits)")
        rel = f"objects/{version}/manifest.json"
        if not self.storage.exists(rel):
            raise CatalogError(f"no version {version[:12]} in the catalog at {self.url}")
        try:
            manifest: dict[str, Any] = json.loads(self.storage.read_bytes(rel))
        except ValueError as exc:
            raise CatalogError(f"{rel} in {self.url} is not valid JSON") from exc
        self._manifests[version] = manifest
        return manifest

    def delete_name(self, namespace: str, name: str) -> None:
        """Forget a name: it no longer lists or resolves. Its versions stay (immutable: run
        records and IRs that name them still read them); importing under the name again starts
        a new list. CatalogError for an unknown name."""
        self._listing(namespace, name)
        self.storage.remove_quietly(name_path(namespace, name))
        if self.storage.exists(name_path(namespace, name)):
            raise CatalogError(f"could not remove {self.path_of(namespace, name)}")

    def path_of(self, namespace: str, name: str) -> str:
        """Where a name's list lives (for messages)."""
        return self.storage.path(name_path(namespace, name))
