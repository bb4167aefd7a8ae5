"""Deployed stream pipelines for the web app (``/api/streams``), over live/stream/tables.py.

Who may do what follows the one access rule (:mod:`api.services.access`): owners see and act on
their own deployments, admins on all; observers see every one and change none. Changes go
through :mod:`live.stream.deployments` (compiled there; a text that does not compile is a 422
whose detail carries every diagnostic, with line and column) and are audited
(``stream.create``, ``stream.start``, ``stream.stop``, ``stream.text``, ``stream.delete``).
The engine (``alphaforge engine`` / the ``alphaforge-engine`` deployment) reads the same rows,
runs them and writes their status and health back; this service never talks to the engine.

The list also shows, read-only, the pipelines run from a terminal (``alphaforge stream``)
with this data dir (their ``status.json``; :func:`api.services.live.streams`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from api.errors import Unprocessable
from api.models.common import as_utc, utcnow
from api.models.live import (
    StreamCreate,
    StreamDeploymentDetail,
    StreamDeploymentPublic,
    StreamPublic,
    StreamTextPublic,
)
from api.models.pipeline import Pipeline
from api.models.user import User
from api.services import audit
from api.services.access import Level, caps_for, get_owned, username_of, visible
from api.services.live import _stream, streams
from api.services.pipelines import version_of
from api.settings import ApiSettings
from live.stream.deployments import (
    DeploymentInputError,
    create_deployment,
    delete_deployment,
    set_desired,
    texts_of,
    update_text,
)
from live.stream.tables import StreamDeployment

__all__ = ["create", "delete", "get", "list_streams", "set_text", "start", "stop"]

_ACTIVE = ("starting", "warming", "running")


def _invalid(exc: DeploymentInputError) -> Unprocessable:
    if exc.diagnostics:
        return Unprocessable(
            {
                "message": f"{exc.field}: {exc.message}",
                "diagnostics": [d.model_dump(mode="json") for d in exc.diagnostics],
            }
        )
    return Unprocessable(f"{exc.field}: {exc.message}")


def _row(session: Session, user: User, sid: str, level: Level) -> StreamDeployment:
    return get_owned(session, user, StreamDeployment, sid, "stream deployment", level=level)  # type: ignore[arg-type]


def list_streams(
    session: Session, user: User, settings: ApiSettings
) -> list[StreamDeploymentPublic]:
    """The deployments the caller may see (newest first), then the terminal-run pipelines."""
    rows = session.exec(
        select(StreamDeployment).where(*visible(StreamDeployment, user))
        .order_by(col(StreamDeployment.created_at).desc())
    ).all()  # fmt: skip
    out = [public(session, user, r) for r in rows]
    return out + [_terminal(s) for s in streams(settings)]


def get(session: Session, user: User, sid: str) -> StreamDeploymentDetail:
    row = _row(session, user, sid, Level.READ)
    texts = [
        StreamTextPublic(
            version=t.version,
            ir_hash=t.ir_hash,
            user=username_of(session, t.user_id) if t.user_id else None,
            created_at=as_utc(t.created_at),
        )
        for t in texts_of(session, row)
    ]
    return StreamDeploymentDetail(
        **public(session, user, row).model_dump(), text=row.text, texts=texts
    )


def create(session: Session, user: User, body: StreamCreate) -> StreamDeploymentDetail:
    """Deploy text, or a saved pipeline's latest version (the caller must see it)."""
    text, pipeline_id = body.text, None
    if body.pipeline_id is not None:
        pipeline = get_owned(session, user, Pipeline, body.pipeline_id, "pipeline")
        text = version_of(session, pipeline.id, pipeline.latest_version).source
        pipeline_id = pipeline.id
    assert text is not None
    audit.record(session, user, "stream.create", "stream", None, name=body.name,
                 pipeline_id=pipeline_id, start=body.start)  # fmt: skip
    try:
        row = create_deployment(
            session, user.id or 0, text, name=body.name, start=body.start,
            pipeline_id=pipeline_id, user_id=user.id,
        )  # fmt: skip
    except DeploymentInputError as exc:
        session.rollback()
        raise _invalid(exc) from None
    return get(session, user, row.id)


