"""The one pipeline flow: a Prefect flow run per pipeline run, a task run per node.

:func:`pipeline_flow` takes one parameter, the :class:`flows.spec.RunSpec` (JSON in a
deployment's parameters), and wraps the Prefect-free run body :func:`flows.graph.run_graph`
with Prefect's pieces: each node is a task run named after its node id, submitted with
``wait_for`` its upstream futures to a thread pool, so independent branches run concurrently.
A node that fails ends its task Failed (no traceback on screen; the traceback is in the run
log); its downstream tasks never start and are recorded as ``skipped``. The same definition
serves the CLI (called in-process), the web app and schedules (deployments run it on a worker):

- a spec without ``run_id`` (a schedule's fixed parameters) gets one from the flow run
  (:func:`run_id_for`), which the API can compute too;
- the flow run is named ``<pipeline title slug>/<run id>`` (:func:`flows.record.run_name`, the
  MLflow run's name too), whoever created it: the API, the CLI or Prefect's scheduler;
- the flow-run process leaves its marker in the run directory (:mod:`flows.liveness`), so the
  API can end a run whose process died as Crashed, with the reason;
- the modules named in ``ALPHAFORGE_EXTRA_NODE_MODULES`` are imported first, so an operator (or
  a test) can make extra node types available in a worker's flow-run processes;
- a cancellation kills the run's sandbox containers (``on_cancellation`` hook, and on the
  termination signal itself), and a worker's flow-run process then ends within seconds
  (:func:`_exit_after_grace`) while Prefect's SIGTERM handling stays intact, so the run ends
  Cancelled, not Crashed.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext, get_run_context
from prefect.exceptions import TerminationSignal
from prefect.futures import PrefectFuture, wait
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from flows.execute import NodeJob, execute_job
from flows.graph import MAX_PARALLEL_NODES, NodeFuture, NodeOutcome, kill_sandboxes, run_graph
from flows.liveness import mark_process
from flows.record import run_id_for, run_name
from flows.runlog import run_log
from flows.settings import current_settings
from flows.spec import RunSpec
from flows.startguard import stop_if_cancelled_before_start
from runners.base import NodeResult

__all__ = [
    "EXTRA_NODE_MODULES_ENV",
    "FLOW_NAME",
    "MAX_PARALLEL_NODES",
    "import_extra_node_modules",
    "kill_sandboxes",
    "pipeline_flow",
    "run_id_for",
    "run_node",
]

FLOW_NAME = "alphaforge-pipeline"
EXTRA_NODE_MODULES_ENV = "ALPHAFORGE_EXTRA_NODE_MODULES"
TERM_GRACE_S = 3.0


@task(name="node", cache_policy=NO_CACHE, persist_result=False)
def run_node(job: NodeJob) -> dict[str, Any] | State:
    """Run one node (see :func:`flows.execute.execute_job`); returns the node result's JSON,
    as a Failed state's data when the node failed (so its downstream tasks do not start)."""
    logger = get_run_logger()
    result = execute_job(job, lambda level, msg: logger.log(logging.getLevelName(level), msg))
    if not result.ok:
        # without the logs (logged above): Prefect logs this state's repr, data included
        data = result.to_json() | {"logs": []}
        return Failed(message=result.error or f"node {job.node.id!r} failed", data=data)
    return result.to_json()


class _TaskFuture:
    """A node's Prefect task future, read as a :class:`flows.graph.NodeOutcome`."""

    def __init__(self, future: PrefectFuture[Any]) -> None:
        self.future = future

    def outcome(self) -> NodeOutcome:
        self.future.wait()
        state = self.future.state
        if state.is_pending() or state.is_cancelled() or state.is_scheduled():
            return NodeOutcome("skipped")
        data = state.result(raise_on_failure=False)
        if isinstance(data, dict) and "status" in data:
            result = NodeResult.from_json(data)
            return NodeOutcome(result.status, result, result.error)
        # the task itself crashed before it produced a result
        msg = f"task ended in state {state.type.value}: {state.message}"
        return NodeOutcome("failed", None, msg)


class _PrefectExecutor:
    """Nodes as Prefect task runs on the flow's task runner; logs through the run logger."""

    def __init__(self, flow_run_id: str) -> None:
        self.flow_run_id = flow_run_id
        self.logger = get_run_logger()

    def submit(self, job: NodeJob, upstream: list[NodeFuture]) -> NodeFuture:
        named = run_node.with_options(name=f"node:{job.node.type}", task_run_name=job.node.id)
        wait_for = [u.future for u in upstream if isinstance(u, _TaskFuture)]
        return _TaskFuture(named.submit(job, wait_for=wait_for))  # type: ignore[call-overload]

    def wait(self, futures: list[NodeFuture]) -> None:
        wait([f.future for f in futures if isinstance(f, _TaskFuture)])

    @contextmanager
    def capture_log(self, path: Path) -> Iterator[logging.Handler]:
        with run_log(path, self.flow_run_id) as handler:
            yield handler


