"""Shared model helpers: UTC timestamps and the paged list envelope."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import DateTime
from sqlmodel import Field

T = TypeVar("T")


def utcnow() -> datetime:
    """Now, timezone-aware UTC (what every stored timestamp is)."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A stored timestamp as aware UTC (SQLite hands them back naive)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def timestamp_field(*, nullable: bool = False, index: bool = False) -> datetime:
    """A ``timestamp with time zone`` column; non-nullable ones default to now."""
    if nullable:
        return Field(default=None, sa_type=DateTime(timezone=True), nullable=True, index=index)
    return Field(
        default_factory=utcnow, sa_type=DateTime(timezone=True), nullable=False, index=index
    )


# PostgreSQL text cannot hold NUL: refuse it at the door (422) instead of failing in the driver.
NO_NUL_PATTERN = r"^[^\x00]*$"


class Page(BaseModel, Generic[T]):
    """One page of a list: ``?offset=&limit=`` → ``{items, total}``."""

    items: list[T]
    total: int


class ErrorResponse(BaseModel):
    """Every other error body: ``{"detail": "message"}``."""

    detail: str


def error_responses(*codes: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses`` entries for the given error status codes."""
    return {code: {"model": ErrorResponse} for code in codes}
