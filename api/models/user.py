"""Users and roles: admin (everything), developer (own objects), observer (reads only)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel
from sqlalchemy import String
from sqlmodel import Field, SQLModel

from api.models.common import NO_NUL_PATTERN, timestamp_field

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class Role(StrEnum):
    """What a user may do."""

    ADMIN = "admin"
    DEVELOPER = "developer"
    OBSERVER = "observer"


class UserBase(SQLModel):
    """Fields every user representation shares."""

    username: str = Field(max_length=64, schema_extra={"pattern": USERNAME_PATTERN})
    role: Role = Field(default=Role.DEVELOPER, sa_type=String(16))


PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 256


class UserCreate(BaseModel):
    """``POST /api/users`` (admin only): the password is temporary, to be changed at first
    log-in. The username's form (``USERNAME_PATTERN``) and the password's length (at least
    ``PASSWORD_MIN_LENGTH``) are checked by the service, which says what to type instead."""

    username: str = Field(max_length=64)
    role: Role = Role.DEVELOPER
    password: str = Field(max_length=PASSWORD_MAX_LENGTH)


class UserUpdate(BaseModel):
    """``PATCH /api/users/{id}`` (admin only): a new role, disable (``is_active`` false) or
    enable; fields left out stay as they are."""

    role: Role | None = None
    is_active: bool | None = None


class PasswordReset(BaseModel):
    """``POST /api/users/{id}/password`` (admin only): a temporary password for someone else."""

    password: str = Field(max_length=PASSWORD_MAX_LENGTH)


class PasswordChange(BaseModel):
    """``POST /api/auth/password``: the caller's current password and the new one."""

    current_password: str = Field(max_length=PASSWORD_MAX_LENGTH)
    new_password: str = Field(max_length=PASSWORD_MAX_LENGTH)


class User(UserBase, table=True):
    """A stored user; the password only as a scrypt hash."""

    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    password_hash: str = Field(max_length=255)
    is_active: bool = Field(default=True)
    must_change_password: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = timestamp_field()


class UserPublic(UserBase):
    """A user as the API shows it (never the hash). ``must_change_password``: the password was
    generated or set by an admin, and every call but ``/api/auth/me`` and
    ``/api/auth/password`` is refused (403) until the user chooses their own."""

    id: int
    is_active: bool = True
    must_change_password: bool = False
    teams: list[str] = []


class LoginRequest(BaseModel):
    """``POST /api/auth/login``."""

    username: str = Field(max_length=64, schema_extra={"pattern": NO_NUL_PATTERN})
    password: str = Field(max_length=256)


class TokenResponse(BaseModel):
    """A bearer token and who it belongs to."""

    access_token: str
    token_type: str = "bearer"
    user: UserPublic
