"""Share links: unguessable tokens that show one object read-only to anyone holding them.

A share kind is a :class:`ShareKindHandler` in :data:`SHARE_KINDS`: it checks that the creator
may share the target, and renders the read-only view. ``pipeline`` is here; ``run`` is refused
until a handler for it is registered (the runs module adds one with :func:`register_kind`).
Share tokens are opaque random strings, never JWTs: no other route can accept one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
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
from api.services.access import username_of
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
        """Only pipelines the user may see (and owners or admins reach here: observers cannot
        create shares)."""
        pipelines.get_pipeline(session, user, target_id)

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


def public(session: Session, settings: ApiSettings, share: Share) -> SharePublic:
    """The share link as its owner sees it: whose, what it shows (named), revoked or not."""
    handler = SHARE_KINDS.get(share.kind)
    return SharePublic(
        token=share.token,
        url=_url(settings, share.token),
        kind=share.kind,  # type: ignore[arg-type]
        target_id=share.target_id,
        created_at=as_utc(share.created_at),
        owner=username_of(session, share.owner_id),
        revoked_at=as_utc(share.revoked_at) if share.revoked_at else None,
        target=handler.describe(session, share.target_id) if handler else None,
    )


def create(session: Session, user: User, settings: ApiSettings, data: ShareCreate) -> SharePublic:
    """A new share link for an object the user may see (404 otherwise)."""
    handler = SHARE_KINDS.get(data.kind)
    if handler is None:
        raise Unprocessable(f"sharing a {data.kind} is not available yet")
    handler.check_target(session, user, data.target_id)
    share = Share(
        token=secrets.token_urlsafe(32),
        kind=data.kind,
        target_id=data.target_id,
        owner_id=user.id or 0,
    )
    session.add(share)
    session.flush()
    audit.record(session, user, "share.create", data.kind, data.target_id, share_id=share.id)
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
    """What anyone holding ``token`` may see; 404 for unknown or revoked tokens."""
    share = session.exec(
        select(Share).where(Share.token == token, col(Share.revoked_at).is_(None))
    ).first()
    handler = SHARE_KINDS.get(share.kind) if share else None
    if share is None or handler is None:
        raise NotFound("share link not found")
    return handler.render(session, share, settings)
