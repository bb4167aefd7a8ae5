"""Resolving ``use name@spec`` from a local folder of custom-node manifests (the CLI's registry).

``alphaforge run|validate|compile --nodes DIR`` (default: a ``nodes/`` folder next to the .af
file, when there is one) reads every ``*.json`` file in ``DIR`` as a
:class:`runners.custom.CustomNodeManifest`. A pin resolves to the highest version matching its
spec (``1.2`` / ``^1.2.3`` caret, ``~1.2`` tilde, ``=1.2.3`` exact; pre-releases only when the
spec names one), like the API's registry. Before a run the resolved manifests are put in the
on-disk :class:`runners.nodestore.ManifestStore`, where the flow finds the code by hash.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import ValidationError

from dsl.nodespec import ResolvedNode, ResolveError
from nodes.base import Port
from nodes.errors import AlphaForgeError
from runners.custom import CustomNodeManifest
from runners.nodestore import ManifestStore

__all__ = ["LocalNodeResolver", "NodesDirError", "default_nodes_dir", "matches", "resolved_node"]

_SPEC = re.compile(r"^([=^~]?)(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?$")
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


class NodesDirError(AlphaForgeError):
    """A manifest file in the nodes folder is unreadable or invalid (CLI exit code 2)."""

    code = "AF002"


def default_nodes_dir(pipeline_file: Path) -> Path | None:
    """``nodes/`` next to the pipeline file, if it exists."""
    candidate = pipeline_file.resolve().parent / "nodes"
    return candidate if candidate.is_dir() else None


_PreKey = tuple[int, tuple[tuple[int, int | str], ...]]


def _pre_key(pre: str | None) -> _PreKey:
    if pre is None:  # a release sorts after its pre-releases
        return (1, ())
    parts = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    return (0, parts)


def _version_key(
    version: str,
) -> tuple[int, int, int, tuple[int, tuple[tuple[int, int | str], ...]]]:
    m = _VERSION.match(version)
    if m is None:
        raise ValueError(f"not a semantic version: {version!r}")
    return int(m[1]), int(m[2]), int(m[3]), _pre_key(m[4])


def matches(version: str, spec: str) -> bool:
    """True when ``version`` satisfies ``spec`` (caret by default, ``~`` tilde, ``=`` exact)."""
    s, v = _SPEC.match(spec), _VERSION.match(version)
    if s is None or v is None:
        return False
    op, major, minor, patch, pre = s[1], int(s[2]), s[3], s[4], s[5]
    vmaj, vmin, vpat, vpre = int(v[1]), int(v[2]), int(v[3]), v[4]
    if op == "=":
        return (vmaj, vmin, vpat, vpre) == (major, int(minor or 0), int(patch or 0), pre)
    if vpre is not None and (
        pre is None or (vmaj, vmin, vpat) != (major, int(minor or 0), int(patch or 0))
    ):
        return False  # pre-releases only when the spec names one on the same version
    low = (major, int(minor or 0), int(patch or 0), _pre_key(pre))
    if _version_key(version) < low:
        return False
    if op == "~":
        return (vmaj, vmin) == (major, int(minor or 0)) if minor is not None else vmaj == major
    # caret: the left-most non-zero component stays
    if major > 0 or minor is None:
        return vmaj == major
    if int(minor) > 0 or patch is None:
        return vmaj == 0 and vmin == int(minor)
    return (vmaj, vmin, vpat) == (0, 0, int(patch))


def resolved_node(manifest: CustomNodeManifest) -> ResolvedNode:
    """The compiler's view of a manifest."""
    return ResolvedNode(
        name=manifest.name,
        version=manifest.version,
        code_hash=manifest.code_hash(),
        language=manifest.language,
        inputs=tuple(Port(p.name, p.type, p.doc) for p in manifest.inputs),
        outputs=tuple(Port(p.name, p.type, p.doc, columns=p.columns) for p in manifest.outputs),
        params_schema=manifest.params_schema,
        doc=manifest.summary,
    )


class LocalNodeResolver:
    """A :class:`dsl.nodespec.NodeResolver` over manifests (from a folder, or given)."""

    def __init__(self, manifests: list[CustomNodeManifest] | None = None) -> None:
        self.manifests: list[CustomNodeManifest] = list(manifests or [])
        self.resolved: dict[str, CustomNodeManifest] = {}

    @classmethod
    def from_dir(cls, folder: Path) -> LocalNodeResolver:
        """Every ``*.json`` manifest in ``folder`` (a NodesDirError names a bad file)."""
        if not folder.is_dir():
            raise NodesDirError(f"{folder}: no such folder of custom-node manifests")
        manifests: list[CustomNodeManifest] = []
        for path in sorted(folder.glob("*.json")):
            try:
                manifests.append(CustomNodeManifest.model_validate(json.loads(path.read_text())))
            except (OSError, ValueError, ValidationError) as exc:
                raise NodesDirError(f"{path}: not a valid custom-node manifest: {exc}") from None
        return cls(manifests)

    def resolve(self, name: str, spec: str) -> ResolvedNode:
        """The highest version of ``name`` matching ``spec``."""
        versions = [m for m in self.manifests if m.name == name]
        if not versions:
            raise ResolveError(f"cannot resolve `use {name}@{spec}`: no custom node {name!r}")
        found = [m for m in versions if matches(m.version, spec)]
        if not found:
            have = ", ".join(sorted({m.version for m in versions}, key=_version_key))
            raise ResolveError(
                f"cannot resolve `use {name}@{spec}`: no version matches (have {have})"
            )
        best = max(found, key=lambda m: _version_key(m.version))
        self.resolved[best.code_hash()] = best
        return resolved_node(best)

    def store_into(self, store: ManifestStore) -> list[str]:
        """Put the manifests resolved so far in ``store``; returns their code hashes."""
        return [store.put(m) for m in self.resolved.values()]
