"""Checking a ``sweep`` block into :class:`~dsl.ir.SweepIR`.

Targets must name a step and one of its params; every value a space can yield at its edges is
validated by the node's params model; ``where`` constraints are evaluated over the whole grid
(when finite and at most :data:`MAX_COMBINATIONS`) to count the trials and to catch constraints
that exclude everything.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from dsl import tree as t
from dsl.binder import Binder, BoundStep
from dsl.diagnostics import did_you_mean
from dsl.ir import (
    OPTUNA_PRUNERS,
    OPTUNA_SAMPLERS,
    PRUNE_STEPS_MAX,
    PRUNE_STEPS_MIN,
    Expr,
    FloatSpace,
    IntSpace,
    Objective,
    SweepIR,
    SweepParam,
    ValuesSpace,
    compile_constraint,
)
from dsl.source import Reporter
from dsl.strategyref import STRATEGY_NODES
from dsl.sweep_spaces import build_space, finite_values, space_size
from nodes.base import PortType

MAX_COMBINATIONS = 100_000
#: The most combinations a ``sweep grid`` may have (before constraints), and the most trials a
#: ``random`` or ``optuna`` sweep may ask for: every one is a backtest. Over it: AF314.
MAX_GRID_COMBINATIONS = 10_000
METHODS = ("grid", "random", "optuna")
OPTIONS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "grid": {},
    "random": {"trials": int, "seed": int},
    "optuna": {
        "trials": int,
        "seed": int,
        "sampler": str,
        "pruner": str,
        "prune_steps": int,
        "timeout": (int, float),
    },
}
#: The names a string option may take (a wrong one: AF306 with a did-you-mean).
CHOICES: dict[str, tuple[str, ...]] = {"sampler": OPTUNA_SAMPLERS, "pruner": OPTUNA_PRUNERS}
Space = ValuesSpace | IntSpace | FloatSpace


def _type_words(kind: type | tuple[type, ...]) -> str:
    """``int`` → "an integer"; ``str`` → "a quoted string"; ``(int, float)`` → "a number"."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds:
        return "a number"
    return "an integer" if int in kinds else "a quoted string"


def _option_problem(key: str, value: Any) -> str | None:
    """Why an option's value (of the right type) is not allowed, or None."""
    if key in CHOICES and value not in CHOICES[key]:
        return f"unknown Optuna {key} `{value}` ({', '.join(CHOICES[key])})"
    if key == "seed" and value < 0:
        return "`seed` must be 0 or more"
    if key == "timeout" and not (math.isfinite(value) and value > 0):
        return "`timeout` must be more than 0 seconds"
    if key == "prune_steps" and not PRUNE_STEPS_MIN <= value <= PRUNE_STEPS_MAX:
        return f"`prune_steps` must be from {PRUNE_STEPS_MIN} to {PRUNE_STEPS_MAX}"
    return None


