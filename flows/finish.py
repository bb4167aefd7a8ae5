"""The end of a run: result files, the final run record and the MLflow run.

The MLflow run is opened in a background thread at the start of the flow (:func:`open_tracker`:
importing MLflow and initialising its store take seconds) so that cost overlaps the nodes;
:func:`finish_run` waits for it only once the nodes are done, and records how long it waited.
A tracking failure is recorded (``tracking_error``), logged, and fails the run: a run never
says completed when its results did not reach MLflow.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol

from dsl.ir import PipelineIR
from flows.artifacts import KeyPlan
from flows.execute import sandbox_record
from flows.models import TrainedModel, collect_models, log_models
from flows.record import mark, run_name, utc_now
from flows.results import RunResults, write_results
from flows.settings import CoreSettings
from flows.spec import NodeRecord, RunRecord, RunStatus
from flows.tracking import MlflowTracker, Tracker, TrackingError, flatten_params
from runners.base import NodeResult
from runners.process import WARNING as UNSANDBOXED_WARNING

__all__ = ["finish_run", "open_tracker"]


class NodeOutcomeLike(Protocol):
    """How a node ended (:class:`flows.graph.NodeOutcome`)."""

    state: str
    result: NodeResult | None
    error: str | None


def open_tracker(
    settings: CoreSettings, ir: PipelineIR, run_id: str, flow_run_id: str
) -> tuple[MlflowTracker, float]:
    """Start the MLflow run for this pipeline run; returns it and the seconds it took."""
    t0 = time.perf_counter()
    tracker = MlflowTracker.start(
        tracking_uri=settings.mlflow_uri,
        experiment=ir.name,
        run_name=run_name(ir.title, ir.name, run_id),
        tags={
            "alphaforge.run_id": run_id,
            "alphaforge.ir_hash": ir.content_hash(),
            "alphaforge.pipeline": ir.name,
            "prefect.flow_run_id": flow_run_id,
        },
        artifact_root=settings.mlflow_artifact_root,
    )
    return tracker, time.perf_counter() - t0


def finish_run(
    *,
    record: RunRecord,
    ir: PipelineIR,
    run_dir: Path,
    plan: KeyPlan,
    node_outcomes: Mapping[str, NodeOutcomeLike],
    tracker: Future[Any] | None,
    timings: dict[str, float],
    logger: Any,
    body_start: float,
    definition: Mapping[str, Any] | None = None,
) -> RunRecord:
    """Write results and the final record (``run.json``), log to MLflow; returns the record.

    ``definition``: what the run read that the IR does not say (``sources``: node id -> where
    its data came from, :func:`flows.definition.data_sources`; ``package_lock``: a future of
    :func:`flows.lock.package_lock`)."""
    t = time.time()
    error = _first_error(ir, node_outcomes)
    status: RunStatus = "failed" if error else "completed"
    results = RunResults()
    models: list[TrainedModel] = []
    fingerprints: dict[str, dict[str, str]] = {}
    if status == "completed":
        outputs = {
            nid: o.result.output_paths for nid, o in node_outcomes.items() if o.result is not None
        }
        results = write_results(ir, outputs, run_dir)
        models = collect_models(ir, outputs, run_dir)
        from flows.fingerprints import output_fingerprints  # pandas: only once results exist

        fingerprints = output_fingerprints(ir, outputs)
    timings["results_s"] = round(time.time() - t, 4)
    mark(timings, "results", body_start)
    tracking = _track(tracker, ir, run_dir, status, results, timings, logger, models)
    if "models" not in tracking:
        tracking["models"] = {m.key: m.record() for m in models}
    mark(timings, "tracked", body_start)
    if status == "completed" and tracking.get("tracking_error"):
        # a run whose results are not where its users look for them has not completed
        status = "failed"
        error = (
            f"{TrackingError.code}: the run computed its results, but recording them in MLflow "
            f"failed ({_no_paths(tracking['tracking_error'])}); check the MLflow server (the "
            "run's files are kept) and run the pipeline again"
        )
    timings["flow_body_s"] = round(time.time() - body_start, 4)
    sandbox = sandbox_record(
        [(ir.node(nid).runtime, o.result) for nid, o in node_outcomes.items() if o.result]
    )
    if sandbox is not None and sandbox["runner"] == "process":
        logger.warning(f"[flow] user code in this run: {UNSANDBOXED_WARNING}")
    sources = dict((definition or {}).get("sources") or {})
    lock = (definition or {}).get("package_lock")
    final = record.model_copy(
        update={
            "status": status,
            "error": error,
            "finished_at": utc_now(),
            "node_states": {nid: o.state for nid, o in node_outcomes.items()},
            "nodes": _node_records(ir, plan, node_outcomes),
            "datasets": {
                nid: {
                    "type": ir.node(nid).type,
                    "params": ir.node(nid).params,
                    "fingerprint": fp,
                    "source": sources.get(nid, {}),
                }
                for nid, fp in plan.fingerprints.items()
            },
            "fingerprints": fingerprints,
            "package_lock": _lock(lock, logger),
            "primary_metrics_node": results.primary_node,
            "metrics": results.metrics,
            "result_fingerprint": results.fingerprint,
            "sandbox": sandbox,
            "timings": {**record.timings, **timings},
            **tracking,
        }
    )
    final.write(run_dir)
    level = logging.INFO if status == "completed" else logging.ERROR
    logger.log(level, f"[flow] run {record.run_id} {status}" + (f": {error}" if error else ""))
    return final


def _lock(lock: Future[dict[str, Any]] | None, logger: Any) -> dict[str, Any] | None:
    """The package lock from its future (None, logged, when it could not be read)."""
    if lock is None:
        return None
    try:
        return lock.result()
    except Exception as exc:  # a broken distribution's metadata: the run still ends
        logger.warning(f"[flow] warning: the package lock could not be read: {exc}")
        return None


def _no_paths(text: str) -> str:
    """``text`` without absolute server paths (an MLflow error may name its store's files)."""
    return re.sub(r"(?:file://)?(?:/[\w.\-]+){2,}/?", "<path>", text)[:300]


def _first_error(ir: PipelineIR, outcomes: Mapping[str, NodeOutcomeLike]) -> str | None:
    for node in ir.nodes:
        o = outcomes[node.id]
        if o.state == "failed":
            msg = o.result.error if o.result else o.error
            return f"node {node.id!r} ({node.type}) failed: {msg}"
    return None


def _node_records(
    ir: PipelineIR, plan: KeyPlan, outcomes: Mapping[str, NodeOutcomeLike]
) -> dict[str, NodeRecord]:
    out: dict[str, NodeRecord] = {}
    for node in ir.nodes:
        o = outcomes[node.id]
        r = o.result
        out[node.id] = NodeRecord(
            type=node.type,
            version=node.version,
            state=o.state,  # type: ignore[arg-type]
            key=plan.keys[node.id],
            code_fingerprint=plan.code_fingerprints.get(node.id),
            cacheable=plan.cacheable[node.id],
            usage=r.usage if r else {},
            error=r.error if r else o.error,
            error_kind=r.error_kind if r else None,
        )
    return out


def _track(
    tracker_future: Future[Any] | None,
    ir: PipelineIR,
    run_dir: Path,
    status: str,
    results: RunResults,
    timings: dict[str, float],
    logger: Any,
    models: list[TrainedModel],
) -> dict[str, Any]:
    """Log the run to the tracker; returns the record fields about tracking (and the
    models' records once they are logged and registered)."""
    if tracker_future is None:
        return {"mlflow_run_id": None}
    t = time.time()
    tracker: Any = None
    try:
        tracker, open_s = tracker_future.result()
        timings["mlflow_open_s"] = round(open_s, 4)
        timings["mlflow_wait_s"] = round(time.time() - t, 4)
        t = time.time()
        logged = _log_to(tracker, ir, run_dir, status, results, models)
        timings["mlflow_log_s"] = round(time.time() - t, 4)
        for rec in logged.values():
            if rec["registered_name"]:
                logger.info(
                    f"[flow] model of step {rec['node']} registered as "
                    f"{rec['registered_name']} version {rec['registered_version']}"
                    + (f" (alias {rec['alias']})" if rec["alias"] else "")
                )
    except Exception as exc:  # recorded and logged; the run ends failed (finish_run)
        logger.error(f"[flow] MLflow tracking failed: {type(exc).__name__}: {exc}")
        if tracker is not None:
            with contextlib.suppress(Exception):
                tracker.end("failed")
        return {"mlflow_run_id": None, "tracking_error": f"{type(exc).__name__}: {exc}"}
    return {
        "mlflow_run_id": tracker.run_id,
        "mlflow_experiment_id": tracker.experiment_id,
        "mlflow_tracking_uri": tracker.tracking_uri,
        "models": logged,
    }


def _log_to(
    tracker: Tracker,
    ir: PipelineIR,
    run_dir: Path,
    status: str,
    results: RunResults,
    models: list[TrainedModel],
) -> dict[str, dict[str, Any]]:
    logged = log_models(tracker, ir, models, run_dir.name) if models else {}
    tags = {"alphaforge.status": status}
    if results.fingerprint:
        tags["alphaforge.result_fingerprint"] = results.fingerprint
    tracker.log_all(flatten_params(ir), results.metrics, tags)
    for name in ("ir.json", "metrics.json"):
        if (run_dir / name).exists():
            tracker.log_artifact(run_dir / name)
    for path in results.files():
        tracker.log_artifact(path)
    tracker.end(status)
    return logged
