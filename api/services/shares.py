"""Share links: unguessable tokens that show one object read-only to anyone holding them.

A share kind is a :class:`ShareKindHandler` in :data:`SHARE_KINDS`: it checks that the creator
may share the target, and renders the read-only view. ``pipeline`` is here; ``run`` is refused
until a handler for it is registered (the runs module adds one with :func:`register_kind`).
Share tokens are opaque random strings, never JWTs: no other route can accept one.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlmodel import Session, col, func, select

from api.errors import NotFound, Unprocessable
from api.models.common import Page, as_utc, utcnow
from api.models.pipeline import Pipeline
from api.models.share import (
    Share,
    ShareCreate,
    SharedPipeline,
    SharedView,
    SharePublic,
    ShareTarget,
)
from api.models.user import Role, User
from api.services import audit, pipelines
from api.services.access import Level, username_of
from api.settings import ApiSettings


class ShareKindHandler(Protocol):
    """What a share kind must provide."""

    def check_target(self, session: Session, user: User, target_id: int) -> None:
        """Raise NotFound unless ``user`` may share ``target_id``."""

    def render(self, session: Session, share: Share, settings: ApiSettings) -> SharedView:
        """The read-only view; raise NotFound if the target is gone."""

    def describe(self, session: Session, target_id: int) -> ShareTarget | None:
        """The target named for its owner's list of links; None if it is gone."""


@dataclass(frozen=True)
class PipelineShare:
    """Sharing a pipeline shows its latest version's name, title and source."""

    def check_target(self, session: Session, user: User, target_id: int) -> None:
        """Only pipelines the user manages: their own (an admin: any); a team member who may
        only read or edit it gets 403, observers never reach here."""
        pipelines.get_pipeline(session, user, target_id, level=Level.MANAGE)

    def render(self, session: Session, share: Share, settings: ApiSettings) -> SharedView:
        """Name, title and the latest source; a deleted pipeline is gone (404)."""
        pipeline = session.exec(
            select(Pipeline).where(
                Pipeline.id == share.target_id, col(Pipeline.deleted_at).is_(None)
            )
        ).first()
        if pipeline is None:
            raise NotFound("share link not found")
        version = pipelines.version_of(session, pipeline.id, pipeline.latest_version)
        shown = SharedPipeline(
            name=pipeline.name, title=pipeline.title, source=version.source, version=version.number
        )
        return SharedView(kind="pipeline", pipeline=shown, run=None, results=None)

    def describe(self, session: Session, target_id: int) -> ShareTarget | None:
        """The pipeline's id, name and title; None once it is deleted."""
        pipeline = session.get(Pipeline, target_id)
        if pipeline is None or pipeline.deleted_at is not None:
            return None
        return ShareTarget(
            pipeline_id=target_id, pipeline_name=pipeline.name, pipeline_title=pipeline.title
        )


SHARE_KINDS: dict[str, ShareKindHandler] = {"pipeline": PipelineShare()}


def register_kind(kind: str, handler: ShareKindHandler) -> None:
    """Make a share kind available (``run`` once the runs table exists)."""
    SHARE_KINDS[kind] = handler


def _url(settings: ApiSettings, token: str) -> str:
    return f"{(settings.public_url or '').rstrip('/')}/shared/{token}"


_DURATION = re.compile(
    r"^\s*(\d{1,4})\s*(m|min|mins|minutes?|h|hours?|d|days?|w|weeks?)\s*$", re.IGNORECASE
)
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_EXPIRY = timedelta(days=3660)


def parse_duration(text: str) -> timedelta:
    """``"7 days"``, ``"7d"``, ``"12 hours"``, ``"2 weeks"``, ``"30 minutes"`` as a timedelta;
    a 422 that says what to type for anything else."""
    found = _DURATION.match(text)
    if found is None or int(found.group(1)) == 0:
        raise Unprocessable(
            f"The expiry {text.strip()[:32]!r} is not a duration: type a number and a unit, "
            'such as "7 days", "12 hours", "2 weeks" or "30 minutes".'
        )
    unit = found.group(2).lower()[0]
    return timedelta(seconds=int(found.group(1)) * _UNIT_SECONDS[unit])


