"""Who sees what: the one visibility rule for owned, soft-deletable objects (and the small
helpers every owned-object service uses: owner names, commit-or-409).

Owners see their own live objects; admins and observers see every live one. Someone else's
object is indistinguishable from a missing one (NotFound), so ids leak nothing.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.errors import Conflict, NotFound
from api.models.user import Role, User

__all__ = ["commit_or_conflict", "get_owned", "sees_all", "username_of", "visible"]


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
