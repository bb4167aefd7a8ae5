"""The run body: ``run_graph(spec) -> RunRecord``, with no Prefect in it.

:func:`run_graph` writes the run directory, computes every node's artifact key, submits each
node to a :class:`GraphExecutor` (waiting for its upstream nodes), collects the node results
from the executor's futures, writes the results and the final record, and logs to MLflow. The
Prefect flow (:mod:`flows.pipeline`) wraps it with an executor that submits Prefect tasks;
:class:`LocalExecutor` runs the same body on a thread pool without any orchestrator (sweep
chunks, tests). Either way the node results come from the futures, never re-read from disk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from dsl.ir import NodeIR, PipelineIR
from flows.artifacts import ArtifactStore, KeyPlan, compute_keys
from flows.catalog import catalog_source, follow_latest
from flows.definition import custom_nodes, data_sources, seeds
from flows.events import NodeEvent, publish
from flows.execute import NodeJob, cancel_user_runners, execute_job, release_user_runners
from flows.finish import finish_run, open_tracker
from flows.lock import package_lock
from flows.record import mark, package_versions, process_marks, utc_now
from flows.settings import CoreSettings
from flows.spec import NodeRecord, RunRecord, RunSpec
from flows.tracking import import_shared_dependencies
from runners.base import NodeResult
from runners.inprocess import InProcessRunner

__all__ = [
    "MAX_PARALLEL_NODES",
    "GraphExecutor",
    "LocalExecutor",
    "NodeFuture",
    "NodeOutcome",
    "kill_sandboxes",
    "not_executed_blocks",
    "run_graph",
]

MAX_PARALLEL_NODES = 4


@dataclass
class NodeOutcome:
    """How one node ended: its state, and its result when it ran (or came from the cache)."""

    state: str
    result: NodeResult | None = None
    error: str | None = None


class NodeFuture(Protocol):
    """A submitted node (a Prefect task future, or a thread-pool future)."""

    def outcome(self) -> NodeOutcome:
        """Wait for the node and say how it ended (``skipped`` when it never ran)."""
        ...


class GraphExecutor(Protocol):
    """Where nodes run: submits a node job after its upstream nodes, and logs for the run."""

    logger: logging.Logger | logging.LoggerAdapter[Any]

    def submit(self, job: NodeJob, upstream: list[NodeFuture]) -> NodeFuture:
        """Run ``job`` once every ``upstream`` node completed; never when one did not."""
        ...

    def wait(self, futures: list[NodeFuture]) -> None:
        """Block until every future is done (raises on a termination of this process)."""
        ...

    def capture_log(self, path: Path) -> AbstractContextManager[Any]:
        """Write this run's log lines to ``path`` inside the ``with`` block."""
        ...


def not_executed_blocks(ir: PipelineIR) -> list[str]:
    """The blocks of ``ir`` this version compiles but does not run (AF008): ``stream``. A
    ``sweep`` (and its ``walkforward``) runs as a sweep, not as part of a run."""
    return ["stream"] if ir.stream is not None else []


def kill_sandboxes(run_id: str) -> int:
    """Stop a run's user code: this process's runners refuse new containers for it, and every
    container labelled with the run id (any process's) is killed and removed."""
    from flows.customnodes import kill_run_containers

    return cancel_user_runners(run_id) + kill_run_containers(run_id)