def _desire(session: Session, user: User, sid: str, desired: str) -> StreamDeploymentDetail:
    row = _row(session, user, sid, Level.EDIT)
    try:
        if set_desired(session, row, desired):
            action = "stream.start" if desired == "running" else "stream.stop"
            audit.record(session, user, action, "stream", row.id, name=row.name)
            session.commit()
    except DeploymentInputError as exc:
        session.rollback()
        raise _invalid(exc) from None
    return get(session, user, sid)


def start(session: Session, user: User, sid: str) -> StreamDeploymentDetail:
    """Ask the engine to run it."""
    return _desire(session, user, sid, "running")


def stop(session: Session, user: User, sid: str) -> StreamDeploymentDetail:
    """Ask the engine to stop it (sinks deliver what is queued; its state is kept)."""
    return _desire(session, user, sid, "stopped")


def set_text(session: Session, user: User, sid: str, text: str) -> StreamDeploymentDetail:
    """A new text (versioned); the engine reloads a running deployment."""
    row = _row(session, user, sid, Level.EDIT)
    try:
        if update_text(session, row, text, user.id):
            audit.record(session, user, "stream.text", "stream", row.id, name=row.name,
                         version=row.text_version)  # fmt: skip
            session.commit()
    except DeploymentInputError as exc:
        session.rollback()
        raise _invalid(exc) from None
    return get(session, user, sid)


def delete(session: Session, user: User, sid: str) -> None:
    """Delete it (the engine stops it; its texts stay in the database)."""
    row = _row(session, user, sid, Level.MANAGE)
    audit.record(session, user, "stream.delete", "stream", row.id, name=row.name)
    delete_deployment(session, row)


def public(session: Session, user: User, r: StreamDeployment) -> StreamDeploymentPublic:
    """A deployment with its last health snapshot."""
    health: dict[str, Any] = json.loads(r.health_json) if r.health_json else {}
    snapshot = _stream(r.pipeline, {**health, "pipeline": r.pipeline,
                                    "state": health.get("state") or r.status})  # fmt: skip
    lease = _utc(r.lease_until)
    reporting = not (
        r.desired == "running"
        and r.status in _ACTIVE
        and r.engine_id is not None
        and (lease is None or lease < utcnow())
    )
    fields = snapshot.model_dump()
    fields.update(reporting=reporting, written_at=_text(r.health_at))
    return StreamDeploymentPublic(
        **fields,
        id=r.id,
        name=r.name,
        deployed=True,
        owner=username_of(session, r.owner_id),
        desired=r.desired,  # type: ignore[arg-type]
        status=r.status,
        status_reason=r.status_reason,
        status_at=_utc(r.status_at),
        engine=r.engine_id,
        lease_until=lease,
        restarts=r.restarts,
        last_error=r.last_error,
        text_version=r.text_version,
        ir_hash=r.ir_hash,
        pipeline_id=r.pipeline_id,
        created_at=as_utc(r.created_at),
        updated_at=as_utc(r.updated_at),
        can_edit=caps_for(user, r, edit_grant=False).can_edit,  # type: ignore[arg-type]
    )


def _terminal(s: StreamPublic) -> StreamDeploymentPublic:
    """A pipeline run from a terminal: read-only."""
    return StreamDeploymentPublic(
        **s.model_dump(),
        id=None,
        name=s.pipeline,
        deployed=False,
        owner=None,
        desired=None,
        status=_STATUS.get(s.state, s.state),
        status_reason=s.failure,
        status_at=None,
        engine=None,
        lease_until=None,
        restarts=0,
        last_error=(s.errors or [None])[-1],
        text_version=None,
        ir_hash=None,
        pipeline_id=None,
        created_at=None,
        updated_at=None,
        can_edit=False,
    )


_STATUS = {"warming up": "warming", "created": "starting"}


def _utc(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None


def _text(value: datetime | None) -> str | None:
    return as_utc(value).isoformat() if value is not None else None
