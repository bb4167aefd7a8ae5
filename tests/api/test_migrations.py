"""The schema exists only through Alembic migrations, identically on PostgreSQL and SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlmodel import SQLModel

import api.models  # noqa: F401
from api.db import alembic_config, make_engine, run_migrations
from tests.api.conftest import TABLES

API_DIR = Path(__file__).resolve().parents[2] / "api"


@pytest.mark.sqlite_too
def test_migrations_produce_exactly_the_models_schema(db_url: str) -> None:
    engine = make_engine(db_url)
    run_migrations(engine)  # SQLite: from nothing; PostgreSQL: already at head, a no-op
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert context.get_current_revision() == head
    assert set(TABLES) <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_migrations_go_down_and_up_again_on_sqlite(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    run_migrations(engine)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    run_migrations(engine)
    assert set(TABLES) <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_the_app_never_creates_tables_outside_migrations() -> None:
    offenders = [
        str(path.relative_to(API_DIR))
        for path in API_DIR.rglob("*.py")
        if "create_all(" in path.read_text()
    ]
    assert offenders == []


@pytest.mark.sqlite_too
def test_database_enforces_unique_live_names_per_owner(db_url: str) -> None:
    from datetime import UTC, datetime

    from sqlalchemy.exc import IntegrityError
    from sqlmodel import Session

    from api.models import Pipeline, User

    engine = make_engine(db_url)
    run_migrations(engine)
    with Session(engine) as session:
        user = User(username="u", password_hash="x", role="developer")
        session.add(user)
        session.flush()
        gone = Pipeline(name="p", owner_id=user.id, deleted_at=datetime.now(UTC))
        session.add_all([gone, Pipeline(name="p", owner_id=user.id)])
        session.commit()  # a deleted pipeline does not hold its name
        session.add(Pipeline(name="p", owner_id=user.id))
        with pytest.raises(IntegrityError):
            session.commit()
    engine.dispose()


def test_concurrent_start_ups_migrate_postgresql_once(worker_id: str) -> None:
    import secrets
    from concurrent.futures import ThreadPoolExecutor

    import psycopg

    from tests.api.conftest import PG_ADMIN_DSN, PG_URL_BASE

    name = f"af_test_{worker_id}_mig_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    engines = [make_engine(f"{PG_URL_BASE}/{name}") for _ in range(3)]
    pool = ThreadPoolExecutor(max_workers=3)
    try:
        futures = [pool.submit(run_migrations, engine) for engine in engines]
        for future in futures:  # a deadlock between start-ups fails here instead of hanging
            future.result(timeout=60)
        with engines[0].connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, SQLModel.metadata) == []
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        pool.shutdown(wait=True)
        for engine in engines:
            engine.dispose()
