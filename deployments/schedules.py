"""Deployment schedules: cron or interval in a time zone, paused and resumed in Prefect.

A scheduled pipeline is a deployment (:func:`deployments.deploy.upsert_deployment`) whose
default parameters carry the pipeline's current IR; each of its schedules is a Prefect
deployment schedule, so it shows up (and can be paused) in the Prefect UI, and Prefect's
scheduler creates the flow runs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import DeploymentSchedule, StateType
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule
from prefect.exceptions import ObjectNotFound

__all__ = [
    "ScheduleSpec",
    "add_schedule",
    "delete_future_runs",
    "find_schedule",
    "remove_schedule",
    "schedule_slug",
    "set_schedule_active",
    "to_prefect_schedule",
]


class ScheduleSpec:
    """A cron expression or an interval (exactly one), in an IANA time zone."""

    def __init__(self, cron: str | None, interval_seconds: int | None, timezone: str) -> None:
        if (cron is None) == (interval_seconds is None):
            raise ValueError("give exactly one of cron and interval_seconds")
        self.cron = cron
        self.interval_seconds = interval_seconds
        self.timezone = timezone


def to_prefect_schedule(spec: ScheduleSpec) -> CronSchedule | IntervalSchedule:
    """The Prefect schedule for ``spec`` (ValueError for a bad cron string or time zone)."""
    if spec.cron is not None:
        return CronSchedule(cron=spec.cron, timezone=spec.timezone)
    assert spec.interval_seconds is not None
    # Anchored now: the first run comes one interval after the schedule is created.
    return IntervalSchedule(
        interval=timedelta(seconds=spec.interval_seconds),
        anchor_date=datetime.now(UTC),
        timezone=spec.timezone,
    )


def schedule_slug(key: int | str) -> str:
    """The slug that names an API schedule's deployment schedule in Prefect (unique per
    deployment; it survives anything that re-creates the schedule under a new id)."""
    return f"alphaforge-schedule-{key}"


def add_schedule(
    client: SyncPrefectClient,
    deployment_id: UUID,
    spec: ScheduleSpec,
    active: bool,
    slug: str | None = None,
) -> UUID:
    """Attach a schedule to the deployment; returns the deployment schedule's id."""
    created = client.create_deployment_schedules(
        deployment_id,
        [DeploymentScheduleCreate(schedule=to_prefect_schedule(spec), active=active, slug=slug)],
    )
    return created[0].id


def find_schedule(
    client: SyncPrefectClient,
    deployment_id: UUID,
    schedule_id: UUID | None = None,
    slug: str | None = None,
) -> DeploymentSchedule | None:
    """The deployment's schedule with this id, else the one with this slug; None when neither
    exists (or the deployment itself is gone)."""
    try:
        schedules = client.read_deployment_schedules(deployment_id)
    except ObjectNotFound:
        return None
    by_id = next((s for s in schedules if schedule_id is not None and s.id == schedule_id), None)
    if by_id is not None:
        return by_id
    return next((s for s in schedules if slug is not None and s.slug == slug), None)


def set_schedule_active(
    client: SyncPrefectClient, deployment_id: UUID, schedule_id: UUID, active: bool
) -> None:
    """Pause or resume one schedule (what the Prefect UI's toggle does)."""
    client.update_deployment_schedule(deployment_id, schedule_id, active=active)
    if not active:
        delete_future_runs(client, deployment_id)


def remove_schedule(client: SyncPrefectClient, deployment_id: UUID, schedule_id: UUID) -> None:
    """Detach a schedule and drop the runs it had scheduled ahead."""
    client.delete_deployment_schedule(deployment_id, schedule_id)
    delete_future_runs(client, deployment_id)


def delete_future_runs(client: SyncPrefectClient, deployment_id: UUID) -> int:
    """Delete the deployment's auto-scheduled runs that have not started (stale parameters or a
    paused schedule); the scheduler recreates what is still due. Returns how many."""
    runs = client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
        ),
    )
    stale = [run for run in runs if run.auto_scheduled]
    for run in stale:
        client.delete_flow_run(run.id)
    return len(stale)
