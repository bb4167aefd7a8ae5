"""Scratch PostgreSQL databases for the tests: created on the ``postgres`` database under a
unique name, dropped (with any connection still open) when the block ends."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

PG_ADMIN_DSN = os.environ.get(
    "AF_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
PG_URL_BASE = os.environ.get("AF_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")


@contextmanager
def scratch_database(prefix: str, *, migrate: bool = False) -> Iterator[str]:
    """A new database ``<prefix>_<random>``; yields its SQLAlchemy URL (migrated to the app's
    schema with ``migrate``)."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG_URL_BASE}/{name}"
    try:
        if migrate:
            from api.db import make_engine, run_migrations

            engine = make_engine(url)
            run_migrations(engine)
            engine.dispose()
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
