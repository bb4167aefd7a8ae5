"""Fixtures of the live tests: a migrated PostgreSQL database per xdist worker (emptied before
each test) and a user to own instances."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, inspect, text

from api.db import make_engine
from tests.pgdb import scratch_database


@pytest.fixture(scope="session")
def live_db_url(worker_id: str) -> Iterator[str]:
    """A migrated database of this xdist worker's live tests."""
    with scratch_database(f"af_live_{worker_id}", migrate=True) as url:
        yield url


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
