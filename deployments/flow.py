"""The flow every Alpha Forge deployment runs: the pipeline flow, runnable without a run id.

:func:`deployed_pipeline_flow` is :func:`flows.pipeline.pipeline_flow` (same name, same task
runner, same body) with two differences that deployments need. ``run_id`` is optional: a
scheduled flow run is created by Prefect's scheduler from fixed deployment parameters, so its
run id is derived from the flow run itself (:func:`run_id_for`), which the API can compute
too. The modules named in ``ALPHAFORGE_EXTRA_NODE_MODULES`` are imported first, so an
operator (or a test) can make extra node types available in the worker's flow-run processes.
And a cancelled flow-run process ends within seconds (:func:`_exit_after_grace`), while
Prefect's SIGTERM handling stays intact, so a cancellation ends as Cancelled (not Crashed).
"""

from __future__ import annotations

import importlib
import os
import signal
import threading
from datetime import datetime
from typing import Any
from uuid import UUID

from prefect import flow
from prefect.context import get_run_context
from prefect.exceptions import TerminationSignal
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from flows.pipeline import FLOW_NAME, MAX_PARALLEL_NODES, kill_sandboxes, pipeline_flow

__all__ = ["ENTRYPOINT", "EXTRA_NODE_MODULES_ENV", "deployed_pipeline_flow", "run_id_for"]

# A module path (no colon): Prefect imports it instead of copying code from storage.
ENTRYPOINT = "deployments.flow.deployed_pipeline_flow"
EXTRA_NODE_MODULES_ENV = "ALPHAFORGE_EXTRA_NODE_MODULES"
TERM_GRACE_S = 3.0


def run_id_for(flow_run_id: UUID | str, expected_start: datetime) -> str:
    """The run id of a flow run started without one: sorts by time, unique by flow run."""
    hex_id = UUID(str(flow_run_id)).hex
    ms = expected_start.microsecond // 1000
    return expected_start.strftime("%Y%m%d-%H%M%S-") + f"{ms:03d}-{hex_id[:6]}"


def _exit_after_grace(code: int = 128 + signal.SIGTERM) -> None:
    """End this flow-run process ``TERM_GRACE_S`` from now, whatever threads are still busy.

    Called when a termination (a cancellation's SIGTERM, Ctrl-C) unwinds the flow body.
    Prefect's engine then cancels the task runner, which joins its worker threads: a node still
    computing (a sleeping or looping node) would keep the process alive until the worker's
    SIGKILL 30 s later. A daemon timer ends it sooner; the worker records Cancelled itself.
    """
    timer = threading.Timer(TERM_GRACE_S, os._exit, args=(code,))
    timer.daemon = True
    timer.start()


def _import_extra_node_modules() -> None:
    for name in filter(
        None, (m.strip() for m in os.environ.get(EXTRA_NODE_MODULES_ENV, "").split(","))
    ):
        importlib.import_module(name)


@flow(
    name=FLOW_NAME,
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_PARALLEL_NODES),  # type: ignore[arg-type]
    persist_result=False,
    validate_parameters=True,
)
def deployed_pipeline_flow(
    ir_json: str,
    base_dir: str,
    data_dir: str | None = None,
    datasets: dict[str, str] | None = None,
    run_id: str | None = None,
    confine_paths: bool = True,
    use_cache: bool = True,
    track: bool = True,
    submitted_at: float | None = None,
) -> dict[str, Any] | State:
    """Run a compiled pipeline as a deployment's flow run (see :mod:`flows.pipeline`).

    Without ``run_id`` (scheduled runs) the id comes from :func:`run_id_for`. Web runs keep
    ``confine_paths`` on: file reads stay inside ``base_dir``.
    """
    # Prefect's own SIGTERM handler must stay installed: its control channel acknowledges the
    # worker's cancel intent only while it is, and without that acknowledgement the SIGTERM that
    # follows is reported as a crash ("Execution was aborted by a termination signal").
    _import_extra_node_modules()
    if not run_id:
        flow_run = getattr(get_run_context(), "flow_run", None)
        assert flow_run is not None and flow_run.expected_start_time is not None
        run_id = run_id_for(flow_run.id, flow_run.expected_start_time)
    try:
        outcome = pipeline_flow.fn(
            ir_json=ir_json,
            run_id=run_id,
            base_dir=base_dir,
            data_dir=data_dir,
            datasets=datasets,
            confine_paths=confine_paths,
            use_cache=use_cache,
            track=track,
            submitted_at=submitted_at,
        )
    except (TerminationSignal, KeyboardInterrupt):
        # Whenever the termination landed (not only while waiting for the nodes): no sandbox
        # container of this run outlives its flow-run process. The API never kills containers.
        kill_sandboxes(run_id)
        _exit_after_grace()
        raise
    if isinstance(outcome, State):
        # The summary stays in run.json; a Failed state carrying a dict makes the engine print
        # "dict cannot be resolved into an exception" when it finishes the flow-run process.
        return Failed(message=outcome.message)
    return outcome
