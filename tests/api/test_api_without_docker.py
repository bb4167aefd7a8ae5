"""The API process needs no Docker: with none in reach, custom-node test runs, look-ahead checks
on save and cancelling a running custom-node pipeline all still work, through the worker.

The API runs as its own process (``tests/api/nodocker_api.py``) with ``DOCKER_HOST`` pointing
nowhere and every Docker client construction refused and recorded; the session's Prefect stack
(server + process worker) has Docker, and so does this test process, which watches the sandbox
containers the worker starts.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from deployments.stack import free_port
from flows.customnodes import kill_run_containers
from flows.nodelab import load_sample
from tests.api.conftest import SECRET
from tests.api.custom_node_helpers import PEEK_CODE, manifest
from tests.api.nodocker_api import ATTEMPTS_ENV
from tests.deployments.fixtures import STACK_GROUP, Stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.xdist_group(STACK_GROUP)]

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "no-docker-admin-password"
NAPPER_CODE = """\
import time

def run(inputs, params):
    x = inputs["x"]
    if len(x) > 400:  # the whole sample in a pipeline; the look-ahead check's 400 bars pass
        time.sleep(600)
    return {"y": x}
"""
NAPPING = """pipeline napping "Naps in the sandbox"

use napper@1

data = csv_ohlcv(path="data/sample_ohlcv.csv")
nap  = napper(data.close)
"""


@dataclass
class Api:
    """The API process: its base URL, the admin's headers, the Docker-attempts record."""

    base: str
    headers: dict[str, str]
    attempts: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, self.base + path, headers=self.headers, timeout=300, **kw)


