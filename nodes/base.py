"""The node contract: port types, ports, params models, the node base class and the registry.

A node type has a name, a semantic version, typed input and output ports, a pydantic params model
(defaults, bounds and descriptions; its JSON Schema drives the editor's forms and completions) and
a pure :meth:`Node.run`. Same inputs + same params + same code give the same outputs.

In-process value representations, by port type:

- ``ohlcv``: ``pd.DataFrame`` indexed by a UTC ``DatetimeIndex`` named ``ts``, float columns
  ``open, high, low, close, volume`` (and an optional string column ``symbol``).
- ``series`` / ``signal``: ``pd.Series`` of float64 with the same kind of index. A signal is a
  target position in [-1, 1]. A column of a frame (``data.close``) is a ``series``.
- several symbols (a "panel", :mod:`nodes.panel`): ``ohlcv`` in long form (a row per
  (ts, symbol), a ``symbol`` column with 2 or more symbols); ``series`` / ``signal`` wide (a
  ``pd.DataFrame`` by ts, one float64 column per symbol, NaN where a symbol has no bar; a
  signal holds target weights). :attr:`Node.panel` says how a node takes them.
- ``frame`` / ``equity`` / ``orders`` / ``trades``: ``pd.DataFrame`` (``equity`` indexed by ts).
- ``metrics``: ``dict[str, Any]`` of numbers or None (never NaN or infinity), plus a few
  strings (``start``, ``ppy_source``) and lists of strings (``notes``, ``warnings``).
- ``model``: a trained model a model file can hold (:mod:`nodes.modelfile`; ``train_torch``'s
  ``TorchModel``, also what a Python custom node's ``model`` output becomes on the host).
- ``ticks``: one asset's order-book events, a numpy structured array of hftbacktest's event
  dtype in replay order (:mod:`nodes.ticks`; a ``TickArray`` also carries symbol / tick size /
  lot size hints).
"""

from __future__ import annotations

import difflib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from nodes.errors import NodeError, UnknownNodeTypeError