def _exit_after_grace(code: int = 128 + signal.SIGTERM) -> None:
    """End this flow-run process ``TERM_GRACE_S`` from now, whatever threads are still busy.

    Called when a termination (a cancellation's SIGTERM) unwinds the flow body in a worker's
    flow-run process. Prefect's engine then cancels the task runner, which joins its worker
    threads: a node still computing (a sleeping or looping node) would keep the process alive
    until the worker's SIGKILL 30 s later. A daemon timer ends it sooner; the worker records
    Cancelled itself. Never in a process that called the flow in-process (the CLI).
    """
    if not os.environ.get("PREFECT__FLOW_RUN_ID"):
        return
    timer = threading.Timer(TERM_GRACE_S, os._exit, args=(code,))
    timer.daemon = True
    timer.start()


def import_extra_node_modules() -> None:
    """Import the modules named in ``ALPHAFORGE_EXTRA_NODE_MODULES`` (comma-separated): extra node
    types for this process (a worker's flow-run processes, or ``serve`` for validation)."""
    for name in filter(
        None, (m.strip() for m in os.environ.get(EXTRA_NODE_MODULES_ENV, "").split(","))
    ):
        importlib.import_module(name)


def _on_cancellation(flow: Any, flow_run: Any, state: State) -> None:
    """Prefect's ``on_cancellation`` hook: kill the cancelled run's sandbox containers."""
    params = flow_run.parameters or {}
    spec = params.get("spec") or {}
    run_id = spec.get("run_id") if isinstance(spec, dict) else getattr(spec, "run_id", None)
    if not run_id and flow_run.expected_start_time is not None:
        run_id = run_id_for(flow_run.id, flow_run.expected_start_time)
    if run_id:
        kill_sandboxes(str(run_id))


def _flow_run_name() -> str:
    """Prefect's ``flow_run_name``: ``<title slug>/<run id>`` from the ``spec`` parameter (the
    flow run's own name when that cannot be read: a bad spec fails later, with its reason)."""
    ctx = FlowRunContext.get()
    flow_run = ctx.flow_run if ctx is not None else None
    fallback = flow_run.name if flow_run is not None else FLOW_NAME
    try:
        raw = (ctx.parameters or {}).get("spec") if ctx is not None else None
        spec = raw if isinstance(raw, RunSpec) else RunSpec.from_json(raw or {})
        run_id = spec.run_id
        if not run_id and flow_run is not None and flow_run.expected_start_time is not None:
            run_id = run_id_for(flow_run.id, flow_run.expected_start_time)
        return run_name(spec.ir.title, spec.ir.name, run_id) if run_id else fallback
    except Exception:  # a name is never worth failing a run for
        return fallback


@flow(
    name=FLOW_NAME,
    flow_run_name=_flow_run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_PARALLEL_NODES),  # type: ignore[arg-type]
    persist_result=False,
    validate_parameters=True,
    on_cancellation=[_on_cancellation],
)
def pipeline_flow(spec: RunSpec) -> dict[str, Any] | State:
    """Run ``spec`` (see :class:`flows.spec.RunSpec`); returns the run record's JSON, or a
    Failed state with the run's error (the record stays in ``run.json``)."""
    # Prefect's own SIGTERM handler must stay installed: its control channel acknowledges the
    # worker's cancel intent only while it is, and without that acknowledgement the SIGTERM that
    # follows is reported as a crash ("Execution was aborted by a termination signal").
    import_extra_node_modules()
    flow_run = getattr(get_run_context(), "flow_run", None)
    if flow_run is None:  # pipeline_flow is always a flow run; anything else is a bug
        raise RuntimeError("pipeline_flow must run as a Prefect flow run")
    stop_if_cancelled_before_start(str(flow_run.id))
    run_id = spec.run_id
    if not run_id:
        assert flow_run.expected_start_time is not None
        run_id = run_id_for(flow_run.id, flow_run.expected_start_time)
    settings = current_settings().with_store(spec.store_url, spec.tracking_uri)
    # which process runs it: the API tells a run whose process died (serve or its worker
    # stopped or killed) from a slow one by this marker (flows.liveness)
    mark_process(settings.runs_dir / run_id)
    try:
        record = run_graph(
            spec,
            executor=_PrefectExecutor(str(flow_run.id)),
            settings=settings,
            run_id=run_id,
            flow_run_id=str(flow_run.id),
        )
    except (TerminationSignal, KeyboardInterrupt):
        kill_sandboxes(run_id)  # wherever the termination landed, no container outlives it
        _exit_after_grace()
        raise
    if record.status != "completed":
        # A Failed state carrying a dict makes the engine print "dict cannot be resolved into an
        # exception" when it finishes a flow-run process: the message only.
        return Failed(message=record.error or "run failed")
    return record.to_json()
