"""The package lock of this process: every installed distribution and its version.

A run records it (``run.json`` ``package_lock``) so a re-run, or a diff of two runs, can say
which packages changed. Read once per process (the code a process runs does not change under
it): ``importlib.metadata`` over ~200 distributions takes ~0.3 s, so a run starts it in the
background (:func:`flows.graph.run_graph`).

``hash`` is the sha256 of the canonical JSON of the packages, the Python version and
implementation, and the OS and machine (``linux`` / ``x86_64``) — not of the kernel release or
host name, which differ between identical installations. ``platform`` is the full
``platform.platform()`` text, for the reader.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import sys
from collections.abc import Mapping
from functools import lru_cache
from importlib import metadata
from typing import Any

__all__ = ["lock_differences", "package_lock"]


def package_lock() -> dict[str, Any]:
    """``{hash, python, implementation, system, machine, platform, packages: {name: version}}``
    (names normalised as PEP 503 does: lower case, runs of ``-_.`` as ``-``)."""
    return json.loads(_package_lock())


@lru_cache(maxsize=1)
def _package_lock() -> str:
    packages: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[re.sub(r"[-_.]+", "-", name).lower()] = dist.version
    hashed = {
        "python": sys.version.split()[0],
        "implementation": sys.implementation.name,
        "system": sys.platform,
        "machine": platform.machine(),
        "packages": dict(sorted(packages.items())),
    }
    digest = hashlib.sha256(
        json.dumps(hashed, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    return json.dumps({"hash": digest, **hashed, "platform": platform.platform()})


def lock_differences(
    a: Mapping[str, Any] | None, b: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """What differs between two locks: ``{added, removed, changed: {name: [a, b]}, python,
    system}`` (only the keys that differ); None when they are the same, ``{"unknown": ...}``
    when a run recorded none (a run from before issue 16)."""
    if a is None or b is None:
        if a is None and b is None:
            return None
        return {"unknown": "a" if a is None else "b"}
    if a.get("hash") == b.get("hash"):
        return None
    pa, pb = dict(a.get("packages") or {}), dict(b.get("packages") or {})
    out: dict[str, Any] = {}
    if added := sorted(set(pb) - set(pa)):
        out["added"] = {n: pb[n] for n in added}
    if removed := sorted(set(pa) - set(pb)):
        out["removed"] = {n: pa[n] for n in removed}
    changed = {n: [pa[n], pb[n]] for n in sorted(set(pa) & set(pb)) if pa[n] != pb[n]}
    if changed:
        out["changed"] = changed
    for key in ("python", "implementation", "system", "machine"):
        if a.get(key) != b.get(key):
            out[key] = [a.get(key), b.get(key)]
    return out or None
