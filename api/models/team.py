"""Teams: named groups of users that pipelines, datasets and custom nodes are shared with.

A :class:`TeamGrant` gives one team ``read`` or ``edit`` access to one object (``kind`` +
``target_id``); the owner or an admin manages the grants. Observers stay read-only whatever
their teams are granted.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import Column, ForeignKey, Integer, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from api.models.common import timestamp_field

TEAM_NAME_MAX = 64
GrantKind = Literal["pipeline", "dataset", "custom_node"]


class Access(StrEnum):
    """What a team grant allows: ``read`` (see it) or ``edit`` (also change it)."""

    READ = "read"
    EDIT = "edit"


class Team(SQLModel, table=True):
    """A named group of users."""

    __tablename__ = "teams"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=TEAM_NAME_MAX, unique=True, index=True)
    created_at: datetime = timestamp_field()


class TeamMember(SQLModel, table=True):
    """A user's membership of a team."""

    __tablename__ = "team_members"

    team_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    user_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("users.id"), primary_key=True, nullable=False, index=True
        )
    )
    created_at: datetime = timestamp_field()


class TeamGrant(SQLModel, table=True):
    """One team's access to one object."""

    __tablename__ = "team_grants"
    __table_args__ = (UniqueConstraint("kind", "target_id", "team_id", name="uq_team_grant"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    target_id: int = Field(index=True)
    team_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("teams.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    access: str = Field(sa_column=Column(String(8), nullable=False))
    granted_by_id: int = Field(sa_column=Column(Integer, ForeignKey("users.id"), nullable=False))
    created_at: datetime = timestamp_field()


class TeamCreate(BaseModel):
    """``POST /api/teams`` (admin only)."""

    name: str


class TeamMemberPublic(BaseModel):
    """A member as a team lists them."""

    id: int
    username: str
    role: str


class TeamPublic(BaseModel):
    """A team with its members."""

    id: int
    name: str
    created_at: datetime
    members: list[TeamMemberPublic]


class GrantSet(BaseModel):
    """``PUT /api/grants/{kind}/{target_id}/{team_id}``: the access to give."""

    access: Access


class GrantPublic(BaseModel):
    """One team's access to an object."""

    kind: GrantKind
    target_id: int
    team_id: int
    team: str
    access: Access
    created_at: datetime
