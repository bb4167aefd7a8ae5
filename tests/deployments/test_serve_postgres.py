"""``alphaforge serve`` with the app on PostgreSQL runs Prefect's server on PostgreSQL too (a
database of its own, ``<app database>_prefect``, created when missing): SQLite under concurrent
runs answers "database is locked" (issue 9, item 8). A run goes through it to Completed."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import psycopg
import pytest

from deployments.stack import prefect_database_url
from tests.api.conftest import PG_ADMIN_DSN, PG_URL_BASE
from tests.deployments.fixtures import wait_for
from tests.serve_process import serve

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("serve")]

PASSWORD = "serve-postgres-password"


def _dbs() -> set[str]:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}


def _drop(*names: str) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_prefect_database_sits_beside_a_postgresql_app_database_only() -> None:
    app = f"af_ops_{secrets.token_hex(4)}"
    try:
        url = prefect_database_url(f"{PG_URL_BASE}/{app}")
        assert url == f"{PG_URL_BASE.replace('+psycopg', '+asyncpg')}/{app}_prefect"
        assert f"{app}_prefect" in _dbs()
        assert prefect_database_url(f"{PG_URL_BASE}/{app}") == url  # exists: reused
    finally:
        _drop(f"{app}_prefect")
    assert prefect_database_url("sqlite:////tmp/x/alphaforge.db") is None
    remote = "postgresql+psycopg://u:s%40cret@db.example:6543/app?sslmode=require"
    assert prefect_database_url(remote, create=False) == (
        "postgresql+asyncpg://u:s%40cret@db.example:6543/app_prefect?ssl=require"
    )


def test_serve_on_postgresql_runs_prefect_on_postgresql_and_completes_a_run(
    tmp_path: Path,
) -> None:
    app = f"af_ops_{secrets.token_hex(4)}"
    prefect_db = f"{app}_prefect"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{app}"')
    assert prefect_db not in _dbs()
    try:
        env = {"ALPHAFORGE_DATABASE_URL": f"{PG_URL_BASE}/{app}"}
        with serve(tmp_path, PASSWORD, env=env) as served:
            assert "starting the Prefect server on PostgreSQL" in served.output()
            base = served.base
            login = httpx.post(
                f"{base}/api/auth/login",
                json={"username": "admin", "password": PASSWORD},
                timeout=60,
            )
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            listed = httpx.get(f"{base}/api/pipelines", headers=headers, timeout=60).json()["items"]
            [sample] = [p for p in listed if p["title"] == "Moving Average Crossover (Sample)"]
            run = httpx.post(
                f"{base}/api/pipelines/{sample['id']}/runs", headers=headers, timeout=60
            ).json()

            def ended() -> dict | None:
                got = httpx.get(f"{base}/api/runs/{run['id']}", headers=headers, timeout=60).json()
                return got if got["status"] in ("completed", "failed", "cancelled") else None

            final = wait_for(ended, 180, what="the run on the PostgreSQL-backed Prefect")
            assert final["status"] == "completed", final["error"]

            # the flow run, its state and name live in Prefect's PostgreSQL database
            dsn = PG_ADMIN_DSN.replace("dbname=postgres", f"dbname={prefect_db}")
            with psycopg.connect(dsn) as conn:
                tables = {
                    r[0]
                    for r in conn.execute(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                    ).fetchall()
                }
                row = conn.execute(
                    "SELECT name, state_type FROM flow_run WHERE id = %s",
                    (final["prefect_flow_run_id"],),
                ).fetchone()
            assert {"flow_run", "deployment", "work_pool", "task_run"} <= tables
            assert row is not None and row[1] == "COMPLETED"
            assert row[0].startswith("moving-average-crossover-sample/")
            # and none in SQLite under the data dir
            assert not list((tmp_path / "data" / "prefect").glob("*.db"))
    finally:
        _drop(app, prefect_db)
