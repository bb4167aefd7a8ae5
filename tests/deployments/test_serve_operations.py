"""``alphaforge serve`` as operators run it: on an external Prefect server
(ALPHAFORGE_PREFECT_API_URL: no embedded one started), JSON logs (ALPHAFORGE_LOG_FORMAT=json)
from the API, the worker and the engine, the request id on the way in and out, and a graceful stop —
a slow request in flight when SIGTERM arrives still completes with 200, then the process exits 0
with its children gone and the engine's instances unloaded.

The slow request is a real ``GET /readyz`` whose MLflow check waits on a tracking server (a
small HTTP server here) that answers its ``/health`` after :data:`SLOW_S` seconds.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deployments.fixtures import pid_alive, remove_automations, wait_for
from tests.serve_process import children, serve

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("serve")]

PASSWORD = "serve-ops-password"
SLOW_S = 3.0


@pytest.fixture
def slow_mlflow() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                time.sleep(SLOW_S)
            body = b"OK" if self.path == "/health" else b"{}"
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def _automations_removed(api_url: str) -> Iterator[None]:
    """serve registers the automations on the shared server: gone after the test."""
    try:
        yield
    finally:
        remove_automations(api_url)


def _json_lines(text: str) -> list[dict[str, Any]]:
    """Every line that is a log object (serve also prints its banner as plain text)."""
    lines = [line for line in text.splitlines() if line.startswith("{")]
    return [json.loads(line) for line in lines]  # a malformed object fails the test here


def test_serve_logs_json_and_finishes_a_request_in_flight_on_sigterm(
    tmp_path: Path, slow_mlflow: str, prefect_server: Any
) -> None:
    env = {
        "ALPHAFORGE_PREFECT_API_URL": prefect_server.api_url,
        "ALPHAFORGE_LOG_FORMAT": "json",
        "ALPHAFORGE_MLFLOW_TRACKING_URI": slow_mlflow,
        "ALPHAFORGE_READY_TIMEOUT_S": str(SLOW_S + 5),
        "ALPHAFORGE_GRACEFUL_STOP_S": "20",
    }
    with _automations_removed(prefect_server.api_url), serve(tmp_path, PASSWORD, env=env) as served:
        tagged = httpx.get(
            f"{served.base}/healthz", headers={"X-Request-ID": "ops-test-1"}, timeout=60
        )
        assert tagged.status_code == 200
        assert tagged.headers["x-request-id"] == "ops-test-1"

        answers: list[httpx.Response] = []
        slow = threading.Thread(
            target=lambda: answers.append(httpx.get(f"{served.base}/readyz", timeout=60))
        )
        descendants = children(served.proc.pid)
        started = time.monotonic()
        slow.start()
        time.sleep(1.0)  # the request is in flight, waiting on the MLflow check
        served.proc.send_signal(signal.SIGTERM)
        slow.join(60)
        assert served.proc.wait(timeout=90) == 0
        [answer] = answers
        assert answer.status_code == 200, answer.text
        assert time.monotonic() - started >= SLOW_S  # it really was in flight
        assert answer.json()["checks"]["mlflow"]["status"] == "ok"
        assert answer.json()["checks"]["prefect"]["status"] == "ok"
        wait_for(lambda: not any(pid_alive(p) for p in descendants), 30, what="children to exit")

        api_lines = _json_lines(served.output())
        for line in api_lines:
            assert {"ts", "level", "logger", "message"} <= set(line), line
        tagged_lines = [line for line in api_lines if line.get("request_id") == "ops-test-1"]
        assert any(line["logger"] == "uvicorn.access" for line in tagged_lines), api_lines[-20:]
        assert any("/readyz" in line["message"] for line in api_lines)

        printed = served.output()
        assert "starting the Prefect server" not in printed  # the external one is used
        assert f"Prefect API:   {prefect_server.api_url}" in printed
        pool = httpx.get(f"{prefect_server.api_url}/work_pools/alphaforge", timeout=10)
        assert pool.status_code == 200  # serve registered its pool on the external server
        assert not any(pid_alive(p) for p in descendants)

        logs = tmp_path / "data" / "logs"
        # the worker logs through loggers only when it has runs (its banner is a print): every
        # log object it wrote parses; flow-run processes: tests/flows/test_json_logs.py
        _json_lines((logs / "worker.log").read_text())
        engine = _json_lines((logs / "engine.log").read_text())
        assert any(line["logger"] == "live.engine" and line.get("engine_id") for line in engine)
        assert any("stopped" in line["message"] for line in engine)  # unloaded on SIGTERM
