"""What the compiler needs to know about a node type, built-in or custom, and `use` resolution.

Built-in node types come from a :class:`~nodes.base.NodeRegistry`; custom nodes come from a
:class:`NodeResolver` (the custom-node registry plugs one in). Both become a :class:`NodeSpec`:
ports, params validation, metric keys, runtime and code hash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from dsl.schema_check import check_schema
from nodes.base import Node, Params, Port, PortType, runtime_for_language
from nodes.errors import AlphaForgeError

Language = str  # a registered custom-node language (nodes.base.languages()); checked: AF408
IssueKind = Literal["unknown", "missing", "type", "bounds", "model"]

_VERSION_SPEC = re.compile(r"^(=\d+\.\d+\.\d+|[\^~]?\d+(\.\d+){0,2})([-+][0-9A-Za-z.-]+)?$")
_BOUNDS = {
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
    "multiple_of",
    "too_short",
    "too_long",
    "string_too_short",
    "string_too_long",
    "finite_number",
    "value_error",
    "assertion_error",
}


@dataclass(frozen=True)
class ParamIssue:
    """One reason params were refused: which field (None: the whole), where in it, and why."""

    kind: IssueKind
    field: str | None
    path: tuple[int | str, ...]
    message: str


@dataclass(frozen=True)
class NodeSpec:
    """A node type as the compiler sees it."""

    name: str
    version: str
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    param_names: tuple[str, ...]
    validate: Callable[[Mapping[str, Any]], tuple[dict[str, Any] | None, list[ParamIssue]]]
    metric_keys: tuple[str, ...] = ()
    text_metric_keys: tuple[str, ...] = ()
    runtime: str = "builtin"
    code_hash: str | None = None
    positional_param: str | None = None  # Node.positional_param

    def input_port(self, name: str) -> Port | None:
        """The input port called ``name``, or None."""
        return next((p for p in self.inputs if p.name == name), None)

    def output_port(self, name: str) -> Port | None:
        """The output port called ``name``, or None."""
        return next((p for p in self.outputs if p.name == name), None)

    @classmethod
    def from_node_type(cls, node_type: type[Node]) -> NodeSpec:
        """The spec of a registered node type (params validated by its ``parse_params``)."""
        return cls(
            name=node_type.name,
            version=node_type.version,
            inputs=tuple(node_type.inputs),
            outputs=tuple(node_type.outputs),
            param_names=tuple(node_type.params_model.model_fields),
            validate=lambda raw: _validate_pydantic(node_type.parse_params, raw),
            metric_keys=tuple(node_type.metric_keys),
            text_metric_keys=tuple(node_type.text_metric_keys),
            positional_param=node_type.positional_param,
        )


class ManifestPortLike(Protocol):
    """A custom node's port as its manifest declares it (``runners.custom.ManifestPort``)."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> PortType: ...
    @property
    def doc(self) -> str: ...
    @property
    def columns(self) -> tuple[str, ...] | None: ...


