"""Schedules when Prefect fails: a Prefect server that answers with errors is a 502 with what it
said, one that cannot be reached a 503; never a 500, and nothing half-stored."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from api.models.schedule import Schedule
from api.settings import ApiSettings
from deployments.stack import free_port
from tests.api.conftest import Account, settings_for
from tests.api.sources import SMA

BROKEN_DETAIL = "the database is locked"


class _Broken(BaseHTTPRequestHandler):
    """A "Prefect server" that answers every request with a 500 and a detail."""

    def _answer(self) -> None:
        body = json.dumps({"detail": BROKEN_DETAIL}).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def broken_prefect() -> Iterator[str]:
    """The API URL of a Prefect server that fails every request."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(params=["errors", "unreachable"])
def prefect_url(request: pytest.FixtureRequest, broken_prefect: str) -> str:
    """A Prefect server answering with errors, or the URL of one that is not there."""
    return broken_prefect if request.param == "errors" else f"http://127.0.0.1:{free_port()}/api"


@pytest.fixture
def api_settings(db_url: str, tmp_path: Path, prefect_url: str) -> ApiSettings:
    """The API tests' settings pointing at a failing Prefect."""
    return settings_for(db_url, tmp_path, prefect_api_url=prefect_url)


def _scheduled_pipeline(client: TestClient, alice: Account) -> tuple[int, int]:
    """A pipeline and a schedule row as if Prefect had taken it earlier."""
    made = client.post("/api/pipelines", json={"name": "p", "source": SMA}, headers=alice.headers)
    pid = int(made.json()["id"])
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        row = Schedule(
            pipeline_id=pid,
            owner_id=alice.id,
            cron="0 6 * * *",
            prefect_deployment_id=str(uuid4()),
            prefect_schedule_id=str(uuid4()),
            deployed_version=1,
        )
        session.add(row)
        session.commit()
        return pid, row.id or 0


def test_prefect_failures_are_502_or_503_with_a_message_never_500(
    client: TestClient, alice: Account, prefect_url: str, broken_prefect: str
) -> None:
    answered = prefect_url == broken_prefect
    status = 502 if answered else 503
    pid, sid = _scheduled_pipeline(client, alice)
    for method, path, body in [
        ("POST", f"/api/pipelines/{pid}/schedules", {"cron": "0 9 * * *"}),
        ("PATCH", f"/api/schedules/{sid}", {"active": False}),
        ("DELETE", f"/api/schedules/{sid}", None),
    ]:
        resp = client.request(method, path, json=body, headers=alice.headers)
        assert resp.status_code == status, (method, path, resp.text)
        detail = resp.json()["detail"]
        assert "Prefect" in detail, detail
        if answered:
            assert "500" in detail and BROKEN_DETAIL in detail, detail
    # nothing changed: no new row, the old one still there and active
    listed = client.get(f"/api/pipelines/{pid}/schedules", headers=alice.headers).json()
    assert [(s["id"], s["active"]) for s in listed] == [(sid, True)]
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        assert len(session.exec(select(Schedule)).all()) == 1
