"""Binding a step's arguments to its node type: inputs, references, port types and params.

Positional arguments bind input ports in order (a variadic last port takes the rest);
``key=value`` binds an input port of that name or a param. A bare reference means the step's
first output port; ``step.x`` means output port ``x``, else column ``x`` of the step's first
frame-like output (a ``series``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dsl import tree as t
from dsl.diagnostics import did_you_mean
from dsl.ir import InputBinding
from dsl.nodespec import NodeSpec
from dsl.source import Reporter, Span
from nodes.base import COLUMN_TYPE, FRAME_LIKE, Port, PortType, is_assignable

_ISSUE_CODES = {"unknown": "AF102", "missing": "AF103", "type": "AF104", "bounds": "AF105"}


@dataclass
class BoundStep:
    """A checked step: its spec (None if unknown), input bindings, params and dependencies."""

    step: t.Step
    spec: NodeSpec | None
    inputs: dict[str, InputBinding | tuple[InputBinding, ...]] = field(default_factory=dict)
    params: dict[str, Any] | None = None
    raw_params: dict[str, Any] = field(default_factory=dict)
    input_refs: list[str] = field(default_factory=list)
    edges: list[tuple[str, Span]] = field(default_factory=list)
    ok: bool = True


@dataclass(frozen=True)
class Resolved:
    """Where a reference points: a binding and the type it carries (None: not checkable)."""

    binding: InputBinding
    type: PortType | None


class Binder:
    """Checks steps against their specs; every problem goes to the reporter."""

    def __init__(
        self, rep: Reporter, steps: dict[str, t.Step], specs: dict[int, NodeSpec | None]
    ) -> None:
        self.rep = rep
        self.steps = steps  # name -> its (first) definition
        self.specs = specs  # step index -> spec (None: unknown node type)

    def spec_of(self, name: str) -> NodeSpec | None:
        """The spec of the step called ``name`` (None if unknown)."""
        step = self.steps.get(name)
        return self.specs.get(step.index) if step is not None else None

    # -- references --------------------------------------------------------------------------

    def resolve_ref(self, ref: t.RefV) -> Resolved | None:
        """The output a reference names, or None after reporting AF203/AF202."""
        if ref.step not in self.steps:
            self.rep.report(
                "AF203",
                f"unknown step `{ref.step}`",
                ref.step_span,
                suggestions=did_you_mean(ref.step, self.steps),
            )
            return None
        spec = self.spec_of(ref.step)
        if spec is None:  # unknown node type, already reported: nothing to check against
            return Resolved(InputBinding(node=ref.step, port=ref.attr or "?"), None)
        if ref.attr is None:
            if not spec.outputs:
                self.rep.report("AF202", f"`{ref.step}` ({spec.name}) has no outputs", ref.span)
                return None
            first = spec.outputs[0]
            return Resolved(InputBinding(node=ref.step, port=first.name), first.type)
        port = spec.output_port(ref.attr)
        if port is not None:
            return Resolved(InputBinding(node=ref.step, port=port.name), port.type)
        frame = next((p for p in spec.outputs if p.type in FRAME_LIKE), None)
        attr_span = ref.attr_span or ref.span
        if frame is None:
            outs = ", ".join(p.name for p in spec.outputs) or "none"
            self.rep.report(
                "AF202",
                f"`{ref.step}` ({spec.name}) has no output `{ref.attr}`; outputs: {outs}",
                attr_span,
                suggestions=did_you_mean(ref.attr, [p.name for p in spec.outputs]),
            )
            return None
        columns = frame.known_columns()
        if columns is not None and ref.attr not in columns:
            names = [p.name for p in spec.outputs] + list(columns)
            self.rep.report(
                "AF202",
                f"`{ref.step}` ({spec.name}) has no output or column `{ref.attr}`; "
                f"columns of `{frame.name}`: {', '.join(columns)}",
                attr_span,
                suggestions=did_you_mean(ref.attr, names),
            )
            return None
        return Resolved(InputBinding(node=ref.step, port=frame.name, column=ref.attr), COLUMN_TYPE)

    # -- a whole step ------------------------------------------------------------------------

    def bind(self, step: t.Step) -> BoundStep:
        """Check one step and build its bindings and params."""
        spec = self.specs.get(step.index)
        out = BoundStep(step, spec)
        port_args: dict[str, list[t.Arg]] = {}
        param_args: dict[str, t.Arg] = {}
        self._sort_args(step, spec, out, port_args, param_args)
        for port_name, args in port_args.items():
            self._bind_port(step, spec, port_name, args, out)
        if spec is not None:
            for port in spec.inputs:
                if port.name not in port_args and not port.optional:
                    out.ok = False
                    self.rep.report(
                        "AF103",
                        f"`{spec.name}` needs input `{port.name}` ({port.type.value})",
                        step.call.type_span,
                    )
                elif port.or_param is not None:
                    self._either(step, spec, port, port_args, param_args, out)
        derived = self._port_names(spec, port_args, param_args, out)
        self._bind_params(step, spec, param_args, out, derived)
        return out

    def _either(
        self,
        step: t.Step,
        spec: NodeSpec,
        port: Port,
        port_args: dict[str, list[t.Arg]],
        param_args: dict[str, t.Arg],
        out: BoundStep,
    ) -> None:
        """An input that a param can replace (``Port.or_param``): exactly one of the two."""
        has_port, has_param = port.name in port_args, port.or_param in param_args
        if has_port and has_param:
            out.ok = False
            arg = param_args[str(port.or_param)]
            self.rep.report(
                "AF108",
                f"`{spec.name}` takes input `{port.name}` or param `{port.or_param}`, not both",
                arg.span,
            )
        elif not has_port and not has_param:
            out.ok = False
            self.rep.report(
                "AF103",
                f"`{spec.name}` needs input `{port.name}` ({port.type.value}) or param "
                f"`{port.or_param}`",
                step.call.type_span,
            )

    # -- names of the values of a variadic port (``Port.names_param``) ------------------------

    def _port_names(
        self,
        spec: NodeSpec | None,
        port_args: dict[str, list[t.Arg]],
        param_args: dict[str, t.Arg],
        out: BoundStep,
    ) -> dict[str, Any]:
        """The ``names_param`` values the step leaves out, named after its references; AF211
        where two names are the same or one is a column the frame bound before it has, and
        AF105 where a given list has not one name per value."""
        derived: dict[str, Any] = {}
        if spec is None:
            return derived
        for port in spec.inputs:
            if port.names_param is None or port.name not in port_args:
                continue
            refs = [
                v
                for arg in port_args[port.name]
                for v in (arg.value.items if isinstance(arg.value, t.ListV) else (arg.value,))
                if isinstance(v, t.RefV)
            ]
            given = param_args.get(port.names_param)
            named: list[tuple[str, Span]] = []
            if given is None:
                named = [(_ref_name(r), r.span) for r in refs]
                derived[port.names_param] = [n for n, _ in named]
            elif isinstance(given.value, t.ListV):
                items = given.value.items
                if not all(isinstance(v, t.Lit) and isinstance(v.value, str) for v in items):
                    continue  # the params' validation reports it
                if len(items) != len(refs):
                    out.ok = False
                    self.rep.report(
                        "AF105",
                        f"param `{port.names_param}` of `{spec.name}` has {len(items)} name(s) "
                        f"for {len(refs)} value(s) of `{port.name}`; give one per value",
                        given.value.span,
                    )
                    continue
                named = [(str(t.to_json(v)), v.span) for v in items]
            self._check_names(spec, port, named, out)
        return derived

    def _check_names(
        self, spec: NodeSpec, port: Port, named: list[tuple[str, Span]], out: BoundStep
    ) -> None:
        taken = self._frame_columns(spec, out)
        seen: set[str] = set()
        hint = f"name the columns with {port.names_param}=[...]"
        for name, span in named:
            if name in seen:
                out.ok = False
                self.rep.report(
                    "AF211",
                    f"`{spec.name}`: another value of `{port.name}` is already column `{name}`",
                    span,
                    hint=hint,
                )
            elif name in taken:
                out.ok = False
                self.rep.report(
                    "AF211",
                    f"`{spec.name}`: column `{name}` is already a column of the frame "
                    f"({', '.join(taken)})",
                    span,
                    hint=hint,
                )
            seen.add(name)

    def _frame_columns(self, spec: NodeSpec, out: BoundStep) -> tuple[str, ...]:
        """The known columns of what the step's first frame-like input is bound to (if any)."""
        for port in spec.inputs:
            binding = out.inputs.get(port.name)
            if port.type in FRAME_LIKE and isinstance(binding, InputBinding):
                if binding.column is not None:
                    return ()
                src = self.spec_of(binding.node)
                src_port = src.output_port(binding.port) if src is not None else None
                columns = src_port.known_columns() if src_port is not None else None
                return columns or ()
        return ()

    def _sort_args(
        self,
        step: t.Step,
        spec: NodeSpec | None,
        out: BoundStep,
        port_args: dict[str, list[t.Arg]],
        param_args: dict[str, t.Arg],
    ) -> None:
        inputs = spec.inputs if spec is not None else ()
        # an input the step replaces by its param (Port.or_param) takes no positional value
        named = {a.key for a in step.call.args if a.key is not None}
        inputs = tuple(p for p in inputs if p.or_param is None or p.or_param not in named)
        positional = 0
        seen_kw = False
        for arg in step.call.args:
            if arg.key is None:
                if seen_kw:
                    out.ok = False
                    self.rep.report(
                        "AF106", "positional argument after a keyword argument", arg.span
                    )
                if spec is None:
                    port_args.setdefault(f"#{positional}", []).append(arg)
                elif positional < len(inputs):
                    port_args.setdefault(inputs[positional].name, []).append(arg)
                elif self._positional_param(spec, arg, positional - len(inputs), named):
                    param_args[spec.positional_param or ""] = arg
                elif spec.positional_param in named and positional == len(inputs):
                    out.ok = False
                    self.rep.report(
                        "AF107",
                        f"`{spec.positional_param}` is given twice: as the first argument and "
                        "by name",
                        arg.span,
                    )
                elif inputs and inputs[-1].variadic:
                    port_args[inputs[-1].name].append(arg)
                else:
                    out.ok = False
                    names = ", ".join(p.name for p in inputs) or "none"
                    self.rep.report(
                        "AF106",
                        f"`{spec.name}` takes {len(inputs)} positional input(s) ({names}); "
                        f"this is one too many",
                        arg.span,
                        hint="params are passed by name, e.g. window=10",
                    )
                positional += 1
                continue
            seen_kw = True
            key_span = arg.key_span or arg.span
            if arg.key in port_args or arg.key in param_args:
                out.ok = False
                self.rep.report("AF107", f"`{arg.key}` is given more than once", key_span)
                continue
            port = spec.input_port(arg.key) if spec is not None else None
            is_param = spec is not None and arg.key in spec.param_names
            if (port is not None and not (is_param and t.contains_ref(arg.value) is None)) or (
                spec is None and t.contains_ref(arg.value) is not None
            ):
                port_args[arg.key] = [arg]
            else:
                param_args[arg.key] = arg

    @staticmethod
    def _positional_param(spec: NodeSpec, arg: t.Arg, after_inputs: int, named: set[str]) -> bool:
        """Whether ``arg`` (positional, past the inputs) is the spec's positional param: the
        first one after the inputs, a literal, the param not also given by name."""
        return (
            spec.positional_param is not None
            and after_inputs == 0
            and t.contains_ref(arg.value) is None
            and spec.positional_param not in named
        )

    def _bind_port(
        self,
        step: t.Step,
        spec: NodeSpec | None,
        port_name: str,
        args: list[t.Arg],
        out: BoundStep,
    ) -> None:
        port = spec.input_port(port_name) if spec is not None else None
        refs: list[t.RefV] = []
        for arg in args:
            values = arg.value.items if isinstance(arg.value, t.ListV) else (arg.value,)
            if isinstance(arg.value, t.ListV) and port is not None and not port.variadic:
                out.ok = False
                self.rep.report(
                    "AF104",
                    f"input `{port.name}` takes one step reference, not a list",
                    arg.value.span,
                )
                continue
            for v in values:
                if isinstance(v, t.RefV):
                    refs.append(v)
                elif t.is_invalid(v):  # already reported where the literal was read
                    out.ok = False
                elif port is not None:
                    out.ok = False
                    self.rep.report(
                        "AF104",
                        f"input `{port.name}` of `{spec.name if spec else ''}` takes a step "
                        f"reference, got `{getattr(v, 'text', '[...]')}`",
                        v.span,
                        hint="params are passed by name, e.g. window=10",
                    )
        bindings: list[InputBinding] = []
        for ref in refs:
            out.input_refs.append(ref.text)
            resolved = self.resolve_ref(ref)
            if resolved is None:
                out.ok = False
                continue
            out.edges.append((ref.step, ref.step_span))
            bindings.append(resolved.binding)
            if port is not None and resolved.type is not None:
                self._check_type(spec, port, ref, resolved.type, out)
        if port is None or not bindings:
            return
        out.inputs[port.name] = tuple(bindings) if port.variadic else bindings[0]

    def _check_type(
        self, spec: NodeSpec | None, port: Port, ref: t.RefV, got: PortType, out: BoundStep
    ) -> None:
        if is_assignable(got, port.type):
            return
        out.ok = False
        name = spec.name if spec else "?"
        self.rep.report(
            "AF201",
            f"{name} expects {port.type.value} for `{port.name}`, got {got.value} "
            f"(from `{ref.text}`)",
            ref.span,
        )

    def _bind_params(
        self,
        step: t.Step,
        spec: NodeSpec | None,
        param_args: dict[str, t.Arg],
        out: BoundStep,
        derived: dict[str, Any] | None = None,
    ) -> None:
        raw: dict[str, Any] = dict(derived or {})
        misspelled: set[str] = set()  # params an unknown key probably meant: no AF103 for them
        for key, arg in param_args.items():
            if t.is_invalid(arg.value):  # already reported where the literal was read
                out.ok = False
                misspelled.add(key)
                continue
            ref = t.contains_ref(arg.value)
            if ref is not None:
                if spec is not None and key in spec.param_names:
                    out.ok = False
                    hint = f'if you meant text, quote it: "{ref.text}"'
                    what = "a step reference" if ref.step in self.steps else f"`{ref.text}`"
                    self.rep.report(
                        "AF104",
                        f"param `{key}` of `{spec.name}` takes a value, not {what}",
                        ref.span,
                        hint=hint,
                    )
                    continue
            else:
                raw[key] = t.to_json(arg.value)
                out.raw_params[key] = raw[key]
            if spec is not None and key not in spec.param_names:
                out.ok = False
                names = list(spec.param_names) + [p.name for p in spec.inputs]
                suggestions = did_you_mean(key, names)
                misspelled.update(suggestions[:1])
                self.rep.report(
                    "AF102",
                    f"`{spec.name}` has no param or input `{key}`",
                    arg.key_span or arg.span,
                    suggestions=suggestions,
                )
                raw.pop(key, None)
        if spec is not None:
            self._validate(step, spec, raw, param_args, out, misspelled)

    def _validate(
        self,
        step: t.Step,
        spec: NodeSpec,
        raw: dict[str, Any],
        param_args: dict[str, t.Arg],
        out: BoundStep,
        misspelled: set[str],
    ) -> None:
        params, issues = spec.validate(raw)
        reported: set[tuple[str | None, str]] = set()
        for issue in issues:
            if (issue.field, issue.kind) in reported:
                continue
            if issue.kind == "missing" and issue.field in misspelled:
                out.ok = False
                continue
            reported.add((issue.field, issue.kind))
            out.ok = False
            arg = param_args.get(issue.field or "")
            if issue.kind == "missing":
                self.rep.report(
                    "AF103",
                    f"`{spec.name}` needs param `{issue.field}`",
                    step.call.type_span,
                )
            elif issue.kind == "model" or arg is None:
                self.rep.report(
                    "AF108", f"params of `{spec.name}` rejected: {issue.message}", step.call.span
                )
            else:
                span = _value_span(arg.value, issue.path)
                code = _ISSUE_CODES[issue.kind]
                got = _text(arg.value, issue.path)
                self.rep.report(
                    code,
                    f"param `{issue.field}` of `{spec.name}`: {issue.message}, got `{got}`",
                    span if code != "AF102" else (arg.key_span or arg.span),
                )
        if out.ok:
            out.params = params


def _ref_name(ref: t.RefV) -> str:
    """The name a reference gives a column: the step, or ``step_attr`` for ``step.attr``."""
    return ref.step if ref.attr is None else f"{ref.step}_{ref.attr}"


def _pick(value: t.Val, path: tuple[int | str, ...]) -> t.Val:
    for part in path:
        if isinstance(value, t.ListV) and isinstance(part, int) and part < len(value.items):
            value = value.items[part]
        else:
            break
    return value


def _value_span(value: t.Val, path: tuple[int | str, ...]) -> Span:
    return _pick(value, path).span


def _text(value: t.Val, path: tuple[int | str, ...]) -> str:
    v = _pick(value, path)
    if isinstance(v, t.Lit):
        return v.text
    if isinstance(v, t.RefV):
        return v.text
    return "[...]"
