"""Settings refuse unsafe defaults; the admin bootstrap; the uvicorn server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.main import create_app
from api.server import ensure_admin
from api.settings import ApiSettings

ROOT = Path(__file__).resolve().parents[2]


def test_production_requires_a_strong_secret_key(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        ApiSettings(env="production", data_dir=tmp_path)
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        ApiSettings(env="production", data_dir=tmp_path, secret_key="short")
    ok = ApiSettings(env="production", data_dir=tmp_path, secret_key="k" * 40)
    assert ok.signing_key == "k" * 40
    assert not (tmp_path / "secret_key").exists()


def test_production_is_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALPHAFORGE_ENV", "production")
    monkeypatch.setenv("ALPHAFORGE_DATA_DIR", str(tmp_path))
    with pytest.raises(ValidationError):
        ApiSettings()


def test_development_key_is_generated_once_and_private(tmp_path: Path) -> None:
    first = ApiSettings(data_dir=tmp_path).signing_key
    key_file = tmp_path / "secret_key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(first) >= 32
    assert ApiSettings(data_dir=tmp_path).signing_key == first


def test_development_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    ApiSettings(data_dir=tmp_path).signing_key  # noqa: B018
    os.chmod(tmp_path / "secret_key", 0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        ApiSettings(data_dir=tmp_path).signing_key  # noqa: B018


def test_default_database_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = ApiSettings(data_dir=tmp_path)
    assert settings.db_url == f"sqlite:///{tmp_path.resolve() / 'alphaforge.db'}"
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/health").status_code == 200
    assert (tmp_path / "alphaforge.db").exists()


def test_ensure_admin_generates_a_password_once(tmp_path: Path) -> None:
    settings = ApiSettings(data_dir=tmp_path)
    password = ensure_admin(settings)
    assert password and len(password) >= 16
    assert ensure_admin(settings) is None
    with TestClient(create_app(settings)) as client:
        r = client.post("/api/auth/login", json={"username": "admin", "password": password})
        assert r.status_code == 200
        user = r.json()["user"]
        assert user["role"] == "admin" and user["must_change_password"] is True
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        refused = client.get("/api/pipelines", headers=auth)
        assert refused.status_code == 403
        assert "choose a new password" in refused.json()["detail"]


def test_ensure_admin_uses_the_configured_password(tmp_path: Path) -> None:
    settings = ApiSettings(data_dir=tmp_path, admin_password="configured-pw-123")
    assert ensure_admin(settings) is None
    with TestClient(create_app(settings)) as client:
        body = {"username": "admin", "password": "configured-pw-123"}
        r = client.post("/api/auth/login", json=body)
        assert r.status_code == 200
        assert r.json()["user"]["must_change_password"] is False  # the operator chose it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_runs_the_app_with_uvicorn(tmp_path: Path) -> None:
    port = _free_port()
    code = (
        "from api.server import serve; from api.settings import ApiSettings; "
        f"serve('127.0.0.1', {port}, ApiSettings(data_dir={str(tmp_path)!r}))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHAFORGE_")}
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health") as r:
                    assert r.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.1)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0].decode()
    assert "Created user 'admin' with password:" in output
