"""Pipelines and their immutable versions.

A pipeline is a named, owned container; every save that changes the source adds a
:class:`PipelineVersion` (source, IR, ``ir_hash``, author, message). Deletion is soft: the row
stays (runs point at its versions) and its name becomes free again.
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, field_validator
from pydantic import Field as PydanticField
from sqlalchemy import Column, ForeignKey, Index, Integer, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from api.models.common import NO_NUL_PATTERN, timestamp_field
from api.models.run import RunSummary

NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"
# Names the UI gives new pipelines are identifiers (as in the `pipeline NAME` header); the API
# also keeps older free-text names (the seeded sample's), so it asks for one line of text only.
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
NAME_MAX = 100
TITLE_MAX = 120  # the title in the `pipeline NAME "Title"` header (dsl.compiler.MAX_TITLE_CHARS)
NAME_RULE = (
    "Pipeline names are one line of text, at most "
    f"{NAME_MAX} characters; the app suggests identifiers such as sma_crossover"
)


def check_name(value: str) -> str:
    """``value`` if it is a valid pipeline name, else ValueError saying what to type."""
    if not value.strip():
        raise ValueError("The name is empty: type a name such as sma_crossover.")
    if len(value) > NAME_MAX:
        raise ValueError(
            f"The name is {len(value)} characters long; the limit is {NAME_MAX}. Shorten it."
        )
    if re.search(r"[\x00-\x1f\x7f]", value):
        raise ValueError(
            "The name must be one line of text without tabs or control characters, "
            "e.g. sma_crossover."
        )
    return value


def check_title(value: str | None) -> str | None:
    """A title: free text on one line, at most :data:`TITLE_MAX` characters."""
    if value is None:
        return None
    if len(value) > TITLE_MAX:
        raise ValueError(
            f"The title is {len(value)} characters long; the limit is {TITLE_MAX}. Shorten it."
        )
    if re.search(r"[\x00-\x1f\x7f]", value):
        raise ValueError("The title must be one line of text without tabs or control characters.")
    return value


class PipelineBase(SQLModel):
    """Fields every pipeline representation shares."""

    name: str = Field(min_length=1, max_length=NAME_MAX, schema_extra={"pattern": NAME_PATTERN})


class _NewName(SQLModel):
    """A name chosen now (create, rename, fork)."""

    name: str = PydanticField(description=NAME_RULE)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value)


class PipelineCreate(_NewName):
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


class PipelineRename(_NewName):
    """``PATCH /api/pipelines/{id}``: a new name and, optionally, a new title (saved as a new
    version whose `pipeline` header carries it)."""

    title: str | None = PydanticField(default=None, description=f"at most {TITLE_MAX} characters")

    @field_validator("title")
    @classmethod
    def _title(cls, value: str | None) -> str | None:
        return check_title(value)


class PipelineFork(BaseModel):
    """``POST /api/pipelines/{id}/fork``: the copy's name and title; left out, they are the
    original's with ``_copy`` / `` (copy)`` (then ``_copy_2`` / `` (copy 2)``...)."""

    name: str | None = PydanticField(default=None, description=NAME_RULE)
    title: str | None = PydanticField(default=None, description=f"at most {TITLE_MAX} characters")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value)

    @field_validator("title")
    @classmethod
    def _title(cls, value: str | None) -> str | None:
        return check_title(value)


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
