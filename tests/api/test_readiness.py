"""``/healthz`` and ``/readyz`` against real services: a throwaway PostgreSQL cluster stopped
mid-test (readiness fails closed, 503 naming the database, nothing written; liveness stays
200; ready again once it is back), the session's Prefect server, and dead Prefect / MLflow
URLs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, inspect, text

from api.db import make_engine, run_migrations
from api.main import create_app
from api.settings import ApiSettings
from deployments.stack import free_port
from tests.pgcluster import Cluster, start_cluster


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    pg = start_cluster()
    try:
        yield pg
    finally:
        pg.remove()


def _row_counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            names = inspect(conn).get_table_names()
            count = 'SELECT count(*) FROM "{}"'
            return {t: conn.execute(text(count.format(t))).scalar_one() for t in names}
    finally:
        engine.dispose()


def _settings(tmp_path: Path, **kw: Any) -> ApiSettings:
    return ApiSettings(data_dir=tmp_path / "data", ui_dist_dir=tmp_path / "no-ui", **kw)


def test_readiness_fails_closed_when_postgresql_stops_and_writes_nothing(
    tmp_path: Path, cluster: Cluster
) -> None:
    engine = make_engine(cluster.url)
    run_migrations(engine)
    engine.dispose()
    app = create_app(_settings(tmp_path, database_url=cluster.url, ready_timeout_s=2.0))
    statements: list[str] = []
    event.listen(
        app.state.engine,
        "before_cursor_execute",
        lambda _c, _cur, sql, *_a: statements.append(sql),
    )
    with TestClient(app) as client:
        before = _row_counts(cluster.url)
        assert sum(before.values()) > 0  # the migration's bookkeeping at least
        statements.clear()
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["status"] == "ready" and body["failed"] == []
        assert body["checks"]["database"]["status"] == "ok"
        assert body["checks"]["database"]["latency_ms"] >= 0
        assert body["checks"]["prefect"]["status"] == "skipped"  # none configured
        assert body["checks"]["mlflow"]["status"] == "skipped"  # embedded SQLite store
        for _ in range(5):
            assert client.get("/readyz").status_code == 200
        assert statements and all(s.strip().upper().startswith("SELECT") for s in statements)
        assert _row_counts(cluster.url) == before

        cluster.stop()
        started = time.monotonic()
        down = client.get("/readyz")
        assert down.status_code == 503, down.text
        assert time.monotonic() - started < 2.0 + 1.5  # bounded by the check's time-out
        assert down.json()["failed"] == ["database"]
        assert down.json()["checks"]["database"]["status"] == "failed"
        assert down.json()["checks"]["database"]["error"]
        assert down.headers["cache-control"] == "no-store"
        assert client.get("/healthz").status_code == 200
        assert client.get("/healthz").json() == {"status": "ok"}

        cluster.start()
        assert client.get("/readyz").status_code == 200  # back: ready again
    assert _row_counts(cluster.url) == before


def test_readiness_checks_the_prefect_server(tmp_path: Path, prefect_server: Any) -> None:
    settings = _settings(tmp_path, prefect_api_url=prefect_server.api_url)
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["prefect"]["status"] == "ok"


def test_readiness_names_dead_prefect_and_mlflow_servers(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    settings = _settings(
        tmp_path, prefect_api_url=f"{dead}/api", mlflow_tracking_uri=dead, ready_timeout_s=1.0
    )
    with TestClient(create_app(settings)) as client:
        answer = client.get("/readyz")
        assert client.get("/healthz").status_code == 200
    assert answer.status_code == 503
    assert sorted(answer.json()["failed"]) == ["mlflow", "prefect"]
    assert answer.json()["checks"]["database"]["status"] == "ok"
    assert "127.0.0.1" not in answer.text  # details go to the log, not to the caller


def test_request_id_is_kept_or_made_and_sent_back(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path))) as client:
        given = client.get("/healthz", headers={"X-Request-ID": "req-42.a:b"})
        made = client.get("/api/health")
        unsafe = client.get("/healthz", headers={"X-Request-ID": "x" * 200})
    assert given.headers["x-request-id"] == "req-42.a:b"
    assert len(made.headers["x-request-id"]) == 32
    assert unsafe.headers["x-request-id"] != "x" * 200
