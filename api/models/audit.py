"""The audit log: who did what to which object, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Column, ForeignKey, Integer, Text
from sqlmodel import Field, SQLModel

from api.models.common import timestamp_field


class AuditEvent(SQLModel, table=True):
    """One audited action (``pipeline.update``, ``share.create``, ``auth.login_failed``...)."""

    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = timestamp_field(index=True)
    actor_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("users.id"), nullable=True, index=True)
    )
    action: str = Field(max_length=64, index=True)
    object_type: str = Field(max_length=32)
    object_id: str | None = Field(default=None, max_length=64)
    detail_json: str = Field(default="{}", sa_type=Text)


class AuditEventPublic(BaseModel):
    """An audit event as admins see it."""

    id: int
    created_at: datetime
    actor: str | None
    action: str
    object_type: str
    object_id: str | None
    detail: dict[str, Any]
