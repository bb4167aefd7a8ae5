"""One sweep trial, evaluated in memory: params in, a :class:`~flows.sweepspec.TrialRow` out.

:class:`TrialEvaluator` holds a pipeline's :class:`~runners.memgraph.MemoryGraph` for one
process, so every node upstream of the swept params is computed once per process for the whole
sweep (and an indicator with the same params once), never once per trial. A trial:

1. evaluates the objective node and the node whose equity curve the objective is measured on
   (the backtest) with the trial's overrides — in a walk-forward fold, with the data cut at the
   window's end and the backtest trading only the window (:meth:`MemoryGraph.evaluate`);
2. reads the objective node's numeric metrics and the objective's value;
3. summarises the equity curve's per-bar simple returns for the overfitting statistics: their
   moments (the DSR) and their CSCV block sums (the PBO), so nothing of the size of the data is
   kept per trial.

No Prefect here: the chunk flows and tasks of :mod:`flows.sweepchunk` call it.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dsl.ir import Objective, PipelineIR
from flows.catalog import catalog_source
from flows.overfitting import ReturnMoments, block_sums, cscv_blocks
from flows.settings import CoreSettings
from flows.sweepspec import SweepSpec, TrialRow
from nodes.base import PortType, registry
from runners.inprocess import InProcessRunner
from runners.memgraph import MemoryGraph, TrialError, warm_compiled_kernels

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SweepPlanError",
    "TrialEvaluator",
    "TrialOutcome",
    "equity_source",
    "evaluator_for",
    "objective_of",
    "objective_text",
    "overrides_of",
    "params_of",
    "prepare_evaluator",
    "warm_compiled_kernels",
]


class SweepPlanError(ValueError):
    """A sweep that cannot run as written (no objective to measure, say): a sentence."""


def objective_of(ir: PipelineIR) -> Objective:
    """The sweep's objective: the block's ``objective`` line, or — a grid without one — the
    Sharpe ratio of the last node with a metrics output, maximised."""
    if ir.sweep is not None and ir.sweep.objective is not None:
        return ir.sweep.objective
    reg = registry()
    for node in reversed(ir.nodes):
        ports = _output_types(node, reg)
        for port, kind in ports.items():
            if kind == PortType.METRICS.value:
                return Objective(direction="maximize", node=node.id, port=port, key="sharpe")
    raise SweepPlanError(
        "the sweep has nothing to rank trials by: no step has a metrics output; add a "
        "`backtest` step, or an `objective maximize step.metric` line to the sweep"
    )


def objective_text(objective: Objective) -> str:
    """``maximize result.sharpe``."""
    return f"{objective.direction} {objective.node}.{objective.key}"


def _output_types(node: Any, reg: Any) -> dict[str, str]:
    if node.outputs:
        return dict(node.outputs)
    if node.runtime != "builtin":
        return {}
    return {p.name: p.type.value for p in reg.get(node.type).outputs}


def equity_source(ir: PipelineIR, objective: Objective) -> tuple[str, str] | None:
    """The (node, port) of the equity curve the objective is measured on: the objective node's
    own equity output, else the nearest upstream one (None: the pipeline has none, and the
    overfitting statistics are not available)."""
    reg = registry()
    nodes = {n.id: n for n in ir.nodes}
    todo, seen = [objective.node], set()
    while todo:
        node_id = todo.pop(0)
        if node_id in seen:
            continue
        seen.add(node_id)
        node = nodes[node_id]
        for port, kind in _output_types(node, reg).items():
            if kind == PortType.EQUITY.value:
                return node_id, port
        todo.extend(node.dependencies())
    return None


def overrides_of(params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"fast.window": 5}`` → ``{"fast": {"window": 5}}`` (a run spec's overrides)."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in params.items():
        node, _, param = name.partition(".")
        out.setdefault(node, {})[param] = value
    return out


def params_of(overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``{"fast": {"window": 5}}`` → ``{"fast.window": 5}``."""
    return {f"{n}.{p}": v for n, params in overrides.items() for p, v in params.items()}


@dataclass
class TrialOutcome:
    """A trial's row and, when it completed, its equity curve (kept only for the top K)."""

    row: TrialRow
    #: the equity output as the node gave it (a table with an ``equity`` column, or a series)
    source: Any = None

    @cached_property
    def equity(self) -> pd.Series | None:
        """The equity curve as a float64 series, built when first asked (most trials' never
        are: only the top K are kept)."""
        if self.source is None:
            return None
        return _equity_column(self.source).astype("float64")


def _equity_column(value: Any) -> Any:
    """The equity curve of an equity output: its ``equity`` column, or the series itself."""
    return value["equity"] if hasattr(value, "columns") else value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


