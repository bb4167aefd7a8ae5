"""A Docker work pool (issue 16 item 3: "Docker-pool workers are tested where the Docker engine
is available"): a real Prefect server on PostgreSQL, an MLflow tracking server, the pool and
the deployments registered by ``alphaforge deploy --pool-type docker``, one prefect-docker worker
(``python -m deployments.drainworker --type docker``) and the API in-process. A web run is
executed in a container of the platform image (built offline by
``infra/build_platform_image.sh``, once: its tag is its content hash), on the host's network,
with the shared store bind-mounted at its own path; it completes, its results are in the store
and its MLflow run is FINISHED.

Where the flow run ran is read from the engine's own record: the container events of the
flow run's label (``io.prefect.flow-run-id``, set by the worker) name the image and the exit
code, and the flow run's infrastructure pid is ``<engine URL>:<that container's id>``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from fastapi.testclient import TestClient
from prefect.client.orchestration import SyncPrefectClient
from sqlmodel import Session

from api.main import create_app
from api.models.run import Run
from api.models.user import Role, UserCreate
from api.security import create_access_token
from api.services.users import create_user
from deployments.stack import MlflowUi, PrefectServer, Worker, free_port, prefect_database_url
from tests.api.conftest import settings_for
from tests.deployments.fixtures import wait_for
from tests.pgdb import PG_ADMIN_DSN, scratch_database

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.xdist_group("docker_pool")]

ROOT = Path(__file__).resolve().parents[2]
POOL = "af-docker-test"
FINAL = ("completed", "failed", "cancelled")
PIPELINE = (
    'pipeline in_a_box "In a container"\n\n'
    'data = csv_ohlcv(path="data/sample_ohlcv.csv")\n'
    "fast = sma(data.close, window=10)\n"
    "slow = sma(data.close, window=30)\n"
    "signal = crossover(fast, slow)\n"
    "result = backtest(data, signal, cash=100_000, fee_bps=5, slippage_bps=2)\n"
)


@dataclass
class DockerStack:
    client: TestClient
    headers: dict[str, str]
    api_url: str
    settings: Any
    image: str
    image_id: str
    worker: Worker
    deployed: dict[str, Any]
    proxy_log: Path
    root: Path


def _platform_image() -> tuple[str, str]:
    """The platform image (built when its inputs changed; a content-hash tag otherwise)."""
    env = {
        **os.environ,
        "ALPHAFORGE_PLATFORM_TAG": os.environ.get("ALPHAFORGE_PLATFORM_TAG", "test"),
    }
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    proc = subprocess.run(
        ["bash", str(ROOT / "infra" / "build_platform_image.sh")],
        capture_output=True, text=True, timeout=1200, env=env,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(f"build_platform_image.sh failed:\n{proc.stderr[-3000:]}")
    image = proc.stdout.strip().splitlines()[-1]
    import docker

    return image, str(docker.from_env().images.get(image).id)


def _socket_proxy(root: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    """infra/socket-proxy's HAProxy on a free local port, in front of this machine's engine."""
    port = free_port()
    env = {**os.environ, "PROXY_BIND": f"127.0.0.1:{port}", "DOCKER_SOCKET": "/var/run/docker.sock"}
    log = root / "haproxy.log"
    with log.open("w") as sink:
        cfg = str(ROOT / "infra" / "socket-proxy" / "haproxy.cfg")
        proc = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdout=sink,
                                stderr=subprocess.STDOUT, env=env)  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port, log
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"the socket proxy did not listen:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def stack(docker_engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerStack]:
    from click.testing import CliRunner

    from cli.deploy import deploy_command

    root = tmp_path_factory.mktemp("docker-pool")
    with contextlib.ExitStack() as es:
        app_url = es.enter_context(scratch_database("af_dpool", migrate=True))
        prefect_url = prefect_database_url(app_url)
        assert prefect_url is not None
        es.callback(_drop, prefect_url.rsplit("/", 1)[1].split("?")[0])
        server = PrefectServer(root / "prefect", ui=False, database_url=prefect_url)
        es.callback(server.stop)
        mlflow = MlflowUi(f"sqlite:///{root / 'mlflow.db'}", str(root / "mlruns"), root / "ml.log")
        es.callback(mlflow.stop)
        image, image_id = _platform_image()  # while the servers start
        proxy, proxy_port, proxy_log = _socket_proxy(root)
        es.callback(proxy.wait, 10)
        es.callback(proxy.terminate)
        server.wait_ready()  # MLflow's server still starting: `deploy` and the worker do not
        # need it (its URL is known), the runs do
        data = root / "data"
        # what `alphaforge deploy` forwards to the containers: the platform's ALPHAFORGE_*
        # settings (and nothing of this session's: unset below); PREFECT_HOME their own
        env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("ALPHAFORGE_")}
        env |= {
            "ALPHAFORGE_DATA_DIR": str(data),
            "ALPHAFORGE_DATABASE_URL": app_url,
            "ALPHAFORGE_MLFLOW_TRACKING_URI": mlflow.url,
            # sandboxed custom nodes inside the flow-run container: this session's sandbox
            # images, job directories at the same path here and in the container, launched
            # through the socket proxy (the template mounts no Docker socket)
            "ALPHAFORGE_SANDBOX_TAG": os.environ.get("ALPHAFORGE_SANDBOX_TAG", "latest"),
            "ALPHAFORGE_SANDBOX_WORK_ROOT": str(root / "sandbox"),
        }
        deploy = CliRunner().invoke(
            deploy_command,
            ["--json", "--api-url", server.api_url, "--pool-type", "docker", "--pool", POOL,
             "--image", image, "--volume", f"{root}:{root}",
             "--volume", "/sys/fs/cgroup:/sys/fs/cgroup:ro",
             "--user", f"{os.getuid()}:{os.getgid()}", "--env", "PREFECT_HOME=/tmp/prefect",
             "--env", f"DOCKER_HOST=tcp://127.0.0.1:{proxy_port}"],
            env=env,
        )  # fmt: skip
        assert deploy.exit_code == 0, deploy.output
        deployed = json.loads(deploy.output.strip().splitlines()[-1])
        worker = _docker_worker(server.api_url, root, "af-docker-worker")
        es.callback(worker.stop)
        worker.wait_ready()
        mlflow.wait_ready()
        settings = settings_for(
            app_url, root, prefect_api_url=server.api_url, mlflow_tracking_uri=mlflow.url,
            work_pool=POOL,
        )  # fmt: skip
        assert settings.data_dir == data
        client = es.enter_context(TestClient(create_app(settings)))
        s = DockerStack(
            client, _developer(client), server.api_url, settings, image, image_id, worker,
            deployed, proxy_log, root,
        )  # fmt: skip
        # a test may replace the worker (the drain test stops this one): stop the last one
        es.callback(lambda: s.worker.stop())
        yield s


def _docker_worker(api_url: str, root: Path, name: str, drain_s: float | None = None) -> Worker:
    """A draining prefect-docker worker on the pool (``python -m deployments.drainworker``)."""
    home = root / name
    return Worker(
        api_url, home, home / "worker.log", pool=POOL, name=name, pool_type="docker",
        extra_env={"PREFECT_LOGGING_LEVEL": "INFO"}, drain_s=drain_s,
    )  # fmt: skip


def _drop(name: str) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _developer(client: TestClient) -> dict[str, str]:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        user = create_user(
            session,
            None,
            UserCreate(
                username="boxer", password="pw-" + secrets.token_hex(8), role=Role.DEVELOPER
            ),
        )
        token = create_access_token(
            user.id or 0,
            settings.signing_key,
            timedelta(minutes=settings.token_ttl_minutes),
            password_hash=user.password_hash,
        )
    return {"Authorization": f"Bearer {token}"}


def _run_key(s: DockerStack, run_id: int) -> str:
    with Session(s.client.app.state.engine) as session:  # type: ignore[attr-defined]
        run = session.get(Run, run_id)
        assert run is not None
        return run.run_key


def _container_events(flow_run_id: str, since: float) -> list[dict[str, Any]]:
    import docker

    client = docker.from_env()
    label = f"io.prefect.flow-run-id={flow_run_id}"
    return list(
        client.events(
            since=int(since) - 1,
            until=int(time.time()) + 1,
            filters={"type": "container", "label": label},
            decode=True,
        )
    )


def test_a_web_run_completes_in_a_container_of_the_platform_image(stack: DockerStack) -> None:
    s = stack
    assert s.deployed["pool_type"] == "docker" and s.deployed["image"] == s.image
    assert set(s.deployed["container_env"]) == {
        "ALPHAFORGE_DATA_DIR", "ALPHAFORGE_DATABASE_URL", "ALPHAFORGE_MLFLOW_TRACKING_URI",
        "ALPHAFORGE_SANDBOX_TAG", "ALPHAFORGE_SANDBOX_WORK_ROOT", "PREFECT_HOME", "DOCKER_HOST",
    }  # fmt: skip
    with SyncPrefectClient(api=s.api_url) as prefect:
        pool = prefect.read_work_pool(POOL)
    props = pool.base_job_template["variables"]["properties"]
    assert pool.type == "docker" and props["image"]["default"] == s.image
    assert props["network_mode"]["default"] == "host"

    started_at = time.time()
    resp = s.client.post("/api/pipelines", json={"name": "in_a_box", "source": PIPELINE},
                         headers=s.headers)  # fmt: skip
    assert resp.status_code == 201, resp.text
    pid = resp.json()["id"]
    resp = s.client.post(f"/api/pipelines/{pid}/runs", headers=s.headers)
    assert resp.status_code == 202, resp.text
    run_id = resp.json()["id"]

    def ended() -> dict[str, Any] | None:
        got = s.client.get(f"/api/runs/{run_id}", headers=s.headers).json()
        return got if got["status"] in FINAL else None

    final = wait_for(ended, 120, what="the run in a container")
    assert final["status"] == "completed", (final["error"], s.worker.tail(4000))
    flow_run_id = final["prefect_flow_run_id"]

    # it ran in a container of the platform image, which exited 0
    # (the run reads completed as soon as its record is written: the process exits after)
    events = wait_for(
        lambda: (
            [e for e in _container_events(flow_run_id, started_at) if e["Action"] == "die"]
            and _container_events(flow_run_id, started_at)
        ),
        60,
        what="the flow run's container to exit",
    )
    actions = [e["Action"] for e in events]
    assert "start" in actions and "die" in actions, actions
    [die] = [e for e in events if e["Action"] == "die"]
    assert die["Actor"]["Attributes"]["exitCode"] == "0", die
    assert die["Actor"]["Attributes"]["image"] == s.image, die
    assert die["Actor"]["Attributes"]["io.alphaforge.platform"] == "flow-run"
    with SyncPrefectClient(api=s.api_url) as prefect:
        flow_run = prefect.read_flow_run(UUID(flow_run_id))
    assert flow_run.state is not None and flow_run.state.is_completed()
    assert flow_run.run_count == 1
    assert flow_run.infrastructure_pid is not None
    assert flow_run.infrastructure_pid.rsplit(":", 1)[1] == die["Actor"]["ID"]
    assert flow_run.work_pool_name == POOL
    [created] = [e for e in events if e["Action"] == "create"]
    assert created["Actor"]["ID"] == die["Actor"]["ID"]

    # its results are in the shared store, written by the container's user (this uid)
    key = _run_key(s, run_id)
    run_dir = s.settings.runs_dir / key
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed", record
    assert (run_dir / "run.json").stat().st_uid == os.getuid()
    # the flow-run process was not one of this machine's: it lived in the container's pid
    # namespace (its marker names a pid that is no process here, or a different one)
    from flows.liveness import read_mark

    mark = read_mark(run_dir)
    assert mark is not None
    with contextlib.suppress(FileNotFoundError):
        cmdline = Path(f"/proc/{mark.pid}/cmdline").read_bytes()
        assert b"prefect.engine" not in cmdline and b"warm_launcher" not in cmdline

    # its MLflow run, on the tracking server, FINISHED, with the record's metrics
    from mlflow.tracking import MlflowClient

    ml = MlflowClient(tracking_uri=s.settings.mlflow_tracking_uri)
    experiments = [e.experiment_id for e in ml.search_experiments()]
    [tracked] = ml.search_runs(experiments, filter_string=f"tags.`alphaforge.run_id` = '{key}'")
    assert tracked.info.status == "FINISHED"
    assert tracked.data.metrics, tracked.data
    got = final.get("metrics") or {}
    common = set(got) & set(tracked.data.metrics)
    assert common, (got, tracked.data.metrics)
    for name in common:
        assert tracked.data.metrics[name] == pytest.approx(float(got[name]), rel=1e-9), name


def test_a_custom_node_in_the_flow_run_container_is_sandboxed_through_the_proxy(
    stack: DockerStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flow-run container has no Docker socket: its custom node's sandbox container is
    created through the filtered proxy (DOCKER_HOST), and the run completes."""
    from api.services import custom_nodes
    from tests.api.custom_node_helpers import manifest, pipeline_using

    s = stack
    with SyncPrefectClient(api=s.api_url) as prefect:
        props = prefect.read_work_pool(POOL).base_job_template["variables"]["properties"]
    assert not any("docker.sock" in v for v in props["volumes"]["default"])
    assert props["env"]["default"]["DOCKER_HOST"].startswith("tcp://127.0.0.1:")
    # the node's look-ahead check (a node-lab flow run) is not what this test is about
    monkeypatch.setattr(
        custom_nodes, "lookahead_check", lambda *_a: {"status": "pass", "message": "skipped"}
    )
    before = len(s.proxy_log.read_text().splitlines())
    resp = s.client.post("/api/custom-nodes", json=manifest(), headers=s.headers)
    assert resp.status_code == 201, resp.text
    resp = s.client.post("/api/pipelines", json={"name": "boxed", "source": pipeline_using("1")},
                         headers=s.headers)  # fmt: skip
    assert resp.status_code == 201, resp.text
    resp = s.client.post(f"/api/pipelines/{resp.json()['id']}/runs", headers=s.headers)
    assert resp.status_code == 202, resp.text
    run_id = resp.json()["id"]

    def ended() -> dict[str, Any] | None:
        got = s.client.get(f"/api/runs/{run_id}", headers=s.headers).json()
        return got if got["status"] in FINAL else None

    final = wait_for(ended, 150, what="the custom-node run in a container")
    assert final["status"] == "completed", (final["error"], s.worker.tail(4000))
    assert final["node_states"]["e"] == "completed"
    assert final["sandbox"]["runner"] == "docker"
    # the sandbox container was made through the proxy, which refused nothing it asked for
    lines = s.proxy_log.read_text().splitlines()[before:]
    assert any("/containers/create" in line and " 201 " in line for line in lines), lines[-20:]
    assert not [line for line in lines if " 403 " in line]
    # and the job directories were under the shared work root (the same path on both sides)
    assert any((s.settings.data_dir.parent / "sandbox").iterdir())


