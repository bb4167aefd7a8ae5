"""The production stack (infra/compose.yaml) brought up for real on this machine and checked as
an operator would, then torn down. This machine reaches no container registry, so
infra/up_offline.sh swaps the three upstream images (postgres, minio, haproxy) for stand-ins
built from host binaries (infra/compose.offline.yaml; the S3 store is moto's server, not MinIO)
and builds the platform image offline; every other line of the compose file is production's.

One bring-up (one worker on a Docker work pool), then: Prefect's API and UI, MLflow's health and
an artifact landing in the S3 store through the tracking server, the API's /readyz, a run
submitted through the API completing in a flow-run container of the platform image on the
stack's network with its MLflow run FINISHED, a custom node's look-ahead check and a run using
it (sandboxed through the proxy), and a second worker added with `--scale` that registers on the
pool. Its own compose project, network, volumes and host ports."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.xdist_group("compose_up")]

ROOT = Path(__file__).resolve().parents[2]
UP = ROOT / "infra" / "up_offline.sh"
PROJECT = "afofftest"
PORTS = {"api": 18401, "prefect": 18421, "mlflow": 18451}
FINAL = ("completed", "failed", "cancelled")
PIPELINE = (
    'pipeline in_compose "In the compose stack"\n\n'
    'data = csv_ohlcv(path="data/sample_ohlcv.csv")\n'
    "fast = sma(data.close, window=10)\n"
    "slow = sma(data.close, window=30)\n"
    "signal = crossover(fast, slow)\n"
    "result = backtest(data, signal, cash=100_000, fee_bps=5, slippage_bps=2)\n"
)
T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(1)


@dataclass
class Stack:
    env: dict[str, str]  # the generated env file's values
    run_env: dict[str, str]  # the environment up_offline.sh runs with
    timings: dict[str, float]

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{PORTS[service]}"

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(UP), "compose", *args], env=self.run_env, capture_output=True,
            text=True, timeout=timeout,
        )  # fmt: skip

    def container(self, service: str, index: int = 1) -> str:
        return f"{PROJECT}_{service}_{index}"

    def workers(self) -> list[dict[str, Any]]:
        pool = self.env["WORKER_POOL"]
        req = urllib.request.Request(
            f"{self.url('prefect')}/api/work_pools/{pool}/workers/filter", data=b"{}",
            headers={"Content-Type": "application/json"}, method="POST",
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as resp:
            workers: list[dict[str, Any]] = json.load(resp)
        return [w for w in workers if w["status"] == "ONLINE"]


def _env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            out[key] = value
    return out


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = Path(os.environ.get("ALPHAFORGE_DATA_DIR") or tmp_path_factory.mktemp("data"))
    run_env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "ALPHAFORGE_DATA_DIR": str(data),
        "OFFLINE_PROJECT": PROJECT,
        "OFFLINE_API_PORT": str(PORTS["api"]),
        "OFFLINE_PREFECT_PORT": str(PORTS["prefect"]),
        "OFFLINE_MLFLOW_PORT": str(PORTS["mlflow"]),
        "OFFLINE_WAIT_S": "300",
    }
    down = ["bash", str(UP), "down"]
    subprocess.run(down, env=run_env, capture_output=True, timeout=180)  # a leftover run's
    timings: dict[str, float] = {}
    started = time.monotonic()
    try:
        up = subprocess.run(
            ["bash", str(UP), "up", "1"], env=run_env, capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip
        timings["up"] = time.monotonic() - started
        if up.returncode != 0:
            logs = subprocess.run(
                ["bash", str(UP), "compose", "logs", "--tail", "30"], env=run_env,
                capture_output=True, text=True, timeout=60,
            ).stdout  # fmt: skip
            pytest.fail(f"up_offline.sh up failed:\n{up.stderr[-4000:]}\n{logs[-8000:]}")
        env_file = Path(up.stdout.strip().splitlines()[-1])
        yield Stack(_env_file(env_file), run_env, timings)
    finally:
        t0 = time.monotonic()
        subprocess.run(down, env=run_env, capture_output=True, timeout=300)
        timings["down"] = time.monotonic() - t0
        rounded = {k: round(v, 1) for k, v in timings.items()}
        print(f"compose stack timings (s): {json.dumps(rounded)}")
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}"],
        capture_output=True, text=True, timeout=30,
    ).stdout.split()  # fmt: skip
    assert not left, f"containers left after down: {left}"


def test_the_stack_comes_up_and_a_web_run_completes_in_a_flow_run_container(
    stack: Stack,
) -> None:
    s = stack
    # every service was healthy (up_offline.sh waited for it); the operator's views answer
    with urllib.request.urlopen(f"{s.url('prefect')}/api/health", timeout=10) as resp:
        assert json.load(resp) is True
    with urllib.request.urlopen(f"{s.url('prefect')}/", timeout=10) as resp:  # the UI
        assert resp.status == 200 and b"<html" in resp.read(4096).lower()
    with urllib.request.urlopen(f"{s.url('mlflow')}/health", timeout=10) as resp:
        assert resp.read().strip() == b"OK"
    ready = httpx.get(f"{s.url('api')}/readyz", timeout=30)
    assert ready.status_code == 200, ready.text
    assert {k: v["status"] for k, v in ready.json()["checks"].items()} == {
        "database": "ok", "prefect": "ok", "mlflow": "ok",
    }  # fmt: skip
    workers = wait_for(s.workers, 60, "the worker on the pool")
    assert len(workers) == 1, workers

    # the generated admin's password, shown once in the API's log; the first log-in must
    # choose a new one
    api_log = subprocess.run(
        ["docker", "logs", s.container("api")], capture_output=True, text=True, timeout=30
    )  # fmt: skip
    found = re.search(r"Created user 'admin' with password: (\S+)", api_log.stdout + api_log.stderr)
    assert found, "no admin password in the API's log"
    http = httpx.Client(base_url=s.url("api"), timeout=30)
    login = http.post("/api/auth/login", json={"username": "admin", "password": found[1]})
    assert login.status_code == 200, login.text
    changed = http.post(
        "/api/auth/password",
        json={"current_password": found[1], "new_password": "compose-up-admin-pass"},
        headers={"Authorization": f"Bearer {login.json()['access_token']}"},
    )
    assert changed.status_code == 200, changed.text
    headers = {"Authorization": f"Bearer {changed.json()['access_token']}"}

    started_at = int(time.time()) - 1
    resp = http.post("/api/pipelines", json={"name": "in_compose", "source": PIPELINE},
                     headers=headers)  # fmt: skip
    assert resp.status_code == 201, resp.text
    resp = http.post(f"/api/pipelines/{resp.json()['id']}/runs", headers=headers)
    assert resp.status_code == 202, resp.text
    run_id = resp.json()["id"]

    def ended() -> dict[str, Any] | None:
        got: dict[str, Any] = http.get(f"/api/runs/{run_id}", headers=headers).json()
        return got if got["status"] in FINAL else None

    t0 = time.monotonic()
    final = wait_for(ended, 180, "the run")
    s.timings["run"] = time.monotonic() - t0
    assert final["status"] == "completed", final["error"]
    assert final["metrics"] and final["mlflow_run_id"], final
    flow_run_id = final["prefect_flow_run_id"]

    # it ran in a container of the stack's platform image, on the stack's network, exit 0
    def died() -> list[dict[str, Any]] | None:
        out = subprocess.run(
            ["docker", "events", "--since", str(started_at), "--until", str(int(time.time())),
             "--filter", "event=die", "--filter", "label=io.alphaforge.platform=flow-run",
             "--format", "{{json .}}"],
            capture_output=True, text=True, timeout=30,
        ).stdout  # fmt: skip
        events = [json.loads(line) for line in out.splitlines() if line.strip()]
        mine = [e for e in events if flow_run_id in json.dumps(e["Actor"]["Attributes"])]
        return mine or None

    [die] = wait_for(died, 60, "the flow run's container to exit")
    attrs = die["Actor"]["Attributes"]
    assert attrs["exitCode"] == "0", attrs
    assert attrs["image"] == s.env["ALPHAFORGE_IMAGE"], attrs

    # its MLflow run FINISHED with the run's metrics, its artifacts in the S3 store
    from mlflow.tracking import MlflowClient

    ml = MlflowClient(tracking_uri=s.url("mlflow"))
    tracked = ml.get_run(final["mlflow_run_id"])
    assert tracked.info.status == "FINISHED"
    for name, value in final["metrics"].items():
        if name in tracked.data.metrics:
            assert tracked.data.metrics[name] == pytest.approx(float(value), rel=1e-9), (
                name, final["metrics"], tracked.data.metrics,
            )  # fmt: skip
    probe = ROOT / "infra" / "postgres" / "init-databases.sql"  # any small file
    ml.log_artifact(tracked.info.run_id, str(probe), artifact_path="probe")
    listing = subprocess.run(
        ["docker", "exec", s.container("minio"), "python", "-c",
         "import boto3, json, sys; s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:9000',"
         " aws_access_key_id=sys.argv[1], aws_secret_access_key=sys.argv[2],"
         " region_name='us-east-1'); print(json.dumps([o['Key'] for o in"
         " s3.list_objects_v2(Bucket=sys.argv[3]).get('Contents', [])]))",
         s.env["S3_ACCESS_KEY"], s.env["S3_SECRET_KEY"], s.env["S3_BUCKET"]],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    keys = json.loads(listing.stdout)
    prefix = f"mlflow/{tracked.info.experiment_id}/{tracked.info.run_id}/artifacts/"
    assert f"{prefix}probe/init-databases.sql" in keys, keys
    assert any(k.startswith(prefix) and k.endswith("metrics.json") for k in keys), keys

    # a custom node: its look-ahead check (a node-lab flow run on the stack's pool) and a run
    # using it, its code in a sandbox container the flow-run container made through the proxy
    from tests.api.custom_node_helpers import manifest, pipeline_using

    t0 = time.monotonic()
    node = http.post("/api/custom-nodes", json=manifest(), headers=headers, timeout=300)
    assert node.status_code == 201, node.text
    lookahead = node.json()["version"]["lookahead"]
    assert lookahead["status"] == "pass", lookahead
    resp = http.post("/api/pipelines", json={"name": "boxed", "source": pipeline_using("1")},
                     headers=headers)  # fmt: skip
    assert resp.status_code == 201, resp.text
    resp = http.post(f"/api/pipelines/{resp.json()['id']}/runs", headers=headers)
    assert resp.status_code == 202, resp.text
    run_id = resp.json()["id"]
    boxed = wait_for(ended, 180, "the custom-node run")
    s.timings["custom_node"] = time.monotonic() - t0
    assert boxed["status"] == "completed", boxed["error"]
    assert boxed["node_states"]["e"] == "completed" and boxed["sandbox"]["runner"] == "docker"
    proxy = subprocess.run(
        ["docker", "logs", s.container("docker-proxy")], capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip
    lines = (proxy.stdout + proxy.stderr).splitlines()
    assert any("/containers/create" in line and " 201 " in line for line in lines), lines[-20:]
    assert not [line for line in lines if " 403 " in line]

    # a second worker: `--scale worker=2`, and both are on the pool
    t0 = time.monotonic()
    scaled = s.compose(
        "up", "-d", "--no-build", "--no-deps", "--no-recreate", "--scale", "worker=2", "worker"
    )
    assert scaled.returncode == 0, scaled.stderr

    def both() -> list[dict[str, Any]] | None:
        online = s.workers()
        return online if len(online) == 2 else None

    two = wait_for(both, 120, "two workers")
    s.timings["scale"] = time.monotonic() - t0
    assert len({w["name"] for w in two}) == 2

    def healthy() -> bool:
        out = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.Health.Status}}",
             s.container("worker", 1), s.container("worker", 2)],
            capture_output=True, text=True, timeout=30,
        ).stdout.split()  # fmt: skip
        return out == ["healthy", "healthy"]

    wait_for(healthy, 90, "both worker containers healthy")