class TrialEvaluator:
    """A sweep's trials evaluated in this process (see the module doc)."""

    def __init__(self, spec: SweepSpec, settings: CoreSettings) -> None:
        run = spec.run
        ir = run.ir
        if ir.sweep is None:
            raise SweepPlanError(f"pipeline {ir.name!r} has no `sweep` block: nothing to sweep")
        self.spec = spec
        self.ir = ir
        base = str(settings.resolve_ref(run.base_dir)) if run.base_dir else "."
        datasets = {k: settings.resolve_ref(v) for k, v in run.datasets.items()}
        self.runner = InProcessRunner(
            base_dir=Path(base),
            datasets=datasets,
            confine_paths=run.confine_paths,
            mlflow_uri=settings.mlflow_uri,
            catalog=catalog_source(settings, run.catalog_url, run.catalog_namespace),
        )
        self.objective = objective_of(ir)
        self.equity = equity_source(ir, self.objective)
        try:
            self.graph = MemoryGraph(ir, self.runner, {p.node for p in ir.sweep.params})
        except ValueError as exc:
            raise SweepPlanError(str(exc)) from None
        # base overrides of the spec (a re-run with changed params) apply to every trial
        self.base_overrides = {k: dict(v) for k, v in run.overrides.items()}
        self._wanted = [self.objective.node] + ([self.equity[0]] if self.equity else [])
        # only the objective's and the equity curve's outputs are read (a backtest then skips
        # building its trades and orders tables)
        self._ports: dict[str, set[str]] = {self.objective.node: {self.objective.port}}
        if self.equity:
            self._ports.setdefault(self.equity[0], set()).add(self.equity[1])

    def index(self) -> pd.DatetimeIndex:
        """The bars' timestamps (the first time-indexed output of a source node): what
        walk-forward folds are laid out on."""
        import pandas as pd

        for node in self.ir.nodes:
            if node.dependencies():
                continue
            try:
                outputs = self.graph.evaluate(self.base_overrides, [node.id])[node.id]
            except TrialError as exc:
                raise SweepPlanError(f"the data could not be loaded: {exc}") from None
            for value in outputs.values():
                index = getattr(value, "index", None)
                if isinstance(index, pd.DatetimeIndex):
                    return index
        raise SweepPlanError("walk-forward needs time-stamped data: no step loads any")

    def run(
        self,
        trial: int,
        overrides: Mapping[str, Mapping[str, Any]],
        *,
        fold: int | None = None,
        until: Any = None,
        window: tuple[Any, Any] | None = None,
    ) -> TrialOutcome:
        """Evaluate one trial; a failing node gives a failed row (never raises for it)."""
        t0 = time.perf_counter()
        merged = {k: dict(v) for k, v in self.base_overrides.items()}
        for node, params in overrides.items():
            merged.setdefault(node, {}).update(params)
        params = params_of(overrides)
        try:
            out = self.graph.evaluate(
                merged,
                self._wanted,
                until=until,
                window=window,
                windowed=[self.equity[0]] if self.equity and window else (),
                ports=self._ports,
            )
        except TrialError as exc:
            row = TrialRow(
                trial=trial,
                fold=fold,
                params=params,
                status="failed",
                error=str(exc),
                seconds=round(time.perf_counter() - t0, 6),
            )
            return TrialOutcome(row, None)
        raw = out[self.objective.node].get(self.objective.port) or {}
        metrics = {
            str(k): _number(v) for k, v in raw.items() if v is None or _number(v) is not None
        }
        objective = _number(raw.get(self.objective.key))
        equity = self._equity_output(out)
        moments = blocks = None
        if equity is not None:
            values = _equity_column(equity).to_numpy(dtype="float64")
            with np.errstate(divide="ignore", invalid="ignore"):
                returns = values[1:] / values[:-1] - 1.0
            m = ReturnMoments.of(returns)
            moments = [float(m.n), m.mean, m.std, m.skew, m.kurtosis]
            n_blocks = cscv_blocks(int(m.n))
            if n_blocks:
                blocks = block_sums(returns, n_blocks).tolist()
        row = TrialRow(
            trial=trial,
            fold=fold,
            params=params,
            metrics=metrics,
            objective=objective,
            seconds=round(time.perf_counter() - t0, 6),
            moments=moments,
            blocks=blocks,
        )
        return TrialOutcome(row, equity)

    def _equity_output(self, out: Mapping[str, Mapping[str, Any]]) -> Any:
        if self.equity is None:
            return None
        node, port = self.equity
        return out[node].get(port)


_EVALUATORS: dict[tuple[str, str], TrialEvaluator] = {}
_PREPARING: dict[tuple[str, str], threading.Thread] = {}
_PREPARING_LOCK = threading.Lock()


def _key(spec: SweepSpec) -> tuple[str, str]:
    return (spec.sweep_id, spec.run.ir.content_hash())


def prepare_evaluator(spec: SweepSpec, settings: CoreSettings) -> None:
    """Start building this process's evaluator of ``spec`` in a daemon thread — the data
    loaded, the compiled backtest kernel in memory — while the caller starts the flow run
    (mostly waiting on Prefect's server); :func:`evaluator_for` waits for it. Only a head
    start: a failure here is left for :func:`evaluator_for` to meet and report."""
    key = _key(spec)

    def _build() -> None:
        with contextlib.suppress(Exception):
            evaluator = _evaluator(spec, settings, key)
            with contextlib.suppress(SweepPlanError):
                evaluator.index()
            warm_compiled_kernels()

    thread = threading.Thread(target=_build, name="sweep-prepare", daemon=True)
    with _PREPARING_LOCK:
        if key in _PREPARING or key in _EVALUATORS:
            return
        _PREPARING[key] = thread
    thread.start()


def evaluator_for(spec: SweepSpec, settings: CoreSettings) -> TrialEvaluator:
    """This process's evaluator of ``spec`` (one per sweep and IR: chunks that land on the same
    process share its memory of upstream nodes). Holds the last two sweeps only. Waits for a
    :func:`prepare_evaluator` of the same sweep still at work."""
    key = _key(spec)
    with _PREPARING_LOCK:
        preparing = _PREPARING.pop(key, None)
    if preparing is not None and preparing is not threading.current_thread():
        preparing.join()
    return _evaluator(spec, settings, key)


def _evaluator(spec: SweepSpec, settings: CoreSettings, key: tuple[str, str]) -> TrialEvaluator:
    found = _EVALUATORS.get(key)
    if found is None:
        while len(_EVALUATORS) >= 2:
            _EVALUATORS.pop(next(iter(_EVALUATORS)))
        found = _EVALUATORS[key] = TrialEvaluator(spec, settings)
    return found
