"""Users: log-in, creation, roles, disabling, passwords and the bootstrap admin.

A password an admin set for someone else (and the admin password ``serve`` generated) is
temporary: the user's ``must_change_password`` is set and :func:`api.deps.get_current_user`
refuses every call but ``/api/auth/me`` and ``/api/auth/password`` until they choose their own.
A disabled user cannot log in and their tokens stop working at once (checked on every call).
There is always at least one active admin: the last one can be neither disabled nor demoted.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from api.errors import Conflict, NotFound, Unauthorized, Unprocessable
from api.models.common import Page
from api.models.team import Team, TeamMember
from api.models.user import (
    PASSWORD_MIN_LENGTH,
    USERNAME_PATTERN,
    Role,
    TokenResponse,
    User,
    UserCreate,
    UserPublic,
    UserUpdate,
)
from api.security import DUMMY_HASH, create_access_token, hash_password, verify_password
from api.services import audit
from api.settings import ApiSettings

ADMIN_USERNAME = "admin"
_USERNAME = re.compile(USERNAME_PATTERN)
_ADMIN_LOCK_ID = 0x41465F55  # "AF_U": role and activity changes, one at a time


def _teams_of(session: Session, user_ids: list[int]) -> dict[int, list[str]]:
    """Each user's team names, sorted (one query)."""
    if not user_ids:
        return {}
    rows = session.exec(
        select(TeamMember.user_id, Team.name)
        .join(Team, col(Team.id) == TeamMember.team_id)
        .where(col(TeamMember.user_id).in_(user_ids))
        .order_by(col(Team.name))
    ).all()
    out: dict[int, list[str]] = {}
    for user_id, name in rows:
        out.setdefault(user_id, []).append(name)
    return out


def public(user: User, teams: list[str] | None = None) -> UserPublic:
    """The user as the API shows it."""
    return UserPublic(
        id=user.id or 0,
        username=user.username,
        role=Role(user.role),
        is_active=user.is_active,
        must_change_password=user.must_change_password,
        teams=teams or [],
    )


def public_with_teams(session: Session, user: User) -> UserPublic:
    """The user with their team names."""
    return public(user, _teams_of(session, [user.id or 0]).get(user.id or 0, []))


def check_password(password: str, *, field: str = "The password") -> None:
    """A 422 that says what to type when ``password`` is too short or blank."""
    if len(password) < PASSWORD_MIN_LENGTH or not password.strip():
        raise Unprocessable(
            f"{field} is too short: type at least {PASSWORD_MIN_LENGTH} characters."
        )


def check_username(username: str) -> None:
    """A 422 that says what to type when ``username`` is not a valid username."""
    if not _USERNAME.match(username):
        raise Unprocessable(
            f"{username[:64]!r} is not a valid username: use 1 to 64 letters, digits, '.', "
            "'_' or '-', starting with a letter or digit (for example jane.doe)."
        )


def login(session: Session, settings: ApiSettings, username: str, password: str) -> TokenResponse:
    """A token for valid credentials; the same 401 (and the same work) for any failure."""
    user = session.exec(select(User).where(User.username == username)).first()
    valid = verify_password(password, user.password_hash if user else DUMMY_HASH)
    if user is None or not valid or not user.is_active:
        audit.record(session, user, "auth.login_failed", "user", username=username[:64])
        session.commit()
        raise Unauthorized("Incorrect username or password")
    audit.record(session, user, "auth.login", "user", user.id)
    session.commit()
    return token_for(session, settings, user)


def token_for(session: Session, settings: ApiSettings, user: User) -> TokenResponse:
    """A fresh bearer token for ``user`` (valid until it expires or their password changes)."""
    token = create_access_token(
        user.id or 0,
        settings.signing_key,
        timedelta(minutes=settings.token_ttl_minutes),
        password_hash=user.password_hash,
    )
    return TokenResponse(access_token=token, user=public_with_teams(session, user))


