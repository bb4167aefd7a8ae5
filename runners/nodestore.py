"""Custom-node manifests on disk, content-addressed by code hash.

The registry (the API's database) is where users' nodes and their versions live; this store is
how a flow-run process — possibly on another machine that shares the data dir — finds the code a
compiled ``NodeIR.code_hash`` pins, without talking to the database. Files are
``<root>/<code_hash>.json``, written atomically and never changed: a hash names one manifest's
code for ever (the manifest's other fields — ports, params — are the same for every version that
shares the code only if the code is the same, so the latest writer of a hash wins harmlessly).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from pydantic import ValidationError

from runners.custom import CustomNodeError, CustomNodeManifest, ManifestCatalog

__all__ = ["ManifestStore", "StoreCatalog"]

_HASH = re.compile(r"^[0-9a-f]{64}$")


class ManifestStore:
    """``<root>/<code_hash>.json`` files; ``root`` is ``CoreSettings.root / "custom-nodes"``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, code_hash: str) -> Path:
        """Where the manifest with this hash is (or would be) stored."""
        if not _HASH.match(code_hash):
            raise CustomNodeError(f"not a code hash: {code_hash!r}")
        return self.root / f"{code_hash}.json"

    def put(self, manifest: CustomNodeManifest) -> str:
        """Store ``manifest`` (idempotent); returns its code hash."""
        code_hash = manifest.code_hash()
        target = self.path(code_hash)
        self.root.mkdir(parents=True, exist_ok=True)
        payload = manifest.model_dump_json()
        if target.exists() and target.read_text() == payload:
            return code_hash
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.root)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(payload)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return code_hash

    def has(self, code_hash: str) -> bool:
        """True when a manifest with this hash is stored."""
        return bool(_HASH.match(code_hash)) and self.path(code_hash).is_file()

    def get(self, code_hash: str | None, node_id: str = "?") -> CustomNodeManifest:
        """The stored manifest; a :class:`CustomNodeError` naming the node if it is missing,
        unreadable, or its content does not hash to its name (a tampered file)."""
        if code_hash is None or not self.has(code_hash):
            raise CustomNodeError(
                f"node {node_id!r}: no custom node code with hash {code_hash} in {self.root}"
            )
        try:
            manifest = CustomNodeManifest.model_validate(
                json.loads(self.path(code_hash).read_text())
            )
        except (OSError, ValueError, ValidationError) as exc:
            raise CustomNodeError(
                f"node {node_id!r}: stored manifest {code_hash[:12]} is unreadable: {exc}"
            ) from exc
        if manifest.code_hash() != code_hash:
            raise CustomNodeError(
                f"node {node_id!r}: stored manifest {code_hash[:12]} does not match its hash"
            )
        return manifest

    def catalog(self) -> StoreCatalog:
        """A :class:`ManifestCatalog` that reads from this store on demand."""
        return StoreCatalog(self)


class StoreCatalog(ManifestCatalog):
    """A :class:`ManifestCatalog` backed by a :class:`ManifestStore` (manifests added in memory
    take precedence; the rest are read from disk when a runner asks)."""

    def __init__(self, store: ManifestStore) -> None:
        super().__init__()
        self.store = store

    def get(self, code_hash: str | None, node_id: str) -> CustomNodeManifest:
        """In memory first, then the store."""
        try:
            return super().get(code_hash, node_id)
        except CustomNodeError:
            manifest = self.store.get(code_hash, node_id)
            self.add(manifest)
            return manifest
