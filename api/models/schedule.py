"""Schedules of pipelines: cron or interval in a time zone, each a Prefect deployment schedule."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, model_validator
from pydantic import Field as PydanticField
from sqlalchemy import Column, ForeignKey, Integer
from sqlmodel import Field, SQLModel

from api.models.common import timestamp_field

MIN_INTERVAL_SECONDS = 5
MAX_INTERVAL_SECONDS = 366 * 24 * 3600


class ScheduleCreate(BaseModel):
    """``POST /api/pipelines/{id}/schedules``: exactly one of ``cron`` and ``interval_seconds``."""

    cron: str | None = PydanticField(default=None, min_length=9, max_length=100)
    interval_seconds: int | None = PydanticField(
        default=None, ge=MIN_INTERVAL_SECONDS, le=MAX_INTERVAL_SECONDS
    )
    timezone: str = PydanticField(default="UTC", min_length=1, max_length=64)
    active: bool = True

    @model_validator(mode="after")
    def _one_kind(self) -> ScheduleCreate:
        if (self.cron is None) == (self.interval_seconds is None):
            raise ValueError("give exactly one of cron and interval_seconds")
        return self


class ScheduleUpdate(BaseModel):
    """``PATCH /api/schedules/{id}``: pause (false) or resume (true)."""

    active: bool


class Schedule(SQLModel, table=True):
    """A stored schedule; its Prefect deployment and deployment-schedule ids."""

    __tablename__ = "schedules"

    id: int | None = Field(default=None, primary_key=True)
    pipeline_id: int = Field(
        sa_column=Column(Integer, ForeignKey("pipelines.id"), nullable=False, index=True)
    )
    owner_id: int = Field(
        sa_column=Column(Integer, ForeignKey("users.id"), nullable=False, index=True)
    )
    cron: str | None = Field(default=None, max_length=100)
    interval_seconds: int | None = None
    timezone: str = Field(default="UTC", max_length=64)
    active: bool = True
    prefect_deployment_id: str | None = Field(default=None, max_length=36)
    prefect_schedule_id: str | None = Field(default=None, max_length=36)
    deployed_version: int = 0
    deployed_datasets: str = Field(default="", max_length=64)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()


class SchedulePublic(BaseModel):
    """A schedule as the API shows it."""

    id: int
    cron: str | None
    interval_seconds: int | None
    timezone: str
    active: bool
    prefect_deployment_id: str | None