def create_user(
    session: Session, actor: User | None, data: UserCreate, *, temporary: bool = False
) -> User:
    """A new user (409 when the username is taken, 422 for a bad username or a short
    password); ``temporary``: they must change the password at first log-in."""
    check_username(data.username)
    check_password(data.password)
    taken = f"The username {data.username!r} is taken: choose another one."
    if session.exec(select(User).where(User.username == data.username)).first():
        raise Conflict(taken)
    user = User(
        username=data.username,
        role=data.role,
        password_hash=hash_password(data.password),
        must_change_password=temporary,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(taken) from None
    audit.record(session, actor, "user.create", "user", user.id, role=str(data.role))
    session.commit()
    return user


def list_users(session: Session, *, offset: int, limit: int) -> Page[UserPublic]:
    """All users, oldest first, with their teams."""
    rows = session.exec(select(User).order_by(col(User.id)).offset(offset).limit(limit)).all()
    total = session.exec(select(func.count()).select_from(User)).one()
    teams = _teams_of(session, [u.id or 0 for u in rows])
    return Page(items=[public(u, teams.get(u.id or 0, [])) for u in rows], total=total)


def get_user(session: Session, user_id: int, *, lock: bool = False) -> User:
    """The user ``user_id`` (404 if there is none)."""
    query = select(User).where(User.id == user_id)
    if lock:
        query = query.with_for_update()
    user = session.exec(query).first()
    if user is None:
        raise NotFound("user not found")
    return user


def _other_active_admins(session: Session, user: User) -> int:
    return session.exec(
        select(func.count())
        .select_from(User)
        .where(User.role == Role.ADMIN.value, col(User.is_active), User.id != user.id)
    ).one()


def update_user(session: Session, actor: User, user_id: int, data: UserUpdate) -> UserPublic:
    """Change a user's role and/or enable or disable them; 409 when that would leave no
    active admin."""
    if session.get_bind().dialect.name == "postgresql":  # one admin change at a time
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADMIN_LOCK_ID})
    user = get_user(session, user_id, lock=True)
    role = data.role if data.role is not None else Role(user.role)
    active = data.is_active if data.is_active is not None else user.is_active
    losing_admin = user.role == Role.ADMIN and user.is_active and (role != Role.ADMIN or not active)
    if losing_admin and _other_active_admins(session, user) == 0:
        what = "disabled" if not active else "made a " + role.value
        raise Conflict(
            f"{user.username} is the last active admin and cannot be {what}: make another "
            "user an admin first."
        )
    changes: dict[str, str | bool] = {}
    if role != user.role:
        changes["role"] = role.value
    if active != user.is_active:
        changes["is_active"] = active
    user.role, user.is_active = role, active
    session.add(user)
    if changes:
        audit.record(session, actor, "user.update", "user", user.id, **changes)
    session.commit()
    return public_with_teams(session, user)


def reset_password(session: Session, actor: User, user_id: int, password: str) -> UserPublic:
    """An admin sets a temporary password for a user, who must change it at next log-in (an
    admin resetting their own password keeps it: it is theirs)."""
    check_password(password)
    user = get_user(session, user_id, lock=True)
    user.password_hash = hash_password(password)
    user.must_change_password = user.id != actor.id
    session.add(user)
    audit.record(session, actor, "user.reset_password", "user", user.id)
    session.commit()
    return public_with_teams(session, user)


def change_password(
    session: Session, settings: ApiSettings, user: User, current: str, new: str
) -> TokenResponse:
    """The user chooses a new password: the current one must be right (422 otherwise, not
    401: the session stays), the new one long enough and different. Every token issued before
    is refused from now on; the answer carries a new one for this session."""
    if not verify_password(current, user.password_hash):
        audit.record(session, user, "auth.password_change_failed", "user", user.id)
        session.commit()
        raise Unprocessable(
            "The current password is not correct: type the password you logged in with."
        )
    check_password(new, field="The new password")
    if new == current:
        raise Unprocessable(
            "The new password is the same as the current one: choose a different password."
        )
    user.password_hash = hash_password(new)
    user.must_change_password = False
    session.add(user)
    audit.record(session, user, "auth.password_change", "user", user.id)
    session.commit()
    return token_for(session, settings, user)


def ensure_admin(session: Session, settings: ApiSettings) -> str | None:
    """Create the ``admin`` user on first start.

    The password is ``ALPHAFORGE_ADMIN_PASSWORD`` when set, else generated — and then it must
    be changed at first log-in. Returns the generated password (for the caller to print
    once), or None when nothing was generated.
    """
    if session.exec(select(User).where(User.username == ADMIN_USERNAME)).first():
        return None
    given = settings.admin_password.get_secret_value() if settings.admin_password else None
    password = given or secrets.token_urlsafe(18)
    create_user(
        session,
        None,
        UserCreate(username=ADMIN_USERNAME, password=password, role=Role.ADMIN),
        temporary=not given,
    )
    return None if given else password
