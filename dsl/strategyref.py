"""Strategy modules in pipelines: ``strategy_backtest(data, strategy="name@version", ...)``.

The compiler does not read the strategy store itself (dsl imports no storage code): whoever
compiles passes a :class:`StrategyResolver` — the CLI's (stored strategies, or a ``.py`` file
next to the pipeline), the web app's (the strategies its user may read). The step's ``strategy``
is resolved to one exact module version, and the step's spec is derived from it
(:func:`strategy_spec`): the node's own params plus the module's ``CONFIG_SCHEMA`` properties,
which the step gives as keyword arguments and a sweep can vary. Its params in the IR are the
node's, the config (defaults filled in) and the module itself: ``strategy`` pinned
(``"sma_cross@3"``), ``code`` and ``code_hash``, so the IR hash, the artifact key and a re-run
name the same code.

Problems are diagnostics at the ``strategy`` argument: AF220 when it names no module (with the
names that exist), AF221 when a config key of the module is also one of the node's own params.
Config values are checked like params (type and bounds, at the value).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from dsl import tree as t

if TYPE_CHECKING:
    from dsl.nodespec import NodeSpec, ParamIssue
    from dsl.source import Reporter

__all__ = [
    "STRATEGY_KINDS",
    "STRATEGY_NODE",
    "STRATEGY_NODES",
    "ResolvedStrategy",
    "StrategyLookupError",
    "StrategyResolver",
    "strategy_spec",
]

STRATEGY_NODE = "strategy_backtest"
#: the nodes whose ``strategy`` names a strategy module, and the kind of module each runs
#: (``Strategy.on_tick`` bar strategies, ``TickStrategy.on_step`` tick strategies)
STRATEGY_KINDS = {STRATEGY_NODE: "bar", "tick_strategy_backtest": "tick"}
STRATEGY_NODES = tuple(STRATEGY_KINDS)
#: params the compiler writes: never typed in a step
_WRITTEN = ("code", "code_hash")


class StrategyLookupError(LookupError):
    """A reference that names no strategy module or version: ``message`` says what exists;
    ``suggestions`` are names close to the one written."""

    def __init__(self, message: str, suggestions: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.suggestions = list(suggestions)


@dataclass(frozen=True)
class ResolvedStrategy:
    """One exact module: ``ref`` as the IR keeps it (``name@version``, or the file as written),
    its source, the names its ``CONFIG_SCHEMA`` declares and ``check`` (a config → the config
    with defaults filled, or the problems: :class:`~dsl.nodespec.ParamIssue`, one per field)."""

    ref: str
    code: str
    config_keys: tuple[str, ...]
    check: Callable[[Mapping[str, Any]], tuple[dict[str, Any] | None, list[ParamIssue]]] = field(
        compare=False
    )
    #: "bar" (a Strategy) or "tick" (a TickStrategy)
    kind: str = "bar"

    @property
    def code_hash(self) -> str:
        """sha256 of the source."""
        return hashlib.sha256(self.code.encode()).hexdigest()


class StrategyResolver(Protocol):
    """Turns a step's ``strategy`` (``"name"``, ``"name@version"``, or where the resolver
    allows it a file) into one module; raises :class:`StrategyLookupError`."""

    def resolve(self, ref: str) -> ResolvedStrategy: ...


def strategy_spec(
    base: NodeSpec, step: t.Step, resolver: StrategyResolver | None, rep: Reporter
) -> NodeSpec:
    """``base`` (the node's own spec) extended with the module ``step`` names (see the module
    doc). Without a ``strategy`` string literal the binder reports what is missing; where the
    module cannot be resolved (AF220) or its config clashes (AF221), a spec that accepts any
    config key, so the step gets one error rather than one per key."""
    arg = next((a for a in step.call.args if a.key == "strategy"), None)
    if arg is None or not (isinstance(arg.value, t.Lit) and isinstance(arg.value.value, str)):
        return base
    ref = str(arg.value.value)
    if resolver is None:
        rep.report(
            "AF220",
            f"cannot resolve strategy {ref!r}: no strategy store is configured here",
            arg.value.span,
        )
        return _lenient(base)
    try:
        module = resolver.resolve(ref)
    except StrategyLookupError as exc:
        rep.report("AF220", exc.message, arg.value.span, suggestions=exc.suggestions)
        return _lenient(base)
    wanted = STRATEGY_KINDS.get(base.name, module.kind)
    if module.kind != wanted:
        other = next(n for n, k in STRATEGY_KINDS.items() if k == module.kind)
        rep.report(
            "AF220",
            f"strategy {module.ref!r} is a {module.kind} strategy: use {other}, or give "
            f"{base.name} a {'TickStrategy' if wanted == 'tick' else 'Strategy'} module",
            arg.value.span,
        )
        return _lenient(base)
    own = [n for n in base.param_names if n not in _WRITTEN]
    clash = [k for k in module.config_keys if k in base.param_names]
    if clash:
        rep.report(
            "AF221",
            f"strategy {module.ref!r} has config key(s) {', '.join(clash)} that are also "
            f"params of {base.name}; rename them in its CONFIG_SCHEMA",
            arg.value.span,
        )
        return _lenient(base)

    def validate(raw: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[ParamIssue]]:
        mine = {k: v for k, v in raw.items() if k in own}
        mine.update(strategy=module.ref, code=module.code, code_hash=module.code_hash)
        params, issues = base.validate(mine)
        config, config_issues = module.check({k: v for k, v in raw.items() if k not in own})
        issues = [*issues, *config_issues]
        if issues or params is None or config is None:
            return None, issues
        return {**params, **config}, []

    return replace(base, param_names=(*own, *module.config_keys), validate=validate)


def _lenient(base: NodeSpec) -> NodeSpec:
    """``base`` taking any config key unchecked (the step already has its error)."""

    def validate(raw: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[ParamIssue]]:
        return base.validate({k: v for k, v in raw.items() if k in base.param_names})

    class _AnyNames(tuple):  # type: ignore[type-arg]
        def __contains__(self, key: object) -> bool:
            return True

    return replace(base, param_names=_AnyNames(base.param_names), validate=validate)
