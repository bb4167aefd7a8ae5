"""The in-process runner: built-in nodes run inside the flow's own process.

For one node: load each input from its artifact file, select the bound column, build the node
with a :class:`NodeContext` whose log lines are tagged with the node id, validate the params, run,
check every declared output is there with its declared type, and write the outputs.
"""

from __future__ import annotations

import importlib
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsl.ir import InputBinding, NodeIR
from nodes import panel
from nodes.base import (
    DatasetSource,
    Node,
    NodeContext,
    NodeRegistry,
    PortType,
    StrategyBacktester,
    registry,
)
from nodes.data import require_volume
from nodes.errors import AlphaForgeError, DataError
from nodes.lazy import lazy_module
from runners.base import InputPaths, NodeResult, RunnerError
from runners.io import check_value, file_name, read_value, write_value
from runners.modelregistry import MlflowModelSource

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas", globals(), "pd")

__all__ = ["InProcessRunner"]


class InProcessRunner:
    """Runs built-in nodes in this process.

    ``base_dir`` resolves relative data paths (the .af file's folder for a CLI run);
    ``datasets`` maps web-app dataset names to Parquet files; ``confine_paths`` refuses paths
    outside ``base_dir`` (runs started from the web app); ``catalog`` is where ``dataset``
    steps read (runners.catalogsource); ``strategies`` runs ``strategy_backtest``'s modules
    (default: the sandbox, runners.papertrade.service).
    """

    def __init__(
        self,
        *,
        base_dir: Path,
        datasets: Mapping[str, Path] | None = None,
        confine_paths: bool = False,
        node_registry: NodeRegistry | None = None,
        mlflow_uri: str | None = None,
        catalog: DatasetSource | None = None,
        strategies: StrategyBacktester | None = None,
    ) -> None:
        self.base_dir = Path(base_dir)
        self.catalog = catalog
        self.strategies = strategies
        self.mlflow_uri = mlflow_uri
        self.datasets = dict(datasets or {})
        self.confine_paths = confine_paths
        self._registry = node_registry

    @property
    def registry(self) -> NodeRegistry:
        """The node registry in use (the default one with the built-ins unless given)."""
        if self._registry is None:
            self._registry = registry()
        return self._registry

    def context(self, log: Any = None, outputs: frozenset[str] | None = None) -> NodeContext:
        """A node context for this run; ``log`` receives the node's log lines, ``outputs``
        names the outputs that will be read (None: all)."""
        return NodeContext(
            base_dir=self.base_dir,
            datasets=self.datasets,
            log=log if log is not None else (lambda _m: None),
            confine_paths=self.confine_paths,
            outputs=outputs,
            models=MlflowModelSource(self.mlflow_uri) if self.mlflow_uri else None,
            catalog=self.catalog,
            strategies=self.strategies if self.strategies is not None else _sandbox_strategies(),
        )

    def fingerprint(self, node_ir: NodeIR) -> str | None:
        """What the node reads from outside its inputs (a data file's hash), or None.

        Raises the node's own error (e.g. a missing file) so the caller can decide.
        """
        node_type = self.registry.get(node_ir.type)
        params = node_type.validated_params(node_ir.params)
        return node_type(self.context()).fingerprint(params)

    def run(self, node_ir: NodeIR, input_paths: InputPaths, *, output_dir: Path) -> NodeResult:
        """Run one node; failures come back as a failed :class:`NodeResult`, never raised."""
        logs: list[str] = []

        def log(msg: str) -> None:
            logs.append(f"[{node_ir.id}] {msg}")

        wall0, cpu0 = time.perf_counter(), time.thread_time()
        try:
            outputs = self._execute(node_ir, input_paths, output_dir, log)
        except AlphaForgeError as exc:
            log("".join(traceback.format_exception(exc)).rstrip())
            kind = exc.kind if isinstance(exc, DataError) else type(exc).__name__
            return self._failed(node_ir, str(exc), kind, logs, wall0, cpu0)
        except Exception as exc:  # a bug in a node: keep the traceback in the log only
            log("".join(traceback.format_exception(exc)).rstrip())
            where = f"node {node_ir.id!r} ({node_ir.type})"
            msg = (
                f"internal error in {where}: {type(exc).__name__}: {exc} (a bug in the node, "
                "not in your pipeline: tell your operator, who finds the traceback in the run's "
                "operator-details.log)"
            )
            return self._failed(node_ir, msg, "InternalError", logs, wall0, cpu0)
        usage = _usage(wall0, cpu0)
        return NodeResult(status="completed", output_paths=outputs, logs=logs, usage=usage)

    # -- steps --------------------------------------------------------------------------

    def _execute(
        self, node_ir: NodeIR, input_paths: InputPaths, output_dir: Path, log: Any
    ) -> dict[str, str]:
        node_type = self.registry.get(node_ir.type)
        if node_type.version != node_ir.version:
            log(
                f"warning: compiled against {node_ir.type} {node_ir.version}, "
                f"running {node_type.version}"
            )
        inputs = self._load_inputs(node_ir, node_type, input_paths)
        values = self._run_node(node_ir, node_type, inputs, log)
        return self._write_outputs(node_ir, node_type, values, output_dir)

    def compute(
        self,
        node_ir: NodeIR,
        upstream: Mapping[str, Mapping[str, Any]],
        log: Any = None,
        outputs: frozenset[str] | None = None,
    ) -> dict[str, Any]:
        """Run one built-in node on in-memory inputs: ``upstream`` holds each bound node's
        outputs (``{node id: {port: value}}``); the bindings' columns are selected, the params
        validated and every declared output checked, as :meth:`run` does with files. Returns
        the outputs (only those named in ``outputs`` when given: the node may skip building
        the others); raises the node's own error (the sweep's trials run this way)."""
        node_type = self.registry.get(node_ir.type)
        inputs: dict[str, Any] = {}
        for port, binding in node_ir.inputs.items():
            if isinstance(binding, tuple):
                inputs[port] = [
                    _select(upstream[b.node][b.port], b, node_ir.id, port) for b in binding
                ]
            else:
                value = upstream[binding.node][binding.port]
                inputs[port] = _select(value, binding, node_ir.id, port)
        values = self._run_node(node_ir, node_type, inputs, log or (lambda _m: None), outputs)
        declared = node_ir.outputs or {p.name: p.type.value for p in node_type.outputs}
        if outputs is not None:
            unknown = sorted(outputs - set(declared))
            if unknown:
                raise RunnerError(f"node {node_ir.id!r} has no output {', '.join(unknown)}")
            declared = {p: t for p, t in declared.items() if p in outputs}
        for port, type_name in declared.items():
            where = f"output {port!r} of node {node_ir.id!r} ({node_ir.type})"
            if port not in values:
                raise RunnerError(f"{where} was not produced")
            check_value(values[port], PortType(type_name), where)
        return {port: values[port] for port in declared}

    def _run_node(
        self,
        node_ir: NodeIR,
        node_type: type[Node],
        inputs: dict[str, Any],
        log: Any,
        outputs: frozenset[str] | None = None,
    ) -> Mapping[str, Any]:
        params = node_type.validated_params(node_ir.params)
        node = node_type(self.context(log, outputs))
        values = node.execute(inputs, params)
        if not isinstance(values, Mapping):
            raise RunnerError(f"node {node_ir.id!r} returned {type(values).__name__}, not a dict")
        return values

    def _load_inputs(
        self, node_ir: NodeIR, node_type: type[Node], input_paths: InputPaths
    ) -> dict[str, Any]:
        inputs: dict[str, Any] = {}
        for port, binding in node_ir.inputs.items():
            if port not in input_paths:
                raise RunnerError(f"node {node_ir.id!r}: no artifact given for input {port!r}")
            paths = input_paths[port]
            if isinstance(binding, tuple):
                if isinstance(paths, str) or len(paths) != len(binding):
                    raise RunnerError(
                        f"node {node_ir.id!r}: input {port!r} needs {len(binding)} paths"
                    )
                inputs[port] = [
                    _select(read_value(p), b, node_ir.id, port)
                    for p, b in zip(paths, binding, strict=True)
                ]
            else:
                path = paths if isinstance(paths, str) else _single(paths, node_ir.id, port)
                inputs[port] = _select(read_value(path), binding, node_ir.id, port)
        return inputs

    def _write_outputs(
        self, node_ir: NodeIR, node_type: type[Node], values: Mapping[str, Any], output_dir: Path
    ) -> dict[str, str]:
        output_dir.mkdir(parents=True, exist_ok=True)
        paths: dict[str, str] = {}
        declared = node_ir.outputs or {p.name: p.type.value for p in node_type.outputs}
        for port, type_name in declared.items():
            where = f"output {port!r} of node {node_ir.id!r} ({node_ir.type})"
            if port not in values:
                raise RunnerError(f"{where} was not produced")
            check_value(values[port], PortType(type_name), where)
            path = output_dir / file_name(port, type_name)
            write_value(values[port], type_name, path)
            paths[port] = str(path)
        return paths

    @staticmethod
    def _failed(
        node_ir: NodeIR, msg: str, kind: str, logs: list[str], wall0: float, cpu0: float
    ) -> NodeResult:
        logs.append(f"[{node_ir.id}] failed: {msg}")
        return NodeResult(
            status="failed", logs=logs, usage=_usage(wall0, cpu0), error=msg, error_kind=kind
        )