# a custom node that takes NAP_S seconds (in its sandbox, inside the flow-run container)
NAP_S = 20
NAP_CODE = f"""\
import time

def run(inputs, params):
    time.sleep({NAP_S})
    x = inputs["x"]
    return {{"ema": x.ewm(span=params["span"], adjust=False).mean()}}
"""


def _start_run(s: DockerStack, name: str, source: str) -> int:
    resp = s.client.post("/api/pipelines", json={"name": name, "source": source},
                         headers=s.headers)  # fmt: skip
    assert resp.status_code == 201, resp.text
    resp = s.client.post(f"/api/pipelines/{resp.json()['id']}/runs", headers=s.headers)
    assert resp.status_code == 202, resp.text
    return int(resp.json()["id"])


def _flow_run_id(s: DockerStack, run_id: int) -> str:
    def known() -> str | None:
        got = s.client.get(f"/api/runs/{run_id}", headers=s.headers).json()
        return got.get("prefect_flow_run_id")

    return str(wait_for(known, 30, what=f"run {run_id}'s flow run"))


def _final(s: DockerStack, run_id: int, timeout_s: float) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        got = s.client.get(f"/api/runs/{run_id}", headers=s.headers).json()
        return got if got["status"] in FINAL else None

    return dict(wait_for(ended, timeout_s, what=f"run {run_id} to end"))


