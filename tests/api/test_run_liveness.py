"""Runs whose process is gone (api.services.run_liveness) against the session's real Prefect
server: a dead marked process ends the flow run Crashed with the reason; an alive one is left
alone; without a marker the heartbeats decide (none for three intervals = gone); a run being
cancelled ends Cancelled."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.states import Cancelling, Running

from api.models.common import utcnow
from api.services import run_liveness
from api.services.run_liveness import end_gone_run, gone_reason
from flows.liveness import mark_process


@flow(name="liveness-probe")
def _probe() -> None:  # never executed: only its flow runs' states are driven
    return None


def _running(client: SyncPrefectClient) -> FlowRun:
    made = client.create_flow_run(_probe, name=f"probe-{time.monotonic_ns()}")
    client.set_flow_run_state(made.id, Running(), force=True)
    return client.read_flow_run(made.id)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def client(prefect_api: str) -> Any:
    run_liveness._last_check.clear()
    with SyncPrefectClient(api=prefect_api) as c:
        yield c


def test_a_run_whose_process_died_ends_crashed_with_the_reason(
    client: SyncPrefectClient, tmp_path: Path
) -> None:
    flow_run = _running(client)
    mark_process(tmp_path, _dead_pid())
    reason = gone_reason(client, flow_run, tmp_path, utcnow())
    assert reason is not None and "stopped before the run finished" in reason
    ended = end_gone_run(client, flow_run, reason)
    assert ended.state is not None and ended.state.type == StateType.CRASHED
    assert ended.state.message == reason
    assert gone_reason(client, ended, tmp_path, utcnow()) is None  # terminal: nothing to do


def test_an_alive_process_is_left_running(client: SyncPrefectClient, tmp_path: Path) -> None:
    flow_run = _running(client)
    mark_process(tmp_path)  # this test's process: alive
    assert gone_reason(client, flow_run, tmp_path, utcnow() + timedelta(hours=1)) is None
    assert client.read_flow_run(flow_run.id).state.type == StateType.RUNNING  # type: ignore[union-attr]


def test_without_a_marker_missing_heartbeats_decide(
    client: SyncPrefectClient, tmp_path: Path
) -> None:
    flow_run = _running(client)
    assert flow_run.start_time is not None
    start = flow_run.start_time
    # Prefect's default interval (180 s) with no beat yet: three are missed after 540 s
    assert gone_reason(client, flow_run, tmp_path, start + timedelta(seconds=530)) is None
    # looked at again 11 s later: too soon (at most every 15 s per run), though it is gone now
    assert gone_reason(client, flow_run, tmp_path, start + timedelta(seconds=541)) is None
    reason = gone_reason(client, flow_run, tmp_path, start + timedelta(seconds=546))
    assert reason == (
        "its flow-run process stopped sending heartbeats 546 s ago (every 180 s expected): "
        "the worker or its machine stopped while the run was running"
    )


def test_a_run_being_cancelled_whose_process_died_ends_cancelled(
    client: SyncPrefectClient, tmp_path: Path
) -> None:
    flow_run = _running(client)
    client.set_flow_run_state(flow_run.id, Cancelling(), force=True)
    flow_run = client.read_flow_run(flow_run.id)
    mark_process(tmp_path, _dead_pid())
    reason = gone_reason(client, flow_run, tmp_path, utcnow())
    assert reason is not None
    ended = end_gone_run(client, flow_run, reason)
    assert ended.state is not None and ended.state.type == StateType.CANCELLED
    assert ended.state.message == "cancelled"  # what the cancel asked for, not a fault
