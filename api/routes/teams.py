"""Teams (admins manage them, everyone lists them) and team grants on pipelines, datasets and
custom nodes (their owner or an admin manages them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from api.deps import AdminUser, CurrentUser, ObjectId, SessionDep, WriterUser
from api.models.common import error_responses
from api.models.team import GrantKind, GrantPublic, GrantSet, TeamCreate, TeamPublic
from api.services import teams

router = APIRouter(prefix="/api/teams", tags=["teams"], responses=error_responses(401, 403))
grants_router = APIRouter(
    prefix="/api/grants", tags=["teams"], responses=error_responses(401, 403, 404)
)

Kind = Annotated[GrantKind, Path(description="pipeline, dataset or custom_node")]
UserId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The user's id.")]
TeamId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The team's id.")]


@router.get("", response_model=list[TeamPublic])
def list_teams(_user: CurrentUser, session: SessionDep) -> list[TeamPublic]:
    """Every team with its members, by name."""
    return teams.list_teams(session)


@router.post(
    "",
    response_model=TeamPublic,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(409, 422),
)
def create_team(body: TeamCreate, admin: AdminUser, session: SessionDep) -> TeamPublic:
    """A new, empty team."""
    return teams.create(session, admin, body.name)


@router.delete(
    "/{team_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(404),
)
def delete_team(team_id: ObjectId, admin: AdminUser, session: SessionDep) -> Response:
    """Delete the team, its memberships and its grants."""
    teams.delete_team(session, admin, team_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/{team_id}/members/{user_id}", response_model=TeamPublic, responses=error_responses(404)
)
def add_member(
    team_id: ObjectId, user_id: UserId, admin: AdminUser, session: SessionDep
) -> TeamPublic:
    """Add a user to the team."""
    return teams.add_member(session, admin, team_id, user_id)


@router.delete(
    "/{team_id}/members/{user_id}", response_model=TeamPublic, responses=error_responses(404)
)
def remove_member(
    team_id: ObjectId, user_id: UserId, admin: AdminUser, session: SessionDep
) -> TeamPublic:
    """Remove a user from the team."""
    return teams.remove_member(session, admin, team_id, user_id)


@grants_router.get("/{kind}/{target_id}", response_model=list[GrantPublic])
def list_grants(
    kind: Kind, target_id: ObjectId, user: CurrentUser, session: SessionDep
) -> list[GrantPublic]:
    """The teams the object is shared with."""
    return teams.list_grants(session, user, kind, target_id)


@grants_router.put("/{kind}/{target_id}/{team_id}", response_model=list[GrantPublic])
def set_grant(
    kind: Kind,
    target_id: ObjectId,
    team_id: TeamId,
    body: GrantSet,
    user: WriterUser,
    session: SessionDep,
) -> list[GrantPublic]:
    """Share the object with a team, ``read`` or ``edit`` (owner or admin)."""
    return teams.set_grant(session, user, kind, target_id, team_id, body.access)


@grants_router.delete("/{kind}/{target_id}/{team_id}", response_model=list[GrantPublic])
def remove_grant(
    kind: Kind, target_id: ObjectId, team_id: TeamId, user: WriterUser, session: SessionDep
) -> list[GrantPublic]:
    """Stop sharing the object with the team (owner or admin)."""
    return teams.remove_grant(session, user, kind, target_id, team_id)
