"""Schedules: a scheduled pipeline is a Prefect deployment, each schedule a deployment schedule.

The deployment (``pipeline-<id>``) carries the pipeline's current IR, base dir and datasets as
default parameters, so Prefect's scheduler can start runs without the API; pausing a schedule
here pauses it in Prefect (and the Prefect UI's toggle is the same switch). The status sync
calls :func:`reconcile_deployments` (a new version saved or restored, datasets changed, the
pipeline deleted) and :func:`discover_scheduled_runs` (scheduled flow runs become runs with
trigger ``schedule``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import DeploymentSchedule, FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import ObjectNotFound
from sqlmodel import Session, col, select

from api.errors import NotFound, Unprocessable
from api.models.common import utcnow
from api.models.pipeline import Pipeline
from api.models.run import Run
from api.models.schedule import CRON_EXAMPLE, Schedule, ScheduleCreate, SchedulePublic
from api.models.user import User
from api.services import audit, pipelines, registry, runs
from api.services.access import Level
from api.services.node_resolution import publish_manifests
from api.services.prefect_client import prefect_client
from api.settings import ApiSettings
from deployments.deploy import deployment_name_for, upsert_deployment
from deployments.schedules import (
    ScheduleSpec,
    add_schedule,
    delete_future_runs,
    find_schedule,
    remove_schedule,
    schedule_slug,
    set_schedule_active,
    to_prefect_schedule,
)
from flows.record import run_id_for

__all__ = [
    "create",
    "delete",
    "discover_scheduled_runs",
    "list_schedules",
    "public",
    "reconcile_deployments",
    "set_active",
]

_STARTED: list[StateType] = [s for s in StateType if s is not StateType.SCHEDULED]


def public(s: Schedule) -> SchedulePublic:
    """The schedule as the API shows it."""
    return SchedulePublic(
        id=s.id or 0,
        cron=s.cron,
        interval_seconds=s.interval_seconds,
        timezone=s.timezone,
        active=s.active,
        prefect_deployment_id=s.prefect_deployment_id,
    )


def list_schedules(session: Session, user: User, pipeline_id: int) -> list[SchedulePublic]:
    """A visible pipeline's schedules, oldest first."""
    pipeline = pipelines.get_pipeline(session, user, pipeline_id)
    rows = session.exec(
        select(Schedule).where(Schedule.pipeline_id == pipeline.id).order_by(col(Schedule.id))
    ).all()
    return [public(s) for s in rows]


def _get(session: Session, user: User, schedule_id: int) -> Schedule:
    """A schedule of a pipeline ``user`` may edit (404 if they may not see it, 403 if they
    may not change it)."""
    schedule = session.get(Schedule, schedule_id)
    if schedule is None:
        raise NotFound("schedule not found")
    try:
        pipelines.get_pipeline(session, user, schedule.pipeline_id, level=Level.EDIT)
    except NotFound:
        raise NotFound("schedule not found") from None
    return schedule


def _datasets_hash(datasets: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(datasets, sort_keys=True).encode()).hexdigest()


def _deploy(
    session: Session, client: SyncPrefectClient, settings: ApiSettings, pipeline: Pipeline
) -> tuple[UUID, int, str]:
    """Create or update the pipeline's deployment with its latest version's parameters."""
    version = pipelines.version_of(session, pipeline.id, pipeline.latest_version)
    publish_manifests(session, settings, pipeline.owner_id, version)  # scheduled runs read them
    spec = runs.run_spec(
        session, settings, pipeline.owner_id, version.ir_json, None, trigger="schedule"
    )
    params = runs.flow_parameters(spec)
    deployment_id = upsert_deployment(
        client,
        deployment_name_for(pipeline.id or 0),
        parameters=params,
        tags=[f"pipeline:{pipeline.id}", f"af-version:{version.number}"],
        description=f"Scheduled runs of pipeline {pipeline.name!r} (Alpha Forge id {pipeline.id})",
        pool=settings.work_pool,
    )
    return deployment_id, version.number, _datasets_hash(spec.datasets)


