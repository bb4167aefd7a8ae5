"""FastAPI dependencies, as ``Annotated`` types so route signatures read like documentation.

``CurrentUser`` is any logged-in user (bearer JWT) who need not change their password first
(``AnyCurrentUser`` also lets those through: ``/api/auth/me`` and ``/api/auth/password`` only);
``WriterUser`` refuses observers (403);
``AdminUser`` refuses everyone but admins (403). Share tokens are not JWTs, so they never pass.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from api.errors import Forbidden, Unauthorized
from api.models.user import Role, User
from api.security import InvalidTokenError, decode_access_token, password_stamp
from api.settings import ApiSettings

_bearer = HTTPBearer(auto_error=False, description="A token from POST /api/auth/login.")


def get_settings(request: Request) -> ApiSettings:
    """The settings the app was created with."""
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """A database session for this request."""
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


MAX_ID = 2**31 - 1  # the INTEGER primary keys' range: larger ids are a 422, not a 500
ObjectId = Annotated[int, Path(ge=1, le=MAX_ID, description="The object's id.")]
VersionNumber = Annotated[int, Path(ge=1, le=MAX_ID, description="A version number.")]

SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]


def get_any_current_user(
    session: SessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The user a valid bearer token names, even one who must change their password; 401
    for anything else (a disabled user's token too)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Not authenticated")
    try:
        claims = decode_access_token(credentials.credentials, settings.signing_key)
    except InvalidTokenError:
        raise Unauthorized("Invalid or expired token") from None
    user = session.get(User, claims.user_id)
    if user is None:
        raise Unauthorized("Invalid or expired token")
    if not user.is_active:
        raise Unauthorized("This account is disabled: ask an admin to enable it.")
    if not hmac.compare_digest(
        claims.password_stamp, password_stamp(user.password_hash, settings.signing_key)
    ):
        raise Unauthorized("Your password was changed since you signed in: sign in again.")
    return user


AnyCurrentUser = Annotated[User, Depends(get_any_current_user)]


def get_current_user(user: AnyCurrentUser) -> User:
    """The logged-in user, unless their password is temporary (403 until they change it)."""
    if user.must_change_password:
        raise Forbidden(
            "You must choose a new password before you continue: change it in the app "
            "(or with POST /api/auth/password)."
        )
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_writer(user: CurrentUser) -> User:
    """The current user if their role may change things (observers get 403)."""
    if user.role == Role.OBSERVER:
        raise Forbidden(
            "Observers can read but not change anything: ask an admin for the developer role."
        )
    return user


def get_admin(user: CurrentUser) -> User:
    """The current user if they are an admin (403 otherwise)."""
    if user.role != Role.ADMIN:
        raise Forbidden("Only admins can do this.")
    return user


WriterUser = Annotated[User, Depends(get_writer)]
AdminUser = Annotated[User, Depends(get_admin)]


class Paging:
    """``?offset=0&limit=50`` of every list route."""

    def __init__(
        self,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> None:
        self.offset = offset
        self.limit = limit


PagingDep = Annotated[Paging, Depends()]
