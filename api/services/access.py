"""Who sees and changes what: the one access rule for owned, soft-deletable objects (and the
small helpers every owned-object service uses: owner names, commit-or-409).

Three levels, each including the one before:

- ``read``: owners their own live objects, admins and observers every one, and members of a
  team that was granted the object (``read`` or ``edit``).
- ``edit`` (save a new version, restore, run, schedule; delete a dataset): owners, admins, and
  members of a team granted ``edit``. Observers never, whatever their teams are granted.
- ``manage`` (rename, delete, share by link, grant to teams): owners and admins.

An object the caller may not read is indistinguishable from a missing one (NotFound), so ids
leak nothing; one they may read but not change is a 403 that says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, or_, select

from api.errors import Conflict, Forbidden, NotFound
from api.models.custom_node import CustomNode
from api.models.dataset import Dataset
from api.models.pipeline import Pipeline
from api.models.team import Access, TeamGrant, TeamMember
from api.models.user import Role, User

__all__ = [
    "Caps",
    "Level",
    "caps_for",
    "commit_or_conflict",
    "edit_granted",
    "get_owned",
    "granted_ids",
    "kind_of",
    "require",
    "sees_all",
    "username_of",
    "visible",
]


class Owned(Protocol):
    """A table with an id, an owner and a soft-delete time."""

    id: Any
    owner_id: Any
    deleted_at: Any


T = TypeVar("T", bound=Owned)


class Level(IntEnum):
    """What the caller wants to do with an object."""

    READ = 1
    EDIT = 2
    MANAGE = 3


# The grant kind of each shareable table; other owned tables are owner-only.
_KINDS: dict[type, str] = {Pipeline: "pipeline", Dataset: "dataset", CustomNode: "custom_node"}
_WHAT = {"pipeline": "pipelines", "dataset": "datasets", "custom_node": "custom nodes"}


def kind_of(model: type[Any]) -> str | None:
    """The team-grant kind of ``model`` (None: it cannot be granted)."""
    return _KINDS.get(model)


def sees_all(user: User) -> bool:
    """Admins and observers read every object."""
    return user.role in (Role.ADMIN, Role.OBSERVER)


def granted_ids(user: User, kind: str, *, edit: bool = False) -> Any:
    """SELECT the ids of ``kind`` objects granted to a team ``user`` is in."""
    query = (
        select(TeamGrant.target_id)
        .join(TeamMember, col(TeamMember.team_id) == TeamGrant.team_id)
        .where(TeamMember.user_id == user.id, TeamGrant.kind == kind)
    )
    if edit:
        query = query.where(TeamGrant.access == Access.EDIT.value)
    return query


def visible(model: type[Owned], user: User) -> list[Any]:
    """WHERE clauses: live objects of ``model`` that ``user`` may see."""
    where: list[Any] = [col(model.deleted_at).is_(None)]
    if not sees_all(user):
        kind = kind_of(model)
        if kind is None:
            where.append(model.owner_id == user.id)
        else:
            where.append(or_(model.owner_id == user.id, col(model.id).in_(granted_ids(user, kind))))
    return where


def edit_granted(session: Session, user: User, model: type[Owned], ids: list[int]) -> set[int]:
    """Which of ``ids`` a team of ``user``'s was granted ``edit`` on (one query)."""
    kind = kind_of(model)
    if kind is None or not ids or user.role == Role.OBSERVER:
        return set()
    rows = session.exec(
        granted_ids(user, kind, edit=True).where(col(TeamGrant.target_id).in_(ids))
    ).all()
    return set(rows)


@dataclass(frozen=True)
class Caps:
    """What the caller may do with one object (the UI hides or disables the rest)."""

    can_edit: bool
    can_manage: bool


def caps_for(user: User, obj: Owned, *, edit_grant: bool) -> Caps:
    """The caller's capabilities on ``obj``; ``edit_grant``: a team of theirs may edit it."""
    if user.role == Role.OBSERVER:
        return Caps(False, False)
    manage = user.role == Role.ADMIN or obj.owner_id == user.id
    return Caps(can_edit=manage or edit_grant, can_manage=manage)


def require(session: Session, user: User, obj: Owned, level: Level, what: str) -> None:
    """Raise Forbidden (a sentence saying why) unless ``user`` may act on ``obj`` at
    ``level``; the caller already knows ``user`` may read it."""
    if level == Level.READ:
        return
    plural = _WHAT.get(kind_of(type(obj)) or "", f"{what}s")
    if user.role == Role.OBSERVER:
        raise Forbidden(f"Observers can read but not change {plural}.")
    grant = obj.id in edit_granted(session, user, type(obj), [obj.id])
    caps = caps_for(user, obj, edit_grant=grant)
    if level == Level.EDIT and not caps.can_edit:
        raise Forbidden(
            f"You can read this {what} through a team but not change it: ask its owner "
            "for edit access."
        )
    if level == Level.MANAGE and not caps.can_manage:
        raise Forbidden(
            f"Only the owner of this {what} or an admin can rename, delete or share it."
        )


def get_owned(
    session: Session,
    user: User,
    model: type[T],
    obj_id: int,
    what: str,
    *,
    lock: bool = False,
    level: Level = Level.READ,
) -> T:
    """The live ``model`` row ``obj_id`` if ``user`` may see it, else ``NotFound("<what> not
    found")``; 403 if they may see it but not act on it at ``level``; ``lock`` takes a row
    lock (SELECT … FOR UPDATE) for a read-modify-write."""
    query = select(model).where(model.id == obj_id, *visible(model, user))
    if lock:
        query = query.with_for_update()
    found = session.exec(query).first()
    if found is None:
        raise NotFound(f"{what} not found")
    require(session, user, found, level, what)
    return found


def username_of(session: Session, user_id: int) -> str:
    """The owner's username ("?" if the user row is gone)."""
    user = session.get(User, user_id)
    return user.username if user else "?"


def commit_or_conflict(session: Session, what: str) -> None:
    """Commit; a unique-constraint race becomes the same 409 (``what``) the pre-check gives."""
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(what) from None
