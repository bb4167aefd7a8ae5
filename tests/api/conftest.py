"""Fixtures of the API tests: a real PostgreSQL database per xdist worker, SQLite on request.

The PostgreSQL database ``af_test_<worker>_<random>`` is created on the ``postgres`` database,
migrated once, emptied before each test and dropped at the end of the session. Tests marked
``sqlite_too`` run a second time against a fresh SQLite file.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text
from sqlmodel import Session

from api.db import make_engine
from api.main import create_app
from api.models.user import Role, UserCreate
from api.security import create_access_token
from api.services.users import create_user
from api.settings import ApiSettings
from tests.pgdb import PG_ADMIN_DSN, PG_URL_BASE, scratch_database  # noqa: F401 (re-exported)

SECRET = "test-secret-" + "k" * 40
TABLES = ("shares", "pipeline_versions", "pipelines", "datasets", "audit_events", "users")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_too: also run the test on the SQLite backend")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        both = metafunc.definition.get_closest_marker("sqlite_too") is not None
        metafunc.parametrize("backend", ["postgresql", "sqlite"] if both else ["postgresql"])


@pytest.fixture(scope="session")
def pg_url(worker_id: str) -> Iterator[str]:
    """A migrated PostgreSQL database of this worker; dropped afterwards."""
    with scratch_database(f"af_test_{worker_id}", migrate=True) as url:
        yield url


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database of the requested backend."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'api.db'}"
    url: str = request.getfixturevalue("pg_url")
    engine = make_engine(url)
    tables = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
    with engine.begin() as conn:  # every table, also those later migrations add
        conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


def settings_for(db_url: str, tmp_path: Path, **overrides: Any) -> ApiSettings:
    """The API settings of one test: its own data dir and database, no UI build, the test
    secret; ``overrides`` for the rest (limits, the Prefect server)."""
    return ApiSettings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        secret_key=SECRET,
        ui_dist_dir=tmp_path / "no-ui",
        **overrides,
    )


@pytest.fixture
def api_settings(db_url: str, tmp_path: Path) -> ApiSettings:
    """Settings of one test: its own data dir and database, small limits."""
    return settings_for(
        db_url,
        tmp_path,
        max_body_bytes=64 * 1024,
        max_upload_bytes=256 * 1024,
        max_dsl_chars=20_000,
    )


@pytest.fixture
def client(api_settings: ApiSettings) -> Iterator[TestClient]:
    """A client of a started app (migrations run at start-up)."""
    with TestClient(create_app(api_settings)) as test_client:
        yield test_client


@dataclass(frozen=True)
class Account:
    """A user the test created, with ready-made auth headers."""

    id: int
    username: str
    password: str
    role: Role
    headers: dict[str, str]


@pytest.fixture
def make_user(client: TestClient) -> Callable[..., Account]:
    """Create a user directly in the database and hand back a bearer token for them."""
    engine = client.app.state.engine  # type: ignore[attr-defined]
    settings: ApiSettings = client.app.state.settings  # type: ignore[attr-defined]
    counter = iter(range(1, 1000))

    def make(role: Role = Role.DEVELOPER, username: str | None = None) -> Account:
        name = username or f"{role.value}{next(counter)}"
        password = "pw-" + secrets.token_hex(8)
        with Session(engine) as session:
            user = create_user(
                session, None, UserCreate(username=name, password=password, role=role)
            )
            user_id = user.id or 0
            pw_hash = user.password_hash
        token = create_access_token(
            user_id, settings.signing_key, _ttl(settings), password_hash=pw_hash
        )
        return Account(user_id, name, password, role, {"Authorization": f"Bearer {token}"})

    return make


def _ttl(settings: ApiSettings):  # type: ignore[no-untyped-def]
    from datetime import timedelta

    return timedelta(minutes=settings.token_ttl_minutes)


@pytest.fixture
def alice(make_user: Callable[..., Account]) -> Account:
    """A developer."""
    return make_user(Role.DEVELOPER, "alice")


@pytest.fixture
def bob(make_user: Callable[..., Account]) -> Account:
    """Another developer."""
    return make_user(Role.DEVELOPER, "bob")


@pytest.fixture
def admin(make_user: Callable[..., Account]) -> Account:
    """An admin."""
    return make_user(Role.ADMIN, "root")


@pytest.fixture
def observer(make_user: Callable[..., Account]) -> Account:
    """An observer (read-only)."""
    return make_user(Role.OBSERVER, "olga")
