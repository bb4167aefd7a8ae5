"""Log-in and the current user."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.models.user import LoginRequest, TokenResponse, UserPublic
from api.services import users

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/login", response_model=TokenResponse)
def login(body: LoginRequest, session: SessionDep, settings: SettingsDep) -> TokenResponse:
    """A bearer token for a username and password (401 otherwise)."""
    return users.login(session, settings, body.username, body.password)


@router.get("/me", response_model=UserPublic)
def me(user: CurrentUser) -> UserPublic:
    """The user the token belongs to."""
    return users.public(user)
