"""The node contract: port types, ports, params models, the node base class and the registry.

A node type has a name, a semantic version, typed input and output ports, a pydantic params model
(defaults, bounds and descriptions; its JSON Schema drives the editor's forms and completions) and
a pure :meth:`Node.run`. Same inputs + same params + same code give the same outputs.

In-process value representations, by port type:

- ``ohlcv``: ``pd.DataFrame`` indexed by a UTC ``DatetimeIndex`` named ``ts``, float columns
  ``open, high, low, close, volume`` (and an optional string column ``symbol``).
- ``series`` / ``signal``: ``pd.Series`` of float64 with the same kind of index. A signal is a
  target position in [-1, 1]. A column of a frame (``data.close``) is a ``series``.
- ``frame`` / ``equity`` / ``orders`` / ``trades``: ``pd.DataFrame`` (``equity`` indexed by ts).
- ``metrics``: ``dict[str, Any]`` of numbers or None (never NaN or infinity), plus a few
  strings (``start``, ``ppy_source``) and lists of strings (``notes``, ``warnings``).
- ``model``: any picklable object.
"""

from __future__ import annotations

import difflib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from nodes.errors import NodeError, UnknownNodeTypeError

__all__ = [
    "OHLCV_COLUMNS",
    "NoParams",
    "Node",
    "NodeContext",
    "NodeRegistry",
    "Params",
    "Port",
    "PortType",
    "is_assignable",
    "register",
    "registry",
]


class PortType(StrEnum):
    """The few named types a port can carry."""

    OHLCV = "ohlcv"
    SERIES = "series"
    SIGNAL = "signal"
    FRAME = "frame"
    ORDERS = "orders"
    TRADES = "trades"
    EQUITY = "equity"
    METRICS = "metrics"
    MODEL = "model"


OHLCV_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")

# Which output types may feed an input of a given type (besides the same type).
_WIDENINGS: dict[PortType, frozenset[PortType]] = {
    PortType.SERIES: frozenset({PortType.SIGNAL}),
    PortType.FRAME: frozenset({PortType.OHLCV, PortType.EQUITY, PortType.ORDERS, PortType.TRADES}),
}

# Port types whose values are tables with columns a reference may select (`data.close`).
FRAME_LIKE: frozenset[PortType] = frozenset(
    {PortType.OHLCV, PortType.FRAME, PortType.EQUITY, PortType.ORDERS, PortType.TRADES}
)


def is_assignable(source: PortType, target: PortType) -> bool:
    """True when a value of type ``source`` may be bound to an input port of type ``target``."""
    return source == target or source in _WIDENINGS.get(target, frozenset())


@dataclass(frozen=True)
class Port:
    """A typed input or output of a node.

    ``variadic`` (inputs only, last port only) takes one or more values as a list.
    ``columns`` lists the columns a frame-like output is known to have (for static checks of
    ``step.column`` references); ``None`` means any column may be asked for.
    """

    name: str
    type: PortType
    doc: str = ""
    optional: bool = False
    variadic: bool = False
    columns: tuple[str, ...] | None = None

    def known_columns(self) -> tuple[str, ...] | None:
        """Columns a reference may select on this (output) port, or None if not checkable."""
        if self.columns is not None:
            return self.columns
        if self.type == PortType.OHLCV:
            return OHLCV_COLUMNS
        return None

    def to_json(self) -> dict[str, Any]:
        """The port as the catalog shows it."""
        columns = self.known_columns()
        return {
            "name": self.name,
            "type": self.type.value,
            "doc": self.doc,
            "optional": self.optional,
            "variadic": self.variadic,
            "columns": list(columns) if columns else None,
        }


@dataclass(frozen=True)
class NodeContext:
    """What a node may know about the world beyond its inputs and params.

    ``base_dir`` resolves relative file paths (the .af file's folder for a CLI run).
    ``datasets`` maps a dataset name to its stored Parquet file (for ``dataset_ohlcv``).
    ``log`` receives the node's log lines (the runner tags them with the node id); a line
    starting ``warning: `` is a warning (the run log records it at WARNING level).
    """

    base_dir: Path = field(default_factory=Path.cwd)
    datasets: Mapping[str, Path] = field(default_factory=dict)
    log: Callable[[str], None] = field(default=lambda _msg: None)
    confine_paths: bool = False

    def resolve_path(self, path: str | Path) -> Path:
        """An absolute path: relative ones are taken from ``base_dir``.

        With ``confine_paths`` (runs started from the web app), a path that leaves ``base_dir``
        (absolute, ``..``, a symlink out) is refused: users name files, never the server's.
        """
        p = Path(path).expanduser()
        resolved = p.resolve() if p.is_absolute() else (self.base_dir / p).resolve()
        if self.confine_paths:
            root = self.base_dir.resolve()
            if p.is_absolute() or not resolved.is_relative_to(root):
                raise NodeError(f"path {str(path)!r} is outside the data folder; name a file in it")
        return resolved


