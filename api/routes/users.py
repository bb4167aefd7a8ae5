"""User administration (admins only): create, list, change role, disable/enable, reset a
password."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import AdminUser, ObjectId, PagingDep, SessionDep
from api.models.common import Page, error_responses
from api.models.user import PasswordReset, UserCreate, UserPublic, UserUpdate
from api.services import users

router = APIRouter(prefix="/api/users", tags=["users"], responses=error_responses(401, 403))


@router.post(
    "",
    response_model=UserPublic,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(409, 422),
)
def create_user(body: UserCreate, admin: AdminUser, session: SessionDep) -> UserPublic:
    """Create a user with a role and a temporary password, to be changed at first log-in
    (409 if the username is taken)."""
    return users.public(users.create_user(session, admin, body, temporary=True))


@router.get("", response_model=Page[UserPublic])
def list_users(_admin: AdminUser, session: SessionDep, paging: PagingDep) -> Page[UserPublic]:
    """Every user, with their teams."""
    return users.list_users(session, offset=paging.offset, limit=paging.limit)


@router.patch("/{user_id}", response_model=UserPublic, responses=error_responses(404, 409))
def update_user(
    user_id: ObjectId, body: UserUpdate, admin: AdminUser, session: SessionDep
) -> UserPublic:
    """Change the role, or disable (``is_active: false``) or enable the user; a disabled
    user cannot log in and their tokens stop working. 409 for the last active admin."""
    return users.update_user(session, admin, user_id, body)


@router.post("/{user_id}/password", response_model=UserPublic, responses=error_responses(404, 422))
def reset_password(
    user_id: ObjectId, body: PasswordReset, admin: AdminUser, session: SessionDep
) -> UserPublic:
    """Set a temporary password, which the user must change at their next log-in."""
    return users.reset_password(session, admin, user_id, body.password)