def _expiry(data: ShareCreate) -> datetime | None:
    """When a new link stops working: ``expires_at`` or now + ``expires_in`` (not both)."""
    if data.expires_at is not None and data.expires_in:
        raise Unprocessable(
            "Give either an expiry date (expires_at) or a duration (expires_in), not both."
        )
    now = utcnow()
    if data.expires_in:
        until = now + parse_duration(data.expires_in)
    elif data.expires_at is not None:
        until = as_utc(data.expires_at)
        if until <= now:
            raise Unprocessable(
                f"The expiry {until:%Y-%m-%d %H:%M} UTC is in the past: choose a later date "
                "and time, or leave it empty for a link that does not expire."
            )
    else:
        return None
    if until - now > MAX_EXPIRY:
        raise Unprocessable(
            "A share link can expire at most 10 years from now: choose an earlier date, or "
            "leave the expiry empty for a link that does not expire."
        )
    return until


def is_expired(share: Share, now: datetime | None = None) -> bool:
    """True once the link's expiry time has passed."""
    return share.expires_at is not None and as_utc(share.expires_at) <= (now or utcnow())


def public(session: Session, settings: ApiSettings, share: Share) -> SharePublic:
    """The share link as its owner sees it: whose, what it shows (named), revoked or not,
    when it expires."""
    handler = SHARE_KINDS.get(share.kind)
    return SharePublic(
        token=share.token,
        url=_url(settings, share.token),
        kind=share.kind,  # type: ignore[arg-type]
        target_id=share.target_id,
        created_at=as_utc(share.created_at),
        owner=username_of(session, share.owner_id),
        revoked_at=as_utc(share.revoked_at) if share.revoked_at else None,
        expires_at=as_utc(share.expires_at) if share.expires_at else None,
        expired=is_expired(share),
        target=handler.describe(session, share.target_id) if handler else None,
    )


def create(session: Session, user: User, settings: ApiSettings, data: ShareCreate) -> SharePublic:
    """A new share link for an object the user may see (404 otherwise)."""
    handler = SHARE_KINDS.get(data.kind)
    if handler is None:
        raise Unprocessable(f"sharing a {data.kind} is not available yet")
    expires_at = _expiry(data)
    handler.check_target(session, user, data.target_id)
    share = Share(
        token=secrets.token_urlsafe(32),
        kind=data.kind,
        target_id=data.target_id,
        owner_id=user.id or 0,
        expires_at=expires_at,
    )
    session.add(share)
    session.flush()
    audit.record(
        session, user, "share.create", data.kind, data.target_id,
        share_id=share.id, expires_at=expires_at.isoformat() if expires_at else None,
    )  # fmt: skip
    session.commit()
    return public(session, settings, share)


def _own(user: User, *, include_revoked: bool = False) -> list[object]:
    where: list[object] = [] if include_revoked else [col(Share.revoked_at).is_(None)]
    if user.role != Role.ADMIN:
        where.append(Share.owner_id == user.id)
    return where


def list_shares(
    session: Session,
    user: User,
    settings: ApiSettings,
    *,
    offset: int,
    limit: int,
    include_revoked: bool = False,
) -> Page[SharePublic]:
    """The user's share links (an admin's list has everyone's), newest first; revoked ones
    only with ``include_revoked``."""
    where = _own(user, include_revoked=include_revoked)
    rows = session.exec(
        select(Share).where(*where).order_by(col(Share.id).desc()).offset(offset).limit(limit)
    ).all()
    total = session.exec(select(func.count()).select_from(Share).where(*where)).one()
    return Page(items=[public(session, settings, s) for s in rows], total=total)


def revoke(session: Session, user: User, token: str) -> None:
    """Revoke a link for good (404 for unknown, revoked or someone else's)."""
    share = session.exec(select(Share).where(Share.token == token, *_own(user))).first()
    if share is None:
        raise NotFound("share link not found")
    share.revoked_at = utcnow()
    session.add(share)
    audit.record(session, user, "share.revoke", share.kind, share.target_id, share_id=share.id)
    session.commit()


def shared_view(session: Session, token: str, settings: ApiSettings) -> SharedView:
    """What anyone holding ``token`` may see; 404 for unknown, revoked or expired tokens (an
    expired one says so)."""
    share = session.exec(
        select(Share).where(Share.token == token, col(Share.revoked_at).is_(None))
    ).first()
    handler = SHARE_KINDS.get(share.kind) if share else None
    if share is None or handler is None:
        raise NotFound("share link not found")
    if is_expired(share):
        expired = as_utc(share.expires_at) if share.expires_at else utcnow()
        raise NotFound(
            f"This share link expired on {expired:%Y-%m-%d %H:%M} UTC: ask its owner for a "
            "new link."
        )
    return handler.render(session, share, settings)
