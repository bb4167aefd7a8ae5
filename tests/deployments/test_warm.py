"""Warm flow-run processes (``deployments.warm``): real Prefect flow runs on a real worker, each
in a fresh fork of the pre-imported server; cancellation still kills the run; the plain
process worker (warm off) and the launcher's cold fallback still run flow runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from deployments.stack import Worker
from dsl.ir import InputBinding, NodeIR, PipelineIR
from tests.deployments.fixtures import STACK_GROUP, pid_alive, wait_for
from tests.deployments.probenode import TProbe
from tests.flows.testnodes import TBars, TSleep

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(STACK_GROUP)]

ROOT = Path(__file__).resolve().parents[2]
PROBE_LINE = re.compile(r"probe pid=(\d+) ppid=(\d+) runs=(\d+)")


def _node(node_id: str, t: Any, params: dict[str, Any], **inputs: InputBinding) -> NodeIR:
    bindings: dict[str, InputBinding | tuple[InputBinding, ...]] = dict(inputs)
    return NodeIR(
        id=node_id,
        type=t.name,
        version=t.version,
        params=params,
        inputs=bindings,
        outputs={p.name: p.type.value for p in t.outputs},
    )


def _gone(pid: int) -> bool:
    return not pid_alive(pid)


def _probe_ir(nap_s: float = 0.0) -> PipelineIR:
    """bars → probe (logs its process) → nap."""
    close = InputBinding(node="data", port="bars", column="close")
    nodes = (
        _node("data", TBars, {"n": 50}),
        _node("probe", TProbe, {}, series=close),
        _node("nap", TSleep, {"seconds": nap_s}, series=InputBinding(node="probe", port="value")),
    )
    return PipelineIR(name="warm_probe", title="Warm probe", nodes=nodes)


def _sample_ir() -> PipelineIR:
    from dsl.compiler import compile_or_raise

    return compile_or_raise((ROOT / "examples" / "sma_crossover.af").read_text())


class Pool:
    """A worker on a pool of its own, and how to run a spec on it."""

    def __init__(self, api_url: str, worker: Worker, pool: str, store: Path) -> None:
        self.api_url = api_url
        self.worker = worker
        self.pool = pool
        self.store = store

    def submit(
        self, ir: PipelineIR, *, use_cache: bool = False, base_dir: Path | None = None
    ) -> tuple[str, str]:
        """Create a flow run of the pool's web deployment; returns (flow run id, run id). The
        data paths resolve in ``base_dir`` (the examples; the store for the probe, whose test
        nodes write their call counts there, never into the repository)."""
        from prefect.client.orchestration import SyncPrefectClient

        from deployments.deploy import ensure_web_deployment
        from flows.record import new_run_id
        from flows.spec import RunSpec

        run_id = new_run_id()
        spec = RunSpec(
            ir=ir,
            run_id=run_id,
            store_url=str(self.store),
            base_dir=str(base_dir or ROOT / "examples"),
            use_cache=use_cache,
            trigger="test",
            submitted_at=time.time(),
        )
        with SyncPrefectClient(api=self.api_url) as client:
            deployment = ensure_web_deployment(client, self.pool)
            flow_run = client.create_flow_run_from_deployment(
                deployment, parameters={"spec": spec.to_json()}
            )
        return str(flow_run.id), run_id

    def flow_run(self, flow_run_id: str) -> Any:
        from prefect.client.orchestration import SyncPrefectClient

        with SyncPrefectClient(api=self.api_url) as client:
            return client.read_flow_run(uuid.UUID(flow_run_id))

    def states(self, flow_run_id: str) -> list[str]:
        from prefect.client.orchestration import SyncPrefectClient

        with SyncPrefectClient(api=self.api_url) as client:
            return [s.type.value for s in client.read_flow_run_states(uuid.UUID(flow_run_id))]

    def wait_final(self, flow_run_id: str, timeout_s: float = 120.0) -> Any:
        def final() -> Any:
            flow_run = self.flow_run(flow_run_id)
            return flow_run if flow_run.state and flow_run.state.is_final() else None

        return wait_for(final, timeout_s, interval_s=0.2, what=f"flow run {flow_run_id} to end")

    def record(self, run_id: str) -> dict[str, Any]:
        return dict(json.loads((self.store / "runs" / run_id / "run.json").read_text()))

    def probe(self, run_id: str) -> tuple[int, int, int] | None:
        """(pid, parent pid, runs in that process) from the probe's log line, once written."""
        log = self.store / "runs" / run_id / "run.log"
        found = PROBE_LINE.search(log.read_text()) if log.exists() else None
        return (int(found[1]), int(found[2]), int(found[3])) if found else None