@pytest.fixture
def api_without_docker(db_url: str, tmp_path: Path, prefect_stack: Stack) -> Iterator[Api]:
    """The API in a subprocess with no Docker in reach, on the session's Prefect stack."""
    port = free_port()
    attempts = tmp_path / "docker-attempts.txt"
    env = {
        **os.environ,
        "ALPHAFORGE_DATA_DIR": str(tmp_path / "data"),
        "ALPHAFORGE_DATABASE_URL": db_url,
        "ALPHAFORGE_SECRET_KEY": SECRET,
        "ALPHAFORGE_ADMIN_PASSWORD": PASSWORD,
        "ALPHAFORGE_UI_DIST_DIR": str(tmp_path / "no-ui"),
        "ALPHAFORGE_PREFECT_API_URL": prefect_stack.api_url,
        "PREFECT_API_URL": prefect_stack.api_url,
        "PREFECT_HOME": str(tmp_path / "api-prefect-home"),
        "DOCKER_HOST": f"unix:///nonexistent-{uuid.uuid4().hex}.sock",
        ATTEMPTS_ENV: str(attempts),
    }
    env.pop("ALPHAFORGE_ALLOW_PROCESS_RUNNER", None)
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.api.nodocker_api", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"the API exited early:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{base}/api/health", timeout=2).status_code == 200
            return False

        wait_for(healthy, 120, what="the API to answer")
        login = httpx.post(
            f"{base}/api/auth/login", json={"username": "admin", "password": PASSWORD}, timeout=60
        )
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        yield Api(base, headers, attempts, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run_containers(engine: Any, run_key: str) -> list[Any]:
    return engine.api.containers(all=True, filters={"label": f"alphaforge.run_id={run_key}"})


def test_test_runs_checks_and_cancels_work_through_the_worker(
    api_without_docker: Api, db_url: str
) -> None:
    api = api_without_docker
    # the API process really has no Docker: its own client cannot be built
    # (asserted at the end: nothing in the API even tried)

    # look-ahead checks on save run on the worker: an honest node passes, a peeking one fails
    created = api.call("POST", "/api/custom-nodes", json=manifest())
    assert created.status_code == 201, created.text
    verdict = created.json()["version"]["lookahead"]
    assert verdict["status"] == "pass", verdict
    assert verdict["checked_rows"] == 400 and verdict["prefix_rows"] == max(
        verdict["prefix_lengths"]
    )
    assert isinstance(verdict["seed"], int)
    peek = api.call("POST", "/api/custom-nodes", json=manifest(name="peek", code=PEEK_CODE))
    assert peek.status_code == 201, peek.text
    peeked = peek.json()["version"]["lookahead"]
    first = peeked["first_difference"]
    n = peeked["prefix_rows"]  # the shortest prefix: its last row saw the next bar
    assert peeked["status"] == "fail" and n == peeked["prefix_lengths"][0]
    assert first["port"] == "ema" and first["row"] == n - 1
    close = load_sample()["close"].iloc[-400:]
    assert first["whole"] == pytest.approx(close.iloc[n])  # the peeking EMA's row n-1 = x[n]
    saved = api.call(
        "PUT",
        f"/api/custom-nodes/{created.json()['id']}",
        json=manifest(code=PEEK_CODE.replace("-1", "-2")),
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["version"]["version"] == "1.0.1"
    again = saved.json()["version"]["lookahead"]  # reads two bars ahead: row n-2 saw the future
    assert again["first_difference"]["row"] == again["prefix_lengths"][0] - 2

    # a test run on the worker's sample: the numbers are pandas' EMA over the same bars
    body = {"manifest": manifest(), "params": {"span": 3}, "rows": 50}
    resp = api.call("POST", "/api/custom-nodes/test-run", json=body)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["status"] == "completed", out["error"]
    want = load_sample()["close"].iloc[-50:].ewm(span=3, adjust=False).mean()
    ema = out["outputs"]["ema"]
    assert ema["rows"] == 50 and out["inputs"]["x"]["rows"] == 50
    assert ema["head"][0] == [want.index[0].isoformat(), pytest.approx(want.iloc[0], rel=1e-12)]
    assert ema["tail"][-1][1] == pytest.approx(want.iloc[-1], rel=1e-12)
    assert pd.Timestamp(ema["tail"][-1][0]) == want.index[-1]

    # a running custom-node pipeline, cancelled through Prefect only: the worker kills its
    # container
    napper = manifest(
        name="napper",
        code=NAPPER_CODE,
        outputs=[{"name": "y", "type": "series"}],
        params_schema={"type": "object", "properties": {}},
        resources={"wall_s": 300},
    )
    node = api.call("POST", "/api/custom-nodes", json=napper)
    assert node.status_code == 201, node.text
    assert node.json()["version"]["lookahead"]["status"] == "pass"
    pipeline = api.call("POST", "/api/pipelines", json={"name": "napping", "source": NAPPING})
    assert pipeline.status_code == 201, pipeline.text
    started = api.call("POST", f"/api/pipelines/{pipeline.json()['id']}/runs", json={})
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    engine = create_engine(db_url)
    with engine.connect() as conn:
        run_key = conn.execute(text("SELECT run_key FROM runs WHERE id = :i"), {"i": run_id})
        run_key = run_key.scalar_one()
    engine.dispose()
    docker_engine = docker.from_env(version="auto")
    try:
        wait_for(
            lambda: any(c["State"] == "running" for c in _run_containers(docker_engine, run_key)),
            180,
            what="the napping node's container",
        )
        cancelled = api.call("POST", f"/api/runs/{run_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        wait_for(
            lambda: not _run_containers(docker_engine, run_key),
            60,
            what="the worker to kill the run's container",
        )

        def final() -> dict[str, Any] | None:
            run = api.call("GET", f"/api/runs/{run_id}").json()
            return run if run["status"] in ("completed", "failed", "cancelled") else None

        run = wait_for(final, 90, what="the run to end")
        assert run["status"] == "cancelled", run
    finally:
        kill_run_containers(run_key)

    assert api.proc.poll() is None, api.log.read_text()[-3000:]
    assert not api.attempts.exists(), api.attempts.read_text()
