"""Reading the audit log (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import AdminUser, PagingDep, SessionDep
from api.models.audit import AuditEventPublic
from api.models.common import Page
from api.services import audit

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get("", response_model=Page[AuditEventPublic])
def list_events(
    _admin: AdminUser,
    session: SessionDep,
    paging: PagingDep,
    action: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z_.]+$")] = None,
) -> Page[AuditEventPublic]:
    """Audit events, newest first (``?action=pipeline.update`` to filter)."""
    return audit.list_events(session, offset=paging.offset, limit=paging.limit, action=action)
