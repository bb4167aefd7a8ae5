"""Users: log-in, creation, listing and the bootstrap admin."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from api.errors import Conflict, Unauthorized
from api.models.common import Page
from api.models.user import Role, TokenResponse, User, UserCreate, UserPublic
from api.security import DUMMY_HASH, create_access_token, hash_password, verify_password
from api.services import audit
from api.settings import ApiSettings

ADMIN_USERNAME = "admin"


def public(user: User) -> UserPublic:
    """The user as the API shows it."""
    return UserPublic(id=user.id or 0, username=user.username, role=Role(user.role))


def login(session: Session, settings: ApiSettings, username: str, password: str) -> TokenResponse:
    """A token for valid credentials; the same 401 (and the same work) for any failure."""
    user = session.exec(select(User).where(User.username == username)).first()
    valid = verify_password(password, user.password_hash if user else DUMMY_HASH)
    if user is None or not valid or not user.is_active:
        audit.record(session, user, "auth.login_failed", "user", username=username[:64])
        session.commit()
        raise Unauthorized("Incorrect username or password")
    token = create_access_token(
        user.id or 0, settings.signing_key, timedelta(minutes=settings.token_ttl_minutes)
    )
    audit.record(session, user, "auth.login", "user", user.id)
    session.commit()
    return TokenResponse(access_token=token, user=public(user))


def create_user(session: Session, actor: User | None, data: UserCreate) -> User:
    """A new user (409 when the username is taken)."""
    if session.exec(select(User).where(User.username == data.username)).first():
        raise Conflict(f"username {data.username!r} is taken")
    user = User(username=data.username, role=data.role, password_hash=hash_password(data.password))
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"username {data.username!r} is taken") from None
    audit.record(session, actor, "user.create", "user", user.id, role=str(data.role))
    session.commit()
    return user


def list_users(session: Session, *, offset: int, limit: int) -> Page[UserPublic]:
    """All users, oldest first."""
    rows = session.exec(select(User).order_by(User.id).offset(offset).limit(limit)).all()
    total = session.exec(select(func.count()).select_from(User)).one()
    return Page(items=[public(u) for u in rows], total=total)


def ensure_admin(session: Session, settings: ApiSettings) -> str | None:
    """Create the ``admin`` user on first start.

    The password is ``ALPHAFORGE_ADMIN_PASSWORD`` when set, else generated. Returns the
    generated password (for the caller to print once), or None when nothing was generated.
    """
    if session.exec(select(User).where(User.username == ADMIN_USERNAME)).first():
        return None
    given = settings.admin_password.get_secret_value() if settings.admin_password else None
    password = given or secrets.token_urlsafe(18)
    create_user(
        session,
        None,
        UserCreate(username=ADMIN_USERNAME, password=password, role=Role.ADMIN),
    )
    return None if given else password
