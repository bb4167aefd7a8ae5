"""Who sees what: the one visibility rule for owned, soft-deletable objects.

Owners see their own live objects; admins and observers see every live one. Someone else's
object is indistinguishable from a missing one (NotFound), so ids leak nothing.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from sqlmodel import Session, col, select

from api.errors import NotFound
from api.models.user import Role, User

__all__ = ["get_owned", "sees_all", "visible"]


class Owned(Protocol):
    """A table with an id, an owner and a soft-delete time."""

    id: Any
    owner_id: Any
    deleted_at: Any


T = TypeVar("T", bound=Owned)


def sees_all(user: User) -> bool:
    """Admins and observers read every object."""
    return user.role in (Role.ADMIN, Role.OBSERVER)


def visible(model: type[Owned], user: User) -> list[Any]:
    """WHERE clauses: live objects of ``model`` that ``user`` may see."""
    where: list[Any] = [col(model.deleted_at).is_(None)]
    if not sees_all(user):
        where.append(model.owner_id == user.id)
    return where


def get_owned(
    session: Session, user: User, model: type[T], obj_id: int, what: str, *, lock: bool = False
) -> T:
    """The live ``model`` row ``obj_id`` if ``user`` may see it, else ``NotFound("<what> not
    found")``; ``lock`` takes a row lock (SELECT … FOR UPDATE) for a read-modify-write."""
    query = select(model).where(model.id == obj_id, *visible(model, user))
    if lock:
        query = query.with_for_update()
    found = session.exec(query).first()
    if found is None:
        raise NotFound(f"{what} not found")
    return found
