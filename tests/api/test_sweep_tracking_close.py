"""A sweep whose processes died, against the session's real Prefect server and a real MLflow
store: a chunk flow run whose process is gone is ended Crashed with the reason (its parent no
longer waits for it), while a live chunk and the live parent are left alone; once the parent's
process is gone too, the sweep ends failed and its MLflow parent run, left RUNNING by the dead
process, is ended KILLED with a tag saying why — its FINISHED and FAILED trial runs untouched.
A pipeline run's MLflow run is closed the same way."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from prefect import flow
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.objects import StateType
from prefect.states import Running
from sqlmodel import Session

from api.models.sweep import Sweep
from api.services import run_liveness
from api.services.run_tracking_close import close_tracked_runs
from api.settings import ApiSettings
from flows.liveness import mark_process
from flows.mlflow_batch import FinishedRun, log_finished_runs
from flows.sweepspec import process_dir, read_sweep_record, sweep_dir, write_json_atomic
from flows.tracking import KILLED_REASON_TAG, mlflow_client
from tests.api.conftest import Account, settings_for
from tests.api.sweep_dirs import trial_rows, write_sweep
from tests.api.test_sweeps_prefect import _pipeline
from tests.deployments.fixtures import wait_for

pytestmark = pytest.mark.slow

KEY = "20261207-120000-000-k00001"
DIED = "stopped before the run finished"


@flow(name="af-test-sweep-tracking-stand-in")
def _stand_in() -> None:
    """Never runs: its flow runs stand for a sweep's parent and chunks in Prefect."""


@pytest.fixture
def api_settings(db_url: str, tmp_path: Path, prefect_api: str) -> ApiSettings:
    return settings_for(db_url, tmp_path, prefect_api_url=prefect_api)


@pytest.fixture
def prefect(prefect_api: str) -> Iterator[SyncPrefectClient]:
    run_liveness._last_check.clear()
    with SyncPrefectClient(api=prefect_api) as client:
        yield client


def _running(prefect: SyncPrefectClient) -> str:
    made = prefect.create_flow_run(_stand_in, name=f"stand-in-{time.monotonic_ns()}")
    prefect.set_flow_run_state(made.id, Running(), force=True)
    return str(made.id)


def _state(prefect: SyncPrefectClient, flow_run_id: str) -> Any:
    return prefect.read_flow_run(UUID(flow_run_id)).state


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _tracked_sweep(uri: str) -> tuple[str, dict[int, str]]:
    """The sweep's MLflow runs as its parent flow leaves them when its process dies: the
    parent RUNNING, the trials written so far ended (FINISHED, trial 3 FAILED)."""
    client = mlflow_client(uri)
    experiment = client.create_experiment("sma_sweep")
    tags = {"alphaforge.sweep_id": KEY, "alphaforge.kind": "sweep"}
    parent = client.create_run(experiment, tags=tags).info.run_id
    rows = trial_rows(5)
    trials = [
        FinishedRun(
            name=f"trial-{r.trial}",
            tags={
                "mlflow.parentRunId": parent,
                "alphaforge.sweep_id": KEY,
                "alphaforge.trial": f"{r.trial}",
            },
            metrics={k: v for k, v in r.metrics.items() if v is not None},
            status="FINISHED" if r.status == "completed" else "FAILED",
        )
        for r in rows
    ]
    ids = log_finished_runs(client, experiment, trials)
    return parent, {r.trial: i for r, i in zip(rows, ids, strict=True)}


def _if_killed(run: Any) -> Any:
    return run if run.info.status == "KILLED" else None