__all__ = [
    "BUILTIN_RUNTIME",
    "COLUMN_TYPE",
    "FRAME_LIKE",
    "OHLCV_COLUMNS",
    "PORT_TYPES",
    "DatasetSource",
    "NoParams",
    "Node",
    "NodeContext",
    "NodeRegistry",
    "Params",
    "Port",
    "PortForm",
    "PortType",
    "PortTypeInfo",
    "RuntimeInfo",
    "StrategyBacktester",
    "TickStrategySession",
    "UnknownRuntimeError",
    "is_assignable",
    "languages",
    "port_info",
    "register",
    "register_runtime",
    "registry",
    "runtime",
    "runtime_for_language",
    "runtimes",
    "split_dataset_reference",
    "types_of_form",
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
    TICKS = "ticks"


OHLCV_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")


class PortForm(StrEnum):
    """How a port type's value is held, stored and handed to a sandbox."""

    TABLE = "table"  # pd.DataFrame; Parquet; Arrow IPC / f64 columns in a sandbox
    SERIES = "series"  # pd.Series of float64; Parquet (one column); one f64 column
    METRICS = "metrics"  # dict of JSON numbers; JSON
    OBJECT = "object"  # a model; a model file (nodes.modelfile: JSON + arrays, never a pickle)
    EVENTS = "events"  # one asset's order-book events (nodes.ticks); a tick file (nodes.tickfile)


@dataclass(frozen=True)
class PortTypeInfo:
    """One row of the port-type table.

    ``accepts``: the other types whose values may be bound to an input of this type (a signal
    is a series; any table is a frame). ``time_indexed``: the value's index must be timestamps.
    ``columns``: columns every value has (and a reference may select). ``sandbox_input`` /
    ``sandbox_output``: a custom node may declare an input / output of this type.
    """

    form: PortForm
    accepts: frozenset[PortType] = frozenset()
    time_indexed: bool = False
    columns: tuple[str, ...] | None = None
    sandbox_input: bool = False
    sandbox_output: bool = False


# THE port-type table: what each type is, what may feed it and where it may go. Everything that
# decides on port types consults it: assignability (the compiler), column references, the
# artifact files (runners.io), the values checks, the sandbox's inputs and outputs
# (runners.jobs, runners.outputs, the manifest's allowed types).
PORT_TYPES: dict[PortType, PortTypeInfo] = {
    PortType.OHLCV: PortTypeInfo(
        PortForm.TABLE, time_indexed=True, columns=OHLCV_COLUMNS, sandbox_input=True
    ),
    PortType.SERIES: PortTypeInfo(
        PortForm.SERIES,
        accepts=frozenset({PortType.SIGNAL}),
        sandbox_input=True,
        sandbox_output=True,
    ),
    PortType.SIGNAL: PortTypeInfo(PortForm.SERIES, sandbox_input=True, sandbox_output=True),
    PortType.FRAME: PortTypeInfo(
        PortForm.TABLE,
        accepts=frozenset({PortType.OHLCV, PortType.EQUITY, PortType.ORDERS, PortType.TRADES}),
        sandbox_input=True,
        sandbox_output=True,
    ),
    PortType.ORDERS: PortTypeInfo(PortForm.TABLE),
    PortType.TRADES: PortTypeInfo(PortForm.TABLE),
    PortType.EQUITY: PortTypeInfo(PortForm.TABLE, time_indexed=True, sandbox_input=True),
    PortType.METRICS: PortTypeInfo(PortForm.METRICS, sandbox_output=True),
    # a Python custom node may output a model (trained with torch in the sandbox): runners.outputs
    PortType.MODEL: PortTypeInfo(PortForm.OBJECT, sandbox_output=True),
    # order-book events in hftbacktest's layout (nodes.ticks); not for custom nodes (yet)
    PortType.TICKS: PortTypeInfo(PortForm.EVENTS),
}

# The type of one column selected from a table (``data.close``).
COLUMN_TYPE = PortType.SERIES


def port_info(port_type: PortType | str) -> PortTypeInfo:
    """The table's row for ``port_type`` (a ``ValueError`` naming the known types if unknown)."""
    try:
        return PORT_TYPES[PortType(port_type)]
    except ValueError:
        known = ", ".join(t.value for t in PortType)
        raise ValueError(f"unknown port type {port_type!r} (known: {known})") from None


def types_of_form(*forms: PortForm) -> frozenset[PortType]:
    """The port types held in one of ``forms``."""
    return frozenset(t for t, info in PORT_TYPES.items() if info.form in forms)


# Port types whose values are tables with columns a reference may select (`data.close`).
FRAME_LIKE: frozenset[PortType] = types_of_form(PortForm.TABLE)


def is_assignable(source: PortType, target: PortType) -> bool:
    """True when a value of type ``source`` may be bound to an input port of type ``target``."""
    return source == target or source in PORT_TYPES[target].accepts


@dataclass(frozen=True)
class Port:
    """A typed input or output of a node.

    ``variadic`` (inputs only, last port only) takes one or more values as a list.
    ``names_param`` (variadic inputs only) names a list param holding one name per value bound
    to the port; when a step does not give it, the compiler fills it from the references
    (``rsi_6`` → ``"rsi_6"``, ``macd.signal`` → ``"macd_signal"``) and reports clashes (AF211).
    ``columns`` lists the columns a frame-like output is known to have (for static checks of
    ``step.column`` references); ``None`` means any column may be asked for.
    ``or_param`` (optional inputs only) names a param that replaces the input: a step gives
    exactly one of the two, and the compiler says so (AF103 neither, AF108 both).
    """

    name: str
    type: PortType
    doc: str = ""
    optional: bool = False
    variadic: bool = False
    columns: tuple[str, ...] | None = None
    names_param: str | None = None
    or_param: str | None = None

    def known_columns(self) -> tuple[str, ...] | None:
        """Columns a reference may select on this (output) port, or None if not checkable."""
        if self.columns is not None:
            return self.columns
        return PORT_TYPES[self.type].columns

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
        } | ({"or_param": self.or_param} if self.or_param else {})


@dataclass(frozen=True)
class ModelRef:
    """A registered model's version: ``version`` or ``alias``; neither means the latest."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name} version {self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return f"{self.name} (latest version)"


@dataclass(frozen=True)
class ResolvedModel:
    """A registered version resolved to its model file on this machine."""

    name: str
    version: int
    run_id: str | None
    path: Path
    sha256: str

    @property
    def fingerprint(self) -> str:
        """What decides the predictions: name, version, training run and the file's bytes."""
        return f"mlflow-model:{self.name}/{self.version}:{self.run_id}:{self.sha256}"


