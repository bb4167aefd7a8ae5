"""Writing and reading the audit log. Events join the caller's transaction."""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session, func, select

from api.models.audit import AuditEvent, AuditEventPublic
from api.models.common import Page, as_utc
from api.models.user import User


def record(
    session: Session,
    actor: User | None,
    action: str,
    object_type: str,
    object_id: int | str | None = None,
    **detail: Any,
) -> None:
    """Add an audit event; it is stored when the caller commits."""
    session.add(
        AuditEvent(
            actor_id=actor.id if actor else None,
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            detail_json=json.dumps(detail, default=str, sort_keys=True),
        )
    )


def list_events(
    session: Session, *, offset: int, limit: int, action: str | None = None
) -> Page[AuditEventPublic]:
    """Newest first, optionally one action only."""
    query = select(AuditEvent, User.username).join(User, isouter=True)
    count = select(func.count()).select_from(AuditEvent)
    if action:
        query = query.where(AuditEvent.action == action)
        count = count.where(AuditEvent.action == action)
    rows = session.exec(
        query.order_by(AuditEvent.id.desc()).offset(offset).limit(limit)  # type: ignore[union-attr]
    ).all()
    items = [
        AuditEventPublic(
            id=event.id or 0,
            created_at=as_utc(event.created_at),
            actor=username,
            action=event.action,
            object_type=event.object_type,
            object_id=event.object_id,
            detail=json.loads(event.detail_json),
        )
        for event, username in rows
    ]
    return Page(items=items, total=session.exec(count).one())
