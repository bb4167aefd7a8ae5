"""The pipeline IR: what the compiler produces and everything downstream consumes.

Frozen pydantic models that round-trip through JSON. ``PipelineIR.nodes`` is in topological
order (ties broken by source order). :meth:`PipelineIR.content_hash` depends only on what the
pipeline means: not on whitespace, comments or source positions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

IR_SCHEMA_VERSION = 1

JsonValue = Any  # JSON-compatible: None, bool, int, float, str, list, dict

# A runtime or language name. The list is open (``nodes.base.register_runtime``): the compiler
# checks names against the registered runtimes (AF408), the worker against its runners.
RuntimeName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceSpan(_Frozen):
    """Where something came from in the .af text (1-based lines and columns, end exclusive)."""

    line: int
    col: int
    end_line: int
    end_col: int


class InputBinding(_Frozen):
    """An input fed from another node's output port, optionally one column of it."""

    node: str
    port: str
    column: str | None = None


class NodeIR(_Frozen):
    """One node of the graph.

    ``inputs`` maps input port name to a binding (a list of bindings for a variadic port).
    ``outputs`` maps output port name to its port type. ``runtime`` is ``builtin`` for the
    built-in nodes, else the runtime of the custom node's language (``python``, ``javascript``,
    ``wasm``, or any runtime registered later), with its ``code_hash``.
    """

    id: str
    type: str
    version: str
    params: dict[str, JsonValue] = Field(default_factory=dict)
    inputs: dict[str, InputBinding | tuple[InputBinding, ...]] = Field(default_factory=dict)
    outputs: dict[str, str] = Field(default_factory=dict)
    runtime: RuntimeName = "builtin"
    code_hash: str | None = None
    span: SourceSpan | None = None

    def bindings(self) -> list[tuple[str, InputBinding]]:
        """(port, binding) pairs, variadic ports flattened, in port order."""
        out: list[tuple[str, InputBinding]] = []
        for port, b in self.inputs.items():
            if isinstance(b, tuple):
                out.extend((port, x) for x in b)
            else:
                out.append((port, b))
        return out

    def dependencies(self) -> list[str]:
        """Ids of the nodes this one reads from, in first-use order, without repeats."""
        seen: dict[str, None] = {}
        for _, b in self.bindings():
            seen.setdefault(b.node, None)
        return list(seen)


class UsePin(_Frozen):
    """A ``use name@range`` line, resolved to an exact version and code hash."""

    name: str
    requested: str
    version: str
    code_hash: str
    language: RuntimeName


# ---- sweeps --------------------------------------------------------------------------------


class ValuesSpace(_Frozen):
    """An explicit list of values (grid sweeps, or a categorical choice)."""

    kind: Literal["values"] = "values"
    values: tuple[JsonValue, ...]


class IntSpace(_Frozen):
    """Integers in [low, high] (inclusive), optionally log-uniform, optional step."""

    kind: Literal["int"] = "int"
    low: int
    high: int
    step: int = 1
    log: bool = False


class FloatSpace(_Frozen):
    """Floats in [low, high], optionally log-uniform, optional step."""

    kind: Literal["float"] = "float"
    low: float
    high: float
    step: float | None = None
    log: bool = False


SweepSpace = Annotated[ValuesSpace | IntSpace | FloatSpace, Field(discriminator="kind")]


class SweepParam(_Frozen):
    """One swept param: ``node.param = space``."""

    node: str
    param: str
    space: SweepSpace


class Expr(_Frozen):
    """A constraint expression tree (``where`` clauses).

    ``op`` is one of: ``const`` (``value``), ``param`` (``node``/``param``), the comparisons
    ``< <= > >= == !=``, the arithmetic ``+ - * /``, ``and``, ``or``, ``not``.
    """

    op: str
    args: tuple[Expr, ...] = ()
    value: JsonValue = None
    node: str | None = None
    param: str | None = None


# what a constraint's operators do (the compiler's grid count and the sweep's trials agree)
CONSTRAINT_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
}


def compile_constraint(e: Expr) -> Callable[[dict[tuple[str, str], Any]], Any]:
    """A closure evaluating a constraint (a ``where`` line's :class:`Expr`) over one
    combination ``{(node, param): value}`` (the compiler's count and the sweep's trials)."""
    if e.op == "const":
        value = e.value
        return lambda env: value
    if e.op == "param":
        key = (e.node or "", e.param or "")
        return lambda env: env[key]
    args = [compile_constraint(a) for a in e.args]
    if e.op == "not":
        return lambda env: not args[0](env)
    if e.op == "and":
        return lambda env: all(a(env) for a in args)
    if e.op == "or":
        return lambda env: any(a(env) for a in args)
    fn = CONSTRAINT_OPS[e.op]
    left, right = args
    return lambda env: fn(left(env), right(env))


