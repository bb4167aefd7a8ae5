"""Resolving ``use name@spec`` from a local folder of custom-node manifests (the CLI's registry).

``alphaforge run|validate|compile --nodes DIR`` (default: a ``nodes/`` folder next to the .af
file, when there is one) reads every ``*.json`` file in ``DIR`` as a
:class:`runners.custom.CustomNodeManifest` (its code inline, or in a ``code_file`` beside
it). A pin resolves to the highest version matching its spec (:mod:`dsl.semver`: ``1.2`` /
``^1.2.3`` caret, ``~1.2`` tilde, ``=1.2.3`` exact; pre-releases only when the spec names one),
exactly as in the API's registry. Before a run the resolved manifests are put in the
on-disk :class:`runners.nodestore.ManifestStore`, where the flow finds the code by hash.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from pydantic import ValidationError

from dsl.nodespec import ResolvedNode, ResolveError
from dsl.semver import SemVer, parse_range
from nodes.errors import AlphaForgeError
from runners.custom import CustomNodeManifest, manifest_errors
from runners.nodestore import ManifestStore

__all__ = [
    "LocalNodeResolver",
    "NodesDirError",
    "default_nodes_dir",
    "load_manifest",
    "matches",
]


class NodesDirError(AlphaForgeError):
    """A manifest file in the nodes folder is unreadable or invalid (CLI exit code 2)."""

    code = "AF802"


def default_nodes_dir(pipeline_file: Path) -> Path | None:
    """``nodes/`` next to the pipeline file, if it exists."""
    candidate = pipeline_file.resolve().parent / "nodes"
    return candidate if candidate.is_dir() else None


def matches(version: str, spec: str) -> bool:
    """True when ``version`` satisfies ``spec`` (:mod:`dsl.semver`, the API registry's rules)."""
    try:
        return parse_range(spec).matches(SemVer.parse(version))
    except ValueError:
        return False


def _key(manifest: CustomNodeManifest) -> SemVer:
    return SemVer.parse(manifest.version)


def load_manifest(path: Path) -> CustomNodeManifest:
    """One manifest file. Instead of an inline ``code`` string it may name a ``code_file``
    beside it: ``.py``/``.js`` source, ``.wat`` text or a compiled ``.wasm`` module."""
    try:
        raw = json.loads(path.read_text())
        if not isinstance(raw, dict):
            raise ValueError("a manifest is a JSON object")
        code_file = raw.pop("code_file", None)
        if code_file is not None:
            if "code" in raw:
                raise ValueError("give either code or code_file, not both")
            code_path = path.parent / str(code_file)
            if code_path.suffix == ".wasm":
                raw["code"] = base64.b64encode(code_path.read_bytes()).decode()
                raw.setdefault("code_format", "wasm_base64")
            else:
                raw["code"] = code_path.read_text()
                if code_path.suffix == ".wat":
                    raw.setdefault("code_format", "wat")
        return CustomNodeManifest.model_validate(raw)
    except ValidationError as exc:
        problems = "".join(
            f"\n  {'.'.join(map(str, loc)) or '(manifest)'}: {msg}"
            for loc, msg in manifest_errors(exc)
        )
        raise NodesDirError(f"{path}: not a valid custom-node manifest:{problems}") from None
    except (OSError, ValueError) as exc:
        raise NodesDirError(f"{path}: not a valid custom-node manifest: {exc}") from None


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
        return cls([load_manifest(path) for path in sorted(folder.glob("*.json"))])

    def resolve(self, name: str, spec: str) -> ResolvedNode:
        """The highest version of ``name`` matching ``spec``."""
        versions = [m for m in self.manifests if m.name == name]
        if not versions:
            raise ResolveError(f"cannot resolve `use {name}@{spec}`: no custom node {name!r}")
        found = [m for m in versions if matches(m.version, spec)]
        if not found:
            have = ", ".join(str(v) for v in sorted({_key(m) for m in versions}))
            raise ResolveError(
                f"cannot resolve `use {name}@{spec}`: no version matches (have {have})"
            )
        best = max(found, key=_key)
        self.resolved[best.code_hash()] = best
        return ResolvedNode.from_manifest(best)

    def store_into(self, store: ManifestStore) -> list[str]:
        """Put the manifests resolved so far in ``store``; returns their code hashes."""
        return [store.put(m) for m in self.resolved.values()]