class ManifestLike(Protocol):
    """What :meth:`ResolvedNode.from_manifest` reads of a custom node's manifest
    (``runners.custom.CustomNodeManifest``, which the DSL may not import)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def language(self) -> Language: ...
    @property
    def summary(self) -> str: ...
    @property
    def inputs(self) -> tuple[ManifestPortLike, ...]: ...
    @property
    def outputs(self) -> tuple[ManifestPortLike, ...]: ...
    @property
    def params_schema(self) -> dict[str, Any]: ...
    def code_hash(self) -> str: ...


def _manifest_ports(ports: tuple[ManifestPortLike, ...]) -> tuple[Port, ...]:
    return tuple(
        Port(p.name, PortType(p.type), p.doc, columns=tuple(p.columns) if p.columns else None)
        for p in ports
    )


@dataclass(frozen=True)
class ResolvedNode:
    """What a resolver returns for a ``use`` pin: exact version, code hash, ports and params.

    Params are checked with ``params_model`` (strict JSON, like built-ins) when given, else with
    the subset of JSON Schema that :func:`dsl.schema_check.check_schema` understands.
    """

    name: str
    version: str
    code_hash: str
    language: Language
    inputs: tuple[Port, ...] = ()
    outputs: tuple[Port, ...] = ()
    params_schema: dict[str, Any] | None = None
    params_model: type[Params] | None = None
    metric_keys: tuple[str, ...] = ()
    doc: str = field(default="", compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)
    """Reported as AF407 warnings at the ``use`` line (e.g. a failed look-ahead check)."""

    @classmethod
    def from_manifest(cls, manifest: ManifestLike, warnings: tuple[str, ...] = ()) -> ResolvedNode:
        """The node a custom-node manifest declares: the one conversion of a manifest into
        what the compiler (and the catalogs) see, for the CLI's folders and the API's store."""
        return cls(
            name=manifest.name,
            version=manifest.version,
            code_hash=manifest.code_hash(),
            language=manifest.language,
            inputs=_manifest_ports(manifest.inputs),
            outputs=_manifest_ports(manifest.outputs),
            params_schema=dict(manifest.params_schema),
            doc=manifest.summary,
            warnings=warnings,
        )

    def spec(self) -> NodeSpec:
        """The compiler's view of this custom node."""
        if self.params_model is not None:
            model = self.params_model

            def parse(raw: Mapping[str, Any]) -> Params:
                return model.model_validate_json(json.dumps(dict(raw)), strict=True)

            names = tuple(model.model_fields)
            validate: Callable[..., Any] = lambda raw: _validate_pydantic(parse, raw)  # noqa: E731
        else:
            schema = self.params_schema or {"type": "object", "properties": {}}
            names = tuple(schema.get("properties", {}))
            validate = lambda raw: check_schema(schema, raw)  # noqa: E731
        return NodeSpec(
            name=self.name,
            version=self.version,
            inputs=self.inputs,
            outputs=self.outputs,
            param_names=names,
            validate=validate,
            metric_keys=self.metric_keys,
            runtime=runtime_for_language(self.language).name,
            code_hash=self.code_hash,
        )


class ResolveError(AlphaForgeError):
    """A resolver could not turn ``use name@spec`` into an exact version (message says why)."""

    code = "AF401"


class NodeResolver(Protocol):
    """Resolves ``use name@spec`` pins (``spec``: ``1.2`` caret range, ``=1.2.3`` exact)."""

    def resolve(self, name: str, spec: str) -> ResolvedNode:
        """The exact version the pin means; raises :class:`ResolveError` if there is none."""
        ...


class NoRegistryResolver:
    """The default resolver: there is no custom-node registry, so every pin is unresolvable."""

    def resolve(self, name: str, spec: str) -> ResolvedNode:
        """Always refuses."""
        raise ResolveError(
            f"cannot resolve `use {name}@{spec}`: no custom-node registry is configured"
        )


def valid_version_spec(spec: str) -> bool:
    """True for ``1``, ``1.2``, ``^1.2.3``, ``~1.2``, ``=1.2.3`` (with an optional pre-release)."""
    return bool(_VERSION_SPEC.match(spec))


def _validate_pydantic(
    parse: Callable[[Mapping[str, Any]], Params], raw: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, list[ParamIssue]]:
    try:
        return parse(raw).model_dump(mode="json"), []
    except ValidationError as exc:
        return None, [_issue(e) for e in exc.errors(include_url=False)]


def _issue(err: Mapping[str, Any]) -> ParamIssue:
    loc = tuple(err.get("loc", ()))
    kind_name = str(err.get("type", ""))
    field_name = str(loc[0]) if loc else None
    message = str(err.get("msg", "invalid value"))
    message = message[:1].lower() + message[1:]
    for prefix in ("value error, ", "assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    kind: IssueKind
    if kind_name == "missing":
        kind = "missing"
    elif kind_name == "extra_forbidden":
        kind = "unknown"
    elif field_name is None:
        kind = "model"
    elif kind_name in _BOUNDS:
        kind = "bounds"
    else:
        kind = "type"
    return ParamIssue(kind, field_name, loc[1:], message)
