"""The compiler: .af text -> :class:`~dsl.ir.PipelineIR` plus every diagnostic at once.

Phases: limits -> parse (with syntax-error recovery) -> lower and expand ``for`` loops ->
resolve ``use`` pins and node types -> bind steps -> sweep / walk-forward / stream -> graph
checks (cycles, unused) -> IR in topological order. Semantic checks run only on a file without
syntax errors, and each reports every problem it finds rather than stopping at the first.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dsl import tree as t
from dsl.binder import Binder, BoundStep
from dsl.blocks import check_stream, check_walkforward
from dsl.catalogref import DatasetResolver, resolve_catalog_steps
from dsl.diagnostics import Diagnostic, did_you_mean, nearest_by_edits, sort_key
from dsl.graph import find_cycles, topological_order, unused_steps
from dsl.ir import NodeIR, PipelineIR, StreamIR, SweepIR, UsePin, WalkForwardIR
from dsl.lower import Lowerer
from dsl.nodespec import (
    NodeResolver,
    NodeSpec,
    NoRegistryResolver,
    ResolveError,
    valid_version_spec,
)
from dsl.outline import OutlineItem, outline_of_bound, outline_of_step
from dsl.parser import check_limits, parse
from dsl.source import Reporter, SourceText, Span
from dsl.strategyref import STRATEGY_NODES, StrategyResolver, strategy_spec
from dsl.sweeps import SweepChecker
from nodes.base import (
    Node,
    NodeRegistry,
    PortType,
    UnknownRuntimeError,
    registry,
    runtime_for_language,
)
from nodes.errors import AlphaForgeError


class CompileResult(BaseModel):
    """What compiling gives: the IR (None when any error), diagnostics and the outline."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    ir: PipelineIR | None
    diagnostics: list[Diagnostic] = Field(default_factory=list)
    outline: list[OutlineItem] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the IR was produced (warnings allowed)."""
        return self.ir is not None and not self.errors

    @property
    def errors(self) -> list[Diagnostic]:
        """The error diagnostics."""
        return [d for d in self.diagnostics if d.is_error]

    @property
    def warnings(self) -> list[Diagnostic]:
        """The warning diagnostics."""
        return [d for d in self.diagnostics if d.severity == "warning"]

    def format(self, filename: str = "<input>") -> str:
        """Every diagnostic, gcc style, one per line (hints indented)."""
        return "\n".join(d.format(filename) for d in self.diagnostics)


class DslError(AlphaForgeError):
    """A pipeline did not compile; carries every diagnostic."""

    code = "AF009"

    def __init__(self, diagnostics: list[Diagnostic], filename: str = "<input>") -> None:
        errors = [d for d in diagnostics if d.is_error] or diagnostics
        text = "\n".join(d.format(filename) for d in errors)
        super().__init__(text or "compilation failed", code=errors[0].code if errors else None)
        self.diagnostics = diagnostics
        self.filename = filename


MAX_TITLE_CHARS = 120
DATASET_NODE = "dataset_ohlcv"
DatasetSeverity = Literal["error", "warning"]


def compile_source(
    text: str,
    *,
    filename: str = "<input>",
    registry: NodeRegistry | None = None,
    resolver: NodeResolver | None = None,
    datasets: Collection[str] | None = None,
    dataset_severity: DatasetSeverity = "error",
    datasets_without_volume: Collection[str] = (),
    catalog: DatasetResolver | None = None,
    strategies: StrategyResolver | None = None,
) -> CompileResult:
    """Compile .af text. Never raises for problems in the text: they are diagnostics.

    ``datasets``: the dataset names ``dataset_ohlcv(name=...)`` may use (AF209 for any other,
    at ``dataset_severity``, with the nearest names); None: names are not checked.
    ``datasets_without_volume``: those of them stored without a volume column (AF210, a
    warning, where a step reads ``.volume`` of one).
    ``catalog``: resolves ``dataset("name@version")`` steps to exact versions (AF212, at
    ``dataset_severity``, where it cannot); None: the run resolves them (the latest version).
    ``strategies``: resolves ``strategy_backtest``'s ``strategy`` to a module's code and config
    schema (dsl.strategyref; AF220 where it cannot, and always without one).
    """
    compilation = _Compilation(text, filename, registry, resolver)
    compilation.catalog = catalog
    compilation.strategies = strategies
    compilation.datasets = datasets
    compilation.dataset_severity = dataset_severity
    compilation.no_volume = datasets_without_volume
    return compilation.run()


def dataset_names(ir: PipelineIR) -> set[str]:
    """The dataset names a compiled pipeline reads (its ``dataset_ohlcv`` steps)."""
    return {
        str(n.params["name"]) for n in ir.nodes if n.type == DATASET_NODE and "name" in n.params
    }


_TITLE_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')


def with_title(text: str, title: str) -> str | None:
    """``text`` with the ``pipeline`` header's title set to ``title`` (added when it has none);
    nothing else changes. None when the text has no header that parses."""
    src = SourceText(text, "<input>")
    outcome = parse(src, Reporter(src))
    if outcome.model is None:
        return None
    program = Lowerer(Reporter(src)).lower(outcome.model)
    if not program.headers:
        return None
    span = program.headers[0].span
    header = text[span.start : span.end]
    literal = json.dumps(title, ensure_ascii=False)
    found = _TITLE_STRING.search(header)
    if found is None:
        return text[: span.end] + " " + literal + text[span.end :]
    start, end = span.start + found.start(), span.start + found.end()
    return text[:start] + literal + text[end:]


def compile_file(
    path: str | Path,
    *,
    registry: NodeRegistry | None = None,
    resolver: NodeResolver | None = None,
    strategies: StrategyResolver | None = None,
) -> CompileResult:
    """Compile a .af file (diagnostics carry its name in :meth:`CompileResult.format`)."""
    p = Path(path)
    return compile_source(
        p.read_text(encoding="utf-8"),
        filename=str(p),
        registry=registry,
        resolver=resolver,
        strategies=strategies,
    )


def compile_or_raise(
    text: str,
    *,
    filename: str = "<input>",
    registry: NodeRegistry | None = None,
    resolver: NodeResolver | None = None,
) -> PipelineIR:
    """The IR, or :class:`DslError` with every diagnostic."""
    result = compile_source(text, filename=filename, registry=registry, resolver=resolver)
    if result.ir is None:
        raise DslError(result.diagnostics, filename)
    return result.ir


class _Compilation:
    """State of one compilation (a fresh object per call keeps compile_source re-entrant)."""

    def __init__(
        self,
        text: str,
        filename: str,
        reg: NodeRegistry | None,
        resolver: NodeResolver | None,
    ) -> None:
        self.src = SourceText(text, filename)
        self.rep = Reporter(self.src)
        self.text = text
        self._registry = reg
        self.resolver = resolver if resolver is not None else NoRegistryResolver()
        self.pins: dict[str, tuple[t.Use, UsePin | None, NodeSpec | None]] = {}
        self.datasets: Collection[str] | None = None
        self.dataset_severity: DatasetSeverity = "error"
        self.no_volume: Collection[str] = ()
        self.catalog: DatasetResolver | None = None
        self.strategies: StrategyResolver | None = None

    @property
    def registry(self) -> NodeRegistry:
        if self._registry is None:
            self._registry = registry()
        return self._registry

    def result(self, ir: PipelineIR | None, outline: list[OutlineItem]) -> CompileResult:
        diags = sorted(self.rep.diagnostics, key=sort_key)
        if any(d.is_error for d in diags):
            ir = None
        return CompileResult(ir=ir, diagnostics=diags, outline=outline)

    def run(self) -> CompileResult:
        if not check_limits(self.src, self.rep):
            return self.result(None, [])
        outcome = parse(self.src, self.rep)
        if outcome.model is None:
            return self.result(None, [])
        if outcome.syntax_errors:
            scratch = Reporter(self.src)
            program = Lowerer(scratch).lower(outcome.model)
            return self.result(None, [outline_of_step(self.src, s) for s in program.steps])
        program = Lowerer(self.rep).lower(outcome.model)
        if any(d.code == "AF004" for d in self.rep.diagnostics):  # a limit: no semantic checks
            return self.result(None, [])
        return self.check(program)

    # -- semantic phases ---------------------------------------------------------------------

    def check(self, program: t.Program) -> CompileResult:
        header = self._header(program)
        self._uses(program)
        steps = self._unique_steps(program)
        specs = {s.index: self._spec(s) for s in program.steps}
        binder = Binder(self.rep, steps, specs)
        bound_all = [binder.bind(s) for s in program.steps]
        bound = {b.step.name: b for b in bound_all if steps.get(b.step.name) is b.step}
        outline = [outline_of_bound(self.src, b) for b in bound_all]
        sweep = self._sweep(program, binder, bound)
        walkforward = self._walkforward(program)
        stream = self._stream(program, binder)
        self._not_executed(program)
        self._datasets(program)
        if self.catalog is not None:
            resolve_catalog_steps(bound.values(), self.catalog, self.rep, self.dataset_severity)
        order = self._graph(program, bound, sweep, stream, steps)
        self._unused_pins(program)
        if self.rep.has_errors or header is None or order is None:
            return self.result(None, outline)
        nodes = [self._node(bound[name]) for name in order]
        ir = PipelineIR(
            name=header.name,
            title=header.title,
            nodes=tuple(nodes),
            uses=tuple(pin for _, pin, _ in self.pins.values() if pin is not None),
            sweep=sweep,
            walkforward=walkforward,
            stream=stream,
            source_hash=hashlib.sha256(self.text.encode("utf-8")).hexdigest(),
        )
        return self.result(ir, outline)

    def _header(self, program: t.Program) -> t.Header | None:
        if not program.headers:
            span = program.first_item or Span(0, 0)
            self.rep.report(
                "AF005",
                "missing `pipeline NAME` header",
                Span(span.start, span.start + 1),
                hint='start the file with: pipeline my_strategy "My strategy"',
            )
            return None
        first = program.headers[0]
        if first.title is not None and len(first.title) > MAX_TITLE_CHARS:
            self.rep.report(
                "AF011",
                f"the pipeline title is {len(first.title)} characters long; the limit is "
                f"{MAX_TITLE_CHARS}",
                first.span,
                hint="shorten the title in the `pipeline` line",
            )
        for extra in program.headers[1:]:
            self.rep.report(
                "AF007", "one pipeline per file: a second `pipeline` header", extra.span
            )
        if program.first_item is not None and program.first_item.start != first.span.start:
            self.rep.report("AF007", "the `pipeline` header must come first", first.span)
        return first

    def _uses(self, program: t.Program) -> None:
        for use in program.uses:
            if use.name in self.pins:
                self.rep.report("AF404", f"`{use.name}` is already pinned", use.name_span)
                continue
            if not valid_version_spec(use.spec):
                self.rep.report(
                    "AF403",
                    f"malformed version `{use.spec}`",
                    use.spec_span,
                    hint="write a range like 1.2 (means ^1.2) or an exact =1.2.3",
                )
                self.pins[use.name] = (use, None, None)
                continue
            if use.name in self.registry:
                self.rep.report(
                    "AF405", f"`use {use.name}` shadows the built-in node type", use.name_span
                )
            self.pins[use.name] = (use, *self._resolve(use))

    def _resolve(self, use: t.Use) -> tuple[UsePin | None, NodeSpec | None]:
        try:
            node = self.resolver.resolve(use.name, use.spec)
        except ResolveError as exc:
            self.rep.report("AF401", exc.message, use.span)
            return None, None
        except Exception as exc:  # a broken resolver: say so at the pin, don't crash the editor
            self.rep.report("AF402", f"resolving `{use.name}@{use.spec}` failed: {exc}", use.span)
            return None, None
        for warning in node.warnings:
            self.rep.warn("AF407", warning, use.span)
        try:
            runtime_for_language(node.language)
        except UnknownRuntimeError as exc:
            self.rep.report("AF408", f"`{use.name}@{node.version}`: {exc}", use.span)
            return None, None
        pin = UsePin(
            name=node.name,
            requested=use.spec,
            version=node.version,
            code_hash=node.code_hash,
            language=node.language,
        )
        return pin, node.spec()

    def _datasets(self, program: t.Program) -> None:
        """AF209 for a ``dataset_ohlcv(name="...")`` naming no known dataset."""
        if self.datasets is None:
            return
        known = sorted(self.datasets)
        without_volume: dict[str, str] = {}  # step -> the dataset it loads, which has no volume
        for step in program.steps:
            if step.call.type != DATASET_NODE or step.call.type in self.pins:
                continue
            for arg in step.call.args:
                value = arg.value
                if arg.key != "name" or not isinstance(value, t.Lit) or value.kind != "str":
                    continue
                if value.value in self.datasets:
                    if value.value in self.no_volume:
                        without_volume[step.name] = str(value.value)
                    continue
                shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
                hint = (
                    f"your datasets: {shown}" if known else "upload one on the Datasets page first"
                )
                self.rep.report(
                    "AF209",
                    f"no dataset named {json.dumps(value.value)}",
                    value.span,
                    severity=self.dataset_severity,
                    hint=hint,
                    suggestions=nearest_by_edits(str(value.value), known),
                )
        self._volume_reads(program, without_volume)

    def _volume_reads(self, program: t.Program, without_volume: dict[str, str]) -> None:
        """AF210 (warning) where a step reads ``.volume`` of a dataset stored without volume:
        the run would fail there (``nodes.data.require_volume``)."""
        if not without_volume:
            return
        for step in program.steps:
            for arg in step.call.args:
                for ref in t.refs_in(arg.value):
                    if ref.attr != "volume" or ref.step not in without_volume:
                        continue
                    name = json.dumps(without_volume[ref.step])
                    self.rep.warn(
                        "AF210",
                        f"`{ref.text}`: the dataset {name} has no volume column (its volume is "
                        "missing), so this step will fail when the pipeline runs",
                        ref.span,
                        hint="upload the data again with a volume column, or use a price "
                        "column such as `" + ref.step + ".close`",
                    )

    def _unique_steps(self, program: t.Program) -> dict[str, t.Step]:
        steps: dict[str, t.Step] = {}
        for step in program.steps:
            first = steps.get(step.name)
            if first is not None and "{" not in step.name:  # templates: reported as AF207
                line, _ = self.src.linecol(first.name_span.start)
                self.rep.report(
                    "AF204", f"step `{step.name}` is already defined on line {line}", step.name_span
                )
                continue
            steps[step.name] = step
        return steps

    def _spec(self, step: t.Step) -> NodeSpec | None:
        name = step.call.type
        if name in self.pins:
            return self.pins[name][2]
        if name in self.registry:
            spec = _builtin_spec(self.registry, name)
            if name in STRATEGY_NODES:
                return strategy_spec(spec, step, self.strategies, self.rep)
            return spec
        candidates = list(self.registry.names()) + list(self.pins)
        self.rep.report(
            "AF101",
            f"unknown node type `{name}`",
            step.call.type_span,
            suggestions=did_you_mean(name, candidates),
        )
        return None

    def _sweep(
        self, program: t.Program, binder: Binder, bound: dict[str, BoundStep]
    ) -> SweepIR | None:
        for extra in program.sweeps[1:]:
            self.rep.report("AF007", "one sweep block per pipeline", extra.method_span)
        if not program.sweeps:
            return None
        return SweepChecker(self.rep, binder, bound).check(program.sweeps[0])

    def _walkforward(self, program: t.Program) -> WalkForwardIR | None:
        for extra in program.walkforwards[1:]:
            self.rep.report("AF007", "one walkforward line per pipeline", extra.span)
        if not program.walkforwards:
            return None
        if not program.sweeps:
            self.rep.report(
                "AF312",
                "walkforward needs a sweep block: each fold searches the sweep's params on its "
                "training window and tests the chosen ones on the window after it",
                program.walkforwards[0].span,
            )
        return check_walkforward(program.walkforwards[0], self.rep)

    def _stream(self, program: t.Program, binder: Binder) -> StreamIR | None:
        for extra in program.streams[1:]:
            self.rep.report("AF007", "one stream block per pipeline", extra.span)
        if not program.streams:
            return None
        return check_stream(program.streams[0], self.rep, binder)

    def _not_executed(self, program: t.Program) -> None:
        """AF008 at the keyword of each block a run does not execute (``stream``: the live
        side runs it, ``alphaforge stream``). ``sweep`` and ``walkforward`` run as sweeps
        (``alphaforge sweep``, the web app's Sweep), so they are not flagged."""
        blocks: list[tuple[str, Span]] = [
            *(("stream", b.span) for b in program.streams[:1]),
        ]
        for keyword, span in blocks:
            self.rep.warn(
                "AF008",
                f"a run does not execute `{keyword}` blocks yet: a run executes the "
                "pipeline once, with the params written in its steps",
                Span(span.start, span.start + len(keyword)),
                hint=f"the `{keyword}` block is checked but ignored when the pipeline runs; "
                "`alphaforge stream FILE` runs it as a service",
            )

    def _graph(
        self,
        program: t.Program,
        bound: dict[str, BoundStep],
        sweep: SweepIR | None,
        stream: StreamIR | None,
        steps: dict[str, t.Step],
    ) -> list[str] | None:
        order = list(bound)
        edges = {name: b.edges for name, b in bound.items()}
        cycles = find_cycles(order, edges)
        for path, span in cycles:
            self.rep.report("AF205", "cycle: " + " -> ".join(path), span)
        deps = {name: [d for d, _ in b.edges] for name, b in bound.items()}
        terminals = {name for name, b in bound.items() if _is_terminal(b.spec)}
        if stream is not None:
            terminals.update(s.node for s in stream.sinks)
        if sweep is not None and sweep.objective is not None:
            terminals.add(sweep.objective.node)
        for stream_block in program.streams:
            terminals.update(e.ref.step for e in stream_block.emits)
        in_cycles = {n for path, _ in cycles for n in path}
        for name in unused_steps(order, deps, terminals):
            if name in in_cycles:
                continue
            self.rep.warn(
                "AF206",
                f"step `{name}` is unused: nothing it feeds reaches a result",
                steps[name].name_span,
            )
        if cycles:
            return None
        return topological_order(order, deps)

    def _unused_pins(self, program: t.Program) -> None:
        used = {s.call.type for s in program.steps}
        for name, (use, _, _) in self.pins.items():
            if name not in used:
                self.rep.warn("AF406", f"`use {name}` is never used", use.name_span)

    # -- outputs -----------------------------------------------------------------------------

    def _node(self, b: BoundStep) -> NodeIR:
        assert b.spec is not None and b.params is not None
        return NodeIR(
            id=b.step.name,
            type=b.spec.name,
            version=b.spec.version,
            params=b.params,
            inputs=b.inputs,
            outputs={p.name: p.type.value for p in b.spec.outputs},
            runtime=b.spec.runtime,
            code_hash=b.spec.code_hash,
            span=self.src.source_span(b.step.span),
        )


_SPEC_CACHE: dict[type[Node], NodeSpec] = {}


def _builtin_spec(reg: NodeRegistry, name: str) -> NodeSpec:
    node_type = reg.get(name)
    spec = _SPEC_CACHE.get(node_type)
    if spec is None:
        spec = _SPEC_CACHE[node_type] = NodeSpec.from_node_type(node_type)
    return spec


def _is_terminal(spec: NodeSpec | None) -> bool:
    """Steps that are results in themselves: they produce metrics, or produce nothing."""
    if spec is None:
        return True
    return not spec.outputs or any(p.type == PortType.METRICS for p in spec.outputs)