class Params(BaseModel):
    """Base of every params model: frozen, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    """For nodes without params."""


class Node(ABC):
    """Base class of every node type. Subclasses set the class attributes and implement run.

    ``metric_keys`` names the keys of a ``metrics`` output, so that ``result.sharpe`` can be
    checked by the compiler.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "misc"
    summary: ClassVar[str] = ""
    inputs: ClassVar[tuple[Port, ...]] = ()
    outputs: ClassVar[tuple[Port, ...]] = ()
    params_model: ClassVar[type[Params]] = NoParams
    metric_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, ctx: NodeContext | None = None) -> None:
        self.ctx = ctx if ctx is not None else NodeContext()

    @abstractmethod
    def run(self, inputs: Mapping[str, Any], params: Any) -> dict[str, Any]:
        """Compute the outputs (port name -> value) from inputs (port name -> value)."""

    def fingerprint(self, params: Any) -> str | None:
        """A hash of what the node reads from outside its inputs (a data file's bytes).

        Goes into the artifact key, so a changed file is never served from the cache, and into
        the run record as the dataset version. None for nodes that read nothing external.
        """
        return None

    # -- helpers shared by the compiler and the runners -------------------------------------

    @classmethod
    def input_port(cls, name: str) -> Port | None:
        """The input port called ``name``, or None."""
        return next((p for p in cls.inputs if p.name == name), None)

    @classmethod
    def output_port(cls, name: str) -> Port | None:
        """The output port called ``name``, or None."""
        return next((p for p in cls.outputs if p.name == name), None)

    @classmethod
    def primary_output(cls) -> Port:
        """The output a bare reference to a step means: the first output port."""
        if not cls.outputs:
            raise NodeError(f"node type {cls.name!r} has no outputs")
        return cls.outputs[0]

    @classmethod
    def parse_params(cls, raw: Mapping[str, Any]) -> Params:
        """Validate JSON params (as they stand in the IR) into the params model.

        Validation is strict JSON validation: ``"10"`` is not an integer, dates come as ISO
        strings. Raises pydantic's ``ValidationError`` (the compiler maps it to diagnostics).
        """
        return cls.params_model.model_validate_json(json.dumps(dict(raw)), strict=True)

    @classmethod
    def validated_params(cls, raw: Mapping[str, Any]) -> Params:
        """Like :meth:`parse_params` but raises a :class:`NodeError` naming the node type."""
        try:
            return cls.parse_params(raw)
        except ValidationError as exc:
            raise NodeError(f"invalid params for node type {cls.name!r}: {exc}") from exc

    @classmethod
    def spec(cls) -> dict[str, Any]:
        """The node type as JSON: what the catalog, the editor and the CLI show."""
        return {
            "name": cls.name,
            "version": cls.version,
            "category": cls.category,
            "summary": cls.summary,
            "doc": (cls.__doc__ or "").strip(),
            "inputs": [p.to_json() for p in cls.inputs],
            "outputs": [p.to_json() for p in cls.outputs],
            "params_schema": cls.params_model.model_json_schema(),
            "metric_keys": list(cls.metric_keys),
            "runtime": "builtin",
        }


N = TypeVar("N", bound=type[Node])


class NodeRegistry:
    """Node types by name. Lookup errors suggest close matches."""

    def __init__(self) -> None:
        self._types: dict[str, type[Node]] = {}

    def register(self, node_type: type[Node]) -> type[Node]:
        """Add a node type; a second type with the same name is refused."""
        name = node_type.name
        existing = self._types.get(name)
        if existing is not None and existing is not node_type:
            raise NodeError(f"node type {name!r} is already registered")
        _check_ports(node_type)
        self._types[name] = node_type
        return node_type

    def get(self, name: str) -> type[Node]:
        """The node type called ``name``; raises UnknownNodeTypeError with suggestions."""
        try:
            return self._types[name]
        except KeyError:
            raise UnknownNodeTypeError(name, self.suggest(name)) from None

    def suggest(self, name: str) -> list[str]:
        """Up to three registered names close to ``name``."""
        return difflib.get_close_matches(name, list(self._types), n=3, cutoff=0.6)

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self) -> Iterator[type[Node]]:
        return iter(sorted(self._types.values(), key=lambda t: (t.category, t.name)))

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._types)

    def catalog(self) -> list[dict[str, Any]]:
        """Every node type's spec, sorted by category then name."""
        return [t.spec() for t in self]


def _check_ports(node_type: type[Node]) -> None:
    for i, port in enumerate(node_type.inputs):
        if port.variadic and i != len(node_type.inputs) - 1:
            raise NodeError(f"{node_type.name}: only the last input port may be variadic")
    names = [p.name for p in node_type.inputs] + [p.name for p in node_type.outputs]
    if len(set(p.name for p in node_type.inputs)) != len(node_type.inputs):
        raise NodeError(f"{node_type.name}: duplicate input port names {names}")


_REGISTRY = NodeRegistry()
_builtins_loaded = False


def register(node_type: N) -> N:
    """Class decorator: add a node type to the default registry."""
    _REGISTRY.register(node_type)
    return node_type


def registry() -> NodeRegistry:
    """The default registry, with the built-in nodes loaded."""
    global _builtins_loaded
    if not _builtins_loaded:
        import nodes.builtin  # noqa: F401  (registers the built-in node types)

        _builtins_loaded = True
    return _REGISTRY