def _flow_run_state(s: DockerStack, flow_run_id: str) -> Any:
    with SyncPrefectClient(api=s.api_url) as prefect:
        flow_run = prefect.read_flow_run(UUID(flow_run_id))
    return flow_run


def test_a_stopped_docker_worker_takes_no_new_run_and_exits_when_its_run_ended(
    stack: DockerStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM to the Docker worker while its run's container runs (a custom node naps
    NAP_S s): the worker stays until that container exited and the run completed (Completed in
    Prefect, its record and MLflow run finished), then exits 0, well within its drain bound; a
    run submitted after the signal is not taken (it stays Scheduled while the worker drains and
    after it exited) and a new worker runs it."""
    from mlflow.tracking import MlflowClient

    from api.services import custom_nodes
    from tests.api.custom_node_helpers import manifest, pipeline_using

    s = stack
    old = s.worker
    assert old.alive()
    assert old.drain_s >= 3 * NAP_S, old.drain_s  # the drain bound is not what ends the wait
    monkeypatch.setattr(
        custom_nodes, "lookahead_check", lambda *_a: {"status": "pass", "message": "skipped"}
    )
    resp = s.client.post("/api/custom-nodes", json=manifest("nap_ema", NAP_CODE),
                         headers=s.headers)  # fmt: skip
    assert resp.status_code == 201, resp.text
    started_at = time.time()
    slow = _start_run(s, "drained", pipeline_using("1", "nap_ema"))
    slow_flow = _flow_run_id(s, slow)

    # its container started: the worker is handling it when the signal comes
    wait_for(
        lambda: [e for e in _container_events(slow_flow, started_at) if e["Action"] == "start"],
        120,
        what="the slow run's container to start",
    )
    signalled = time.monotonic()
    signalled_at = time.time()
    os.kill(old.proc.pid, signal.SIGTERM)  # the worker alone, as Worker.stop does
    wait_for(lambda: "takes no new flow runs" in old.tail(20_000), 30, what="the drain line")
    # it counts the slow run (and the previous test's, if its container is still exiting)
    waiting = rf"waiting up to {old.drain_s:g} s for [12] running"
    assert re.search(waiting, old.tail(20_000)), old.tail(2000)

    # (b) a run submitted now is not taken by the draining worker
    late = _start_run(s, "after_the_signal", PIPELINE)
    late_flow = _flow_run_id(s, late)
    # the worker polls every few seconds: while it drains, the run stays Scheduled
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        state = _flow_run_state(s, late_flow).state
        assert state is not None and state.is_scheduled(), state
        time.sleep(0.5)
    # the slow run's container still runs, and the worker waits for it (its worker loop too:
    # prefect-docker's blocking watch of a container would keep a stopped worker's process
    # alive as well, so "stopped!" is what tells a drain from a stop)
    assert old.alive(), old.tail(4000)
    assert "stopped!" not in old.tail(20_000), old.tail(4000)
    assert not [e for e in _container_events(slow_flow, started_at) if e["Action"] == "die"]

    # (c) the worker exits once that container exited, well within its drain bound
    assert old.proc.wait(timeout=NAP_S + 90) == 0, old.tail(4000)
    exited_at = time.time()
    took = time.monotonic() - signalled
    assert took < old.drain_s, took
    [die] = [e for e in _container_events(slow_flow, started_at) if e["Action"] == "die"]
    assert die["Actor"]["Attributes"]["exitCode"] == "0", die
    assert signalled_at < die["timeNano"] / 1e9 < exited_at + 1, (signalled_at, die, exited_at)
    log = old.tail(20_000)
    assert "Drained: no flow run left" in log and "Drain over" not in log, log[-3000:]

    # (a) the run in flight completed: Prefect, its record, MLflow
    final = _final(s, slow, 60)
    assert final["status"] == "completed", (final["error"], log[-4000:])
    assert final["node_states"]["e"] == "completed"
    flow_run = _flow_run_state(s, slow_flow)
    assert flow_run.state is not None and flow_run.state.is_completed(), flow_run.state
    assert flow_run.run_count == 1
    key = _run_key(s, slow)
    record = json.loads((s.settings.runs_dir / key / "run.json").read_text())
    assert record["status"] == "completed", record
    ml = MlflowClient(tracking_uri=s.settings.mlflow_tracking_uri)
    experiments = [e.experiment_id for e in ml.search_experiments()]
    [tracked] = ml.search_runs(experiments, filter_string=f"tags.`alphaforge.run_id` = '{key}'")
    assert tracked.info.status == "FINISHED"

    # the late run: still Scheduled with no worker, no container of it anywhere
    state = _flow_run_state(s, late_flow).state
    assert state is not None and state.is_scheduled(), state
    assert not _container_events(late_flow, started_at)
    assert late_flow not in log

    # a new worker takes it (and replaces the stopped one for the module's later tests)
    s.worker = _docker_worker(s.api_url, s.root, "af-docker-worker-2")
    s.worker.wait_ready()
    final = _final(s, late, 120)
    assert final["status"] == "completed", (final["error"], s.worker.tail(4000))
    events = _container_events(late_flow, started_at)
    [created] = [e for e in events if e["Action"] == "create"]
    assert created["timeNano"] / 1e9 > exited_at - 1, (created, exited_at)
    assert late_flow in s.worker.tail(50_000)


LONG_NAP_S = 35


def test_a_docker_worker_past_its_drain_limit_exits_and_its_container_completes_the_run(
    stack: DockerStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Docker worker whose drain bound (4 s) runs out while its run's container still runs
    (a custom node naps LONG_NAP_S s) exits 0 at once, saying it leaves that container running,
    without waiting for the container (prefect-docker's blocking watch of it); the container
    then completes the run on its own: Completed in Prefect, its record and MLflow run
    finished."""
    from mlflow.tracking import MlflowClient

    from api.services import custom_nodes
    from deployments.drainworker import STOP_WAIT_S
    from tests.api.custom_node_helpers import manifest, pipeline_using

    s = stack
    s.worker.stop()  # whichever worker the module's earlier tests left
    worker = _docker_worker(s.api_url, s.root, "af-docker-worker-short", drain_s=4)
    s.worker = worker
    worker.wait_ready()
    monkeypatch.setattr(
        custom_nodes, "lookahead_check", lambda *_a: {"status": "pass", "message": "skipped"}
    )
    code = NAP_CODE.replace(f"time.sleep({NAP_S})", f"time.sleep({LONG_NAP_S})")
    body = manifest("long_nap_ema", code, resources={"wall_s": 90})
    resp = s.client.post("/api/custom-nodes", json=body, headers=s.headers)
    assert resp.status_code == 201, resp.text
    started_at = time.time()
    run = _start_run(s, "outlives_its_worker", pipeline_using("1", "long_nap_ema"))
    flow = _flow_run_id(s, run)
    wait_for(
        lambda: [e for e in _container_events(flow, started_at) if e["Action"] == "start"],
        120,
        what="the run's container to start",
    )
    signalled = time.monotonic()
    os.kill(worker.proc.pid, signal.SIGTERM)
    # the worker exits within its drain bound and the stop wait, while the container naps
    assert worker.proc.wait(timeout=worker.drain_s + STOP_WAIT_S + 20) == 0, worker.tail(4000)
    took = time.monotonic() - signalled
    exited_at = time.time()
    log = worker.tail(20_000)
    assert "Drain over: leaving 1 flow-run container(s) running" in log, log[-3000:]
    assert "stopped!" in log.split("Drain over", 1)[1], log[-3000:]
    assert took < worker.drain_s + STOP_WAIT_S + 15, took
    assert not [e for e in _container_events(flow, started_at) if e["Action"] == "die"], log

    # the container completes the run with no worker: Prefect, the record, MLflow
    final = _final(s, run, LONG_NAP_S + 120)
    assert final["status"] == "completed", final["error"]
    # the run is Completed before its engine's process has exited: its container dies after
    [die] = wait_for(
        lambda: [e for e in _container_events(flow, started_at) if e["Action"] == "die"],
        60,
        what="the run's container to exit",
    )
    assert die["Actor"]["Attributes"]["exitCode"] == "0", die
    assert die["timeNano"] / 1e9 > exited_at, (die, exited_at)
    flow_run = _flow_run_state(s, flow)
    assert flow_run.state is not None and flow_run.state.is_completed(), flow_run.state
    assert flow_run.run_count == 1
    record = json.loads((s.settings.runs_dir / _run_key(s, run) / "run.json").read_text())
    assert record["status"] == "completed", record
    ml = MlflowClient(tracking_uri=s.settings.mlflow_tracking_uri)
    experiments = [e.experiment_id for e in ml.search_experiments()]
    key = _run_key(s, run)
    [tracked] = ml.search_runs(experiments, filter_string=f"tags.`alphaforge.run_id` = '{key}'")
    assert tracked.info.status == "FINISHED"
