"""The tables of deployed stream pipelines (migration ``api/migrations/versions/0009_streams.py``).

- :class:`StreamDeployment`: one ``.af`` pipeline with a ``stream { ... }`` block that the
  engine should run. The owner's wish is ``desired`` (``running`` / ``stopped``) and the text
  (its compiled IR's hash, its ``text_version``); the engine writes the runtime columns: its
  ``status`` (``starting``, ``warming``, ``running``, ``failed`` with the reason, ``stopped``,
  ``ended``), the lease (which engine runs it, until when), the text it loaded
  (``loaded_key``) and the pipeline's last health snapshot (``health_json``: counts, last
  events, each sink's health), so that the API reads status from the database wherever the
  engine runs.
- :class:`StreamDeploymentText`: every text a deployment had (version 1 is the first), by whom.

The names are unique per owner among deployments that are not deleted.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Text, text
from sqlmodel import Field, SQLModel

from live.tables import _ts

__all__ = ["DESIRED", "STREAM_STATUSES", "StreamDeployment", "StreamDeploymentText"]

DESIRED = ("running", "stopped")
STREAM_STATUSES = ("starting", "warming", "running", "failed", "stopped", "ended")


class StreamDeployment(SQLModel, table=True):
    """A deployed stream pipeline: the owner's wish and the engine's view of it."""

    __tablename__ = "stream_deployments"
    __table_args__ = (
        Index(
            "uq_stream_deployments_owner_name_live",
            "owner_id",
            "name",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    owner_id: int = Field(
        sa_column=Column(Integer, ForeignKey("users.id"), nullable=False, index=True)
    )
    name: str = Field(max_length=64)
    pipeline: str = Field(max_length=128)  # the IR's name (what trigger(target=...) names)
    pipeline_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("pipelines.id"), nullable=True)
    )
    text: str = Field(sa_type=Text)
    ir_hash: str = Field(max_length=64)
    text_version: int = 1
    desired: str = Field(default="stopped", max_length=8)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    deleted_at: datetime | None = _ts(nullable=True)
    # runtime (the engine's)
    status: str = Field(default="stopped", max_length=16)
    status_reason: str | None = Field(default=None, sa_type=Text)
    status_at: datetime | None = _ts(nullable=True)
    last_error: str | None = Field(default=None, sa_type=Text)
    engine_id: str | None = Field(default=None, max_length=128)
    lease_until: datetime | None = _ts(nullable=True)
    loaded_key: str | None = Field(default=None, max_length=80)
    restarts: int = 0
    health_json: str | None = Field(default=None, sa_type=Text)
    health_at: datetime | None = _ts(nullable=True)


class StreamDeploymentText(SQLModel, table=True):
    """One text a deployment had; the deployment's ``text_version`` is the newest."""

    __tablename__ = "stream_deployment_texts"
    __table_args__ = (Index("uq_stream_deployment_text", "deployment_id", "version", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    deployment_id: str = Field(
        sa_column=Column(
            String(32), ForeignKey("stream_deployments.id"), nullable=False, index=True
        )
    )
    version: int
    text: str = Field(sa_type=Text)
    ir_hash: str = Field(max_length=64)
    user_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("users.id"), nullable=True)
    )
    created_at: datetime = _ts()
