"""A flow run cancelled while its worker was starting its process does not run (flows.startguard).

The race, reproduced on a real Prefect server: the flow run is Pending (its worker took it),
the cancel records Cancelled, and then the process starts. Prefect's engine proposes Running
and the server accepts it after Cancelled; without the guard the run executes to the end."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.objects import State
from prefect.states import Cancelled, Cancelling, Pending, Running, Scheduled

from flows.startguard import cancel_before_start
from tests.flows.startguard_probe import probe

ROOT = Path(__file__).resolve().parents[2]


def _at(state: State, seconds: float) -> State:
    t0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    return state.model_copy(update={"timestamp": t0 + timedelta(seconds=seconds)})


def test_only_a_cancel_since_the_last_schedule_counts() -> None:
    sched, pend, canc, run = Scheduled(), Pending(), Cancelled(), Running()
    assert cancel_before_start([_at(sched, 0), _at(pend, 1), _at(run, 2)]) is None
    hit = cancel_before_start([_at(run, 3), _at(canc, 2), _at(pend, 1), _at(sched, 0)])
    assert hit is not None and hit.is_cancelled()  # in any order: by timestamp
    cancelling = cancel_before_start([_at(sched, 0), _at(pend, 1), _at(Cancelling(), 2)])
    assert cancelling is not None and cancelling.is_cancelling()
    # a retry (scheduled again after the cancel) runs
    retried = [_at(sched, 0), _at(pend, 1), _at(canc, 2), _at(Scheduled(), 3), _at(pend, 4)]
    assert cancel_before_start(retried) is None
    assert cancel_before_start([]) is None


def _process(
    api_url: str, flow_run_id: str, marker: Path, tmp: Path
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(tmp / "prefect-home"),
        "PREFECT__FLOW_RUN_ID": flow_run_id,
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "tests.flows.startguard_probe", str(marker)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def _history(client: SyncPrefectClient, flow_run_id: str) -> list[str]:
    states = sorted(client.read_flow_run_states(UUID(flow_run_id)), key=lambda s: s.timestamp)
    return [s.type.value for s in states]


@pytest.mark.xdist_group("prefect")
def test_a_run_cancelled_while_its_process_started_ends_cancelled_without_running(
    prefect_server: object, tmp_path: Path
) -> None:
    api_url: str = prefect_server.api_url  # type: ignore[attr-defined]
    with SyncPrefectClient(api=api_url) as client:
        cancelled = str(client.create_flow_run(probe, state=Scheduled()).id)
        client.set_flow_run_state(UUID(cancelled), Pending())  # the worker took it
        client.set_flow_run_state(UUID(cancelled), Cancelled(), force=True)  # the cancel
        retried = str(client.create_flow_run(probe, state=Scheduled()).id)
        for state in (Pending(), Cancelled(), Scheduled(), Pending()):  # cancelled, then retried
            client.set_flow_run_state(UUID(retried), state, force=True)
            time.sleep(0.01)  # distinct timestamps

        marker = tmp_path / "cancelled.ran"
        done = _process(api_url, cancelled, marker, tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "was cancelled before its process started" in done.stderr
        assert not marker.exists(), "the cancelled run executed its body"
        state = client.read_flow_run(UUID(cancelled)).state
        assert state is not None and state.is_cancelled(), state
        assert "before it started" in (state.message or "")
        # the race is real: the server took the engine's Running after the cancel
        assert _history(client, cancelled)[-3:] == ["CANCELLED", "RUNNING", "CANCELLED"]

        marker = tmp_path / "retried.ran"
        done = _process(api_url, retried, marker, tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        assert marker.read_text() == "ran"
        state = client.read_flow_run(UUID(retried)).state
        assert state is not None and state.is_completed(), state
