"""Shared fixtures: a real Prefect server for the session, a fresh data dir per test.

The server is a ``prefect server start`` subprocess on a free port with its own PREFECT_HOME
(telemetry off), one per pytest-xdist worker, so tests never use Prefect's ephemeral server
(slow first start, "database is locked", tracebacks at exit). MLflow gets a real SQLite store in
each test's data dir (the settings' default).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PREFECT_BIN = Path(sys.executable).with_name("prefect")
SERVER_START_TIMEOUT_S = 90

os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
for _var in (
    "ALPHAFORGE_DATA_DIR",
    "ALPHAFORGE_PREFECT_API_URL",
    "ALPHAFORGE_MLFLOW_TRACKING_URI",
    "ALPHAFORGE_ARTIFACT_STORE_URL",
):
    os.environ.pop(_var, None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"prefect server not healthy after {SERVER_START_TIMEOUT_S}s")


def _drain_prefect_clients() -> None:
    """Send buffered logs and events before the server goes (else exit hangs on retries)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=15)
    EventsWorker.drain_all(timeout=15)


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prefect server for this worker; PREFECT_API_URL points at it. Yields the API URL."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    log = home / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(PREFECT_BIN),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-ui",
                "--no-scheduler",
                "--no-late-runs",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=home,
        )
    url = f"http://127.0.0.1:{port}/api"
    try:
        _wait_healthy(url, proc, log)
        client_home = tmp_path_factory.mktemp("prefect-client")
        os.environ["PREFECT_API_URL"] = url
        os.environ["PREFECT_HOME"] = str(client_home)
        from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: url, PREFECT_HOME: client_home}):
            yield url
            _drain_prefect_clients()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Core settings with a fresh data dir (artifacts, runs, MLflow SQLite) for one test."""
    from flows.settings import CoreSettings

    return CoreSettings(data_dir=tmp_path / "data")


@pytest.fixture
def test_nodes() -> Iterator[None]:
    """The ``t_*`` test node types, in the default registry for the duration of one test."""
    from tests.flows.testnodes import install, uninstall

    install()
    try:
        yield
    finally:
        uninstall()
