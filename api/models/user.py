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


class UserCreate(UserBase):
    """``POST /api/users`` (admin only)."""

    password: str = Field(min_length=8, max_length=256)


class User(UserBase, table=True):
    """A stored user; the password only as a scrypt hash."""

    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    password_hash: str = Field(max_length=255)
    is_active: bool = Field(default=True)
    created_at: datetime = timestamp_field()


class UserPublic(UserBase):
    """A user as the API shows it (never the hash)."""

    id: int


class LoginRequest(BaseModel):
    """``POST /api/auth/login``."""

    username: str = Field(max_length=64, schema_extra={"pattern": NO_NUL_PATTERN})
    password: str = Field(max_length=256)


class TokenResponse(BaseModel):
    """A bearer token and who it belongs to."""

    access_token: str
    token_type: str = "bearer"
    user: UserPublic
