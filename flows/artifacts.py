"""The content-addressed artifact store: node outputs by key, written once, read many times.

A node's key is the sha256 of what determines its outputs: node type and version, canonical
params JSON, the keys of its inputs (upstream key + port + column), the code hash of a user node,
the node's fingerprint of what it reads from outside (a data file's bytes) and the fingerprint of
the code that computes it on this machine (``runners.registry.code_fingerprint``: a built-in's
module and the project modules it imports, or a custom node's code hash, plus the runner's own
code). Every key of a pipeline is computable before anything runs; it is computed where the flow
runs, so it describes the code that will run. A key whose directory holds a manifest is a cache
hit.

Layout: ``<root>/<key[:2]>/<key>/<port>.<parquet|json|pkl>`` plus ``_manifest.json``, written
to a temporary directory and renamed into place (atomic on one filesystem). With an fsspec URL
(``s3://bucket/prefix``) the files are uploaded with the manifest last, and read through a local
cache directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsl.ir import NodeIR, PipelineIR
from nodes.errors import AlphaForgeError

__all__ = [
    "ArtifactStore",
    "KeyPlan",
    "StoreError",
    "compute_keys",
    "node_key",
    "warm_builtin_code_fingerprints",
]

# 2: the code fingerprint joined the key (every key of schema 1 is stale by construction).
KEY_SCHEMA = 2
MANIFEST = "_manifest.json"


class StoreError(AlphaForgeError):
    """The artifact store cannot be read or written."""

    code = "AF710"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def node_key(
    node: NodeIR,
    input_keys: Mapping[str, list[list[Any]]],
    fingerprint: str | None,
    code_fingerprint: str | None,
) -> str:
    """The artifact key of ``node`` given its inputs' keys (port -> [[key, port, column], ...]),
    its data fingerprint and the fingerprint of its code."""
    payload = {
        "schema": KEY_SCHEMA,
        "type": node.type,
        "version": node.version,
        "runtime": node.runtime,
        "params": node.params,
        "inputs": {port: input_keys[port] for port in sorted(input_keys)},
        "code_hash": node.code_hash,
        "fingerprint": fingerprint,
        "code": code_fingerprint,
    }
    return hashlib.sha256(_canonical(payload).encode()).hexdigest()


@dataclass
class KeyPlan:
    """Every node's key, computed before the run.

    ``cacheable`` is False for a node whose fingerprint or code fingerprint could not be taken
    (e.g. its data file is missing, its type is unknown here: the node will fail when it runs and
    say why) and for everything downstream of it; such nodes get a run-unique key and are never
    read from the cache. ``code_fingerprints`` holds each node's code fingerprint (recorded in
    its result and manifest).
    """

    keys: dict[str, str] = field(default_factory=dict)
    cacheable: dict[str, bool] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)
    fingerprint_errors: dict[str, str] = field(default_factory=dict)
    code_fingerprints: dict[str, str] = field(default_factory=dict)


def warm_builtin_code_fingerprints() -> int:
    """Take the code fingerprint of every registered built-in node type now (parsing their
    modules' sources, ~0.5 s), so :func:`compute_keys` finds them cached in this process and in
    processes forked from it (``deployments.warm``). Returns how many were taken."""
    from nodes.base import registry
    from runners.registry import code_fingerprint

    taken = 0
    for name in sorted(registry().names()):
        node_type = registry().get(name)
        node = NodeIR(id="warm", type=name, version=node_type.version, runtime="builtin")
        code_fingerprint(node)
        taken += 1
    return taken


def compute_keys(
    ir: PipelineIR,
    fingerprint: Callable[[NodeIR], str | None],
    *,
    salt: str,
    code_fingerprint: Callable[[NodeIR], str] | None = None,
) -> KeyPlan:
    """Keys for the whole IR, in topological order; ``salt`` makes uncacheable keys unique.

    ``code_fingerprint`` defaults to the registered runners' (:mod:`runners.registry`), taken
    in this process; tests may pass their own.
    """
    if code_fingerprint is None:
        from runners.registry import code_fingerprint as registered

        code_fingerprint = registered
    plan = KeyPlan()
    for node in ir.nodes:
        inputs: dict[str, list[list[Any]]] = {}
        cacheable = True
        for port, b in node.bindings():
            inputs.setdefault(port, []).append([plan.keys[b.node], b.port, b.column])
            cacheable = cacheable and plan.cacheable[b.node]
        try:
            fp = fingerprint(node)
        except Exception as exc:  # reported by the node itself when it runs
            plan.fingerprint_errors[node.id] = str(exc)
            fp, cacheable = None, False
        if fp is not None:
            plan.fingerprints[node.id] = fp
        code: str | None = None
        try:
            code = code_fingerprint(node)
        except Exception as exc:  # e.g. an unknown node type: the node fails when it runs
            plan.fingerprint_errors.setdefault(node.id, f"code fingerprint: {exc}")
            cacheable = False
        if code is not None:
            plan.code_fingerprints[node.id] = code
        key = node_key(node, inputs, fp, code)
        if not cacheable:
            key = hashlib.sha256(f"uncached:{salt}:{key}".encode()).hexdigest()
        plan.keys[node.id] = key
        plan.cacheable[node.id] = cacheable
    return plan


class ArtifactStore:
    """Node outputs addressed by key, in a local directory or at an fsspec URL."""

    def __init__(self, location: str | Path, *, cache_dir: Path | None = None) -> None:
        loc = str(location)
        self.remote = "://" in loc and not loc.startswith("file://")
        if self.remote:
            import fsspec

            self._fs, self._base = fsspec.core.url_to_fs(loc)
            if cache_dir is None:
                raise StoreError("a remote artifact store needs a local cache directory")
            self.root = Path(cache_dir)
        else:
            self.root = Path(loc.removeprefix("file://")).expanduser().resolve()
        self.url = loc

    # -- reading --------------------------------------------------------------------------

    def local_dir(self, key: str) -> Path:
        """Where the key's files are (or will be) on this machine."""
        return self.root / key[:2] / key

    def has(self, key: str) -> bool:
        """True when the key's outputs are complete in the store."""
        if (self.local_dir(key) / MANIFEST).exists():
            return True
        return self.remote and self._fs.exists(self._remote_dir(key) + "/" + MANIFEST)

    def manifest(self, key: str) -> dict[str, Any]:
        """The key's manifest (node, outputs and their files); fetches a remote key first."""
        path = self.fetch(key) / MANIFEST
        return json.loads(path.read_text())

    def output_paths(self, key: str) -> dict[str, str]:
        """Output port -> local file path, for a stored key."""
        local = self.fetch(key)
        outputs = self.manifest(key)["outputs"]
        return {port: str(local / spec["file"]) for port, spec in outputs.items()}

    def fetch(self, key: str) -> Path:
        """A local directory with the key's files (downloaded once from a remote store)."""
        local = self.local_dir(key)
        if (local / MANIFEST).exists():
            return local
        if not self.remote:
            raise StoreError(f"artifact {key} is not in the store at {self.root}")
        if not self.has(key):
            raise StoreError(f"artifact {key} is not in the store at {self.url}")
        tmp = self.staging_dir()
        self._fs.get(self._remote_dir(key) + "/", str(tmp) + "/", recursive=True)
        self._move_into_place(tmp, local)
        return local

    # -- writing --------------------------------------------------------------------------

    def staging_dir(self) -> Path:
        """A fresh local directory to write a node's outputs into before :meth:`commit`."""
        path = self.root / ".staging" / uuid.uuid4().hex
        path.mkdir(parents=True)
        return path

    def commit(self, key: str, staging: Path, manifest: Mapping[str, Any]) -> dict[str, str]:
        """Publish a staged output directory under ``key``; returns port -> local path.

        If another writer published the same key first, its (identical) files win.
        """
        (staging / MANIFEST).write_text(json.dumps(dict(manifest), sort_keys=True, indent=1))
        if self.remote:
            remote = self._remote_dir(key)
            for path in sorted(staging.iterdir(), key=lambda p: p.name == MANIFEST):
                self._fs.put_file(str(path), f"{remote}/{path.name}")
        self._move_into_place(staging, self.local_dir(key))
        return self.output_paths(key)

    def _move_into_place(self, tmp: Path, final: Path) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / MANIFEST).exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)

    def _remote_dir(self, key: str) -> str:
        return f"{self._base.rstrip('/')}/{key[:2]}/{key}"