def create(
    session: Session, user: User, settings: ApiSettings, pipeline_id: int, data: ScheduleCreate
) -> SchedulePublic:
    """A new schedule on the pipeline's deployment (422 for a bad cron string or time zone).

    The row comes first (its id names the Prefect schedule: :func:`schedule_slug`); nothing is
    committed unless Prefect took the schedule. The deployment is updated in place, so the
    pipeline's other schedules keep their Prefect ids.
    """
    pipeline = pipelines.get_pipeline(session, user, pipeline_id, level=Level.EDIT)
    spec = ScheduleSpec(data.cron, data.interval_seconds, data.timezone)
    try:
        to_prefect_schedule(spec)
    except ValueError as exc:
        raise Unprocessable(
            f"The schedule is not valid: {_first_line(exc)}. {CRON_EXAMPLE}"
        ) from None
    latest = pipelines.version_of(session, pipeline.id, pipeline.latest_version)
    owner = runs.owner_of(session, pipeline)
    registry.require_model_access(session, settings, owner, latest.ir_json)
    schedule = Schedule(
        pipeline_id=pipeline.id or 0,
        owner_id=pipeline.owner_id,
        cron=data.cron,
        interval_seconds=data.interval_seconds,
        timezone=data.timezone,
        active=data.active,
    )
    session.add(schedule)
    session.flush()
    with prefect_client(settings) as client:
        deployment_id, version, datasets = _deploy(session, client, settings, pipeline)
        schedule_id = add_schedule(
            client, deployment_id, spec, data.active, schedule_slug(schedule.id or 0)
        )
    schedule.prefect_deployment_id = str(deployment_id)
    schedule.prefect_schedule_id = str(schedule_id)
    _mark_deployed(session, pipeline, version, datasets)
    audit.record(
        session, user, "schedule.create", "pipeline", pipeline.id,
        schedule_id=schedule.id, cron=data.cron, interval_seconds=data.interval_seconds,
        timezone=data.timezone,
    )  # fmt: skip
    session.commit()
    return public(schedule)


def _mark_deployed(session: Session, pipeline: Pipeline, version: int, datasets: str) -> None:
    """Every schedule of the pipeline now runs ``version`` with ``datasets`` (one deployment)."""
    for row in session.exec(select(Schedule).where(Schedule.pipeline_id == pipeline.id)).all():
        row.deployed_version, row.deployed_datasets = version, datasets
        session.add(row)


def _spec(schedule: Schedule) -> ScheduleSpec:
    return ScheduleSpec(schedule.cron, schedule.interval_seconds, schedule.timezone)


def _in_prefect(client: SyncPrefectClient, schedule: Schedule) -> DeploymentSchedule | None:
    """The schedule's deployment schedule in Prefect, by its stored id or else by its slug."""
    if not schedule.prefect_deployment_id:
        return None
    return find_schedule(
        client,
        UUID(schedule.prefect_deployment_id),
        UUID(schedule.prefect_schedule_id) if schedule.prefect_schedule_id else None,
        schedule_slug(schedule.id or 0),
    )


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[-1][:300]


def set_active(
    session: Session, user: User, settings: ApiSettings, schedule_id: int, active: bool
) -> SchedulePublic:
    """Pause or resume (in Prefect too).

    The Prefect schedule is found by its stored id, else by its slug; one that is missing from
    Prefect (a server reset, or a redeploy before schedules were kept across updates) is
    attached again, so the switch always does what it says.
    """
    schedule = _get(session, user, schedule_id)
    pipeline = session.get(Pipeline, schedule.pipeline_id)
    assert pipeline is not None  # _get checked it is visible
    with prefect_client(settings) as client:
        found = _in_prefect(client, schedule)
        if found is None:
            deployment_id, version, datasets = _deploy(session, client, settings, pipeline)
            new_id = add_schedule(
                client, deployment_id, _spec(schedule), active, schedule_slug(schedule.id or 0)
            )
            schedule.prefect_deployment_id, schedule.prefect_schedule_id = (
                str(deployment_id),
                str(new_id),
            )
            _mark_deployed(session, pipeline, version, datasets)
        else:
            schedule.prefect_schedule_id = str(found.id)
            if found.active != active:
                set_schedule_active(
                    client, UUID(schedule.prefect_deployment_id or ""), found.id, active
                )
    schedule.active = active
    schedule.updated_at = utcnow()
    session.add(schedule)
    action = "schedule.resume" if active else "schedule.pause"
    audit.record(session, user, action, "pipeline", schedule.pipeline_id, schedule_id=schedule.id)
    session.commit()
    return public(schedule)


def delete(session: Session, user: User, settings: ApiSettings, schedule_id: int) -> None:
    """Remove the schedule from Prefect (found by id or slug; already gone is fine) and from
    the database."""
    schedule = _get(session, user, schedule_id)
    if schedule.prefect_deployment_id:
        with prefect_client(settings) as client:
            _remove(client, schedule)
    audit.record(
        session, user, "schedule.delete", "pipeline", schedule.pipeline_id, schedule_id=schedule.id
    )
    session.delete(schedule)
    session.commit()


