"""Issue 10 items 1 and 3 through ``alphaforge serve`` and its node test-run endpoint, with
``ALPHAFORGE_SANDBOX_POOL=2`` and a 1 s sweep: test runs leave no containers beyond the pool's
cap; a busy loop's container is gone within its deadline plus the sweep interval, also when the
process watching it is killed; a server stop removes the container of a running node. Containers
are counted by the ``alphaforge.server`` label of this test's server only (loopback, bounded)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from runners.docker.sweeper import ORPHAN_MIN_AGE_S
from tests.api.custom_node_helpers import manifest, pipeline_using
from tests.deployments.fixtures import wait_for
from tests.serve_process import Served, serve

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.xdist_group("serve-sandbox")]

PASSWORD = "pool-test-password-1"
POOL = 2
_GONE = ("exited", "dead", "removing")
SWEEP_S = 1
DRAIN_S = 3
BUSY = "def run(inputs, params):\n    while True:\n        pass\n"
# sleeps in a pipeline run (the sample's 900 bars), not in the look-ahead check on save (400)
SLEEPY = """\
import time
def run(inputs, params):
    x = inputs["x"]
    if len(x) > 400:
        time.sleep(600)
    return {"ema": x}
"""


class Server:
    """The served instance, its admin's headers and its sandbox containers."""

    def __init__(self, served: Served, client: Any) -> None:
        self.served = served
        self.client = client
        self.label = f"alphaforge.server={socket.gethostname()}:{served.proc.pid}"
        token = httpx.post(
            f"{served.base}/api/auth/login",
            json={"username": "admin", "password": PASSWORD},
            timeout=30,
        ).json()["access_token"]
        self.headers = {"Authorization": f"Bearer {token}"}

    def containers(self, *labels: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.client.api.containers(
            all=True, filters={"label": ["alphaforge.sandbox=1", self.label, *labels]}
        )
        return found

    def test_run(self, body: dict[str, Any], timeout: float = 180) -> httpx.Response:
        return httpx.post(
            f"{self.served.base}/api/custom-nodes/test-run",
            json={"manifest": body},
            headers=self.headers,
            timeout=timeout,
        )

    def in_background(self, body: dict[str, Any]) -> threading.Thread:
        def go() -> None:
            with contextlib.suppress(httpx.HTTPError):
                self.test_run(body)

        thread = threading.Thread(target=go, daemon=True)
        thread.start()
        return thread

    def running_node(self) -> dict[str, Any]:
        """Wait for the test run's node container (a fresh one, or a pooled one claimed)."""

        def found() -> dict[str, Any] | None:
            for c in self.containers():
                claimed = any(n.startswith("/af-run.nodelab-") for n in c["Names"])
                fresh = c["Labels"].get("alphaforge.run_id", "").startswith("nodelab-")
                if (claimed or fresh) and c["State"] == "running":
                    return c
            return None

        node: dict[str, Any] = wait_for(found, 120, interval_s=0.2, what="the node's container")
        return node


@pytest.fixture(scope="module")
def server(docker_engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "ALPHAFORGE_SANDBOX_POOL": str(POOL),
        "ALPHAFORGE_SANDBOX_SWEEP_S": str(SWEEP_S),
        # the stop test's run sleeps 600 s: its worker's drain (60 s by default) cannot save
        # it, only delays the stop that must remove its container (tests/deployments drains)
        "ALPHAFORGE_WORKER_DRAIN_S": str(DRAIN_S),
    }
    with serve(tmp_path_factory.mktemp("serve-sandbox"), PASSWORD, env=env) as served:
        yield Server(served, docker_engine)


def test_test_runs_leave_no_containers_beyond_the_pool(server: Server) -> None:
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            with contextlib.suppress(Exception):
                # live ones: an exited container still being removed holds nothing (leftovers
                # are counted below, once the runs are done)
                live = [c for c in server.containers() if c.get("State") not in _GONE]
                # per flow-run process (its owner label): the previous run's pool may still be
                # stopping while the next run's process starts its own
                owners = Counter(c["Labels"].get("alphaforge.owner", "") for c in live)
                peak = max(peak, *owners.values(), 0)
            time.sleep(0.3)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        for _ in range(5):
            resp = server.test_run(manifest())
            assert resp.status_code == 200, resp.text
            assert resp.json()["status"] == "completed", resp.json()
    finally:
        stop.set()
        sampler.join(10)
    # each flow-run process: its pool's cap (POOL per image) and one execution
    assert peak <= 2 * POOL + 1, peak
    left = wait_for(
        lambda: (n := len(server.containers())) <= POOL and [n], 30, what="containers to go"
    )
    assert left[0] <= POOL


def test_a_busy_loop_is_gone_within_its_deadline_plus_the_sweep(server: Server) -> None:
    t0 = time.time()
    resp = server.test_run(manifest(code=BUSY, resources={"wall_s": 3}))
    assert resp.status_code == 200, resp.text
    assert resp.json()["error_kind"] == "TIMEOUT", resp.json()
    # its deadline is wall time + grace; nothing else runs meanwhile
    wait_for(lambda: server.containers() == [], 3 + 30 + SWEEP_S + 10, what="the busy loop")
    assert time.time() - t0 < 3 + 30 + SWEEP_S + 60


def test_a_busy_loop_whose_process_was_killed_is_swept_on_the_timer(server: Server) -> None:
    """SIGKILL to the flow-run process watching a busy loop (no handler, no atexit): its
    containers (the node's and its pool's) are orphans, swept within the interval once they
    are ORPHAN_MIN_AGE_S old (no timer takes a container between its creation and start)."""
    thread = server.in_background(manifest(code=BUSY, resources={"wall_s": 120}))
    node = server.running_node()
    owner = node["Labels"]["alphaforge.owner"]
    pid = int(owner.rpartition(":")[2])
    assert pid != server.served.proc.pid
    os.kill(pid, signal.SIGKILL)  # a flow-run process of this test's server
    killed = time.monotonic()
    wait_for(
        lambda: server.containers(f"alphaforge.owner={owner}") == [],
        SWEEP_S + ORPHAN_MIN_AGE_S + 15,
        interval_s=0.2,
        what="the killed process's containers to be swept",
    )
    assert time.monotonic() - killed < SWEEP_S + ORPHAN_MIN_AGE_S + 15
    thread.join(0)


def test_a_server_stop_removes_the_running_nodes_container(server: Server) -> None:
    """Last in this module: it stops the module's server. The node runs in a pipeline run (a
    test run would hold an HTTP request open, which the API server waits for at stop)."""
    base, headers = server.served.base, server.headers
    body = manifest(name="sleepy", code=SLEEPY, resources={"wall_s": 300})
    made = httpx.post(f"{base}/api/custom-nodes", json=body, headers=headers, timeout=180)
    assert made.status_code == 201, made.text
    source = pipeline_using("1", name="sleepy")
    pipeline = httpx.post(
        f"{base}/api/pipelines",
        json={"name": "sleepy", "source": source},
        headers=headers,
        timeout=60,
    )
    assert pipeline.status_code in (200, 201), pipeline.text
    run = httpx.post(
        f"{base}/api/pipelines/{pipeline.json()['id']}/runs", json={}, headers=headers, timeout=60
    )
    assert run.status_code in (200, 201, 202), run.text

    def node_running() -> dict[str, Any] | None:
        for c in server.containers():
            if c["Labels"].get("alphaforge.node_id") == "e" and c["State"] == "running":
                return c
            if any(".e." in n for n in c["Names"]) and c["State"] == "running":
                return c  # a pooled container claimed for node e
        return None

    wait_for(node_running, 180, interval_s=0.3, what="the pipeline's custom node to run")
    server.served.proc.send_signal(signal.SIGTERM)
    assert server.served.proc.wait(timeout=120) == 0, server.served.output()[-3000:]
    left = server.containers()
    assert left == [], [(c["Names"], c["State"]) for c in left]
