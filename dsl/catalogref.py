"""Catalog references in pipelines: ``dataset("name@version")`` (and ``tick_data(...)``, the
same for order-book datasets) resolved to an exact version.

The compiler does not read the catalog itself (dsl imports no storage code): whoever compiles
passes a :class:`DatasetResolver` — the CLI one over its catalog, the web app one over the
datasets its user may read. Each ``dataset`` step's reference becomes the version's full hash in
the IR's params (``version``), so the IR hash, the run record and a re-run all name the same
bytes. The name stays as written: ``"x"`` follows the latest version (a web run resolves it
again when it starts: :func:`floating_steps`), ``"x@3f2a9c"`` is pinned. Without a resolver,
references are left for the run to resolve (the latest version then).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from dsl import tree as t
from nodes.base import split_dataset_reference

if TYPE_CHECKING:
    from dsl.binder import BoundStep
    from dsl.diagnostics import Severity
    from dsl.source import Reporter

__all__ = [
    "CATALOG_NODE",
    "CATALOG_NODES",
    "DatasetLookupError",
    "DatasetResolver",
    "floating_steps",
    "resolve_catalog_steps",
]

CATALOG_NODE = "dataset"
#: the built-in nodes whose ``name`` param is a catalog reference (bars; order-book events)
CATALOG_NODES = frozenset({CATALOG_NODE, "tick_data"})


class DatasetLookupError(LookupError):
    """A reference that names no dataset or version: ``message`` says what exists;
    ``suggestions`` are names close to the one written."""

    def __init__(self, message: str, suggestions: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.suggestions = list(suggestions)


class DatasetResolver(Protocol):
    """Turns ``name`` (and a version or unique prefix, None for the latest) into the full
    version hash; raises :class:`DatasetLookupError`."""

    def resolve(self, name: str, version: str | None) -> str: ...


def resolve_catalog_steps(
    bound: Iterable[BoundStep],
    resolver: DatasetResolver,
    rep: Reporter,
    severity: Severity = "error",
) -> None:
    """Write each catalog step's full version into its params (AF212 where it cannot)."""
    for b in bound:
        if b.spec is None or b.spec.name not in CATALOG_NODES or b.spec.runtime != "builtin":
            continue
        if b.params is None or "name" not in b.params:
            continue
        arg = _name_arg(b.step)
        span = arg.value.span if arg is not None else b.step.name_span
        name, prefix = split_dataset_reference(str(b.params["name"]))
        pinned = b.params.get("version")
        try:
            version = resolver.resolve(name, pinned or prefix)
        except DatasetLookupError as exc:
            rep.report(
                "AF212",
                exc.message,
                span,
                severity=severity,
                suggestions=[json.dumps(s) for s in exc.suggestions],
            )
            continue
        if pinned is not None and prefix is not None and not version.startswith(prefix):
            rep.report(
                "AF212",
                f"the name's version @{prefix} and version={pinned[:12]}... disagree",
                span,
                severity=severity,
            )
            continue
        # the name says whether the step floats ("x": the latest when a run starts) or is
        # pinned ("x@v", or a version given by hand, which the name then carries too)
        if pinned is not None and prefix is None:
            b.params["name"] = f"{name}@{version}"
        b.params["version"] = version


def floating_steps(nodes: Iterable[Any]) -> list[Any]:
    """The IR's built-in catalog nodes (``dataset``, ``tick_data``) whose reference names no
    version (``"x"``, not ``"x@v"``; a version given by hand is in the name too): they read the
    latest version when a run starts."""
    out = []
    for node in nodes:
        if node.type not in CATALOG_NODES or node.runtime != "builtin":
            continue
        name = str(node.params.get("name", ""))
        if "@" not in name:
            out.append(node)
    return out


def _name_arg(step: t.Step) -> t.Arg | None:
    """The argument that gave ``name`` (by keyword, or the first positional one)."""
    for arg in step.call.args:
        if arg.key == "name":
            return arg
    return next((a for a in step.call.args if a.key is None), None)
