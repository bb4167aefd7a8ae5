"""The app shell: health, config, security headers, body limits, CORS, the SPA, OpenAPI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.middleware import CONTENT_SECURITY_POLICY
from api.settings import ApiSettings
from tests.api.conftest import Account


@pytest.mark.sqlite_too
def test_health_needs_no_auth(client: TestClient) -> None:
    r = client.get("/api/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.json()["version"]


def test_api_responses_carry_security_headers(client: TestClient) -> None:
    r = client.get("/api/health")
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "worker-src 'self' blob:" in CONTENT_SECURITY_POLICY
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in r.headers


def test_config_links_need_auth(client: TestClient, alice: Account) -> None:
    assert client.get("/api/config").status_code == 401
    r = client.get("/api/config", headers=alice.headers)
    assert r.json() == {"mlflow_ui_url": None, "prefect_ui_url": None}


def test_config_derives_the_prefect_ui_from_its_api_url(api_settings: ApiSettings) -> None:
    settings = api_settings.model_copy(
        update={"prefect_api_url": "http://prefect:4200/api", "mlflow_ui_url": "http://ml:5000"}
    )
    assert settings.derived_prefect_ui_url == "http://prefect:4200"


def test_oversized_body_is_refused_before_parsing(client: TestClient, alice: Account) -> None:
    body = b'{"source": "' + b"x" * (70 * 1024) + b'"}'
    r = client.post(
        "/api/validate",
        content=body,
        headers={**alice.headers, "content-type": "application/json"},
    )
    assert r.status_code == 413
    assert "limit" in r.json()["detail"]


def test_oversized_chunked_body_is_refused(client: TestClient, alice: Account) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"source": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}'

    r = client.post(
        "/api/validate",
        content=chunks(),
        headers={**alice.headers, "content-type": "application/json"},
    )
    assert r.status_code == 413


def test_cors_is_off_by_default(client: TestClient) -> None:
    r = client.options(
        "/api/health",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in r.headers


def test_cors_allows_only_configured_origins(api_settings: ApiSettings) -> None:
    settings = api_settings.model_copy(update={"cors_origins": ["http://localhost:5173"]})
    with TestClient(create_app(settings)) as client:
        ok = client.get("/api/health", headers={"Origin": "http://localhost:5173"})
        bad = client.get("/api/health", headers={"Origin": "http://evil.example"})
    assert ok.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "access-control-allow-origin" not in bad.headers


@pytest.fixture
def ui_client(api_settings: ApiSettings, tmp_path: Path) -> Iterator[TestClient]:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><div id=app></div>")
    (dist / "assets" / "app-1234.js").write_text("console.log('hi')")
    (tmp_path / "secret.txt").write_text("do not serve")
    settings = api_settings.model_copy(update={"ui_dist_dir": dist})
    with TestClient(create_app(settings)) as client:
        yield client


def test_ui_is_served_with_spa_fallback(ui_client: TestClient) -> None:
    root = ui_client.get("/")
    deep = ui_client.get("/pipelines/42/edit")
    asset = ui_client.get("/assets/app-1234.js")
    assert root.status_code == deep.status_code == asset.status_code == 200
    assert "id=app" in root.text and deep.text == root.text
    assert asset.text == "console.log('hi')"
    assert "immutable" in asset.headers["cache-control"]
    assert root.headers["cache-control"] == "no-cache"
    assert root.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_ui_fallback_never_hides_api_404s_or_leaves_the_folder(ui_client: TestClient) -> None:
    r = ui_client.get("/api/no-such-route")
    assert r.status_code == 404
    assert r.json() == {"detail": "Not Found"}
    escaped = ui_client.get("/assets/..%2F..%2Fsecret.txt")
    assert "do not serve" not in escaped.text


def test_no_ui_folder_means_no_ui_route(client: TestClient) -> None:
    assert client.get("/").status_code == 404


def test_openapi_types_every_route(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    assert spec["paths"]
    for path, operations in spec["paths"].items():
        assert path.startswith("/api/"), path
        for method, op in operations.items():
            ok = {code: r for code, r in op["responses"].items() if code.startswith("2")}
            assert ok, f"{method} {path} has no success response"
            for code, response in ok.items():
                if code == "204":
                    continue
                content = response.get("content") or {}
                assert content, f"{method} {path}: declare the response's media type"
                if "application/json" in content:
                    schema = content["application/json"].get("schema")
                    assert schema, f"{method} {path} has an untyped JSON response"


def test_nul_characters_are_refused_at_the_door(
    client: TestClient, alice: Account, admin: Account
) -> None:
    """PostgreSQL text cannot hold NUL: each input that reaches the database is checked first."""
    from tests.api.sources import SMA

    login = {"username": "a\x00b", "password": "whatever-pw"}
    assert client.post("/api/auth/login", json=login).status_code == 422
    h = alice.headers
    bad_source = {"name": "n", "source": "# \x00\n" + SMA}
    assert client.post("/api/pipelines", json=bad_source, headers=h).status_code == 422
    bad_message = {"name": "m", "source": SMA, "message": "a\x00"}
    assert client.post("/api/pipelines", json=bad_message, headers=h).status_code == 422
    pid = client.post("/api/pipelines", json={"name": "ok", "source": SMA}, headers=h).json()["id"]
    put = client.put(f"/api/pipelines/{pid}", json={"source": SMA + "#\x00"}, headers=h)
    assert put.status_code == 422
    assert client.get("/api/audit?action=a%00b", headers=admin.headers).status_code == 422
    assert client.get("/api/shared/abc%00def").status_code == 422
    assert client.delete("/api/shares/abc%00def", headers=h).status_code == 422
    assert client.get("/api/shared/abc").status_code == 404  # short but well-formed: unknown