def run_graph(
    spec: RunSpec,
    *,
    executor: GraphExecutor,
    settings: CoreSettings,
    run_id: str,
    flow_run_id: str | None = None,
) -> RunRecord:
    """Run ``spec`` as run ``run_id`` on ``executor``; returns the final record (also written
    to ``run.json``). Never raises for a failing node; a termination signal propagates after
    the run's sandbox containers are killed."""
    body_start = time.time()
    ir, followed = follow_latest(
        spec.effective_ir(), spec.catalog_follow, settings, spec.catalog_url
    )
    run_dir = settings.runs_dir / run_id
    (run_dir / "nodes").mkdir(parents=True, exist_ok=True)
    (run_dir / "ir.json").write_text(ir.to_json())
    record = _initial_record(spec, ir, run_id, flow_run_id)
    record.write(run_dir)

    timings = process_marks(spec.submitted_at, body_start)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tracker")
    tracker: Future[Any] | None = None
    if spec.track:
        import_shared_dependencies()  # before MLflow loads in the tracker thread
        tracker = pool.submit(open_tracker, settings, ir, run_id, flow_run_id or "")
    lock = pool.submit(package_lock)  # ~0.3 s the first time in a process: off the start
    try:
        with executor.capture_log(run_dir / "run.log"):
            logger = executor.logger
            logger.info(f"[flow] run {run_id}: pipeline {ir.name!r}, {len(ir.nodes)} nodes")
            if spec.overrides:
                logger.info(f"[flow] param overrides: {spec.overrides}")
            for line in followed:
                (logger.warning if "warning:" in line else logger.info)(line)
            if ir.sweep is not None and not spec.overrides:
                logger.info(
                    "[flow] this run executes the pipeline once, with the params written in its "
                    "steps; the sweep block runs as a sweep (`alphaforge sweep`, or Sweep in the "
                    "web app)"
                )
            for keyword in not_executed_blocks(ir):  # AF008, as the compiler warned
                logger.warning(
                    f"[flow] warning: AF008: this version does not execute `{keyword}` blocks "
                    "yet: this run executes the pipeline once, with the params in its steps"
                )
            base_dir, datasets = _data_paths(spec, settings)
            runner = InProcessRunner(
                base_dir=Path(base_dir),
                datasets=datasets,
                confine_paths=spec.confine_paths,
                mlflow_uri=settings.mlflow_uri,
                catalog=catalog_source(settings, spec.catalog_url, spec.catalog_namespace),
            )
            t = time.time()
            plan = compute_keys(ir, _fingerprint(runner), salt=run_id)
            sources = data_sources(ir, runner, plan.fingerprints)
            timings["keys_s"] = round(time.time() - t, 4)
            t = time.time()
            futures = _submit_all(
                spec, ir, plan, settings, run_id, run_dir, executor, (base_dir, datasets)
            )
            try:
                executor.wait(list(futures.values()))
            except BaseException:  # a cancellation's SIGTERM, Ctrl-C: no container outlives it
                kill_sandboxes(run_id)
                raise
            timings["nodes_s"] = round(time.time() - t, 4)
            mark(timings, "nodes_done", body_start)
            outcomes = _outcomes(ir, futures, run_id)
            record = finish_run(
                record=record,
                ir=ir,
                run_dir=run_dir,
                plan=plan,
                node_outcomes=outcomes,
                tracker=tracker,
                timings=timings,
                logger=logger,
                body_start=body_start,
                definition={"sources": sources, "package_lock": lock},
            )
    finally:
        pool.shutdown(wait=False)
        release_user_runners(run_id)
    return record


def _submit_all(
    spec: RunSpec,
    ir: PipelineIR,
    plan: KeyPlan,
    settings: CoreSettings,
    run_id: str,
    run_dir: Path,
    executor: GraphExecutor,
    data: tuple[str, dict[str, Path]],
) -> dict[str, NodeFuture]:
    """Submit every node in topological order, each waiting for its upstream futures;
    ``data`` is the spec's base dir and datasets as local paths."""
    store = store_for(settings)
    base_dir, datasets = data
    futures: dict[str, NodeFuture] = {}
    for node in ir.nodes:
        inputs: dict[str, list[tuple[str, str]]] = {}
        for port, b in node.bindings():
            inputs.setdefault(port, []).append((plan.keys[b.node], b.port))
        job = NodeJob(
            run_id=run_id,
            run_dir=str(run_dir),
            node=node,
            key=plan.keys[node.id],
            cacheable=plan.cacheable[node.id],
            use_cache=spec.use_cache,
            inputs=inputs,
            store_url=store.url,
            store_cache_dir=str(settings.root / "artifact-cache"),
            base_dir=base_dir,
            datasets={k: str(v) for k, v in datasets.items()},
            confine_paths=spec.confine_paths,
            custom_nodes_dir=str(settings.custom_nodes_dir),
            code_fingerprint=plan.code_fingerprints.get(node.id),
            runner_choice=spec.runner_for(node.runtime) if node.runtime != "builtin" else "auto",
            mlflow_uri=settings.mlflow_uri,
            catalog_url=spec.catalog_url,
            catalog_namespace=spec.catalog_namespace,
        )
        upstream = [futures[d] for d in node.dependencies()]
        futures[node.id] = executor.submit(job, upstream)
    return futures


