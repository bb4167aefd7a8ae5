"""Lowering: the textX model to :mod:`dsl.tree`, literals decoded and ``for`` loops expanded.

This is the only module (besides :mod:`dsl.parser`) that touches textX objects. A loop body is
lowered once per value with the loop variable bound: ``{w}`` in names is substituted and a bare
``w`` used as a value becomes the literal.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Any

from dsl import keywords
from dsl import tree as t
from dsl.source import Reporter, Span

#: Seconds per duration unit (``M`` is 30 days, ``y`` 365 days).
DURATION_UNITS: dict[str, int] = {
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "M": 30 * 86400,
    "y": 365 * 86400,
}
MAX_STEPS = 10_000
MAX_EXPR_TERMS = 256
_TEMPLATE = re.compile(r"\{([A-Za-z_]\w*)\}")
_IDENT = re.compile(r"[A-Za-z_]\w*\Z")
KEYWORDS = frozenset(keywords.KEYWORDS)  # reserved words: never names (dsl/keywords.py)

Env = dict[str, t.Lit]


def span_of(obj: Any) -> Span:
    """The span of a textX object."""
    return Span(obj._tx_position, obj._tx_position_end)


def duration_seconds(text: str) -> int:
    """Seconds in a duration literal such as ``30d`` (see :data:`DURATION_UNITS`)."""
    return int(text[:-1]) * DURATION_UNITS[text[-1]]


class Lowerer:
    """Builds a :class:`~dsl.tree.Program` from a textX model, reporting literal/loop errors."""

    def __init__(self, reporter: Reporter) -> None:
        self.rep = reporter
        self.program = t.Program()
        self._index = 0
        self._budget_hit = False

    # -- top level ---------------------------------------------------------------------------

    def lower(self, model: Any) -> t.Program:
        """Lower every top-level item, in source order."""
        for item in getattr(model, "items", None) or []:  # an empty file parses to ""
            if self.program.first_item is None:
                self.program.first_item = span_of(item)
            kind = type(item).__name__
            if kind == "Header":
                title = self.string(item.title) if item.title is not None else None
                title = title if title is not None or item.title is None else item.title.value
                self.program.headers.append(t.Header(item.name, title, span_of(item)))
            elif kind == "Use":
                self.program.uses.append(self.use(item))
            elif kind == "Step":
                self.step(item, {})
            elif kind == "ForLoop":
                self.loop(item, {})
            elif kind == "Sweep":
                self.program.sweeps.append(self.sweep(item))
            elif kind == "WalkForward":
                args = tuple(self.arg(a, {}) for a in item.args)
                self.program.walkforwards.append(t.WalkForward(args, span_of(item)))
            elif kind == "Stream":
                self.program.streams.append(self.stream(item))
        return self.program

    def use(self, item: Any) -> t.Use:
        s = span_of(item)
        name_start = item._tx_position + 3
        name_start = self.rep.source.text.index(item.name, name_start)
        spec_end = s.end
        return t.Use(
            item.name,
            Span(name_start, name_start + len(item.name)),
            item.spec,
            Span(spec_end - len(item.spec), spec_end),
            s,
        )

    # -- steps and loops ---------------------------------------------------------------------

    def step(self, item: Any, env: Env) -> None:
        if len(self.program.steps) >= MAX_STEPS:
            if not self._budget_hit:
                self._budget_hit = True
                self.rep.report(
                    "AF004",
                    f"more than {MAX_STEPS} steps after `for` expansion",
                    span_of(item),
                )
            return
        s = span_of(item)
        name_span = Span(s.start, s.start + len(item.name))
        name = self.name(item.name, name_span, env)
        self.program.steps.append(
            t.Step(name, name_span, self.call(item.call, env), s, self._index)
        )
        self._index += 1

    def loop(self, item: Any, env: Env) -> None:
        var_start = self.rep.source.text.index(item.var, item._tx_position + 3)
        var_span = Span(var_start, var_start + len(item.var))
        if item.var in env:
            self.rep.report("AF207", f"loop variable `{item.var}` shadows an outer one", var_span)
        values = self.value(item.values, env)
        assert isinstance(values, t.ListV)
        if not values.items:
            self.rep.warn("AF208", "`for` over an empty list expands to nothing", values.span)
        for v in values.items:
            if not isinstance(v, t.Lit):
                self.rep.report("AF208", "loop values must be literals", v.span)
                return
        for v in values.items:
            assert isinstance(v, t.Lit)
            inner = {**env, item.var: v}
            for body in item.body:
                if type(body).__name__ == "ForLoop":
                    self.loop(body, inner)
                else:
                    self.step(body, inner)

    def name(self, raw: str, span: Span, env: Env) -> str:
        """Substitute ``{var}`` templates; report unknown variables and invalid results."""
        if "{" not in raw:
            return raw
        bad = [m.group(1) for m in _TEMPLATE.finditer(raw) if m.group(1) not in env]
        if bad:
            where = "outside a `for` loop" if not env else "that is not a loop variable"
            self.rep.report("AF207", f"name template `{{{bad[0]}}}` {where}", span)
            return raw
        name = _TEMPLATE.sub(lambda m: _name_part(env[m.group(1)]), raw)
        if not _IDENT.match(name) or name in KEYWORDS:
            self.rep.report(
                "AF207", f"template `{raw}` expands to `{name}`, not a valid name", span
            )
        return name

    def call(self, item: Any, env: Env) -> t.Call:
        s = span_of(item)
        args = tuple(self.arg(a, env) for a in item.args)
        return t.Call(item.type, Span(s.start, s.start + len(item.type)), args, s)

    def arg(self, item: Any, env: Env) -> t.Arg:
        s = span_of(item)
        value = self.value(item.value, env)
        if type(item).__name__ == "KwArg":
            return t.Arg(item.key, Span(s.start, s.start + len(item.key)), value, s)
        return t.Arg(None, None, value, s)

    # -- values ------------------------------------------------------------------------------

    def value(self, item: Any, env: Env) -> t.Val:
        kind = type(item).__name__
        s = span_of(item)
        if kind == "ListLit":
            return t.ListV(tuple(self.value(v, env) for v in item.items), s)
        if kind == "Ref":
            return self.ref(item, env)
        text = item.value
        if kind == "NumberLit":
            return self.number(text, s)
        if kind == "StringLit":
            value = self.string(item)
            return t.Lit("str" if value is not None else "invalid", value, text, s)
        if kind == "BoolLit":
            return t.Lit("bool", text == "true", text, s)
        if kind == "NoneLit":
            return t.Lit("none", None, text, s)
        if kind == "DurationLit":
            return t.Lit("duration", text, text, s, seconds=duration_seconds(text))
        return self.date(text, s)

    def ref(self, item: Any, env: Env) -> t.Val:
        s = span_of(item)
        step_span = Span(s.start, s.start + len(item.step))
        attr_span = Span(s.end - len(item.attr), s.end) if item.attr else None
        if item.step in env:
            if item.attr:
                self.rep.report(
                    "AF207", f"loop variable `{item.step}` has no `.{item.attr}`", attr_span or s
                )
                return t.Lit("invalid", None, item.step, s)
            lit = env[item.step]
            return t.Lit(lit.kind, lit.value, lit.text, s, lit.seconds)
        name = self.name(item.step, step_span, env)
        return t.RefV(name, item.attr or None, s, step_span, attr_span)

    def number(self, text: str, s: Span) -> t.Lit:
        try:
            if any(c in text for c in ".eE"):
                return t.Lit("float", float(text), text, s)
            return t.Lit("int", int(text), text, s)
        except ValueError:
            self.rep.report("AF006", f"invalid number `{text}` (misplaced `_`?)", s)
            return t.Lit("invalid", None, text, s)

    def string(self, item: Any) -> str | None:
        text: str = item.value
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            self.rep.report(
                "AF006",
                f"invalid escape sequence in string {text}",
                span_of(item),
                hint='use \\" \\\\ \\n \\t or \\uXXXX',
            )
            return None
        assert isinstance(value, str)
        return value

    def date(self, text: str, s: Span) -> t.Lit:
        try:
            if "T" in text:
                datetime.fromisoformat(text)
                return t.Lit("datetime", text, text, s)
            date.fromisoformat(text)
            return t.Lit("date", text, text, s)
        except ValueError:
            self.rep.report("AF006", f"invalid date `{text}`", s)
            return t.Lit("invalid", None, text, s)

    # -- sweeps and streams ------------------------------------------------------------------

    def sweep(self, item: Any) -> t.Sweep:
        s = span_of(item)
        method_start = self.rep.source.text.index(item.method, s.start + 5)
        assigns: list[t.SweepAssign] = []
        wheres: list[t.Expr] = []
        objectives: list[t.Objective] = []
        for it in item.items:
            kind = type(it).__name__
            if kind == "SweepAssign":
                assigns.append(self.sweep_assign(it))
            elif kind == "Where":
                wheres.append(self.expr(it.expr))
            else:
                objectives.append(self.objective(it))
        return t.Sweep(
            item.method,
            Span(method_start, method_start + len(item.method)),
            tuple(self.arg(a, {}) for a in item.options),
            tuple(assigns),
            tuple(wheres),
            tuple(objectives),
            s,
        )

    def sweep_assign(self, it: Any) -> t.SweepAssign:
        target = span_of(it.target)
        space = it.space
        ss = span_of(space)
        if type(space).__name__ == "ListLit":
            values = self.value(space, {})
            assert isinstance(values, t.ListV)
            sp = t.Space(None, ss, (), values, ss)
        else:
            fn_span = Span(ss.start, ss.start + len(space.fn))
            sp = t.Space(space.fn, fn_span, tuple(self.arg(a, {}) for a in space.args), None, ss)
        return t.SweepAssign(
            it.target.step,
            Span(target.start, target.start + len(it.target.step)),
            it.target.param,
            Span(target.end - len(it.target.param), target.end),
            sp,
            span_of(it),
        )

    def objective(self, it: Any) -> t.Objective:
        s = span_of(it)
        ts = span_of(it.target)
        d_start = self.rep.source.text.index(it.direction, s.start + 9)
        step = it.target.step
        return t.Objective(
            it.direction,
            Span(d_start, d_start + len(it.direction)),
            step,
            Span(ts.start, ts.start + len(step)),
            tuple(it.target.parts),
            Span(ts.start + len(step) + 1, ts.end),
            s,
        )

    def expr(self, item: Any) -> t.Expr:
        kind = type(item).__name__
        s = span_of(item)
        if kind in ("OrExpr", "AndExpr"):
            args = [self.expr(a) for a in item.args]
            if len(args) == 1:
                return args[0]
            return t.Expr("or" if kind == "OrExpr" else "and", s, tuple(args))
        if kind == "NotExpr":
            inner = self.expr(item.arg)
            # `not not not x` is `not x`; two nots stay two (they turn a number into a bool)
            for _ in range(0 if not item.nots else 2 - len(item.nots) % 2):
                inner = t.Expr("not", s, (inner,))
            return inner
        if kind == "CmpExpr":
            left = self.expr(item.left)
            if item.op is None or item.op == "":
                return left
            return t.Expr(item.op, s, (left, self.expr(item.right)))
        if kind in ("SumExpr", "ProdExpr"):
            if len(item.args) > MAX_EXPR_TERMS:
                self.rep.report("AF003", f"more than {MAX_EXPR_TERMS} terms in one expression", s)
                return t.Expr("const", s, value=True)
            acc = self.expr(item.args[0])
            for op, arg in zip(item.ops, item.args[1:], strict=True):
                right = self.expr(arg)
                acc = t.Expr(op, acc.span.cover(right.span), (acc, right))
            return acc
        if kind == "Paren":
            return self.expr(item.expr)
        if kind == "ParamRef":
            ref = t.RefV(
                item.step,
                item.param,
                s,
                Span(s.start, s.start + len(item.step)),
                Span(s.end - len(item.param), s.end),
            )
            return t.Expr("param", s, step=item.step, param=item.param, ref=ref)
        value = self.value(item.value, {})
        if isinstance(value, t.RefV):
            return t.Expr("const", s, ref=value)
        if isinstance(value, t.ListV):
            try:
                return t.Expr("const", s, value=value.to_json())
            except TypeError:
                return t.Expr("const", s, ref=t.contains_ref(value))
        return t.Expr("const", s, value=value.value)

    def stream(self, item: Any) -> t.Stream:
        settings: list[t.StreamSetting] = []
        emits: list[t.Emit] = []
        for it in item.items:
            kind = type(it).__name__
            s = span_of(it)
            if kind == "StreamSource":
                settings.append(t.StreamSetting("source", s, call=self.call(it.call, {})))
            elif kind == "StreamWarmup":
                settings.append(t.StreamSetting("warmup", s, value=self.value(it.value, {})))
            elif kind == "StreamEvery":
                after = self.value(it.after, {}) if it.after is not None else None
                settings.append(
                    t.StreamSetting("every", s, value=self.value(it.every, {}), after=after)
                )
            else:
                ref = self.ref(it.ref, {})
                assert isinstance(ref, t.RefV)
                emits.append(t.Emit(ref, self.call(it.sink, {}), s))
        return t.Stream(tuple(settings), tuple(emits), span_of(item))


def _name_part(lit: t.Lit) -> str:
    if lit.kind == "bool":
        return "true" if lit.value else "false"
    if lit.kind == "str":
        return str(lit.value)
    return lit.text.replace("-", "m").replace(".", "_")
