"""User administration (admins only)."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import AdminUser, PagingDep, SessionDep
from api.models.common import Page
from api.models.user import UserCreate, UserPublic
from api.services import users

router = APIRouter(prefix="/api/users", tags=["users"])


@router.post("", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, admin: AdminUser, session: SessionDep) -> UserPublic:
    """Create a user with a role (409 if the username is taken)."""
    return users.public(users.create_user(session, admin, body))


@router.get("", response_model=Page[UserPublic])
def list_users(_admin: AdminUser, session: SessionDep, paging: PagingDep) -> Page[UserPublic]:
    """Every user."""
    return users.list_users(session, offset=paging.offset, limit=paging.limit)