class Objective(_Frozen):
    """What a sweep optimises: a metric of a node's metrics output."""

    direction: Literal["maximize", "minimize"]
    node: str
    port: str
    key: str


#: The Optuna samplers a ``sweep optuna(sampler=...)`` may name (``tpe`` is the default). CMA-ES
#: is left out: it cannot sample categorical spaces (``choice``/lists) and needs ``cmaes``.
OPTUNA_SAMPLERS = ("tpe", "random", "qmc")
#: The Optuna pruners a ``sweep optuna(pruner=...)`` may name (``none`` is the default): a
#: pruner evaluates each batch's trials in ``prune_steps`` stages on growing prefixes of the
#: search window and stops the unpromising ones early (:mod:`flows.sweepoptuna`).
OPTUNA_PRUNERS = ("none", "median", "successive_halving", "hyperband")
#: ``prune_steps``: how many stages (the last is the whole window), its bounds and default.
PRUNE_STEPS_MIN, PRUNE_STEPS_MAX, PRUNE_STEPS_DEFAULT = 2, 10, 4


class SweepIR(_Frozen):
    """A sweep block: ``grid``, ``random`` or ``optuna`` over params, with constraints."""

    method: Literal["grid", "random", "optuna"]
    options: dict[str, JsonValue] = Field(default_factory=dict)
    params: tuple[SweepParam, ...]
    where: tuple[Expr, ...] = ()
    objective: Objective | None = None
    grid_size: int | None = None  # trials a grid yields after constraints (None if not a grid)


class WalkForwardIR(_Frozen):
    """Walk-forward folds; durations as written (``2y``) and in seconds."""

    train: str
    test: str
    step: str
    train_seconds: int
    test_seconds: int
    step_seconds: int
    anchored: bool = False
    embargo: str | None = None  # a gap between each training window and its test window
    embargo_seconds: int = 0


# ---- streaming -----------------------------------------------------------------------------


class SinkIR(_Frozen):
    """An ``emit step.port to sink(...)`` line."""

    node: str
    port: str
    column: str | None = None
    sink: str
    params: dict[str, JsonValue] = Field(default_factory=dict)


class StreamIR(_Frozen):
    """A ``stream`` block: source, warm-up, schedule and sinks."""

    source: str
    source_params: dict[str, JsonValue] = Field(default_factory=dict)
    warmup: str | None = None
    warmup_seconds: int | None = None
    every: str | None = None
    every_seconds: int | None = None
    after: str | None = None
    after_seconds: int | None = None
    sinks: tuple[SinkIR, ...] = ()


# ---- the pipeline --------------------------------------------------------------------------


class PipelineIR(_Frozen):
    """A compiled pipeline: nodes in topological order plus optional sweep/walk-forward/stream."""

    schema_version: int = IR_SCHEMA_VERSION
    name: str
    title: str | None = None
    nodes: tuple[NodeIR, ...]
    uses: tuple[UsePin, ...] = ()
    sweep: SweepIR | None = None
    walkforward: WalkForwardIR | None = None
    stream: StreamIR | None = None
    source_hash: str | None = None

    def node(self, node_id: str) -> NodeIR:
        """The node with this id (KeyError if none)."""
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def node_ids(self) -> list[str]:
        """Node ids in topological order."""
        return [n.id for n in self.nodes]

    def dependents(self, node_id: str) -> list[str]:
        """Ids of the nodes that read from ``node_id``."""
        return [n.id for n in self.nodes if node_id in n.dependencies()]

    def to_json(self, *, indent: int | None = 2) -> str:
        """The IR as JSON text."""
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> PipelineIR:
        """Parse IR JSON (raises pydantic's ValidationError on bad input)."""
        return cls.model_validate_json(text)

    def canonical(self) -> dict[str, Any]:
        """What the content hash covers: everything but source positions and the source hash."""
        data = self.model_dump(mode="json", exclude={"source_hash"})
        for n in data["nodes"]:
            n.pop("span", None)
        return data

    def content_hash(self) -> str:
        """sha256 of the canonical JSON: stable across whitespace, comments and positions."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()