def _remove(client: SyncPrefectClient, schedule: Schedule) -> None:
    found = _in_prefect(client, schedule)
    if found is None or not schedule.prefect_deployment_id:
        return  # nothing left to stop
    with contextlib.suppress(ObjectNotFound):  # removed concurrently
        remove_schedule(client, UUID(schedule.prefect_deployment_id), found.id)


def reconcile_deployments(
    session: Session, client: SyncPrefectClient, settings: ApiSettings
) -> None:
    """Keep each scheduled pipeline's deployment carrying its latest version and datasets;
    a deleted pipeline's schedules are removed from Prefect.

    Each change is committed before the next call to Prefect: a write left pending would be
    flushed by the next query and hold SQLite's write lock across Prefect's answers (every
    request that writes would wait, then fail with "database is locked")."""
    rows = session.exec(select(Schedule, Pipeline).join(Pipeline)).all()
    done: set[int] = set()
    for schedule, pipeline in rows:
        if pipeline.deleted_at is not None:
            _remove(client, schedule)
            session.delete(schedule)
            session.commit()
            continue
        if pipeline.id in done:
            continue
        datasets = _datasets_hash(runs.datasets_for(session, settings, pipeline.owner_id))
        if (
            schedule.deployed_version == pipeline.latest_version
            and schedule.deployed_datasets == datasets
        ):
            continue
        deployment_id, version, datasets = _deploy(session, client, settings, pipeline)
        delete_future_runs(client, deployment_id)  # they carry the old IR
        _mark_deployed(session, pipeline, version, datasets)
        session.commit()
        done.add(pipeline.id or 0)
    session.commit()


def discover_scheduled_runs(
    session: Session, client: SyncPrefectClient, settings: ApiSettings
) -> int:
    """Rows (trigger ``schedule``) for flow runs of scheduled pipelines' deployments that
    started since; returns how many were added."""
    schedules = session.exec(select(Schedule)).all()
    by_deployment: dict[str, list[Schedule]] = {}
    for s in schedules:
        if s.prefect_deployment_id:
            by_deployment.setdefault(s.prefect_deployment_id, []).append(s)
    if not by_deployment:
        return 0
    found = client.read_flow_runs(
        deployment_filter=DeploymentFilter(
            id=DeploymentFilterId(any_=[UUID(d) for d in by_deployment])
        ),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=_STARTED))
        ),
        sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        limit=200,
    )
    ids = [str(f.id) for f in found]
    known = set(
        session.exec(
            select(Run.prefect_flow_run_id).where(col(Run.prefect_flow_run_id).in_(ids))
        ).all()
    )
    added = 0
    for flow_run in found:
        if str(flow_run.id) in known:
            continue
        run = _scheduled_run(flow_run, by_deployment[str(flow_run.deployment_id)])
        session.add(run)
        session.flush()
        audit.record(
            session, None, "run.create", "run", run.id,
            pipeline_id=run.pipeline_id, version=run.version, ir_hash=run.ir_hash,
            trigger="schedule", schedule_id=run.schedule_id,
        )  # fmt: skip
        added += 1
    if added:
        session.commit()
    return added


def _scheduled_run(flow_run: FlowRun, schedules: list[Schedule]) -> Run:
    created_by = flow_run.created_by.id if flow_run.created_by else None
    schedule = next(
        (s for s in schedules if s.prefect_schedule_id == str(created_by)), schedules[0]
    )
    version = next(
        (int(t.split(":", 1)[1]) for t in flow_run.tags if t.startswith("af-version:")),
        schedule.deployed_version,
    )
    spec = runs.spec_of(flow_run.parameters or {})
    # a hand-edited parameter: the run will fail and say so
    ir_hash = spec.ir.content_hash() if spec is not None else "unknown"
    assert flow_run.expected_start_time is not None
    return Run(
        pipeline_id=schedule.pipeline_id,
        version=version,
        owner_id=schedule.owner_id,
        started_by_id=None,
        schedule_id=schedule.id,
        trigger="schedule",
        status="pending",
        run_key=run_id_for(flow_run.id, flow_run.expected_start_time),
        prefect_flow_run_id=str(flow_run.id),
        ir_hash=ir_hash,
        # When the schedule made it due, not when Prefect's scheduler created the flow run: that
        # is hours or days ahead (it keeps several runs scheduled), which showed a scheduled run
        # as started long before it did.
        created_at=flow_run.expected_start_time,
        started_at=flow_run.start_time,
    )