_DATASET_REFERENCE = re.compile(
    r"^(?P<name>[A-Za-z][A-Za-z0-9_-]{0,63})(?:@(?P<version>[0-9a-f]{6,64}))?$"
)


def split_dataset_reference(reference: str) -> tuple[str, str | None]:
    """A catalog reference split: ``"name@3f2a9c"`` -> ``("name", "3f2a9c")``, ``"name"`` ->
    ``("name", None)``. Raises ValueError, in a sentence, for anything else."""
    match = _DATASET_REFERENCE.match(reference)
    if match is None:
        raise ValueError(
            f"{reference!r} is not a dataset reference: write a name (letters, digits, '_', '-', "
            "starting with a letter), optionally followed by @ and a version (6 to 64 "
            'lower-case hex digits), e.g. "us_equities_daily@3f2a9c"'
        )
    return match.group("name"), match.group("version")


class DatasetSource(Protocol):
    """Where ``dataset(...)`` steps read catalog versions (the run's dataset catalog:
    runners.catalogsource). Versions are content hashes: the same version is the same bytes."""

    def resolve(self, name: str, version: str | None = None) -> str:
        """The full version hash ``name`` (at ``version``, a unique prefix; None: the latest)
        names; a NodeError saying what exists otherwise."""
        ...

    def read(
        self,
        version: str,
        *,
        symbols: list[str] | None = None,
        columns: list[str] | None = None,
        start: Any = None,
        end: Any = None,
    ) -> Any:
        """The version's bars as the canonical long frame, pruned to the symbols, columns
        and time range asked for."""
        ...

    def read_ticks(
        self, version: str, *, symbols: list[str] | None = None, start: Any = None, end: Any = None
    ) -> dict[str, Any]:
        """A tick version's events per symbol (:mod:`nodes.ticks` arrays), in the time range."""
        ...


class ModelSource(Protocol):
    """Where registered models come from (the MLflow Model Registry: runners.modelregistry)."""

    def resolve(self, ref: ModelRef, *, node: str) -> ResolvedModel:
        """The version ``ref`` names, downloaded; a NodeError saying what exists otherwise."""
        ...


class StrategyBacktester(Protocol):
    """Where ``strategy_backtest`` runs a strategy module (user code: in the sandbox the run's
    runner provides, runners.papertrade.service)."""

    def backtest(
        self,
        code: str,
        bars: Any,
        *,
        config: dict[str, Any],
        symbol: str,
        interval: str,
        cash: float,
        fee_bps: float,
        slippage_bps: float,
        allow_short: bool,
        node: str,
        log: Callable[[str], None],
    ) -> dict[str, Any]:
        """``bars`` (one symbol's ohlcv table) through the module's ``on_tick`` with the paper
        venue's fills: ``equity``, ``orders``, ``trades`` and ``metrics`` (the bar backtest's
        shapes); a NodeError saying why when the strategy fails."""
        ...

    def tick_strategy(
        self,
        code: str,
        *,
        config: dict[str, Any],
        meta: dict[str, Any],
        node: str,
        log: Callable[[str], None],
        wall_s: float | None = None,
    ) -> AbstractContextManager[TickStrategySession]:
        """A custom tick strategy (``tick_strategy_backtest``) started in the sandbox and
        ``on_start``-ed: the session is its ``on_step``; removed on leaving the context."""
        ...


class TickStrategySession(Protocol):
    """One running custom tick strategy (runners.tickstrategy)."""

    steps: int

    def step(self, state: dict[str, Any], where: str) -> Any:
        """``on_step(state)``'s intents (unchecked); NodeError naming ``where`` on failure."""
        ...