def _outcomes(
    ir: PipelineIR, futures: dict[str, NodeFuture], run_id: str
) -> dict[str, NodeOutcome]:
    """Each node's final outcome, from its future."""
    out: dict[str, NodeOutcome] = {}
    for node in ir.nodes:
        outcome = futures[node.id].outcome()
        if outcome.state == "skipped":
            publish(NodeEvent(run_id, node.id, node.type, "skipped"))
        elif outcome.result is None and outcome.state == "failed":
            publish(NodeEvent(run_id, node.id, node.type, "failed", error=outcome.error))
        out[node.id] = outcome
    return out


def _data_paths(spec: RunSpec, settings: CoreSettings) -> tuple[str, dict[str, Path]]:
    """The spec's base dir and datasets as local paths (``store:`` references resolved)."""
    base = str(settings.resolve_ref(spec.base_dir)) if spec.base_dir else "."
    return base, {k: settings.resolve_ref(v) for k, v in spec.datasets.items()}


def _fingerprint(runner: InProcessRunner) -> Callable[[NodeIR], str | None]:
    """Built-ins' external reads (data files); a custom node reads only its inputs (its code
    hash is in the key), so it is cacheable like any pure node."""

    def fingerprint(node: NodeIR) -> str | None:
        return None if node.runtime != "builtin" else runner.fingerprint(node)

    return fingerprint


def store_for(settings: CoreSettings) -> ArtifactStore:
    """The artifact store the settings name (a local directory by default)."""
    url = settings.artifact_store_url or str(settings.artifacts_dir)
    return ArtifactStore(url, cache_dir=settings.root / "artifact-cache")


def _initial_record(
    spec: RunSpec, ir: PipelineIR, run_id: str, flow_run_id: str | None
) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        pipeline=ir.name,
        title=ir.title,
        ir_hash=spec.ir.content_hash(),
        source_hash=ir.source_hash,
        status="running",
        started_at=utc_now(),
        flow_run_id=flow_run_id,
        base_dir=spec.base_dir,
        spec=spec.summary(),
        node_states={n.id: "pending" for n in ir.nodes},
        nodes={n.id: NodeRecord(type=n.type, version=n.version, state="pending") for n in ir.nodes},
        package_versions=package_versions(),
        rerun_of=spec.rerun_of,
        seeds=seeds(ir, spec.seed),
        custom_nodes=custom_nodes(ir),
    )


# ---- running without an orchestrator ---------------------------------------------------------


class _LocalFuture:
    def __init__(self, future: Future[NodeOutcome]) -> None:
        self.future = future

    def outcome(self) -> NodeOutcome:
        return self.future.result()


class LocalExecutor:
    """Runs nodes on a thread pool in this process: the same run body without Prefect.

    A node whose upstream node did not complete is ``skipped`` without running. Log lines go
    to the ``alphaforge.run`` logger (and the run log while :meth:`capture_log` is active).
    """

    def __init__(self, run_id: str, max_workers: int = MAX_PARALLEL_NODES) -> None:
        self.run_id = run_id
        self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="node")
        self.logger: logging.Logger | logging.LoggerAdapter[Any] = logging.getLogger(
            f"alphaforge.run.{run_id}"
        )
        self.logger.setLevel(logging.INFO)

    def submit(self, job: NodeJob, upstream: list[NodeFuture]) -> NodeFuture:
        def body() -> NodeOutcome:
            for up in upstream:
                if up.outcome().state not in ("completed", "cached"):
                    return NodeOutcome("skipped")
            result = execute_job(
                job, lambda level, msg: self.logger.log(logging.getLevelName(level), msg)
            )
            return NodeOutcome(result.status, result, result.error)

        return _LocalFuture(self.pool.submit(body))

    def wait(self, futures: list[NodeFuture]) -> None:
        for f in futures:
            f.outcome()

    @contextmanager
    def capture_log(self, path: Path) -> Iterator[logging.Handler]:
        from flows.runlog import RunLogHandler

        handler = RunLogHandler(path)
        base = self.logger if isinstance(self.logger, logging.Logger) else self.logger.logger
        base.addHandler(handler)
        try:
            yield handler
        finally:
            base.removeHandler(handler)
            handler.close()
            self.pool.shutdown(wait=False)
