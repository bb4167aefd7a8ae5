"""Teams and team grants.

Admins create and delete teams and add or remove members; any signed-in user lists the teams
(to choose one to share with). The owner of a pipeline, dataset or custom node (or an admin)
grants a team ``read`` or ``edit`` access to it; what a grant allows is decided in
``services.access``.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from api.errors import Conflict, NotFound, Unprocessable
from api.models.common import as_utc
from api.models.custom_node import CustomNode
from api.models.dataset import Dataset
from api.models.pipeline import Pipeline
from api.models.team import (
    TEAM_NAME_MAX,
    Access,
    GrantPublic,
    Team,
    TeamGrant,
    TeamMember,
    TeamMemberPublic,
    TeamPublic,
)
from api.models.user import User
from api.services import audit
from api.services.access import Level, get_owned

_TEAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]*$")
KINDS: dict[str, tuple[type[Any], str]] = {
    "pipeline": (Pipeline, "pipeline"),
    "dataset": (Dataset, "dataset"),
    "custom_node": (CustomNode, "custom node"),
}


def _public(session: Session, team: Team) -> TeamPublic:
    members = session.exec(
        select(User)
        .join(TeamMember, col(TeamMember.user_id) == User.id)
        .where(TeamMember.team_id == team.id)
        .order_by(col(User.username))
    ).all()
    return TeamPublic(
        id=team.id or 0,
        name=team.name,
        created_at=as_utc(team.created_at),
        members=[
            TeamMemberPublic(id=u.id or 0, username=u.username, role=str(u.role)) for u in members
        ],
    )


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > TEAM_NAME_MAX or not _TEAM_NAME.match(name):
        raise Unprocessable(
            f"{name[:TEAM_NAME_MAX]!r} is not a valid team name: use 1 to {TEAM_NAME_MAX} "
            "letters, digits, spaces, '.', '_' or '-', starting with a letter or digit "
            "(for example Research EU)."
        )
    return name


def get_team(session: Session, team_id: int) -> Team:
    """The team ``team_id`` (404 if there is none)."""
    team = session.get(Team, team_id)
    if team is None:
        raise NotFound("team not found")
    return team


def list_teams(session: Session) -> list[TeamPublic]:
    """Every team with its members, by name."""
    return [_public(session, t) for t in session.exec(select(Team).order_by(col(Team.name)))]


def create(session: Session, actor: User, name: str) -> TeamPublic:
    """A new, empty team (409 if the name is taken, 422 for a bad name)."""
    name = _check_name(name)
    taken = f"A team called {name!r} already exists: choose another name."
    if session.exec(select(Team).where(Team.name == name)).first():
        raise Conflict(taken)
    team = Team(name=name)
    session.add(team)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(taken) from None
    audit.record(session, actor, "team.create", "team", team.id, name=name)
    session.commit()
    return _public(session, team)


def delete_team(session: Session, actor: User, team_id: int) -> None:
    """Delete the team with its memberships and grants (its members keep their own objects)."""
    team = get_team(session, team_id)
    session.exec(delete(TeamGrant).where(col(TeamGrant.team_id) == team.id))  # type: ignore[call-overload]
    session.exec(delete(TeamMember).where(col(TeamMember.team_id) == team.id))  # type: ignore[call-overload]
    audit.record(session, actor, "team.delete", "team", team.id, name=team.name)
    session.delete(team)
    session.commit()


def add_member(session: Session, actor: User, team_id: int, user_id: int) -> TeamPublic:
    """Add a user to the team (already a member: nothing changes)."""
    team = get_team(session, team_id)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    if session.get(TeamMember, (team.id, user.id)) is None:
        session.add(TeamMember(team_id=team.id or 0, user_id=user.id or 0))
        audit.record(session, actor, "team.add_member", "team", team.id, user=user.username)
        try:
            session.commit()
        except IntegrityError:  # added concurrently: the same outcome
            session.rollback()
    return _public(session, team)


def remove_member(session: Session, actor: User, team_id: int, user_id: int) -> TeamPublic:
    """Remove a user from the team (404 if they are not in it)."""
    team = get_team(session, team_id)
    member = session.get(TeamMember, (team.id, user_id))
    if member is None:
        raise NotFound("that user is not a member of this team")
    session.delete(member)
    audit.record(session, actor, "team.remove_member", "team", team.id, user_id=user_id)
    session.commit()
    return _public(session, team)


def _target(session: Session, user: User, kind: str, target_id: int, level: Level) -> Any:
    model, what = KINDS[kind]
    return get_owned(session, user, model, target_id, what, level=level)


def list_grants(session: Session, user: User, kind: str, target_id: int) -> list[GrantPublic]:
    """The teams an object is shared with (anyone who may see the object may see them)."""
    _target(session, user, kind, target_id, Level.READ)
    rows = session.exec(
        select(TeamGrant, Team.name)
        .join(Team, col(Team.id) == TeamGrant.team_id)
        .where(TeamGrant.kind == kind, TeamGrant.target_id == target_id)
        .order_by(col(Team.name))
    ).all()
    return [
        GrantPublic(
            kind=kind,  # type: ignore[arg-type]
            target_id=target_id,
            team_id=g.team_id,
            team=name,
            access=Access(g.access),
            created_at=as_utc(g.created_at),
        )
        for g, name in rows
    ]


def set_grant(
    session: Session, user: User, kind: str, target_id: int, team_id: int, access: Access
) -> list[GrantPublic]:
    """Give the team ``access`` to the object (replacing what it had); owner or admin only."""
    _target(session, user, kind, target_id, Level.MANAGE)
    team = get_team(session, team_id)
    grant = session.exec(
        select(TeamGrant).where(
            TeamGrant.kind == kind, TeamGrant.target_id == target_id, TeamGrant.team_id == team.id
        )
    ).first()
    if grant is None:
        grant = TeamGrant(
            kind=kind,
            target_id=target_id,
            team_id=team.id or 0,
            access=access.value,
            granted_by_id=user.id or 0,
        )
    grant.access = access.value
    session.add(grant)
    audit.record(session, user, "grant.set", kind, target_id, team=team.name, access=access.value)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict("the grant was changed concurrently; reload and retry") from None
    return list_grants(session, user, kind, target_id)


def remove_grant(
    session: Session, user: User, kind: str, target_id: int, team_id: int
) -> list[GrantPublic]:
    """Stop sharing the object with the team; owner or admin only (404 if it was not)."""
    _target(session, user, kind, target_id, Level.MANAGE)
    grant = session.exec(
        select(TeamGrant).where(
            TeamGrant.kind == kind, TeamGrant.target_id == target_id, TeamGrant.team_id == team_id
        )
    ).first()
    if grant is None:
        raise NotFound("this object is not shared with that team")
    session.delete(grant)
    audit.record(session, user, "grant.remove", kind, target_id, team_id=team_id)
    session.commit()
    return list_grants(session, user, kind, target_id)
