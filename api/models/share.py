"""Read-only share links: an unguessable token that shows one pipeline (or run) to anyone."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from pydantic import Field as PydanticField
from sqlalchemy import Column, ForeignKey, Integer, String
from sqlmodel import Field, SQLModel

from api.models.common import timestamp_field
from api.models.run import RunAnalysis

ShareKind = Literal["pipeline", "run"]


class ShareCreate(BaseModel):
    """``POST /api/shares``."""

    kind: ShareKind
    target_id: int = PydanticField(ge=1, le=2**31 - 1)
    expires_at: datetime | None = PydanticField(
        default=None, description="When the link stops working (a future date and time)."
    )
    expires_in: str | None = PydanticField(
        default=None,
        max_length=32,
        description='Or how long it works from now: "7 days", "12 hours", "2 weeks", "7d".',
    )


class Share(SQLModel, table=True):
    """A share link. Revocation is a timestamp, so the token can never come back to life."""

    __tablename__ = "shares"

    id: int | None = Field(default=None, primary_key=True)
    token: str = Field(sa_column=Column(String(64), nullable=False, unique=True, index=True))
    kind: str = Field(max_length=16)
    target_id: int
    owner_id: int = Field(
        sa_column=Column(Integer, ForeignKey("users.id"), nullable=False, index=True)
    )
    created_at: datetime = timestamp_field()
    revoked_at: datetime | None = timestamp_field(nullable=True)
    expires_at: datetime | None = timestamp_field(nullable=True)


class ShareTarget(BaseModel):
    """What a link shows, named: the pipeline (and the run, for a run link)."""

    pipeline_id: int
    pipeline_name: str
    pipeline_title: str | None
    run_id: int | None = None


class SharePublic(BaseModel):
    """A share link as its owner sees it. ``target`` is null when the shared object is gone
    (the link then shows nothing); ``revoked_at`` is set for a revoked link; ``expires_at``
    when the link stops working (null: never), ``expired`` once it has."""

    token: str
    url: str
    kind: ShareKind
    target_id: int
    created_at: datetime
    owner: str
    revoked_at: datetime | None = None
    expires_at: datetime | None = None
    expired: bool = False
    target: ShareTarget | None = None


class SharedPipeline(BaseModel):
    """What a share link shows of a pipeline: its name, title and one version's source."""

    name: str
    title: str | None
    source: str
    version: int


class SharedView(BaseModel):
    """``GET /api/shared/{token}``: read-only, nothing beyond the shared object."""

    kind: ShareKind
    pipeline: SharedPipeline
    run: dict[str, Any] | None = None
    results: dict[str, Any] | None = None
    # a run's prices, buy-and-hold benchmark and monthly returns (``GET /api/runs/{id}/analysis``)
    analysis: RunAnalysis | None = None
