"""Share links: managing them (authenticated) and viewing one (public, read-only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from api.deps import CurrentUser, PagingDep, SessionDep, SettingsDep, WriterUser
from api.models.common import Page, error_responses
from api.models.share import ShareCreate, SharedView, SharePublic
from api.services import shares

router = APIRouter(prefix="/api/shares", tags=["shares"], responses=error_responses(401, 403))
public_router = APIRouter(prefix="/api/shared", tags=["shares"])

TokenPath = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


@router.post(
    "",
    response_model=SharePublic,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(404, 422),
)
def create_share(
    body: ShareCreate, user: WriterUser, session: SessionDep, settings: SettingsDep
) -> SharePublic:
    """A read-only link to one of the caller's objects."""
    return shares.create(session, user, settings, body)


@router.get("", response_model=Page[SharePublic])
def list_shares(
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    paging: PagingDep,
    include_revoked: bool = False,
) -> Page[SharePublic]:
    """The caller's share links (an admin's: everyone's); revoked ones with
    ``include_revoked=true``."""
    return shares.list_shares(
        session,
        user,
        settings,
        offset=paging.offset,
        limit=paging.limit,
        include_revoked=include_revoked,
    )


@router.delete(
    "/{token}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(404),
)
def revoke_share(token: TokenPath, user: WriterUser, session: SessionDep) -> Response:
    """Revoke a link for good."""
    shares.revoke(session, user, token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@public_router.get("/{token}", response_model=SharedView, responses=error_responses(404))
def shared(token: TokenPath, session: SessionDep, settings: SettingsDep) -> SharedView:
    """What the link shows; no authentication; 404 for unknown or revoked links."""
    return shares.shared_view(session, token, settings)