@dataclass(frozen=True)
class NodeContext:
    """What a node may know about the world beyond its inputs and params.

    ``base_dir`` resolves relative file paths (the .af file's folder for a CLI run).
    ``datasets`` maps a dataset name to its stored Parquet file (for ``dataset_ohlcv``).
    ``log`` receives the node's log lines (the runner tags them with the node id); a line
    starting ``warning: `` is a warning (the run log records it at WARNING level).
    ``outputs`` names the outputs the caller will read (None: all of them); a node may skip
    building the others (a sweep's trial reads a backtest's metrics and equity only).
    ``models`` is where ``predict`` finds registered models (the run's MLflow Model
    Registry); None where there is none.
    ``catalog`` is where ``dataset`` finds catalog versions; None where no catalog is set up.
    ``strategies`` runs ``strategy_backtest``'s strategy modules (in the sandbox); None where
    this process runs no user code.
    """

    base_dir: Path = field(default_factory=Path.cwd)
    datasets: Mapping[str, Path] = field(default_factory=dict)
    log: Callable[[str], None] = field(default=lambda _msg: None)
    confine_paths: bool = False
    outputs: frozenset[str] | None = None
    models: ModelSource | None = None
    catalog: DatasetSource | None = None
    strategies: StrategyBacktester | None = None

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

    def missing_file(self, path: str | Path, *, limit: int = 8) -> str:
        """Why ``path`` cannot be read and what to type instead: where runs look for files
        (the data folder of web runs, the .af file's folder otherwise), the files that are
        there (a close match first) and, in the web app, the uploaded datasets."""
        root = self.base_dir.resolve()
        files = sorted(
            f.relative_to(root).as_posix()
            for f in root.rglob("*")
            if f.is_file() and not f.name.startswith(".")
        )[:200]
        name = Path(path).name
        close = [f for f in files if Path(f).name == name] or [
            f for f in files if name and name.lower() in f.lower()
        ]
        hint = f' Did you mean path="{close[0]}"?' if close else ""
        shown = ", ".join(files[:limit]) + (" ..." if len(files) > limit else "")
        if self.confine_paths:
            where = "web runs read files from their data folder"
            extra = (
                " For your own data, upload a CSV on the Datasets page and read it with "
                'dataset_ohlcv(name="...").'
            )
        else:
            where = f"relative paths are read from {root}"
            extra = ""
        there = f" ({shown})" if files else " (it is empty)"
        return f"no such file: {where}{there}.{hint}{extra}"


class Params(BaseModel):
    """Base of every params model: frozen, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    """For nodes without params."""


class Node(ABC):
    """Base class of every node type. Subclasses set the class attributes and implement run.

    ``metric_keys`` names the keys of a ``metrics`` output, so that ``result.sharpe`` can be
    checked by the compiler; ``text_metric_keys`` are those of them that are not numbers (dates,
    sentences, lists), which a sweep cannot optimise.

    ``panel`` says what the node does with several symbols (:mod:`nodes.panel`): ``"none"``
    (the default) refuses a panel input with a NodeError naming the node and ``panel_hint``
    (what to use instead); ``"per_symbol"`` nodes are run once per symbol on that symbol's own
    bars (exactly a single-symbol run) and their outputs assembled (series wide, tables long);
    ``"native"`` nodes take panels themselves (loaders, cross-sectional nodes). Runners call
    :meth:`execute`, which applies this, never :meth:`run` directly.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1.0.0"
    category: ClassVar[str] = "misc"
    summary: ClassVar[str] = ""
    inputs: ClassVar[tuple[Port, ...]] = ()
    outputs: ClassVar[tuple[Port, ...]] = ()
    params_model: ClassVar[type[Params]] = NoParams
    metric_keys: ClassVar[tuple[str, ...]] = ()
    text_metric_keys: ClassVar[tuple[str, ...]] = ()
    # A param a step may give as its first positional argument, after its inputs (a literal,
    # never a reference): `dataset("us_equities_daily")` means name="us_equities_daily".
    positional_param: ClassVar[str | None] = None
    panel: ClassVar[str] = "none"
    panel_hint: ClassVar[str] = ""

    def __init__(self, ctx: NodeContext | None = None) -> None:
        self.ctx = ctx if ctx is not None else NodeContext()

    @abstractmethod
    def run(self, inputs: Mapping[str, Any], params: Any) -> dict[str, Any]:
        """Compute the outputs (port name -> value) from inputs (port name -> value)."""

    def execute(self, inputs: Mapping[str, Any], params: Any) -> dict[str, Any]:
        """Run the node as its ``panel`` kind says: :meth:`run` on one symbol's data, once per
        symbol on a panel (``per_symbol``), or a NodeError for a panel it cannot take."""
        from nodes import panel

        return panel.run_node(self, inputs, params)

    @classmethod
    def code_fingerprint(cls) -> str:
        """sha256 of the code that computes this node type: its module's source and that of
        every project module it imports, transitively (see :mod:`nodes.codehash`). Part of the
        artifact key, so a changed node, kernel or helper is never served from the cache.
        Each module's source is read once per process (``nodes.codehash``'s cache)."""
        from nodes import codehash

        return codehash.modules_fingerprint(codehash.module_closure(cls.__module__))

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
            "text_metric_keys": list(cls.text_metric_keys),
            "runtime": "builtin",
            "panel": cls.panel,
        } | ({"positional_param": cls.positional_param} if cls.positional_param else {})


