"""Faults of ``alphaforge serve`` mid-run, as an operator causes them (issue 10 items 4-5):

- ``serve`` stopped (SIGTERM) while a run runs: the worker drains — the run in flight
  completes (its record and, after the next start, its run row say completed) and ``serve``
  exits 0 — unless the run outlasts ``ALPHAFORGE_WORKER_DRAIN_S``: then the run ends failed
  with the reason in a sentence, Prefect says Crashed too, and the next run completes;
- the Prefect worker SIGKILLed while a run runs: the run ends failed, ``serve`` restarts the
  worker (a new pid, said on its terminal) and the next run completes.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments.flow import EXTRA_NODE_MODULES_ENV
from flows.record import list_runs
from tests.deployments.fixtures import pid_alive, wait_for
from tests.serve_process import Served, children, serve

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("serve")]

PASSWORD = "serve-faults-password"
ENV = {EXTRA_NODE_MODULES_ENV: "tests.deployments.slownodes"}
SLOW = 'pipeline slow_one "Slow"\n\ndata = t_bars(n=50)\nnap  = t_sleep(data.close, seconds={s})\n'
FINAL = ("completed", "failed", "cancelled")


class App:
    """The API of a running ``serve``, logged in as the admin."""

    def __init__(self, served: Served) -> None:
        self.base = served.base
        login = httpx.post(
            f"{self.base}/api/auth/login",
            json={"username": "admin", "password": PASSWORD},
            timeout=60,
        )
        assert login.status_code == 200, login.text
        self.headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        found = re.search(r"Prefect API:\s+(\S+)", served.output())
        assert found, served.output()
        self.prefect_api = found.group(1)
        self.streaming = threading.Event()

    def watch_logs(self, run_id: int) -> None:
        """Hold the run's live log stream open (as a run page does) until the server goes."""
        url = f"{self.base}/api/runs/{run_id}/logs/stream"
        with (
            contextlib.suppress(httpx.HTTPError),
            httpx.stream("GET", url, headers=self.headers, timeout=None) as resp,
        ):
            for _ in resp.iter_lines():
                self.streaming.set()

    def get(self, path: str) -> Any:
        resp = httpx.get(f"{self.base}{path}", headers=self.headers, timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def post(self, path: str, body: dict[str, Any], status: int) -> Any:
        resp = httpx.post(f"{self.base}{path}", json=body, headers=self.headers, timeout=30)
        assert resp.status_code == status, resp.text
        return resp.json()

    def start_slow_run(self, seconds: float = 300) -> dict[str, Any]:
        """A run whose ``nap`` node sleeps ``seconds``, once that node is running."""
        source = SLOW.format(s=seconds)
        pipeline = self.post("/api/pipelines", {"name": "slow", "source": source}, 201)
        run = self.post(f"/api/pipelines/{pipeline['id']}/runs", {}, 202)

        def napping() -> dict[str, Any] | None:
            got = self.get(f"/api/runs/{run['id']}")
            return got if got["node_states"].get("nap") == "running" else None

        return wait_for(napping, 180, interval_s=0.2, what="the slow node to start")  # type: ignore[no-any-return]

    def wait_final(self, run_id: int, timeout_s: float) -> dict[str, Any]:
        def final() -> dict[str, Any] | None:
            got = self.get(f"/api/runs/{run_id}")
            return got if got["status"] in FINAL else None

        return wait_for(final, timeout_s, what=f"run {run_id} to end")  # type: ignore[no-any-return]

    def sample_completes(self) -> None:
        listed = self.get("/api/pipelines")["items"]
        [sample] = [p for p in listed if p["name"] == "Moving Average Crossover (Sample)"]
        run = self.post(f"/api/pipelines/{sample['id']}/runs", {}, 202)
        final = self.wait_final(run["id"], 180)
        assert final["status"] == "completed", final["error"]
        assert final["metrics"]["num_trades"] == 30

    def prefect_state(self, flow_run_id: str) -> Any:
        from prefect.client.orchestration import SyncPrefectClient

        with SyncPrefectClient(api=self.prefect_api) as prefect:
            state = prefect.read_flow_run(flow_run_id).state
        assert state is not None
        return state


def _flow_run_pid(app: App, flow_run_id: str) -> int:
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(api=app.prefect_api) as prefect:
        flow_run = prefect.read_flow_run(flow_run_id)
    return int(str(flow_run.infrastructure_pid).rsplit(":", 1)[-1])


def test_serve_stopped_mid_run_drains_the_worker_and_the_run_completes(tmp_path: Path) -> None:
    """SIGTERM while a run has ~15 s to go: the worker takes no new run, waits for this one
    (drain bound 120 s), and serve exits 0 once it completed."""
    nap_s = 15
    env = {**ENV, "ALPHAFORGE_WORKER_DRAIN_S": "120"}
    with serve(tmp_path, PASSWORD, env=env) as served:
        app = App(served)
        run = app.start_slow_run(seconds=nap_s)
        flow_run_id = run["prefect_flow_run_id"]
        process = _flow_run_pid(app, flow_run_id)
        stopped = time.monotonic()
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(timeout=nap_s + 90) == 0
        took = time.monotonic() - stopped
        assert not pid_alive(process)
    # it waited for the nap (a stop without drain takes a few seconds), within the bound
    assert nap_s * 0.5 < took < 120, took
    assert "takes no new flow runs" in (tmp_path / "data" / "logs" / "worker.log").read_text()
    [record] = [r for r in list_runs(tmp_path / "data" / "runs") if r.flow_run_id == flow_run_id]
    assert record.status == "completed", record.error
    with serve(tmp_path, PASSWORD, env=env) as served:
        app = App(served)
        final = app.wait_final(run["id"], 60)
        assert final["status"] == "completed", final
        assert app.prefect_state(flow_run_id).is_completed()


def test_serve_stopped_past_the_drain_ends_the_run_and_the_next_start_runs(
    tmp_path: Path,
) -> None:
    env = {**ENV, "ALPHAFORGE_WORKER_DRAIN_S": "3"}  # the run has 300 s to go
    with serve(tmp_path, PASSWORD, env=env) as served:
        app = App(served)
        run = app.start_slow_run()
        process = _flow_run_pid(app, run["prefect_flow_run_id"])
        # a run page left open: its live log stream must not hold the stop
        watching = threading.Thread(target=app.watch_logs, args=(run["id"],), daemon=True)
        watching.start()
        wait_for(lambda: app.streaming.is_set(), 30, what="the log stream to open")
        stopped = time.monotonic()
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(timeout=90) == 0
        assert time.monotonic() - stopped < 45  # the API waits 5 s for open requests
        assert not pid_alive(process)
    with serve(tmp_path, PASSWORD, env=env) as served:
        app = App(served)
        final = app.wait_final(run["id"], 60)
        assert final["status"] == "failed", final
        assert final["error"].startswith("the run did not finish: "), final["error"]
        assert final["error"].endswith(
            "Run it again; if it happens again, the operators find the cause in the worker's log."
        )
        gone = "stopped before the run finished (the server or its worker was stopped or killed"
        assert gone in final["error"]
        assert final["node_states"]["nap"] != "running"
        state = app.prefect_state(run["prefect_flow_run_id"])
        # Prefect says the same, or (when its worker saw the process exit first) the exit code
        assert state.is_crashed(), state
        assert gone in state.message or "status code 143" in state.message, state
        app.sample_completes()


def test_a_killed_worker_is_restarted_and_the_next_run_completes(tmp_path: Path) -> None:
    with serve(tmp_path, PASSWORD, env=ENV) as served:
        app = App(served)
        run = app.start_slow_run()
        process = _flow_run_pid(app, run["prefect_flow_run_id"])

        def worker_pid() -> int | None:
            for pid in children(served.proc.pid):
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if b"deployments.drainworker" in argv and pid_alive(pid):
                    return pid
            return None

        old = worker_pid()
        assert old is not None
        os.kill(old, signal.SIGKILL)
        final = app.wait_final(run["id"], 120)
        assert final["status"] == "failed", final
        assert final["error"].startswith("the run did not finish: "), final["error"]
        assert "Run it again" in final["error"]
        wait_for(lambda: not pid_alive(process), 30, what="the orphaned flow-run process to end")
        new = wait_for(lambda: (p := worker_pid()) and p != old and p, 60, what="a new worker")
        assert new != old
        # the supervisor's lines may reach the output a moment after the new worker is seen
        exited = r"prefect worker exited \(code -9\); restarting in 0 s"
        restarted = rf"prefect worker restarted \(pid {new}, restart 1\)"
        wait_for(lambda: re.search(exited, served.output()), 30, what="the exit line")
        wait_for(lambda: re.search(restarted, served.output()), 30, what="the restart line")
        app.sample_completes()
