"""Fixtures of the live tests: a migrated PostgreSQL database per xdist worker (emptied before
each test) and a user to own instances."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, inspect, text

from api.db import make_engine, run_migrations
from tests.api.conftest import PG_ADMIN_DSN, PG_URL_BASE


@pytest.fixture(scope="session")
def live_db_url(worker_id: str) -> Iterator[str]:
    name = f"af_live_{worker_id}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG_URL_BASE}/{name}"
    engine = make_engine(url)
    run_migrations(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def live_db(live_db_url: str) -> Iterator[Engine]:
    """An empty database with one user (id 1, ``trader``)."""
    engine = make_engine(live_db_url)
    tables = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        conn.execute(
            text(
                "INSERT INTO users (username, password_hash, role, is_active, "
                "must_change_password, created_at) VALUES ('trader', 'x', 'developer', true, "
                "false, now())"
            )
        )
    try:
        yield engine
    finally:
        engine.dispose()
