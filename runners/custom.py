"""Custom nodes: the manifest a user submits (name, version, language, ports, params, code).

A :class:`CustomNodeManifest` is frozen and validated at the door: a semantic version, port
types a sandbox can exchange (tables and series in, series/signal/frame/metrics out, and a
``model`` out of a Python node: :mod:`runners.outputs`), a params JSON Schema, code within a
size cap, and optional resource requests that :meth:`CustomNodeManifest.limits` clamps to the
operator's :class:`AdminCaps` (a training node asks for more time and memory this way).
``code_hash`` is what the IR's ``NodeIR.code_hash`` pins; a runner refuses a manifest whose hash
differs from the one the pipeline was compiled against.

Templates (an indicator, a signal and a frame transform per language) live in
``runners/templates/`` and run unchanged: :func:`template` returns one as a manifest.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from nodes.base import PORT_TYPES, PortType, UnknownRuntimeError, runtime_for_language
from nodes.errors import AlphaForgeError
from nodes.lazy import lazy_module

if TYPE_CHECKING:
    import jsonschema
else:  # ~0.1 s to import: only when a manifest is validated
    jsonschema = lazy_module("jsonschema", globals(), "jsonschema")

__all__ = [
    "TEMPLATE_KINDS",
    "AdminCaps",
    "CustomNodeError",
    "CustomNodeManifest",
    "Limits",
    "ManifestCatalog",
    "ManifestPort",
    "ManifestProblems",
    "ResourceRequest",
    "manifest_errors",
    "resolve_params",
    "template",
]

Language = str  # a registered custom-node language: nodes.base.languages()
CodeFormat = Literal["source", "wat", "wasm_base64"]

MAX_CODE_BYTES = 1 << 20
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
# What a custom node may declare: the sandbox columns of nodes.base.PORT_TYPES.
INPUT_TYPES = frozenset(t for t, info in PORT_TYPES.items() if info.sandbox_input)
OUTPUT_TYPES = frozenset(t for t, info in PORT_TYPES.items() if info.sandbox_output)
MIB = 1 << 20


class ManifestProblems(ValueError):
    """The cross-field problems of a manifest, each with its ``loc``; pydantic wraps it in a
    ``ValidationError`` whose error ``ctx["error"]`` is this (the API lists them one by one)."""

    def __init__(self, problems: list[tuple[tuple[str | int, ...], str]]) -> None:
        super().__init__("; ".join(msg for _, msg in problems))
        self.problems = problems


def manifest_errors(exc: ValidationError) -> list[tuple[tuple[str | int, ...], str]]:
    """A manifest's validation errors as ``(loc, msg)``: pydantic's own, and the cross-field
    :class:`ManifestProblems` each at its own ``loc``; pydantic's "Value error, " prefixes and
    documentation links left out."""
    out: list[tuple[tuple[str | int, ...], str]] = []
    for e in exc.errors(include_url=False):
        problem = (e.get("ctx") or {}).get("error")
        if isinstance(problem, ManifestProblems):
            out += [((*e["loc"], *loc), msg) for loc, msg in problem.problems]
            continue
        msg = str(e["msg"])
        for prefix in ("Value error, ", "Assertion failed, "):
            msg = msg.removeprefix(prefix)
        out.append((tuple(e["loc"]), msg))
    return out


class CustomNodeError(AlphaForgeError):
    """A custom node's manifest, params or code is not acceptable."""

    code = "AF760"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ManifestPort(_Frozen):
    """A port of a custom node; ``columns`` lists a frame output's columns (required for wasm)."""

    name: str
    type: PortType
    doc: str = ""
    columns: tuple[str, ...] | None = None

    @field_validator("name")
    @classmethod
    def _identifier(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(
                f"port name {v!r} is not allowed: use lower-case letters, digits and '_', start "
                "with a letter, at most 64 characters, e.g. close_ema"
            )
        return v


@dataclass(frozen=True)
class AdminCaps:
    """The operator's defaults and ceilings for sandboxed executions (SECURITY.md's table)."""

    memory_mb: int = 512
    max_memory_mb: int = 2048
    cpus: float = 1.0
    max_cpus: float = 2.0
    wall_s: float = 30.0
    max_wall_s: float = 300.0
    output_mb: int = 64
    max_output_mb: int = 256
    pids: int = 64
    log_bytes: int = 1 * MIB
    tmp_mb: int = 16
    wasm_fuel: int = 20_000_000_000


@dataclass(frozen=True)
class Limits:
    """The effective limits of one execution; ``notes`` say what was clamped."""

    memory_mb: int
    cpus: float
    wall_s: float
    output_bytes: int
    pids: int
    log_bytes: int
    tmp_mb: int
    wasm_fuel: int
    notes: tuple[str, ...] = ()

    @classmethod
    def default(cls, caps: AdminCaps | None = None) -> Limits:
        """The caps' defaults, nothing requested."""
        return ResourceRequest().clamp(caps or AdminCaps())


def _number(v: Any) -> Any:
    """A whole float as an int (``120`` rather than ``120.0`` in a note)."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _clamp(name: str, asked: Any, default: Any, cap: Any, notes: list[str]) -> Any:
    if asked is None:
        return default
    if asked > cap:
        notes.append(f"requested {name} {_number(asked)} clamped to the admin cap {_number(cap)}")
        return cap
    return asked


class ResourceRequest(_Frozen):
    """What a node asks for; every field is clamped to the admin caps (None: the default)."""

    memory_mb: int | None = Field(default=None, ge=16)
    cpus: float | None = Field(default=None, gt=0)
    wall_s: float | None = Field(default=None, gt=0)
    output_mb: int | None = Field(default=None, ge=1)

    def clamp(self, caps: AdminCaps) -> Limits:
        """The effective limits: each request clamped to its cap, defaults where absent."""
        notes: list[str] = []
        out_mb = _clamp("output_mb", self.output_mb, caps.output_mb, caps.max_output_mb, notes)
        return Limits(
            memory_mb=_clamp(
                "memory_mb", self.memory_mb, caps.memory_mb, caps.max_memory_mb, notes
            ),
            cpus=_clamp("cpus", self.cpus, caps.cpus, caps.max_cpus, notes),
            wall_s=_clamp("wall_s", self.wall_s, caps.wall_s, caps.max_wall_s, notes),
            output_bytes=MIB * out_mb,
            pids=caps.pids,
            log_bytes=caps.log_bytes,
            tmp_mb=caps.tmp_mb,
            wasm_fuel=caps.wasm_fuel,
            notes=tuple(notes),
        )


class CustomNodeManifest(_Frozen):
    """A user-submitted node: identity, ports, params schema, resources and code."""

    name: str
    version: str
    language: Language

    @field_validator("language")
    @classmethod
    def _registered_language(cls, v: str) -> str:
        try:
            runtime_for_language(v)
        except UnknownRuntimeError as exc:  # names the registered languages
            raise ValueError(str(exc)) from None
        return v

    summary: str = ""
    inputs: tuple[ManifestPort, ...] = ()
    outputs: tuple[ManifestPort, ...]
    params_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    resources: ResourceRequest = Field(default_factory=ResourceRequest)
    code: str
    code_format: CodeFormat = "source"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(
                f"node name {v!r} is not allowed: use lower-case letters, digits and '_', start "
                "with a letter, at most 64 characters, e.g. my_rsi"
            )
        return v

    @field_validator("version")
    @classmethod
    def _semver(cls, v: str) -> str:
        if not _SEMVER.match(v):
            raise ValueError(
                f"version {v!r} is not a semantic version: write MAJOR.MINOR.PATCH, e.g. 1.0.0"
            )
        return v

    @field_validator("params_schema")
    @classmethod
    def _schema(cls, v: dict[str, Any]) -> dict[str, Any]:
        if v.get("type") != "object":
            raise ValueError('params_schema must be a JSON Schema with "type": "object"')
        try:
            jsonschema.Draft202012Validator.check_schema(v)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"params_schema is not a valid JSON Schema: {exc.message}") from exc
        return v

    @model_validator(mode="after")
    def _consistent(self) -> CustomNodeManifest:
        problems = self._problems()
        if problems:
            raise ManifestProblems(problems)
        return self

    def _problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Every cross-field problem, each with where it is (a ``loc`` as pydantic's)."""
        out: list[tuple[tuple[str | int, ...], str]] = []
        if len(self.code.encode()) > MAX_CODE_BYTES:
            out.append((("code",), f"code is larger than {MAX_CODE_BYTES} bytes"))
        seen: set[str] = set()
        for side, ports in (("inputs", self.inputs), ("outputs", self.outputs)):
            for i, p in enumerate(ports):
                if p.name in seen:
                    out.append(((side, i, "name"), f"port name {p.name!r} is used twice"))
                seen.add(p.name)
        if not self.outputs:
            out.append((("outputs",), "a custom node needs at least one output"))
        for i, p in enumerate(self.inputs):
            if p.type not in INPUT_TYPES:
                msg = f"input {p.name!r}: a sandbox cannot take a {p.type.value}"
                out.append((("inputs", i, "type"), msg))
        for i, p in enumerate(self.outputs):
            if p.type not in OUTPUT_TYPES:
                msg = f"output {p.name!r}: a sandbox cannot produce a {p.type.value}"
                out.append((("outputs", i, "type"), msg))
            elif p.type == PortType.MODEL and self.language != "python":
                msg = (
                    f"output {p.name!r}: only a Python node can output a model (it trains with "
                    f"torch in the sandbox); a {self.language} node cannot"
                )
                out.append((("outputs", i, "type"), msg))
            elif p.type == PortType.MODEL and p.columns is not None:
                msg = f"output {p.name!r}: a model output has no columns"
                out.append((("outputs", i, "columns"), msg))
        out += self._code_format_problems()
        return out

    def _code_format_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        fmt = ("code_format",)
        if self.language != "wasm":
            if self.code_format != "source":
                return [(fmt, f"{self.language} code must have code_format 'source'")]
            return []
        if self.code_format == "source":
            return [(fmt, "wasm code must have code_format 'wat' or 'wasm_base64'")]
        out: list[tuple[tuple[str | int, ...], str]] = []
        if self.code_format == "wasm_base64":
            try:
                raw = base64.b64decode(self.code, validate=True)
            except binascii.Error as exc:
                out.append((("code",), f"wasm code is not valid base64: {exc}"))
            else:
                if not raw.startswith(b"\0asm"):
                    out.append((("code",), "wasm code does not start with the \\0asm magic"))
        for i, p in enumerate(self.outputs):
            if p.type == PortType.METRICS:
                msg = f"wasm output {p.name!r}: only series, signal or frame with columns"
                out.append((("outputs", i, "type"), msg))
            elif p.type == PortType.FRAME and not p.columns:
                msg = f"wasm output {p.name!r}: a frame output of a wasm node lists its columns"
                out.append((("outputs", i, "columns"), msg))
        for key, spec in self.params_schema.get("properties", {}).items():
            if spec.get("type") not in ("number", "integer", "boolean"):
                msg = f"wasm param {key!r} must be a number, integer or boolean"
                out.append((("params_schema", "properties", key, "type"), msg))
        return out

    def code_hash(self) -> str:
        """sha256 over language, format and code: what ``NodeIR.code_hash`` pins."""
        payload = json.dumps([self.language, self.code_format, self.code], separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()

    def limits(self, caps: AdminCaps | None = None) -> Limits:
        """The effective limits: the requests clamped to ``caps`` (defaults where absent)."""
        return self.resources.clamp(caps or AdminCaps())

    def ports_json(self) -> dict[str, Any]:
        """Inputs and outputs as the sandbox job file lists them."""
        return {
            "inputs": [p.model_dump(mode="json") for p in self.inputs],
            "outputs": [p.model_dump(mode="json") for p in self.outputs],
        }


def resolve_params(manifest: CustomNodeManifest, raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with the schema's defaults filled in, validated against ``params_schema``."""
    params = dict(raw)
    for key, spec in manifest.params_schema.get("properties", {}).items():
        if key not in params and isinstance(spec, dict) and "default" in spec:
            params[key] = spec["default"]
    errors = sorted(
        jsonschema.Draft202012Validator(manifest.params_schema).iter_errors(params), key=str
    )
    if errors:
        where = "/".join(map(str, errors[0].absolute_path)) or "params"
        raise CustomNodeError(
            f"invalid params for custom node {manifest.name!r}: {where}: {errors[0].message}"
        )
    return params


class ManifestCatalog:
    """Manifests by code hash: how a runner finds the code a ``NodeIR`` pins."""

    def __init__(self, manifests: list[CustomNodeManifest] | None = None) -> None:
        self._by_hash: dict[str, CustomNodeManifest] = {}
        for m in manifests or []:
            self.add(m)

    def add(self, manifest: CustomNodeManifest) -> str:
        """Register a manifest; returns its code hash."""
        h = manifest.code_hash()
        self._by_hash[h] = manifest
        return h

    def get(self, code_hash: str | None, node_id: str) -> CustomNodeManifest:
        """The manifest with this code hash; a CustomNodeError naming the node if none."""
        if code_hash is None or code_hash not in self._by_hash:
            raise CustomNodeError(f"node {node_id!r}: no custom node code with hash {code_hash}")
        return self._by_hash[code_hash]


# ---- templates ------------------------------------------------------------------------------

TEMPLATE_DIR = Path(__file__).with_name("templates")
TEMPLATE_KINDS = ("indicator", "signal", "transform")
_EXT = {"python": "py", "javascript": "js", "wasm": "wat"}
_SPAN = {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 20}
_TEMPLATE_SPECS: dict[str, dict[str, Any]] = {
    "indicator": {
        "summary": "Exponential moving average of a series.",
        "inputs": [{"name": "x", "type": "series"}],
        "outputs": [{"name": "ema", "type": "series"}],
        "params_schema": {"type": "object", "properties": {"span": _SPAN}},
    },
    "signal": {
        "summary": "Momentum sign: +1 when x rose over `lookback` bars, -1 when it fell, else 0.",
        "inputs": [{"name": "x", "type": "series"}],
        "outputs": [{"name": "signal", "type": "signal"}],
        "params_schema": {"type": "object", "properties": {"lookback": _SPAN}},
    },
    "transform": {
        "summary": "Bar features from OHLCV: log return and high-low range relative to close.",
        "inputs": [{"name": "bars", "type": "ohlcv"}],
        "outputs": [{"name": "features", "type": "frame", "columns": ["ret", "range"]}],
        "params_schema": {"type": "object", "properties": {}},
    },
}


def template(language: Language, kind: str) -> CustomNodeManifest:
    """The template ``kind`` (indicator, signal, transform) for ``language`` as a manifest."""
    if kind not in _TEMPLATE_SPECS:
        raise CustomNodeError(f"unknown template {kind!r}; choose one of {TEMPLATE_KINDS}")
    code = (TEMPLATE_DIR / f"{kind}.{_EXT[language]}").read_text()
    return CustomNodeManifest(
        name=f"template_{kind}",
        version="1.0.0",
        language=language,
        code=code,
        code_format="wat" if language == "wasm" else "source",
        **_TEMPLATE_SPECS[kind],
    )
