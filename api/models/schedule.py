"""Schedules of pipelines: cron or interval in a time zone, each a Prefect deployment schedule."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, field_validator, model_validator
from pydantic import Field as PydanticField
from sqlalchemy import Column, ForeignKey, Integer
from sqlmodel import Field, SQLModel

from api.models.common import timestamp_field

MIN_INTERVAL_SECONDS = 5
MAX_INTERVAL_SECONDS = 366 * 24 * 3600


CRON_EXAMPLE = "Example: '0 9 * * 1-5' (09:00 on weekdays)"
# cron fields: name, lowest, highest, names allowed in place of numbers
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    (
        "month",
        1,
        12,
        tuple(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]),
    ),
    ("day of week", 0, 7, tuple(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])),
)
_CRON_MACROS = {"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight"}


def _cron_value(text: str, low: int, high: int, names: tuple[str, ...]) -> int | None:
    if text.lower() in names:
        return names.index(text.lower()) + low
    return int(text) if text.isdigit() else None


def cron_problem(expr: str) -> str | None:
    """Why ``expr`` is not a 5-field cron expression, as a sentence; None when it is one."""
    text = expr.strip()
    if text.lower() in _CRON_MACROS:
        return None
    fields = text.split()
    if len(fields) != 5:
        return (
            f"Cron expression {expr!r} is not valid: it needs 5 fields (minute hour "
            f"day-of-month month day-of-week), it has {len(fields)}. {CRON_EXAMPLE}"
        )
    for value, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for part in value.split(","):
            base, _, step = part.partition("/")
            if step and (not step.isdigit() or int(step) == 0):
                return (
                    f"Cron expression {expr!r} is not valid: the step {step!r} of the {name} "
                    f"must be a whole number from 1. {CRON_EXAMPLE}"
                )
            if base == "*":
                continue
            for bound in base.split("-", 1):
                number = _cron_value(bound, low, high, names)
                if number is None or not low <= number <= high:
                    return (
                        f"Cron expression {expr!r} is not valid: {name} must be {low}–{high}"
                        f" (got {bound!r}). {CRON_EXAMPLE}"
                    )
    return None


class ScheduleCreate(BaseModel):
    """``POST /api/pipelines/{id}/schedules``: exactly one of ``cron`` and ``interval_seconds``."""

    cron: str | None = PydanticField(default=None, max_length=100)
    interval_seconds: int | None = PydanticField(
        default=None, ge=MIN_INTERVAL_SECONDS, le=MAX_INTERVAL_SECONDS
    )
    timezone: str = PydanticField(default="UTC", min_length=1, max_length=64)
    active: bool = True

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        problem = cron_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"Time zone {value!r} is not known: use an IANA name such as 'Europe/London', "
                "'America/New_York' or 'UTC'"
            ) from None
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> ScheduleCreate:
        if (self.cron is None) == (self.interval_seconds is None):
            raise ValueError(
                "Give exactly one of cron (e.g. '0 9 * * 1-5') and interval_seconds (e.g. 3600)"
            )
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