def _select(value: Any, binding: InputBinding, node_id: str, port: str) -> Any:
    """Apply a binding's column selection (``data.close``) to a loaded value; a column of a
    panel is a wide frame (ts × symbol, NaN where a symbol has no bar)."""
    if binding.column is None:
        return value
    if not isinstance(value, pd.DataFrame):
        raise RunnerError(
            f"node {node_id!r}: input {port!r} selects column {binding.column!r} of "
            f"{binding.node}.{binding.port}, which is not a table"
        )
    if binding.column not in value.columns:
        cols = ", ".join(map(str, value.columns))
        raise RunnerError(
            f"node {node_id!r}: input {port!r}: {binding.node}.{binding.port} has no column "
            f"{binding.column!r} (columns: {cols})"
        )
    series = value[binding.column]
    require_volume(binding.column, series, f"node {node_id!r} ({binding.node}.{binding.column})")
    if panel.is_panel(value):  # a column of several symbols: wide, ts × symbol
        return panel.wide(value, binding.column)
    return series.astype("float64") if pd.api.types.is_numeric_dtype(series.dtype) else series


def _single(paths: Sequence[str], node_id: str, port: str) -> str:
    if len(paths) != 1:
        raise RunnerError(f"node {node_id!r}: input {port!r} takes one artifact, got {len(paths)}")
    return paths[0]


def _usage(wall0: float, cpu0: float) -> dict[str, Any]:
    return {
        "wall_s": round(time.perf_counter() - wall0, 6),
        "cpu_s": round(time.thread_time() - cpu0, 6),
    }


def _sandbox_strategies() -> StrategyBacktester:
    """The default ``NodeContext.strategies``: strategy modules in the sandbox. Imported by
    name, when a context is built, so that the sandbox host's modules are not in every
    built-in node's code fingerprint: ``runners.registry`` adds them to ``strategy_backtest``'s
    alone (``NODE_RUNTIME_MODULES``)."""
    service = importlib.import_module("runners.papertrade.service")
    return service.SandboxStrategyBacktester()  # type: ignore[no-any-return]
