"""A run or sweep page does not hang on a stalled Prefect server: it shows the stored state
within READ_SYNC_S (the status loop catches up). The stand-in Prefect accepts connections and
reads the requests but never answers — what a Prefect server blocked on its SQLite database's
lock does under load (Prefect's client would wait a minute and retry five times)."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prefect.settings import (
    PREFECT_API_REQUEST_TIMEOUT,
    PREFECT_CLIENT_MAX_RETRIES,
    temporary_settings,
)
from sqlmodel import Session

from api.main import create_app
from api.models.run import Run
from api.models.sweep import Sweep
from api.services import prefect_sync, sweep_sync
from api.services.prefect_client import READ_SYNC_S, within
from api.settings import ApiSettings
from tests.api.conftest import Account, settings_for
from tests.api.sweep_dirs import SAMPLE as SAMPLE_SOURCE


@pytest.fixture
def stalled_prefect() -> Iterator[str]:
    """The URL of a server that never answers; how many connections it got is in .hits."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)  # read nothing back, answer nothing

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/api"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


@pytest.fixture
def api_settings(db_url: str, tmp_path: Path, stalled_prefect: str) -> ApiSettings:
    return settings_for(db_url, tmp_path, prefect_api_url=stalled_prefect)


READ_BOUND_S = 1.0  # the pages' bound here (READ_SYNC_S in production)


@pytest.fixture
def client(api_settings: ApiSettings, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app, its Prefect clients giving up after 4 s without retries (its status loop's
    pass would otherwise hold the app's stop for minutes: a minute per try, six tries), its
    pages waiting READ_BOUND_S for Prefect."""
    monkeypatch.setattr(prefect_sync, "READ_SYNC_S", READ_BOUND_S)
    monkeypatch.setattr(sweep_sync, "READ_SYNC_S", READ_BOUND_S)
    with (
        temporary_settings(
            updates={PREFECT_API_REQUEST_TIMEOUT: 4.0, PREFECT_CLIENT_MAX_RETRIES: 0}
        ),
        TestClient(create_app(api_settings)) as test_client,
    ):
        yield test_client


def test_run_and_sweep_pages_show_the_stored_state_when_prefect_stalls(
    client: TestClient, alice: Account
) -> None:
    made = client.post("/api/pipelines", json={"name": "stalled", "source": SAMPLE_SOURCE},
                       headers=alice.headers)  # fmt: skip
    assert made.status_code == 201, made.text
    pid = made.json()["id"]
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        run = Run(pipeline_id=pid, version=1, owner_id=alice.id, run_key="r-stalled",
                  ir_hash="h", status="running", prefect_flow_run_id=str(uuid.uuid4()))  # fmt: skip
        sweep = Sweep(sweep_key="s-stalled", pipeline_id=pid, version=1, owner_id=alice.id,
                      started_by_id=alice.id, status="running", method="grid",
                      objective="maximize result.sharpe", walkforward=False, ir_hash="0" * 64,
                      prefect_flow_run_id=str(uuid.uuid4()))  # fmt: skip
        session.add(run)
        session.add(sweep)
        session.commit()
        run_id, sweep_id = run.id, sweep.id

    for path in (f"/api/runs/{run_id}", f"/api/sweeps/{sweep_id}"):
        t0 = time.monotonic()
        resp = client.get(path, headers=alice.headers)
        took = time.monotonic() - t0
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "running"  # the stored state, not a guess
        # it waited for Prefect (the read was tried), then gave up at the bound
        assert READ_BOUND_S - 0.2 <= took < 3.5, (path, took)  # before Prefect's own 4 s


def test_the_production_bound_is_a_few_seconds() -> None:
    assert 2.0 <= READ_SYNC_S <= 10.0


def test_within_hands_back_the_answer_the_error_or_a_timeout() -> None:
    assert within(1.0, lambda: 42) == 42
    with pytest.raises(ValueError, match="bad"):
        within(1.0, lambda: (_ for _ in ()).throw(ValueError("bad")))
    gate = threading.Event()
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        within(0.3, gate.wait)
    assert time.monotonic() - t0 < 2
    gate.set()