def _pool(prefect_server: Any, tmp_path: Path, *, warm: bool) -> Pool:
    """A started worker on a new pool (the caller stops ``pool.worker``)."""
    from deployments.flow import EXTRA_NODE_MODULES_ENV

    name = f"{'warm' if warm else 'plain'}-{uuid.uuid4().hex[:8]}"
    worker = Worker(
        prefect_server.api_url,
        tmp_path / "prefect-home",
        tmp_path / "worker.log",
        pool=name,
        name=f"{name}-worker",
        warm=warm,
        extra_env={
            EXTRA_NODE_MODULES_ENV: "tests.deployments.warmnodes",
            "ALPHAFORGE_DATA_DIR": str(tmp_path / "worker-data"),
            "PREFECT_LOGGING_LEVEL": "INFO",
        },
    )
    try:
        worker.wait_ready()
    except BaseException:
        worker.stop()
        raise
    return Pool(prefect_server.api_url, worker, name, tmp_path / "store")


@pytest.fixture(scope="module")
def warm_pool(prefect_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    pool = _pool(prefect_server, tmp_path_factory.mktemp("warm"), warm=True)
    try:
        yield pool
    finally:
        pool.worker.stop()


def test_each_warm_flow_run_gets_a_fresh_fork_of_the_preloaded_server(warm_pool: Pool) -> None:
    assert warm_pool.worker.warm is not None
    server_pid = json.loads(warm_pool.worker.warm.ready_file.read_text())["pid"]
    seen: list[int] = []
    for _ in range(2):
        flow_run_id, run_id = warm_pool.submit(_probe_ir(), base_dir=warm_pool.store)
        flow_run = warm_pool.wait_final(flow_run_id)
        assert flow_run.state.is_completed(), flow_run.state
        record = warm_pool.record(run_id)
        assert record["status"] == "completed" and record["flow_run_id"] == flow_run_id
        assert set(record["node_states"].values()) == {"completed"}, record["node_states"]
        probe = warm_pool.probe(run_id)
        assert probe is not None
        pid, ppid, runs = probe
        # a child of the warm server, which never ran a node itself: the first run in it
        assert ppid == server_pid and runs == 1
        # the worker knows the launcher (its infrastructure pid), which relayed the exit
        launcher = int(str(flow_run.infrastructure_pid).rsplit(":", 1)[-1])
        assert launcher not in (pid, server_pid)
        wait_for(partial(_gone, pid), 30, what="the flow-run process to exit")
        timings = record["timings"]
        assert 0 <= timings["at_process_s"] <= timings["at_forked_s"] <= timings["at_flow_s"]
        assert timings["at_flow_s"] <= timings["at_nodes_done_s"] <= timings["at_results_s"]
        seen.append(pid)
    assert seen[0] != seen[1]
    assert pid_alive(server_pid)
    log = warm_pool.worker.warm.tail(50_000)
    assert all(f"flow-run process {pid} " in log for pid in seen), log


def test_cancelling_a_warm_run_kills_its_process(warm_pool: Pool) -> None:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.states import Cancelling

    flow_run_id, run_id = warm_pool.submit(_probe_ir(nap_s=300), base_dir=warm_pool.store)
    probe = wait_for(lambda: warm_pool.probe(run_id), 120, interval_s=0.2, what="the probe")
    pid = probe[0]
    launcher = int(str(warm_pool.flow_run(flow_run_id).infrastructure_pid).rsplit(":", 1)[-1])
    assert pid_alive(pid) and pid_alive(launcher)
    with SyncPrefectClient(api=warm_pool.api_url) as client:
        client.set_flow_run_state(flow_run_id, Cancelling(), force=True)
    flow_run = warm_pool.wait_final(flow_run_id, timeout_s=90)
    assert flow_run.state.is_cancelled(), flow_run.state
    # well inside the node's 300 s nap: the cancel ended both processes
    wait_for(lambda: not pid_alive(pid), 30, what="the warm flow-run process to exit")
    wait_for(lambda: not pid_alive(launcher), 30, what="the launcher to exit")
    assert "CRASHED" not in warm_pool.states(flow_run_id)


def test_a_run_cancelled_before_its_engine_runs_it_ends_cancelled_at_once(
    warm_pool: Pool,
) -> None:
    """A cancel that lands once the worker took the run (Pending) and before its engine proposed
    Running: the engine finds it Cancelling, runs nothing and exits; the worker records
    Cancelled (it stayed Cancelling until the server's five-minute timeout)."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.states import Cancelling

    flow_run_id, run_id = warm_pool.submit(_probe_ir(nap_s=300), base_dir=warm_pool.store)
    with SyncPrefectClient(api=warm_pool.api_url) as client:

        def taken() -> bool:
            state = client.read_flow_run(uuid.UUID(flow_run_id)).state
            assert state is not None and not state.is_running(), "the engine started first"
            return state.is_pending()

        wait_for(taken, 120, interval_s=0.02, what="the worker to take the run")
        client.set_flow_run_state(flow_run_id, Cancelling(), force=True)
        asked = time.monotonic()
    flow_run = warm_pool.wait_final(flow_run_id, timeout_s=60)
    assert flow_run.state.is_cancelled(), flow_run.state
    assert time.monotonic() - asked < 30
    assert warm_pool.probe(run_id) is None  # the pipeline never ran


def test_a_warm_run_and_a_plain_workers_run_agree(
    warm_pool: Pool, prefect_server: Any, tmp_path: Path
) -> None:
    flow_run_id, warm_run = warm_pool.submit(_sample_ir())
    assert warm_pool.wait_final(flow_run_id).state.is_completed()
    warm_record = warm_pool.record(warm_run)
    assert "at_forked_s" in warm_record["timings"]
    assert warm_record["mlflow_run_id"] and warm_record["tracking_error"] is None

    plain_pool = _pool(prefect_server, tmp_path, warm=False)
    try:
        assert plain_pool.worker.warm is None
        flow_run_id, plain_run = plain_pool.submit(_sample_ir())
        assert plain_pool.wait_final(flow_run_id).state.is_completed()
        plain_record = plain_pool.record(plain_run)
    finally:
        plain_pool.worker.stop()
    # the plain worker's launcher became `python -m prefect.engine`: no fork
    assert "at_forked_s" not in plain_record["timings"]
    assert plain_record["timings"]["at_process_s"] <= plain_record["timings"]["at_flow_s"]
    assert plain_record["metrics"] == warm_record["metrics"]
    assert plain_record["metrics"]["num_trades"] > 0
    assert plain_record["result_fingerprint"] == warm_record["result_fingerprint"]


def test_the_launcher_without_a_server_becomes_prefects_engine(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ALPHAFORGE_WARM_SOCKET": str(tmp_path / "no-such.sock"),
        "PREFECT__FLOW_RUN_ID": "not-a-flow-run-id",
        "PREFECT_HOME": str(tmp_path / "prefect"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "deployments.warm_launcher"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # prefect.engine's own complaint about the id: the launcher exec'd it
    assert proc.returncode == 1
    assert "Invalid flow run id" in proc.stderr, proc.stderr[-2000:]


@pytest.fixture
def fork_server(tmp_path: Path) -> Iterator[tuple[Path, Path, str]]:
    """A warm server whose Prefect API never answers (a socket that accepts nothing): its
    children wait in their first API call until a signal ends them. Yields (socket, log, API)."""
    import socket as sockets

    silent = sockets.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    api = f"http://127.0.0.1:{silent.getsockname()[1]}/api"
    sock, ready, log = tmp_path / "w.sock", tmp_path / "ready.json", tmp_path / "warm.log"
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(tmp_path / "prefect")}
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "deployments.warm", "serve", str(sock), str(ready)],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: ready.exists() or server.poll() is not None, 180, what="warm server")
        assert server.poll() is None, log.read_text()
        yield sock, log, api
    finally:
        os.killpg(server.pid, 15)
        server.wait(30)
        silent.close()
    assert not sock.exists() and not ready.exists()  # the server cleaned up after itself


def _launch(sock: Path, api: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ALPHAFORGE_WARM_SOCKET": str(sock),
        "PREFECT_API_URL": api,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT__FLOW_RUN_ID": str(uuid.uuid4()),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "deployments.warm_launcher"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _child_of(log: Path, launcher: int) -> int:
    pattern = re.compile(rf"flow-run process (\d+) for launcher {launcher}\b")

    def found() -> int | None:
        hit = pattern.search(log.read_text())
        return int(hit[1]) if hit else None

    return int(wait_for(found, 60, interval_s=0.1, what="the fork for the launcher"))


def test_the_launcher_relays_signals_and_its_death_to_the_fork(
    fork_server: tuple[Path, Path, str], tmp_path: Path
) -> None:
    sock, log, api = fork_server
    # SIGTERM to the launcher (what the worker sends) reaches the fork, and the launcher ends
    # the way the fork ended: killed by that signal
    launcher = _launch(sock, api, tmp_path)
    child = _child_of(log, launcher.pid)
    assert child != launcher.pid and pid_alive(child)
    time.sleep(0.5)
    launcher.send_signal(15)
    assert launcher.wait(30) == -15
    wait_for(partial(_gone, child), 30, what="the fork to end after SIGTERM")
    # a launcher killed outright (SIGKILL cannot be relayed) takes its fork with it
    launcher = _launch(sock, api, tmp_path)
    child = _child_of(log, launcher.pid)
    launcher.kill()
    launcher.wait(30)
    wait_for(partial(_gone, child), 30, what="the fork to end after its launcher died")
