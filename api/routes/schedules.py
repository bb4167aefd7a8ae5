"""Schedules of pipelines: cron or interval, in a time zone; pause and resume; delete."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from api.deps import CurrentUser, ObjectId, SessionDep, SettingsDep, WriterUser
from api.models.common import error_responses
from api.models.schedule import ScheduleCreate, SchedulePublic, ScheduleUpdate
from api.services import schedules

pipeline_schedules = APIRouter(
    prefix="/api/pipelines", tags=["schedules"], responses=error_responses(401, 403, 404)
)
router = APIRouter(
    prefix="/api/schedules", tags=["schedules"], responses=error_responses(401, 403, 404, 503)
)


@pipeline_schedules.get("/{pipeline_id}/schedules", response_model=list[SchedulePublic])
def list_schedules(
    pipeline_id: ObjectId, user: CurrentUser, session: SessionDep
) -> list[SchedulePublic]:
    """The pipeline's schedules."""
    return schedules.list_schedules(session, user, pipeline_id)


@pipeline_schedules.post(
    "/{pipeline_id}/schedules",
    response_model=SchedulePublic,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(422, 503),
)
def create_schedule(
    pipeline_id: ObjectId,
    body: ScheduleCreate,
    user: WriterUser,
    session: SessionDep,
    settings: SettingsDep,
) -> SchedulePublic:
    """A cron or interval schedule: a schedule of the pipeline's Prefect deployment."""
    return schedules.create(session, user, settings, pipeline_id, body)


@router.patch("/{schedule_id}", response_model=SchedulePublic)
def update_schedule(
    schedule_id: ObjectId,
    body: ScheduleUpdate,
    user: WriterUser,
    session: SessionDep,
    settings: SettingsDep,
) -> SchedulePublic:
    """Pause (``active: false``) or resume, here and in Prefect."""
    return schedules.set_active(session, user, settings, schedule_id, body.active)


@router.delete("/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_schedule(
    schedule_id: ObjectId, user: WriterUser, session: SessionDep, settings: SettingsDep
) -> Response:
    """Remove the schedule (its future runs in Prefect too)."""
    schedules.delete(session, user, settings, schedule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
