"""The crash report: what the ``alphaforge-crashed-runs`` automation runs for a crashed flow run.

A flow run whose process died (a worker killed, out of memory, a node taking the interpreter
down) is set Crashed by Prefect. The automation ``deploy`` creates
(:func:`deployments.deploy.ensure_automations`) runs this flow with the crashed flow run's id;
it makes the crash handled and visible:

- the run's own record (``<store>/runs/<run id>/run.json``) still saying ``running`` is ended
  as ``failed`` with the reason (Prefect's state message), so every reader of the store (the
  CLI, a bundle export, the API's sync) sees a terminal run even while no API is running;
- an event ``alphaforge.run.crashed`` on the flow run (the Prefect UI's event feed; a
  notification automation can react to it), with the deployment, the reason and the run id;
- one warning line in the worker's log.

Prefect's triggers fire at least once: one crash can start this flow twice (seen under load). A
report of a crash that an earlier report of the same Crashed state has taken (Running or
Completed) reports nothing again: it returns ``duplicate_of`` that report's id.

The API's status sync turns the Crashed flow run into a failed run row on its own
(``api.services.prefect_sync``): this flow never touches the app's database.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterExpectedStartTime,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.events import emit_event
from prefect.runtime import flow_run as this_run

from flows.record import run_id_for, utc_now, write_json
from flows.settings import current_settings
from flows.spec import RECORD_FILE, read_run_record

__all__ = ["CRASH_EVENT", "CRASH_REPORT_FLOW", "crash_report_flow", "end_crashed_record"]

CRASH_REPORT_FLOW = "alphaforge-crash-report"
CRASH_EVENT = "alphaforge.run.crashed"


def end_crashed_record(run_dir: Path, reason: str) -> bool:
    """End the record in ``run_dir`` as failed with ``reason`` when it still says ``running``;
    True when it was changed (a missing or already terminal record is left alone)."""
    record = read_run_record(run_dir)
    if record is None or record.status != "running":
        return False
    ended = record.model_copy(
        update={"status": "failed", "error": reason, "finished_at": utc_now()}
    )
    write_json(run_dir / RECORD_FILE, ended.to_json())
    return True


def _run_dir(parameters: dict[str, Any], flow_run_id: UUID, expected_start: Any) -> Path | None:
    """The run directory of a pipeline flow run (None for other flows: no ``spec``)."""
    spec = parameters.get("spec")
    if not isinstance(spec, dict):
        return None
    run_id = spec.get("run_id")
    if not run_id:
        if expected_start is None:
            return None
        run_id = run_id_for(flow_run_id, expected_start)
    try:
        settings = current_settings().with_store(spec.get("store_url"), spec.get("tracking_uri"))
        return Path(settings.runs_dir) / str(run_id)
    except (TypeError, ValueError):  # not a pipeline's spec, or a store this host cannot open
        return None


def _resource(resource_id: str, name: str, role: str | None = None) -> dict[str, str]:
    labels = {"prefect.resource.id": resource_id, "prefect.resource.name": name}
    if role:
        labels["prefect.resource.role"] = role
    return labels


_GAVE_UP = {StateType.FAILED, StateType.CRASHED, StateType.CANCELLED, StateType.CANCELLING}


def _taken_by(client: SyncPrefectClient, crashed: FlowRun) -> FlowRun | None:
    """The report that takes this crash when it is not this one: of the reports of the same
    deployment for ``crashed`` created since its Crashed state that have not failed, the
    earliest (by creation, then id). None when this run is that one, or not a deployment's."""
    me_id = this_run.get_id()
    if not me_id or crashed.state is None:
        return None
    me = client.read_flow_run(UUID(me_id))
    if me.deployment_id is None:
        return None
    since = crashed.state.timestamp
    reports = [
        run
        for run in client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=[me.deployment_id]),
                expected_start_time=FlowRunFilterExpectedStartTime(
                    after_=cast(Any, since - timedelta(minutes=1)) if since else None
                ),
            ),
            limit=200,
        )
        if (run.parameters or {}).get("flow_run_id") == str(crashed.id)
        and run.created is not None
        and (since is None or run.created >= since)
        and (run.id == me.id or run.state is None or run.state.type not in _GAVE_UP)
    ]
    reports.sort(key=lambda run: (run.created, str(run.id)))
    first = reports[0] if reports else None
    return first if first is not None and first.id != me.id else None


@flow(name=CRASH_REPORT_FLOW, persist_result=False, validate_parameters=True)
def crash_report_flow(flow_run_id: str) -> dict[str, Any]:
    """Report the crashed flow run ``flow_run_id``: end its run record, emit
    ``alphaforge.run.crashed``, log a warning; returns what was reported."""
    logger = get_run_logger()
    with get_client(sync_client=True) as client:
        crashed = client.read_flow_run(UUID(flow_run_id))
        deployment = (
            client.read_deployment(crashed.deployment_id) if crashed.deployment_id else None
        )
        flow_name = client.read_flow(crashed.flow_id).name
        taken = _taken_by(client, crashed)
    if taken is not None:
        logger.info(f"flow run {crashed.name}: its crash is reported by {taken.name}")
        return {"flow_run_id": str(crashed.id), "duplicate_of": str(taken.id)}
    state = crashed.state
    reason = (state.message if state is not None else None) or "its process crashed"
    run_dir = _run_dir(crashed.parameters or {}, crashed.id, crashed.expected_start_time)
    ended = end_crashed_record(run_dir, f"crashed: {reason}") if run_dir is not None else False
    report: dict[str, Any] = {
        "flow_run_id": str(crashed.id),
        "flow_run_name": crashed.name,
        "flow": flow_name,
        "deployment": deployment.name if deployment is not None else None,
        "state": state.type.value if state is not None else None,
        "reason": reason,
        "run_id": run_dir.name if run_dir is not None else None,
        "record_ended": ended,
    }
    related = [_resource(f"prefect.flow.{crashed.flow_id}", flow_name, "flow")]
    if deployment is not None:
        deployment_id = f"prefect.deployment.{deployment.id}"
        related.append(_resource(deployment_id, deployment.name, "deployment"))
    emit_event(
        CRASH_EVENT,
        resource=_resource(f"prefect.flow-run.{crashed.id}", crashed.name),
        related=related,
        payload=report,
    )
    logger.warning(
        f"flow run {crashed.name} ({flow_name}) crashed: {reason}"
        + (f"; run {report['run_id']} ended as failed" if ended else "")
    )
    return report
