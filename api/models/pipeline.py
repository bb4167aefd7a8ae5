"""Pipelines and their immutable versions.

A pipeline is a named, owned container; every save that changes the source adds a
:class:`PipelineVersion` (source, IR, ``ir_hash``, author, message). Deletion is soft: the row
stays (runs point at its versions) and its name becomes free again.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import Column, ForeignKey, Index, Integer, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from api.models.common import NO_NUL_PATTERN, timestamp_field
from api.models.run import RunSummary

NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"


class PipelineBase(SQLModel):
    """Fields every pipeline representation shares."""

    name: str = Field(min_length=1, max_length=100, schema_extra={"pattern": NAME_PATTERN})


class PipelineCreate(PipelineBase):
    """``POST /api/pipelines``: a name and the first version's source."""

    source: str = Field(schema_extra={"pattern": NO_NUL_PATTERN})
    message: str | None = Field(
        default=None, max_length=500, schema_extra={"pattern": NO_NUL_PATTERN}
    )


class PipelineUpdate(BaseModel):
    """``PUT /api/pipelines/{id}``: a new source (a new version unless unchanged)."""

    source: str = Field(schema_extra={"pattern": NO_NUL_PATTERN})
    message: str | None = Field(
        default=None, max_length=500, schema_extra={"pattern": NO_NUL_PATTERN}
    )


class PipelineRename(PipelineBase):
    """``PATCH /api/pipelines/{id}``."""


class PipelineFork(PipelineBase):
    """``POST /api/pipelines/{id}/fork``: the copy's name."""


class Pipeline(PipelineBase, table=True):
    """A stored pipeline; ``latest_version`` is the number of its newest version."""

    __tablename__ = "pipelines"
    __table_args__ = (
        Index(
            "uq_pipelines_owner_name_live",
            "owner_id",
            "name",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(
        sa_column=Column(Integer, ForeignKey("users.id"), nullable=False, index=True)
    )
    title: str | None = Field(default=None, max_length=200)
    latest_version: int = Field(default=0)
    forked_from_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("pipelines.id"), nullable=True)
    )
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()
    deleted_at: datetime | None = timestamp_field(nullable=True)


class PipelineVersion(SQLModel, table=True):
    """One immutable saved state of a pipeline."""

    __tablename__ = "pipeline_versions"
    __table_args__ = (UniqueConstraint("pipeline_id", "number", name="uq_pipeline_version"),)

    id: int | None = Field(default=None, primary_key=True)
    pipeline_id: int = Field(
        sa_column=Column(Integer, ForeignKey("pipelines.id"), nullable=False, index=True)
    )
    number: int
    source: str = Field(sa_type=Text)
    ir_json: str = Field(sa_type=Text)
    ir_hash: str = Field(max_length=64)
    message: str = Field(default="", max_length=500)
    author_id: int = Field(sa_column=Column(Integer, ForeignKey("users.id"), nullable=False))
    created_at: datetime = timestamp_field()


class VersionSummary(BaseModel):
    """A version in the history list."""

    number: int
    message: str
    created_at: datetime
    ir_hash: str
    author: str


class VersionPublic(VersionSummary):
    """A version with its source."""

    source: str


class PipelinePublic(BaseModel):
    """A pipeline with its latest version."""

    id: int
    name: str
    title: str | None
    owner: str
    created_at: datetime
    updated_at: datetime
    version: VersionPublic
    can_edit: bool = False  # the caller may save, restore, run and schedule it
    can_manage: bool = False  # the caller may also rename, delete, share and grant it


class PipelineSummary(BaseModel):
    """A pipeline in the list."""

    id: int
    name: str
    title: str | None
    owner: str
    created_at: datetime
    updated_at: datetime
    latest_version: int
    last_run: RunSummary | None = None  # the newest run of the pipeline
    can_edit: bool = False
    can_manage: bool = False


class DiffResponse(BaseModel):
    """A unified diff between two versions."""

    from_version: int
    to_version: int
    unified: str
