"""Log-in and the current user."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.deps import AnyCurrentUser, SessionDep, SettingsDep
from api.errors import Unauthorized
from api.models.common import error_responses
from api.models.user import LoginRequest, PasswordChange, TokenResponse, UserPublic
from api.services import users
from api.services.login_throttle import LoginThrottle

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/login", response_model=TokenResponse)
def login(
    body: LoginRequest, request: Request, session: SessionDep, settings: SettingsDep
) -> TokenResponse:
    """A bearer token for a username and password (401 otherwise; 429 with ``Retry-After``
    after too many failures from one address, for one account or in all)."""
    throttle: LoginThrottle = request.app.state.login_throttle
    address = request.client.host if request.client else "unknown"
    throttle.check(address, body.username)
    try:
        token = users.login(session, settings, body.username, body.password)
    except Unauthorized:
        throttle.failed(address, body.username)
        raise
    throttle.succeeded(address, body.username)
    return token


@router.get("/me", response_model=UserPublic)
def me(user: AnyCurrentUser, session: SessionDep) -> UserPublic:
    """The user the token belongs to (also while they must change their password)."""
    return users.public_with_teams(session, user)


@router.post("/password", response_model=TokenResponse, responses=error_responses(401, 422))
def change_password(
    body: PasswordChange, user: AnyCurrentUser, session: SessionDep, settings: SettingsDep
) -> TokenResponse:
    """Change the caller's own password (the current one is required); ends a forced change
    after a temporary password. Signs out every other session of the user: the answer holds
    this session's new token."""
    return users.change_password(session, settings, user, body.current_password, body.new_password)
