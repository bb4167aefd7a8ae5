"""Custom nodes (docs/custom-nodes.md): an owned name + language, and immutable versions.

A :class:`CustomNode` is the named container (soft-deleted like a pipeline: its name is free
again afterwards); every save that changes the manifest adds a :class:`CustomNodeVersion` holding
the whole manifest JSON, its code hash, message and look-ahead verdict. A deleted version keeps
its row (``deleted_at``) so its version number is never reused. :class:`CustomNodeUse` records
which node versions a pipeline version's ``use`` pins resolved to: what "in use" is computed
from (latest versions of live pipelines, and pipeline versions of pending or running runs).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField
from sqlalchemy import Column, ForeignKey, Index, Integer, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from api.models.common import timestamp_field

Language = Literal["python", "javascript", "wasm"]
LookaheadStatus = Literal["pass", "fail", "error", "skipped"]


class CustomNode(SQLModel, table=True):
    """A stored custom node; ``latest_version`` is its highest live version."""

    __tablename__ = "custom_nodes"
    __table_args__ = (
        Index(
            "uq_custom_nodes_owner_name_live",
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
    name: str = Field(max_length=64)
    language: str = Field(max_length=16)
    latest_version: str = Field(max_length=128)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()
    deleted_at: datetime | None = timestamp_field(nullable=True)


class CustomNodeVersion(SQLModel, table=True):
    """One immutable saved manifest of a custom node."""

    __tablename__ = "custom_node_versions"
    __table_args__ = (UniqueConstraint("node_id", "version", name="uq_custom_node_version"),)

    id: int | None = Field(default=None, primary_key=True)
    node_id: int = Field(
        sa_column=Column(Integer, ForeignKey("custom_nodes.id"), nullable=False, index=True)
    )
    version: str = Field(max_length=128)
    manifest_json: str = Field(sa_type=Text)
    code_hash: str = Field(max_length=64, index=True)
    message: str = Field(default="", max_length=500)
    lookahead_status: str = Field(max_length=16)
    lookahead_json: str = Field(sa_type=Text)
    author_id: int = Field(sa_column=Column(Integer, ForeignKey("users.id"), nullable=False))
    created_at: datetime = timestamp_field()
    deleted_at: datetime | None = timestamp_field(nullable=True)


class CustomNodeUse(SQLModel, table=True):
    """A pipeline version's ``use`` pin resolved to this node version."""

    __tablename__ = "custom_node_uses"

    pipeline_version_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("pipeline_versions.id"), primary_key=True, nullable=False
        )
    )
    node_version_id: int = Field(
        sa_column=Column(
            Integer,
            ForeignKey("custom_node_versions.id"),
            primary_key=True,
            nullable=False,
            index=True,
        )
    )


# ---- request and response shapes ------------------------------------------------------------


class PortIn(BaseModel):
    """A port of a custom node (``type``: ohlcv, series, signal, frame or equity in; series,
    signal, frame or metrics out). ``columns`` names a frame output's columns."""

    model_config = ConfigDict(extra="forbid")

    name: str
    type: str
    doc: str = ""
    columns: list[str] | None = None


class ResourcesIn(BaseModel):
    """Resource requests, clamped to the operator's caps when the node runs."""

    model_config = ConfigDict(extra="forbid")

    memory_mb: int | None = None
    cpus: float | None = None
    wall_s: float | None = None
    output_mb: int | None = None


