"""The one pipeline flow: a Prefect flow run per pipeline run, a task run per node.

:func:`pipeline_flow` is importable and takes only JSON parameters, so deployments can reference
it (``flows.pipeline:pipeline_flow``). Each node is a task run named after its node id, submitted
with ``wait_for`` its upstream futures to a thread pool, so independent branches run
concurrently. A node that fails ends its task in a Failed state (no traceback on screen; the
traceback is in the run log); its downstream tasks never start and are recorded as ``skipped``.
Everything a run leaves behind is written inside the flow (see :mod:`flows.record`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context
from prefect.futures import PrefectFuture, wait
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from dsl.ir import NodeIR, PipelineIR
from flows.artifacts import ArtifactStore, KeyPlan, compute_keys
from flows.customnodes import kill_run_containers
from flows.events import NodeEvent, publish
from flows.execute import (
    NodeJob,
    cancel_user_runners,
    execute_job,
    read_node_result,
    release_user_runners,
)
from flows.finish import finish_run, open_tracker
from flows.record import package_versions, utc_now, write_json
from flows.runlog import run_log
from flows.settings import CoreSettings, get_settings
from flows.tracking import import_shared_dependencies
from runners.inprocess import InProcessRunner

__all__ = ["FLOW_NAME", "pipeline_flow", "run_node"]

FLOW_NAME = "alphaforge-pipeline"
MAX_PARALLEL_NODES = 4


@task(name="node", cache_policy=NO_CACHE, persist_result=False)
def run_node(job: NodeJob) -> dict[str, Any] | State:
    """Run one node (see :func:`flows.execute.execute_job`); Failed state when the node fails."""
    logger = get_run_logger()
    result = execute_job(job, lambda level, msg: logger.log(logging.getLevelName(level), msg))
    if not result.ok:
        return Failed(message=result.error or f"node {job.node.id!r} failed")
    return {"status": result.status, "output_paths": result.output_paths}


def kill_sandboxes(run_id: str) -> int:
    """Stop a run's user code: this process's runners refuse new containers for it, and every
    container labelled with the run id (any process's) is killed and removed."""
    return cancel_user_runners(run_id) + kill_run_containers(run_id)


def _on_cancellation(flow: Any, flow_run: Any, state: State) -> None:
    """Prefect's ``on_cancellation`` hook: kill the cancelled run's sandbox containers."""
    run_id = (flow_run.parameters or {}).get("run_id")
    if run_id:
        kill_sandboxes(str(run_id))


@flow(
    name=FLOW_NAME,
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_PARALLEL_NODES),  # type: ignore[arg-type]
    persist_result=False,
    validate_parameters=True,
    on_cancellation=[_on_cancellation],
)
def pipeline_flow(
    ir_json: str,
    run_id: str,
    base_dir: str,
    data_dir: str | None = None,
    datasets: dict[str, str] | None = None,
    confine_paths: bool = False,
    use_cache: bool = True,
    track: bool = True,
    submitted_at: float | None = None,
) -> dict[str, Any] | State:
    """Run a compiled pipeline (IR JSON) as run ``run_id``; relative paths from ``base_dir``.

    ``data_dir`` overrides the settings' data dir; ``datasets`` maps dataset names to Parquet
    files; ``confine_paths`` keeps file reads inside ``base_dir`` (web runs); ``use_cache=False``
    recomputes every node; ``track=False`` skips MLflow; ``submitted_at`` (epoch seconds) lets
    the record time Prefect's start-up. Returns the run summary, or a Failed state.
    """
    body_start = time.time()
    settings = CoreSettings(data_dir=Path(data_dir)) if data_dir else get_settings()
    ir = PipelineIR.from_json(ir_json)
    context = get_run_context()
    flow_run = getattr(context, "flow_run", None)
    if flow_run is None:  # pipeline_flow is always a flow run; anything else is a bug
        raise RuntimeError("pipeline_flow must run as a Prefect flow run")
    flow_run_id = str(flow_run.id)
    run_dir = settings.runs_dir / run_id
    (run_dir / "nodes").mkdir(parents=True, exist_ok=True)
    (run_dir / "ir.json").write_text(ir.to_json())
    write_json(run_dir / "run.json", _initial_record(ir, run_id, flow_run_id, base_dir))

    timings: dict[str, float] = {}
    if submitted_at is not None:
        timings["prefect_start_s"] = round(body_start - submitted_at, 4)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tracker")
    tracker: Future[Any] | None = None
    if track:
        import_shared_dependencies()  # before MLflow loads in the tracker thread
        tracker = pool.submit(open_tracker, settings, ir, run_id, flow_run_id)
    try:
        with run_log(run_dir / "run.log", flow_run_id):
            logger = get_run_logger()
            logger.info(f"[flow] run {run_id}: pipeline {ir.name!r}, {len(ir.nodes)} nodes")
            runner = InProcessRunner(
                base_dir=Path(base_dir),
                datasets={k: Path(v) for k, v in (datasets or {}).items()},
                confine_paths=confine_paths,
            )
            t = time.time()
            plan = compute_keys(ir, _fingerprint(runner), salt=run_id)
            timings["keys_s"] = round(time.time() - t, 4)
            t = time.time()
            store = _store(settings)
            futures = _submit_all(
                ir,
                plan,
                store,
                settings,
                run_id,
                run_dir,
                base_dir,
                datasets or {},
                confine_paths,
                use_cache,
            )
            try:
                wait(list(futures.values()))
            except BaseException:  # a cancellation's SIGTERM, Ctrl-C: no container outlives it
                kill_sandboxes(run_id)
                raise
            timings["nodes_s"] = round(time.time() - t, 4)
            summary = finish_run(
                ir=ir,
                run_dir=run_dir,
                run_id=run_id,
                plan=plan,
                node_outcomes=_outcomes(ir, futures, run_dir, run_id),
                tracker=tracker,
                timings=timings,
                logger=logger,
                body_start=body_start,
            )
    finally:
        pool.shutdown(wait=False)
        release_user_runners(run_id)
    if summary["status"] != "completed":
        return Failed(message=summary.get("error") or "run failed", data=summary)
    return summary


