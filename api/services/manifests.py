"""Custom-node manifests at the API's door, and the things built from them without saving:
templates and catalog entries (test runs: :mod:`api.services.node_lab`, on a worker).

:func:`manifest_in_to_manifest` turns a request's :class:`ManifestIn` into a validated
``CustomNodeManifest`` or a 422 whose detail lists every problem and where
(``{message, errors: [{loc, msg}]}``): semver, port types, params schema, a built-in's name,
WebAssembly that does not assemble or validate, NUL characters.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from typing import Any

import wasmtime
from pydantic import ValidationError

from api.errors import Unprocessable
from api.models.custom_node import (
    CustomNodeVersion,
    Manifest,
    ManifestIn,
    NodeTemplate,
)
from api.models.language import NodeSpec, PortSpec
from api.services.node_resolution import manifest_of
from dsl.nodespec import ResolvedNode
from flows.customnodes import (
    TEMPLATE_KINDS,
    CustomNodeManifest,
    manifest_errors,
    template,
)
from nodes.base import Port, registry

__all__ = [
    "catalog_entry",
    "manifest_in_to_manifest",
    "templates",
    "validation_detail",
]

Loc = tuple[int | str, ...]
_LANGUAGES = ("python", "javascript", "wasm")


def validation_detail(errors: Sequence[tuple[Loc, str]]) -> dict[str, Any]:
    """The 422 detail: ``{message, errors: [{loc, msg}]}``; the message names the first."""
    first_loc, first_msg = errors[0]
    where = ".".join(map(str, first_loc)) or "manifest"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return {
        "message": f"invalid manifest: {where}: {first_msg}{more}",
        "errors": [{"loc": list(loc), "msg": msg} for loc, msg in errors],
    }


def _nul_strings(value: Any, loc: Loc) -> Iterator[Loc]:
    if isinstance(value, str) and "\x00" in value:
        yield loc
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _nul_strings(k, (*loc, str(k)))
            yield from _nul_strings(v, (*loc, str(k)))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _nul_strings(v, (*loc, i))


def _wasm_errors(manifest: CustomNodeManifest) -> list[tuple[Loc, str]]:
    if manifest.language != "wasm":
        return []
    try:
        binary: bytes | bytearray = (
            wasmtime.wat2wasm(manifest.code)
            if manifest.code_format == "wat"
            else base64.b64decode(manifest.code)
        )
        wasmtime.Module.validate(wasmtime.Engine(), binary)
    except wasmtime.WasmtimeError as exc:
        what = "does not assemble" if manifest.code_format == "wat" else "is not valid"
        return [(("code",), f"the WebAssembly {what}: {str(exc).strip()[:500]}")]
    return []


def manifest_in_to_manifest(
    data: ManifestIn,
    version: str,
    *,
    fixed: tuple[str, str] | None = None,
    check_builtin: bool = False,
    prefix: Loc = (),
) -> CustomNodeManifest:
    """The validated manifest of ``data`` at ``version``, or a 422 listing every problem.

    ``fixed`` = the existing node's (name, language), which a new version may not change;
    ``check_builtin`` refuses a built-in node type's name; ``prefix`` goes before each ``loc``.
    """
    raw = data.model_dump(exclude={"message", "version"}, exclude_none=True)
    raw["version"] = version
    if "code_format" not in raw:
        raw["code_format"] = "wat" if data.language == "wasm" else "source"
    errors: list[tuple[Loc, str]] = [
        (loc, "NUL characters are not allowed") for loc in _nul_strings(data.model_dump(), ())
    ]
    if fixed is not None:
        name, language = fixed
        if data.name != name:
            errors.append((("name",), f"the node is called {name!r}; a node keeps its name"))
        if data.language != language:
            errors.append((("language",), f"the node is {language}; a node keeps its language"))
    if check_builtin and data.name in registry():
        errors.append((("name",), f"{data.name!r} is the name of a built-in node"))
    manifest: CustomNodeManifest | None = None
    if not errors:
        try:
            manifest = CustomNodeManifest.model_validate(raw)
        except ValidationError as exc:
            errors += manifest_errors(exc)
    if manifest is not None:
        errors += _wasm_errors(manifest)
    if errors or manifest is None:
        raise Unprocessable(validation_detail([((*prefix, *loc), msg) for loc, msg in errors]))
    return manifest


def _title(language: str, kind: str) -> str:
    names = {"python": "Python", "javascript": "JavaScript", "wasm": "WebAssembly"}
    return f"{names[language]} {kind}"


def templates() -> list[NodeTemplate]:
    """The nine templates (three kinds per language), for "New node"."""
    out = []
    for language in _LANGUAGES:
        for kind in TEMPLATE_KINDS:
            manifest = template(language, kind)  # type: ignore[arg-type]
            out.append(
                NodeTemplate(
                    language=language,  # type: ignore[arg-type]
                    kind=kind,
                    title=_title(language, kind),
                    manifest=Manifest.model_validate(manifest.model_dump(mode="json")),
                )
            )
    return out


def catalog_entry(name: str, row: CustomNodeVersion) -> NodeSpec:
    """A custom node's latest version as the editor's catalog shows it."""
    manifest = manifest_of(row)
    node = ResolvedNode.from_manifest(manifest)

    def ports(items: tuple[Port, ...]) -> list[PortSpec]:
        return [PortSpec.model_validate(p.to_json()) for p in items]

    return NodeSpec(
        name=name,
        version=row.version,
        category="custom",
        summary=manifest.summary,
        doc=manifest.summary,
        inputs=ports(node.inputs),
        outputs=ports(node.outputs),
        params_schema=dict(manifest.params_schema),
        metric_keys=[],
        runtime=manifest.language,
        custom=True,
        use=f"{name}@{row.version}",
    )