class SweepChecker:
    """Checks one sweep block against the bound steps."""

    def __init__(self, rep: Reporter, binder: Binder, bound: dict[str, BoundStep]) -> None:
        self.rep = rep
        self.binder = binder
        self.bound = bound

    def check(self, sweep: t.Sweep) -> SweepIR | None:
        """The sweep's IR, or None after reporting why not."""
        errors_before = sum(d.is_error for d in self.rep.diagnostics)
        method = self._method(sweep)
        options = self._options(sweep, method)
        params: list[SweepParam] = []
        seen: set[tuple[str, str]] = set()
        for assign in sweep.assigns:
            if (assign.step, assign.param) in seen:
                self.rep.report(
                    "AF308",
                    f"`{assign.step}.{assign.param}` is swept twice",
                    assign.param_span.cover(assign.step_span),
                )
                continue
            seen.add((assign.step, assign.param))
            param = self._assign(assign, method)
            if param is not None:
                params.append(param)
        if not sweep.assigns:
            self.rep.report("AF303", "the sweep has no `step.param = ...` lines", sweep.method_span)
        wheres = [w for w in (self._expr(e, seen) for e in sweep.wheres) if w is not None]
        objective = self._objective(sweep)
        if method in ("random", "optuna") and objective is None and not sweep.objectives:
            self.rep.report(
                "AF311",
                f"a `{method}` sweep needs `objective maximize|minimize step.metric`",
                sweep.method_span,
            )
        grid_size = None
        complete = len(params) == len(sweep.assigns)
        if complete and method == "grid" and not self._grid_within_cap(sweep, params):
            complete = False
        if complete and len(wheres) == len(sweep.wheres):
            grid_size = self._count(sweep, params, wheres, method)
        if sum(d.is_error for d in self.rep.diagnostics) > errors_before or method is None:
            return None
        return SweepIR(
            method=method,  # type: ignore[arg-type]
            options=options,
            params=tuple(params),
            where=tuple(wheres),
            objective=objective,
            grid_size=grid_size if method == "grid" else None,
        )

    def _grid_within_cap(self, sweep: t.Sweep, params: list[SweepParam]) -> bool:
        """AF314 when the grid has more than :data:`MAX_GRID_COMBINATIONS` combinations,
        counted from each space's size (nothing is listed)."""
        sizes = [space_size(p.space) for p in params]
        if any(n is None for n in sizes):
            return True  # a continuous space: AF307 was reported for it
        total = math.prod(n for n in sizes if n is not None)
        if total <= MAX_GRID_COMBINATIONS:
            return True
        factors = " × ".join(f"{n:,}" for n in sizes if n is not None)
        self.rep.report(
            "AF314",
            f"the grid has {total:,} combinations ({factors}); the limit is "
            f"{MAX_GRID_COMBINATIONS:,}",
            sweep.method_span,
            hint="narrow the ranges or coarsen their steps, or sample the space with "
            "`sweep random(trials=...)` or `sweep optuna(trials=...)`",
        )
        return False

    # -- header ------------------------------------------------------------------------------

    def _method(self, sweep: t.Sweep) -> str | None:
        if sweep.method in METHODS:
            return sweep.method
        self.rep.report(
            "AF306",
            f"unknown sweep method `{sweep.method}` (grid, random or optuna)",
            sweep.method_span,
            suggestions=did_you_mean(sweep.method, METHODS),
        )
        return None

    def _options(self, sweep: t.Sweep, method: str | None) -> dict[str, Any]:
        allowed = OPTIONS.get(method or "", {})
        out: dict[str, Any] = {}
        if method is None:
            return out
        for arg in sweep.options:
            key = arg.key or ""
            if key not in allowed:
                what = "takes no options" if not allowed else f"has no option `{key}`"
                self.rep.report(
                    "AF306",
                    f"`{method}` sweep {what}",
                    arg.key_span or arg.span,
                    suggestions=did_you_mean(key, allowed),
                )
                continue
            value = arg.value
            ok = isinstance(value, t.Lit) and isinstance(value.value, allowed[key])
            if not ok or isinstance(getattr(value, "value", None), bool):
                choices = CHOICES.get(key, ())
                bare = value.step if isinstance(value, t.RefV) and value.attr is None else None
                if bare in choices:  # pruner=median: the name, unquoted
                    choices = (bare, *(c for c in choices if c != bare))
                self.rep.report(
                    "AF306",
                    f"sweep option `{key}` takes {_type_words(allowed[key])}",
                    value.span,
                    hint=(
                        f'{key}="{choices[0]}" (one of {", ".join(choices)})' if choices else None
                    ),
                )
                continue
            assert isinstance(value, t.Lit)
            if key == "trials" and value.value < 1:
                self.rep.report("AF306", "`trials` must be at least 1", value.span)
                continue
            problem = _option_problem(key, value.value)
            if problem is not None:
                self.rep.report(
                    "AF306",
                    problem,
                    value.span,
                    suggestions=did_you_mean(str(value.value), CHOICES.get(key, ())),
                )
                continue
            if key == "trials" and value.value > MAX_GRID_COMBINATIONS:
                self.rep.report(
                    "AF314",
                    f"{value.value:,} trials; the limit is {MAX_GRID_COMBINATIONS:,}",
                    value.span,
                )
                continue
            out[key] = value.value
        needs_trials = method in ("random", "optuna") and "trials" not in out
        if needs_trials and not any(a.key == "trials" for a in sweep.options):
            self.rep.report(
                "AF306",
                f"a `{method}` sweep needs `trials=N`",
                sweep.method_span,
                hint=f"sweep {method}(trials=100, seed=7) {{ ... }}",
            )
        return out

    # -- targets and spaces ------------------------------------------------------------------

    def _assign(self, assign: t.SweepAssign, method: str | None) -> SweepParam | None:
        if assign.step not in self.binder.steps:
            self.rep.report(
                "AF301",
                f"sweep target `{assign.step}` is not a step",
                assign.step_span,
                suggestions=did_you_mean(assign.step, self.binder.steps),
            )
            return None
        spec = self.binder.spec_of(assign.step)
        if spec is not None and assign.param not in spec.param_names:
            self.rep.report(
                "AF302",
                f"`{assign.step}` ({spec.name}) has no param `{assign.param}`",
                assign.param_span,
                suggestions=did_you_mean(assign.param, spec.param_names),
            )
            return None
        if spec is not None and spec.name in STRATEGY_NODES and assign.param == "strategy":
            # the compiler resolved the module once and wrote its code into the step: a trial
            # with another `strategy` would run that code under the other name
            self.rep.report(
                "AF302",
                f"`{assign.step}.strategy` cannot be swept: the step runs the one module the "
                "compiler resolved; write one step per strategy module, and sweep their config "
                "keys",
                assign.param_span,
            )
            return None
        space = build_space(assign.space, self.rep, grid=method == "grid")
        if space is None:
            return None
        if spec is not None and not self._validate_space(assign, space):
            return None
        return SweepParam(node=assign.step, param=assign.param, space=space)

    def _validate_space(self, assign: t.SweepAssign, space: Space) -> bool:
        """Validate the values a space yields (its edges for ranges) with the params model."""
        spec = self.binder.spec_of(assign.step)
        assert spec is not None
        base = dict(self.bound[assign.step].raw_params) if assign.step in self.bound else {}
        samples: list[tuple[Any, Any]] = []  # (value, span)
        if isinstance(space, ValuesSpace):
            items = assign.space.values.items if assign.space.values else ()
            spans = [i.span for i in items] or [assign.space.span] * len(space.values)
            if assign.space.fn == "choice" or len(spans) != len(space.values):
                spans = [assign.space.span] * len(space.values)
            samples = list(zip(space.values, spans, strict=True))
        else:
            samples = [(space.low, assign.space.span), (space.high, assign.space.span)]
        ok = True
        checked: set[str] = set()
        for value, span in samples:
            key = repr(value)
            if key in checked:
                continue
            checked.add(key)
            _, issues = spec.validate({**base, assign.param: value})
            issue = next((i for i in issues if i.field == assign.param), None)
            if issue is not None:
                ok = False
                code = "AF105" if issue.kind == "bounds" else "AF104"
                self.rep.report(
                    code,
                    f"sweep value {value!r} for `{assign.step}.{assign.param}`: {issue.message}",
                    span,
                )
        return ok

    # -- constraints -------------------------------------------------------------------------

    def _expr(self, e: t.Expr, swept: set[tuple[str, str]]) -> Expr | None:
        if e.op == "const":
            if e.ref is not None:
                self.rep.report(
                    "AF309",
                    f"`{e.ref.text}` in a constraint is not a param; write `step.param`",
                    e.ref.span,
                )
                return None
            return Expr(op="const", value=e.value)
        if e.op == "param":
            return self._param_expr(e, swept)
        args = [self._expr(a, swept) for a in e.args]
        if any(a is None for a in args):
            return None
        return Expr(op=e.op, args=tuple(a for a in args if a is not None))

    def _param_expr(self, e: t.Expr, swept: set[tuple[str, str]]) -> Expr | None:
        assert e.step is not None and e.param is not None and e.ref is not None
        if (e.step, e.param) in swept:
            return Expr(op="param", node=e.step, param=e.param)
        if e.step not in self.binder.steps:
            self.rep.report(
                "AF301",
                f"constraint names `{e.step}`, which is not a step",
                e.ref.step_span,
                suggestions=did_you_mean(e.step, self.binder.steps),
            )
            return None
        bound = self.bound.get(e.step)
        values = (bound.params if bound and bound.params is not None else None) or (
            bound.raw_params if bound else {}
        )
        if e.param in values:
            return Expr(op="const", value=values[e.param])
        spec = self.binder.spec_of(e.step)
        names = spec.param_names if spec else ()
        self.rep.report(
            "AF309",
            f"constraint names `{e.step}.{e.param}`, which is neither swept nor set",
            e.ref.attr_span or e.span,
            suggestions=did_you_mean(e.param, names),
        )
        return None

    def _count(
        self, sweep: t.Sweep, params: list[SweepParam], wheres: list[Expr], method: str | None
    ) -> int | None:
        """Trials left after constraints; reports AF304/AF310/AF313 as they apply."""
        sizes = [space_size(p.space) for p in params]
        if any(n is None for n in sizes) or not params:
            return None
        total = math.prod(n for n in sizes if n is not None)
        if not wheres:
            return total
        if total > MAX_COMBINATIONS:
            self.rep.report(
                "AF313",
                f"{total:,} combinations: constraints not checked exhaustively",
                sweep.wheres[0].span,
                severity="info",
            )
            return None
        domains = [finite_values(p.space) for p in params]
        keys = [(p.node, p.param) for p in params]
        checks = [compile_constraint(w) for w in wheres]
        count = 0
        try:
            for combo in itertools.product(*[d for d in domains if d is not None]):
                env = dict(zip(keys, combo, strict=True))
                if all(c(env) for c in checks):
                    count += 1
        except (TypeError, ZeroDivisionError, ValueError) as exc:
            self.rep.report("AF310", f"constraint cannot be evaluated: {exc}", sweep.wheres[0].span)
            return None
        if count == 0:
            span = sweep.wheres[0].span.cover(sweep.wheres[-1].span)
            self.rep.report(
                "AF304", f"the constraints exclude all {total:,} combinations of the grid", span
            )
        return count

    # -- objective ---------------------------------------------------------------------------

    def _objective(self, sweep: t.Sweep) -> Objective | None:
        if not sweep.objectives:
            return None
        for extra in sweep.objectives[1:]:
            self.rep.report("AF305", "a sweep has one objective", extra.span)
        o = sweep.objectives[0]
        if o.direction not in ("maximize", "minimize"):
            self.rep.report(
                "AF305",
                f"objective direction must be `maximize` or `minimize`, not `{o.direction}`",
                o.direction_span,
                suggestions=did_you_mean(o.direction, ("maximize", "minimize")),
            )
            return None
        if o.step not in self.binder.steps:
            self.rep.report(
                "AF305",
                f"objective names `{o.step}`, which is not a step",
                o.step_span,
                suggestions=did_you_mean(o.step, self.binder.steps),
            )
            return None
        spec = self.binder.spec_of(o.step)
        if spec is None:
            return None
        metric_ports = [p for p in spec.outputs if p.type == PortType.METRICS]
        if not metric_ports:
            self.rep.report("AF305", f"`{o.step}` ({spec.name}) produces no metrics", o.step_span)
            return None
        port, key = metric_ports[0], o.parts[-1]
        if len(o.parts) == 2:
            named = spec.output_port(o.parts[0])
            if named is None or named.type != PortType.METRICS:
                self.rep.report(
                    "AF305", f"`{o.step}.{o.parts[0]}` is not a metrics output", o.parts_span
                )
                return None
            port = named
        elif len(o.parts) > 2:
            self.rep.report("AF305", "write `step.metric` or `step.port.metric`", o.parts_span)
            return None
        if spec.metric_keys and key not in spec.metric_keys:
            self.rep.report(
                "AF305",
                f"`{key}` is not a metric of `{o.step}` ({spec.name})",
                o.parts_span,
                suggestions=did_you_mean(key, spec.metric_keys),
            )
            return None
        if key in spec.text_metric_keys:
            numeric = [k for k in spec.metric_keys if k not in spec.text_metric_keys]
            self.rep.report(
                "AF305",
                f"`{key}` of `{o.step}` ({spec.name}) is not a number: an objective must be a "
                "numeric metric",
                o.parts_span,
                hint="e.g. " + ", ".join(numeric[:4]),
            )
            return None
        return Objective(direction=o.direction, node=o.step, port=port.name, key=key)  # type: ignore[arg-type]