def _submit_all(
    ir: PipelineIR,
    plan: KeyPlan,
    store: ArtifactStore,
    settings: CoreSettings,
    run_id: str,
    run_dir: Path,
    base_dir: str,
    datasets: dict[str, str],
    confine_paths: bool,
    use_cache: bool,
) -> dict[str, PrefectFuture[Any]]:
    """Submit every node in topological order, each waiting for its upstream futures."""
    futures: dict[str, PrefectFuture[Any]] = {}
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
            use_cache=use_cache,
            inputs=inputs,
            store_url=store.url,
            store_cache_dir=str(settings.root / "artifact-cache"),
            base_dir=base_dir,
            datasets=datasets,
            confine_paths=confine_paths,
            custom_nodes_dir=str(settings.root / "custom-nodes"),
            code_fingerprint=plan.code_fingerprints.get(node.id),
        )
        upstream = [futures[d] for d in node.dependencies()]
        named = run_node.with_options(name=f"node:{node.type}", task_run_name=node.id)
        futures[node.id] = named.submit(job, wait_for=upstream)  # type: ignore[call-overload]
    return futures


def _outcomes(
    ir: PipelineIR, futures: dict[str, PrefectFuture[Any]], run_dir: Path, run_id: str
) -> dict[str, dict[str, Any]]:
    """Each node's final state and result, from the files its task wrote and its task state."""
    out: dict[str, dict[str, Any]] = {}
    for node in ir.nodes:
        result = read_node_result(run_dir, node.id)
        state = futures[node.id].state
        if result is not None:
            out[node.id] = {"state": result.status, "result": result}
        elif state.is_pending() or state.is_cancelled():
            out[node.id] = {"state": "skipped", "result": None}
            publish(NodeEvent(run_id, node.id, node.type, "skipped"))
        else:  # the task itself crashed before recording a result
            msg = f"node {node.id!r}: task ended in state {state.type.value}: {state.message}"
            out[node.id] = {"state": "failed", "result": None, "error": msg}
            publish(NodeEvent(run_id, node.id, node.type, "failed", error=msg))
    return out


def _fingerprint(runner: InProcessRunner) -> Callable[[NodeIR], str | None]:
    """Built-ins' external reads (data files); a custom node reads only its inputs (its code
    hash is in the key), so it is cacheable like any pure node."""

    def fingerprint(node: NodeIR) -> str | None:
        return None if node.runtime != "builtin" else runner.fingerprint(node)

    return fingerprint


def _store(settings: CoreSettings) -> ArtifactStore:
    url = settings.artifact_store_url or str(settings.artifacts_dir)
    return ArtifactStore(url, cache_dir=settings.root / "artifact-cache")


def _initial_record(ir: PipelineIR, run_id: str, flow_run_id: str, base_dir: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "pipeline": ir.name,
        "title": ir.title,
        "ir_hash": ir.content_hash(),
        "source_hash": ir.source_hash,
        "status": "running",
        "started_at": utc_now(),
        "finished_at": None,
        "flow_run_id": flow_run_id,
        "base_dir": base_dir,
        "node_states": {n.id: "pending" for n in ir.nodes},
        "sandbox": None,
        "package_versions": package_versions(),
    }