class ManifestIn(BaseModel):
    """A manifest to save or test-run, plus the version's message.

    ``version`` omitted: ``1.0.0`` on create, the latest version's patch + 1 on save.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = PydanticField(description="`[a-z][a-z0-9_]{0,63}`, not a built-in node name")
    version: str | None = PydanticField(default=None, description="semver MAJOR.MINOR.PATCH")
    language: Language
    summary: str = PydanticField(
        default="", max_length=300, description="one line, at most 300 characters"
    )
    inputs: list[PortIn] = PydanticField(default_factory=list)
    outputs: list[PortIn] = PydanticField(default_factory=list)
    params_schema: dict[str, Any] | None = None
    resources: ResourcesIn | None = None
    code: str
    code_format: Literal["source", "wat", "wasm_base64"] | None = None
    message: str | None = PydanticField(default=None, max_length=500)


class Manifest(BaseModel):
    """A stored version's manifest (``runners.custom.CustomNodeManifest`` as JSON)."""

    name: str
    version: str
    language: Language
    summary: str
    inputs: list[PortIn]
    outputs: list[PortIn]
    params_schema: dict[str, Any]
    resources: ResourcesIn
    code: str | None = PydanticField(description="null in version lists")
    code_format: Literal["source", "wat", "wasm_base64"]


class FirstDifference(BaseModel):
    """Where the whole and the prefix run first disagree."""

    port: str
    row: int
    ts: str | None
    whole: float | None
    prefix: float | None


class Lookahead(BaseModel):
    """The look-ahead verdict computed when the version was saved."""

    status: LookaheadStatus
    message: str
    checked_rows: int | None = None
    prefix_rows: int | None = None
    first_difference: FirstDifference | None = None
    #: what the check ran (runners/lookahead.py): the seed replays it, the prefix lengths and
    #: the row the future was changed from are drawn from it
    seed: int | None = None
    prefix_lengths: list[int] | None = None
    changed_from: int | None = None


class InUse(BaseModel):
    """A live pipeline whose latest version resolves to this node version."""

    pipeline_id: int
    pipeline_name: str


class NodeVersion(BaseModel):
    """One version of a custom node."""

    version: str
    code_hash: str
    created_at: datetime
    message: str
    manifest: Manifest
    lookahead: Lookahead
    in_use_by: list[InUse]


class CustomNodeSummary(BaseModel):
    """A custom node in the list."""

    id: int
    name: str
    owner: str
    language: Language
    summary: str
    latest_version: str
    versions: int
    lookahead_status: LookaheadStatus
    created_at: datetime
    updated_at: datetime
    can_edit: bool = False  # the caller may save new versions
    can_manage: bool = False  # the caller may also delete it and grant it


class CustomNodePublic(BaseModel):
    """A custom node with its latest version."""

    id: int
    name: str
    owner: str
    language: Language
    created_at: datetime
    updated_at: datetime
    version: NodeVersion
    can_edit: bool = False
    can_manage: bool = False


class ManifestChange(BaseModel):
    """A manifest field (other than the code) that differs between two versions."""

    model_config = ConfigDict(populate_by_name=True)

    field: str
    from_: Any = PydanticField(alias="from", serialization_alias="from")
    to: Any


class NodeDiff(BaseModel):
    """Two versions compared: the code as a unified diff, the rest as field changes."""

    from_version: str
    to_version: str
    unified: str
    manifest_changes: list[ManifestChange]


class NodeTemplate(BaseModel):
    """A starting point for "New node"."""

    language: Language
    kind: str
    title: str
    manifest: Manifest


class NodeTestRunIn(BaseModel):
    """``POST /api/custom-nodes/test-run``: run a manifest once on the sample, save nothing."""

    model_config = ConfigDict(extra="forbid")

    manifest: ManifestIn
    params: dict[str, Any] = PydanticField(default_factory=dict)
    rows: int = PydanticField(default=300, ge=1, le=5000)


class Preview(BaseModel):
    """The first and last 10 rows of an input or output (timestamps ISO)."""

    type: str
    rows: int
    columns: list[str]
    head: list[list[Any]]
    tail: list[list[Any]]


class NodeTestRunResult(BaseModel):
    """What a test run produced."""

    status: Literal["completed", "failed"]
    error_kind: str | None
    error: str | None
    logs: list[str]
    wall_s: float
    inputs: dict[str, Preview]
    outputs: dict[str, Preview]