N = TypeVar("N", bound=type[Node])


class NodeRegistry:
    """Node types by name. Lookup errors suggest close matches."""

    def __init__(self) -> None:
        self._types: dict[str, type[Node]] = {}

    def register(self, node_type: type[Node]) -> type[Node]:
        """Add a node type; a second type with the same name is refused, unless it is the same
        class reloaded (same module and qualified name): then it replaces the old one and the
        process's code fingerprints are forgotten, so the reloaded code gets its own."""
        name = node_type.name
        existing = self._types.get(name)
        if existing is not None and existing is not node_type:
            if (existing.__module__, existing.__qualname__) != (
                node_type.__module__,
                node_type.__qualname__,
            ):
                raise NodeError(f"node type {name!r} is already registered")
            from nodes import codehash

            codehash.clear_cache()
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
        if port.names_param is not None and (
            not port.variadic or port.names_param not in node_type.params_model.model_fields
        ):
            raise NodeError(
                f"{node_type.name}: names_param of `{port.name}` must be a param of a variadic port"
            )
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


# ---- runtimes ------------------------------------------------------------------------------

BUILTIN_RUNTIME = "builtin"


class UnknownRuntimeError(NodeError):
    """A runtime or language name that no one registered."""


@dataclass(frozen=True)
class RuntimeInfo:
    """A runtime a node can declare: ``builtin`` (the built-in nodes, in the flow's process) or
    one that runs custom nodes written in ``language`` (a sandbox per language today; later
    tick-level and remote runtimes). The names are open: a runtime is usable once registered
    here (the compiler checks IR runtimes and manifest languages against this list) and a
    runner is registered for it in ``runners.registry`` (on the machine that runs the flow)."""

    name: str
    language: str | None = None
    summary: str = ""


_RUNTIMES: dict[str, RuntimeInfo] = {}


def register_runtime(name: str, *, language: str | None = None, summary: str = "") -> RuntimeInfo:
    """Declare a runtime (idempotent for the same declaration; a different one is refused)."""
    if not name or not name.replace("_", "").replace("-", "").isalnum() or not name.islower():
        raise NodeError(f"runtime name {name!r}: use lower-case letters, digits, '-' or '_'")
    info = RuntimeInfo(name, language, summary)
    existing = _RUNTIMES.get(name)
    if existing is not None and existing != info:
        raise NodeError(f"runtime {name!r} is already registered as {existing}")
    _RUNTIMES[name] = info
    return info


def runtimes() -> dict[str, RuntimeInfo]:
    """The registered runtimes by name."""
    return dict(_RUNTIMES)


def languages() -> tuple[str, ...]:
    """The custom-node languages some registered runtime runs, in registration order."""
    return tuple(dict.fromkeys(r.language for r in _RUNTIMES.values() if r.language))


def _unknown(kind: str, name: str, known: list[str]) -> UnknownRuntimeError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    return UnknownRuntimeError(f"unknown {kind} {name!r}{hint} (known: {', '.join(known)})")


def runtime(name: str) -> RuntimeInfo:
    """The runtime called ``name``; raises :class:`UnknownRuntimeError` naming the known ones."""
    info = _RUNTIMES.get(name)
    if info is None:
        raise _unknown("runtime", name, list(_RUNTIMES))
    return info


def runtime_for_language(language: str) -> RuntimeInfo:
    """The runtime that runs custom nodes written in ``language``."""
    for info in _RUNTIMES.values():
        if info.language == language:
            return info
    raise _unknown("language", language, list(languages()))


register_runtime(BUILTIN_RUNTIME, summary="the built-in nodes, in the flow's own process")
register_runtime("python", language="python", summary="custom nodes in Python, sandboxed")
register_runtime(
    "javascript", language="javascript", summary="custom nodes in JavaScript, sandboxed"
)
register_runtime("wasm", language="wasm", summary="custom nodes in WebAssembly, sandboxed")
