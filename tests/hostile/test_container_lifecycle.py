"""Nothing outlives its limits (issue 10, items 1 and 3), in one process: the warm pool holds at
most its cap however many executions refill it, and a process's exit removes its pool and its
running containers; a container nobody watches any more is removed at its deadline by the
sweeper's timer, with no other run happening; leftovers of dead owners are swept on start.
Every check is filtered by labels this test set (run id, pool id, owner). The same through
``alphaforge serve`` and its node test-run endpoint: ``test_serve_sandbox_lifecycle.py``."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import pytest

from runners.custom import AdminCaps, Limits, template
from runners.docker import DockerRunner
from runners.docker import engine as engine_mod
from runners.docker import pool as pool_mod
from runners.docker.engine import DockerExecutor, claim_name, owner_label
from runners.docker.sweeper import ServerSandboxes, Sweeper, sweep
from runners.sandboxed import ExecSpec
from tests.deployments.fixtures import wait_for
from tests.hostile.conftest import ROOT, Sandbox

pytestmark = pytest.mark.docker

SANDBOX = "alphaforge.sandbox=1"


def _containers(client: Any, *labels: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.api.containers(
        all=True, filters={"label": [SANDBOX, *labels]}
    )
    return found


def _busy_container(
    client: Any, run_id: str, *, wall_s: float, labels: dict[str, str] | None = None
) -> Any:
    """A policy-checked sandbox container spinning at 100 % CPU, started and left unwatched (as
    when its executor's process is stuck or gone), labelled like an execution of ``run_id``."""
    executor = DockerExecutor(client)
    limits = dataclasses.replace(Limits.default(AdminCaps()), wall_s=wall_s)
    spec = ExecSpec(run_id, "spin", "python", Path("/nonexistent"), Path("/nonexistent"), limits)
    plan = executor.plan(spec)
    plan = dataclasses.replace(
        plan,
        command=["/usr/local/bin/python3", "-c", "while True: pass"],
        job_dir="/tmp",
        out_dir="/tmp",
        labels={**plan.labels, **(labels or {})},
    )
    container = executor.create_checked(plan, "spin")
    container.start()
    return container


def test_the_pool_holds_its_cap_and_exit_removes_everything(sandbox: Sandbox) -> None:
    """Executions through many runners (as test runs are) share the process's one pool: its
    containers never exceed the cap, return to it after the runs, and are gone after close."""
    manifest = template("python", "indicator")

    def pooled(runner: DockerRunner) -> None:
        runner.pool_size = 1  # as ALPHAFORGE_SANDBOX_POOL=1 would

    pool = None
    peak = pooled_runs = 0
    try:
        for i in range(6):
            out = sandbox.run("python", "", manifest=manifest, node_id=f"n{i}", runner_hook=pooled)
            assert out.result.ok, out.result.error
            pooled_runs += bool(out.result.usage.get("pooled"))
            current = pool_mod.current_process_pool()
            assert current is not None and (pool is None or current is pool), "a second pool"
            pool = current
            mine = _containers(sandbox.client, f"alphaforge.pool_id={pool.pool_id}")
            peak = max(peak, len([c for c in mine if c["State"] == "running"]))
            pool.wait_ready(60)
        assert pooled_runs >= 5  # the pool was used (the first run may find it still filling)
        assert pool is not None
        assert pool.wait_ready(60)
        # idle ones only (the executed ones are being removed in the background)
        idle = wait_for(
            lambda: (
                n
                if (
                    n := [
                        c
                        for c in _containers(sandbox.client, f"alphaforge.pool_id={pool.pool_id}")
                        if not any(x.startswith("/af-run.") for x in c["Names"])
                    ]
                )
                and len(n) == pool.cap
                else None
            ),
            30,
            what="the pool back at its cap",
        )
        assert len(idle) == pool.cap == 2
        assert peak <= pool.cap + 1  # the cap, plus the one execution checked out
    finally:
        removed = pool_mod.shutdown_process_sandboxes()
    assert removed >= 0
    assert _containers(sandbox.client, f"alphaforge.owner={owner_label()}") == []


def test_an_unwatched_busy_loop_is_removed_at_its_deadline_by_the_timer(
    docker_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_mod, "STALE_GRACE_S", 1.0)
    run_id = f"spin-{uuid.uuid4().hex[:10]}"
    interval = 1.0
    sweeper = Sweeper(docker_engine, interval).start()
    try:
        t0 = time.time()
        container = _busy_container(docker_engine, run_id, wall_s=2)
        deadline = float(container.labels["alphaforge.deadline"])
        assert deadline <= t0 + 2 + 1 + 1
        container.reload()
        assert container.status == "running"
        wait_for(
            lambda: _containers(docker_engine, f"alphaforge.run_id={run_id}") == [],
            deadline - time.time() + interval + 5,
            interval_s=0.2,
            what="the overdue container to be swept",
        )
        assert time.time() >= deadline - 1  # not before its deadline either
    finally:
        sweeper.stop()
        for c in _containers(docker_engine, f"alphaforge.run_id={run_id}"):
            docker_engine.api.remove_container(c["Id"], force=True)


def test_a_claimed_pooled_container_goes_at_its_execution_deadline(docker_engine: Any) -> None:
    """A pooled container's labels carry its idle limit; the execution's deadline is in the name
    it gets when taken: the sweeper goes by that one."""
    run_id = f"claimed-{uuid.uuid4().hex[:10]}"
    container = _busy_container(docker_engine, run_id, wall_s=600)
    try:
        container.rename(claim_name(run_id, "spin", time.time() + 600))
        sweep(docker_engine)
        assert len(_containers(docker_engine, f"alphaforge.run_id={run_id}")) == 1
        container.rename(claim_name(run_id, "spin", time.time() - 1))
        sweep(docker_engine)
        assert _containers(docker_engine, f"alphaforge.run_id={run_id}") == []
    finally:
        for c in _containers(docker_engine, f"alphaforge.run_id={run_id}"):
            docker_engine.api.remove_container(c["Id"], force=True)


def test_leftovers_of_dead_owners_are_swept_when_a_server_starts(docker_engine: Any) -> None:
    run_id = f"left-{uuid.uuid4().hex[:10]}"
    host = socket.gethostname()
    dead = 999_999_999  # above any pid_max: a real dead pid may be reused meanwhile
    # a worker that died, a server that died (its worker's container), a previous boot's pid
    cases = {
        "dead-owner": {"alphaforge.owner": f"{host}:{dead}"},
        "dead-server": {"alphaforge.server": f"{host}:{dead}"},
        "old-boot": {"alphaforge.boot": "00000000"},
        "alive": {},
    }
    made = {}
    for name, labels in cases.items():
        try:
            made[name] = _busy_container(
                docker_engine, run_id, wall_s=600, labels={**labels, "alphaforge.node_id": name}
            )
        except docker.errors.APIError as exc:
            # Another test's server or worker, sweeping at that moment, removed the dead
            # owner's container between its creation and its start (Docker: "marked for
            # removal"): the very thing checked below; a live one is never swept.
            if name == "alive" or exc.status_code not in (404, 409):
                raise
    server = ServerSandboxes(interval_s=60)
    try:
        server.start()
        left = {
            c["Labels"]["alphaforge.node_id"]
            for c in _containers(docker_engine, f"alphaforge.run_id={run_id}")
        }
        assert left == {"alive"}
        assert os.environ[engine_mod.SERVER_ENV] == server.server
    finally:
        os.environ.pop(engine_mod.SERVER_ENV, None)
        if server.sweeper is not None:
            server.sweeper.stop()
        for c in made.values():
            with __import__("contextlib").suppress(Exception):
                c.remove(force=True)


EXITING = """
import sys, threading, time
from pathlib import Path
from dsl.ir import InputBinding, NodeIR
from runners.custom import CustomNodeManifest, ManifestCatalog
from runners.docker import DockerRunner

m = CustomNodeManifest(name="spin", version="1.0.0", language="python",
    inputs=[{"name": "x", "type": "series"}], outputs=[{"name": "r", "type": "metrics"}],
    code="def run(i, p):\\n    while True: pass\\n", resources={"wall_s": 60})
runner = DockerRunner(ManifestCatalog([m]), run_id=sys.argv[1], work_root=Path(sys.argv[2]),
    pool_size=int(sys.argv[4]))
node = NodeIR(id="spin", type="spin", version="1.0.0", inputs={"x": InputBinding(node="d",
    port="x")}, outputs={"r": "metrics"}, runtime="python", code_hash=m.code_hash())
threading.Thread(target=runner.run, args=(node, {"x": sys.argv[3]}),
    kwargs={"output_dir": Path(sys.argv[2]) / "out"}, daemon=True).start()
print("started", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("pool_size", [0, 2])
def test_a_process_stop_removes_its_running_and_pooled_containers(
    sandbox: Sandbox, pool_size: int
) -> None:
    """SIGTERM-free graceful stop: the process exits (SIGINT → KeyboardInterrupt → atexit) while
    its node spins; its running container and its pool go with it, not at their deadlines."""
    import signal

    run_id = f"exit-{uuid.uuid4().hex[:10]}"
    script = sandbox.tmp / "exiting.py"
    script.write_text(textwrap.dedent(EXITING))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(script),
            run_id,
            str(sandbox.tmp / "w"),
            str(sandbox.input_path),
            str(pool_size),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    owner = f"alphaforge.owner={socket.gethostname()}:{proc.pid}"
    try:
        wait_for(
            lambda: any(
                c["State"] == "running"
                for c in _containers(sandbox.client, owner)
                if c["Labels"].get("alphaforge.run_id") == run_id
                or any(n.startswith("/af-run.") for n in c["Names"])
            ),
            90,
            interval_s=0.2,
            what="the node's container to run",
        )
        if pool_size:
            wait_for(
                lambda: len(_containers(sandbox.client, owner, "alphaforge.pool=1")) >= 2,
                60,
                what="the pool to fill",
            )
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _containers(sandbox.client, owner) == [], proc.stdout.read() if proc.stdout else ""
