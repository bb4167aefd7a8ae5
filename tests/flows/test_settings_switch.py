"""The settings that switch an embedded default to a real service, each against that service:
ALPHAFORGE_MLFLOW_TRACKING_URI (an ``mlflow server`` on PostgreSQL with its artifacts on the
S3-compatible server: a run logs there, its files land in the bucket) and
ALPHAFORGE_DATABASE_URL (the app's tables on PostgreSQL, not the SQLite default). The Prefect
server switch is tested with ``serve`` (tests/deployments/test_serve_operations.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from deployments.stack import free_port
from flows.settings import CoreSettings
from tests.flows.support import check_mlflow_record, run_ir
from tests.flows.testnodes import crossover_ir
from tests.pgdb import scratch_database

BIN = Path(sys.executable).parent


@pytest.fixture
def mlflow_server(tmp_path: Path, s3_server: Any) -> Iterator[tuple[str, str]]:
    """``mlflow server`` on a scratch PostgreSQL database, artifacts in a fresh bucket; yields
    (tracking URL, bucket)."""
    bucket = s3_server.new_bucket()
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_S3_ENDPOINT_URL": s3_server.moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # its job consumers: unused, heavy
    }
    with scratch_database("af_mlflow") as db:
        argv = [str(BIN / "mlflow"), "server", "--backend-store-uri", db]
        argv += ["--artifacts-destination", f"s3://{bucket}/mlartifacts"]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        log = tmp_path / "mlflow.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, proc, log)
            yield url, bucket
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"mlflow server not healthy:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api", "test_nodes")
def test_a_run_logs_to_the_mlflow_tracking_server_named_by_the_setting(
    tmp_path: Path, mlflow_server: tuple[str, str], s3_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, bucket = mlflow_server
    monkeypatch.setenv("ALPHAFORGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ALPHAFORGE_MLFLOW_TRACKING_URI", url)
    settings = CoreSettings()
    assert settings.mlflow_uri == url and settings.mlflow_artifact_root is None
    ir = crossover_ir()
    result = run_ir(settings, ir, tmp_path, track=True)
    assert result.status == "completed", result.error
    check_mlflow_record(url, result, ir)
    assert not (tmp_path / "data" / "mlflow.db").exists()  # the embedded store was not used
    listing = httpx.get(
        f"{s3_server.moto_url}/{bucket}", params={"list-type": "2"}, timeout=60
    ).text
    assert f"/{result.mlflow_run_id}/artifacts/equity.parquet" in listing, listing[:2000]


def test_the_database_setting_puts_the_app_on_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.server import ensure_admin
    from api.settings import ApiSettings

    with scratch_database("af_switch") as url:
        monkeypatch.setenv("ALPHAFORGE_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("ALPHAFORGE_DATABASE_URL", url)
        monkeypatch.setenv("ALPHAFORGE_ADMIN_PASSWORD", "switch-password-1")
        settings = ApiSettings(ui_dist_dir=tmp_path / "no-ui")
        assert settings.db_url == url
        ensure_admin(settings)
        with TestClient(create_app(settings)) as client:
            login = client.post(
                "/api/auth/login", json={"username": "admin", "password": "switch-password-1"}
            )
            assert login.status_code == 200
            assert client.get("/readyz").json()["checks"]["database"]["status"] == "ok"
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as conn:
            users = conn.execute("SELECT username FROM users").fetchall()
        assert users == [("admin",)]
        assert not (tmp_path / "data" / "alphaforge.db").exists()