def test_dead_chunks_crash_and_a_dead_sweeps_mlflow_parent_ends_killed_with_the_reason(
    client: TestClient, alice: Account, prefect: SyncPrefectClient, api_settings: ApiSettings
) -> None:
    pipeline_id = _pipeline(client, alice)
    parent_run, dead_chunk, live_chunk = (_running(prefect) for _ in range(3))
    folder = write_sweep(api_settings.store_root, KEY, status="running", done=5,
                         flow_run_id=parent_run)  # fmt: skip
    assert folder == sweep_dir(api_settings.store_root, KEY)
    parent_mlflow, trial_runs = _tracked_sweep(api_settings.mlflow_uri)
    record = read_sweep_record(folder)
    assert record is not None
    record.chunk_flow_run_ids = [dead_chunk, live_chunk]
    record.mlflow_run_id = parent_mlflow
    write_json_atomic(folder / "sweep.json", record.model_dump(mode="json"))
    mark_process(process_dir(folder, dead_chunk), _dead_pid())  # its worker was killed
    mark_process(process_dir(folder, live_chunk))  # this process: alive
    mark_process(process_dir(folder, parent_run))  # alive too, for now
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        row = Sweep(sweep_key=KEY, pipeline_id=pipeline_id, version=1, owner_id=alice.id,
                    started_by_id=alice.id, status="running", prefect_flow_run_id=parent_run,
                    ir_hash="0" * 64)  # fmt: skip
        session.add(row)
        session.commit()
        sid = row.id

    body = client.get(f"/api/sweeps/{sid}", headers=alice.headers).json()
    crashed = _state(prefect, dead_chunk)
    assert crashed.type == StateType.CRASHED, crashed
    assert DIED in crashed.message and "a chunk of the sweep" in crashed.message
    assert _state(prefect, live_chunk).type == StateType.RUNNING
    assert _state(prefect, parent_run).type == StateType.RUNNING
    assert body["status"] == "running", body  # the parent goes on (and owns its MLflow run)
    tracking = mlflow_client(api_settings.mlflow_uri)
    assert tracking.get_run(parent_mlflow).info.status == "RUNNING"

    mark_process(process_dir(folder, parent_run), _dead_pid())  # now the parent's died too
    run_liveness._last_check.clear()
    body = client.get(f"/api/sweeps/{sid}", headers=alice.headers).json()
    assert _state(prefect, parent_run).type == StateType.CRASHED
    assert body["status"] == "failed" and DIED in body["error"], body
    # ended by whichever pass stored the sweep's end: this read's, or the app's status loop's
    ended = wait_for(lambda: _if_killed(tracking.get_run(parent_mlflow)), 30, what="KILLED")
    assert DIED in ended.data.tags[KILLED_REASON_TAG]
    assert ended.info.end_time is not None
    statuses = {n: tracking.get_run(i) for n, i in trial_runs.items()}
    assert {n: r.info.status for n, r in statuses.items()} == {
        0: "FINISHED", 1: "FINISHED", 2: "FINISHED", 3: "FAILED", 4: "FINISHED"
    }  # fmt: skip
    assert not any(KILLED_REASON_TAG in r.data.tags for r in statuses.values())
    # the next pass finds nothing left to end
    assert client.get(f"/api/sweeps/{sid}", headers=alice.headers).json()["status"] == "failed"


def test_a_runs_running_mlflow_run_ends_killed_with_the_reason(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert close_tracked_runs(uri, "no-such-run") == []  # no store yet: nothing opened one
    client = mlflow_client(uri)
    experiment = client.create_experiment("p")
    tags = {"alphaforge.run_id": "r1"}
    running = client.create_run(experiment, tags=tags).info.run_id
    finished = client.create_run(experiment, tags=tags).info.run_id
    client.set_terminated(finished, "FINISHED")
    other = client.create_run(experiment, tags={"alphaforge.run_id": "r2"}).info.run_id
    assert close_tracked_runs(uri, "r1", "the worker was killed") == [running]
    assert client.get_run(running).info.status == "KILLED"
    assert client.get_run(running).data.tags[KILLED_REASON_TAG] == "the worker was killed"
    assert client.get_run(finished).info.status == "FINISHED"
    assert KILLED_REASON_TAG not in client.get_run(finished).data.tags
    assert client.get_run(other).info.status == "RUNNING"
