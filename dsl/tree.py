"""The syntax tree the compiler checks: plain frozen dataclasses, free of textX.

:mod:`dsl.lower` builds it from the textX model (expanding ``for`` loops on the way), so that no
textX object travels further than the parser. Every node keeps the :class:`~dsl.source.Span` of
the tokens it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from dsl.source import Span

LitKind = Literal["int", "float", "str", "bool", "none", "duration", "date", "datetime", "invalid"]


@dataclass(frozen=True, slots=True)
class Lit:
    """A literal; ``value`` is its JSON form (durations keep their text, dates are ISO)."""

    kind: LitKind
    value: Any
    text: str
    span: Span
    seconds: int | None = None  # durations only

    def to_json(self) -> Any:
        """The JSON value of this literal."""
        return self.value


@dataclass(frozen=True, slots=True)
class ListV:
    """A list value ``[a, b, c]``."""

    items: tuple[Val, ...]
    span: Span

    def to_json(self) -> Any:
        """A JSON list, if every item is a literal (raises TypeError on references)."""
        return [to_json(v) for v in self.items]


@dataclass(frozen=True, slots=True)
class RefV:
    """A reference ``step`` or ``step.attr`` (a port or a column)."""

    step: str
    attr: str | None
    span: Span
    step_span: Span
    attr_span: Span | None = None

    @property
    def text(self) -> str:
        """The reference as written (``data.close``)."""
        return self.step if self.attr is None else f"{self.step}.{self.attr}"


Val = Lit | ListV | RefV


def to_json(v: Val) -> Any:
    """The JSON form of a value; raises TypeError when it holds a reference."""
    if isinstance(v, RefV):
        raise TypeError(f"reference {v.text} is not a literal")
    return v.to_json()


def is_invalid(v: Val) -> bool:
    """True when a value holds a literal already reported as invalid (checks skip it)."""
    if isinstance(v, Lit):
        return v.kind == "invalid"
    if isinstance(v, ListV):
        return any(is_invalid(i) for i in v.items)
    return False


def refs_in(v: Val) -> list[RefV]:
    """Every reference inside a value (a list's items included), in order."""
    if isinstance(v, RefV):
        return [v]
    if isinstance(v, ListV):
        return [r for item in v.items for r in refs_in(item)]
    return []


def contains_ref(v: Val) -> RefV | None:
    """The first reference inside a value, if any."""
    if isinstance(v, RefV):
        return v
    if isinstance(v, ListV):
        for item in v.items:
            found = contains_ref(item)
            if found is not None:
                return found
    return None


@dataclass(frozen=True, slots=True)
class Arg:
    """A call argument: positional (``key`` None) or ``key=value``."""

    key: str | None
    key_span: Span | None
    value: Val
    span: Span


@dataclass(frozen=True, slots=True)
class Call:
    """``type(args...)``."""

    type: str
    type_span: Span
    args: tuple[Arg, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Step:
    """``name = call``; ``index`` is the source order after expansion."""

    name: str
    name_span: Span
    call: Call
    span: Span
    index: int


@dataclass(frozen=True, slots=True)
class Header:
    """``pipeline NAME "Title"``."""

    name: str
    title: str | None
    span: Span


@dataclass(frozen=True, slots=True)
class Use:
    """``use name@spec``."""

    name: str
    name_span: Span
    spec: str
    spec_span: Span
    span: Span


@dataclass(frozen=True, slots=True)
class Space:
    """A search space: a list (``fn`` None) or ``fn(args...)``."""

    fn: str | None
    fn_span: Span
    args: tuple[Arg, ...]
    values: ListV | None
    span: Span


@dataclass(frozen=True, slots=True)
class SweepAssign:
    """``step.param = space``."""

    step: str
    step_span: Span
    param: str
    param_span: Span
    space: Space
    span: Span


@dataclass(frozen=True, slots=True)
class Expr:
    """A constraint expression; ``op`` as in :class:`dsl.ir.Expr` (``const``, ``param``, ...)."""

    op: str
    span: Span
    args: tuple[Expr, ...] = ()
    value: Any = None
    step: str | None = None
    param: str | None = None
    ref: RefV | None = None  # a bare name written where a param (step.param) was expected


@dataclass(frozen=True, slots=True)
class Objective:
    """``objective maximize step.metric`` (or ``step.port.metric``)."""

    direction: str
    direction_span: Span
    step: str
    step_span: Span
    parts: tuple[str, ...]
    parts_span: Span
    span: Span


@dataclass(frozen=True, slots=True)
class Sweep:
    """A ``sweep`` block."""

    method: str
    method_span: Span
    options: tuple[Arg, ...]
    assigns: tuple[SweepAssign, ...]
    wheres: tuple[Expr, ...]
    objectives: tuple[Objective, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class WalkForward:
    """``walkforward(train=..., test=..., step=..., anchored=...)``."""

    args: tuple[Arg, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Emit:
    """``emit step.port to sink(...)``."""

    ref: RefV
    sink: Call
    span: Span


@dataclass(frozen=True, slots=True)
class StreamSetting:
    """One ``source = ...`` / ``warmup = ...`` / ``every X after Y`` line."""

    kind: Literal["source", "warmup", "every"]
    span: Span
    call: Call | None = None
    value: Val | None = None
    after: Val | None = None


@dataclass(frozen=True, slots=True)
class Stream:
    """A ``stream { ... }`` block."""

    settings: tuple[StreamSetting, ...]
    emits: tuple[Emit, ...]
    span: Span


@dataclass
class Program:
    """A whole file after lowering and ``for`` expansion, items in source order."""

    headers: list[Header] = field(default_factory=list)
    uses: list[Use] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    sweeps: list[Sweep] = field(default_factory=list)
    walkforwards: list[WalkForward] = field(default_factory=list)
    streams: list[Stream] = field(default_factory=list)
    first_item: Span | None = None  # where the header should have been
