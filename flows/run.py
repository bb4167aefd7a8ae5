"""Run a spec from Python: the entry point of the CLI (and of tests).

:func:`run_pipeline` applies the Prefect settings, calls the one pipeline flow in this process
(the Prefect server given by the settings, or the ephemeral one) and returns the
:class:`flows.spec.RunRecord` it stored, so what a caller sees is what was stored.
"""

from __future__ import annotations

import time

from flows.events import EventCallback, subscribe
from flows.record import new_run_id
from flows.settings import CoreSettings, get_settings, using_settings
from flows.spec import RunRecord, RunSpec, read_run_record
from flows.tracking import import_shared_dependencies, prewarm_mlflow

__all__ = ["run_pipeline"]


def run_pipeline(
    spec: RunSpec,
    *,
    settings: CoreSettings | None = None,
    on_event: EventCallback | None = None,
    heartbeats: bool = False,
) -> RunRecord:
    """Run ``spec`` as a Prefect flow run in this process and wait for it; never raises for a
    failing node. ``on_event`` receives per-node progress (:class:`flows.events.NodeEvent`).

    The spec gets a run id (when it has none), this process's store (when it names none) and
    its submission time. Flow-run heartbeats (Prefect's crash detection for runs on
    workers) are off by default here: the caller is waiting in this very process, and stopping
    the heartbeat thread costs up to a second per run.
    """
    settings = settings or get_settings()
    settings.apply_prefect_env()
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from flows.pipeline import pipeline_flow  # imports Prefect: only after apply_prefect_env

    if spec.track:
        import_shared_dependencies()
        prewarm_mlflow(settings.mlflow_uri)  # overlaps MLflow's start with Prefect's
    run_id = spec.run_id or new_run_id()
    spec = spec.model_copy(
        update={
            "run_id": run_id,
            "store_url": spec.store_url or settings.store_location,
            "submitted_at": spec.submitted_at or time.time(),
        }
    )
    run_dir = settings.with_store(spec.store_url).runs_dir / run_id
    beat = {} if heartbeats else {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    with (
        subscribe(run_id, on_event),
        temporary_settings(updates=beat),
        using_settings(settings),  # the flow runs here: it uses these settings, not the env's
    ):
        state = pipeline_flow(spec=spec, return_state=True)
    record = read_run_record(run_dir)
    if record is None:  # the flow never got to run its body
        return RunRecord(
            run_id=run_id,
            pipeline=spec.ir.name,
            title=spec.ir.title,
            ir_hash=spec.ir.content_hash(),
            status="failed",
            error=f"flow run failed: {state.message}",
            spec=spec.summary(),
        )
    return record
