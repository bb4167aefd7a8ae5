"""Sweeps against the session's real Prefect server and worker: a trial opened as a run runs
with the trial's params; a sweep whose flow run crashed while ``sweep.json`` says running is
failed with the reason; a cancel ends the flow run and the record."""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path
from uuid import UUID

import optuna
import pytest
from fastapi.testclient import TestClient
from prefect import flow
from prefect.client.orchestration import SyncPrefectClient
from prefect.states import Crashed, Running, Scheduled
from sqlmodel import Session

from api.models.run import Run
from api.models.sweep import Sweep
from api.services.prefect_client import child_flow_run_ids
from api.services.sweeps import optuna_storage
from api.settings import ApiSettings
from flows.sweepspec import read_sweep_record, read_trials
from tests.api.conftest import Account
from tests.api.stack import api_settings
from tests.api.sweep_dirs import SAMPLE, SWEPT, grid, write_sweep
from tests.deployments.fixtures import STACK_GROUP, Stack, pid_alive, wait_for

__all__ = ["api_settings"]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(STACK_GROUP)]
CHUNKS_STOP_S = 30.0  # a cancelled sweep's chunks end within this, even on a loaded machine


@flow(name="af-test-sweep-stand-in")
def _stand_in() -> None:
    """A flow that never runs: its flow runs stand for a sweep's parent in Prefect."""


def _pipeline(client: TestClient, who: Account) -> int:
    resp = client.post("/api/pipelines", json={"name": "sma_sweep", "source": SWEPT},
                       headers=who.headers)  # fmt: skip
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def _stored(client: TestClient, owner: Account, pid: int, key: str, flow_run_id: str | None,
            **kw: object) -> int:  # fmt: skip
    settings = client.app.state.settings  # type: ignore[attr-defined]
    write_sweep(settings.store_root, key, flow_run_id=flow_run_id, **kw)  # type: ignore[arg-type]
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        row = Sweep(sweep_key=key, pipeline_id=pid, version=1, owner_id=owner.id,
                    started_by_id=owner.id, status=str(kw.get("status", "completed")),
                    prefect_flow_run_id=flow_run_id, ir_hash="0" * 64)  # fmt: skip
        session.add(row)
        session.commit()
        return row.id or 0


def _ended(client: SyncPrefectClient, flow_run_id: str) -> bool:
    state = client.read_flow_run(UUID(flow_run_id)).state
    return state is not None and state.is_final()


def _a_chunk_running(client: SyncPrefectClient, parent: str) -> bool:
    """Whether one of the parent's chunk flow runs is Running in its worker process."""
    for child in child_flow_run_ids(client, parent):
        run = client.read_flow_run(UUID(child))
        if run.state is not None and run.state.is_running() and run.infrastructure_pid:
            return True
    return False


def _flow_run(stack: Stack, state: object) -> str:
    with SyncPrefectClient(api=stack.api_url) as client:
        return str(client.create_flow_run(_stand_in, state=state).id)  # type: ignore[arg-type]


def test_a_trial_opens_as_a_run_with_the_trials_params(
    client: TestClient, alice: Account, api_settings: object
) -> None:
    pid = _pipeline(client, alice)
    sid = _stored(client, alice, pid, "20261205-120000-000-t00001", None)
    trial = next(i for i, p in enumerate(grid()) if p == {"fast.window": 20, "slow.window": 100})
    resp = client.post(f"/api/sweeps/{sid}/trials/{trial}/run", headers=alice.headers)
    assert resp.status_code == 202, resp.text
    run_id = resp.json()["id"]
    assert resp.json()["sweep"] == {"sweep_id": sid, "trial": trial, "fold": None}

    def final() -> dict | None:
        run = client.get(f"/api/runs/{run_id}", headers=alice.headers).json()
        return run if run["status"] in ("completed", "failed", "cancelled") else None

    run = wait_for(final, 120, what=f"run {run_id} to end")
    assert run["status"] == "completed", run
    assert run["sweep"] == {"sweep_id": sid, "trial": trial, "fold": None}, "it names its sweep"
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        key = session.get(Run, run_id).run_key  # type: ignore[union-attr]
    settings = client.app.state.settings  # type: ignore[attr-defined]
    ir = json.loads((Path(settings.runs_dir) / key / "ir.json").read_text())
    params = {n["id"]: n["params"] for n in ir["nodes"]}
    assert params["fast"]["window"] == 20 and params["slow"]["window"] == 100
    results = client.get(f"/api/runs/{run_id}/results", headers=alice.headers).json()
    assert results["equity"], "the trial's run has an equity curve to chart"


def test_a_run_opened_from_a_walkforward_trial_names_its_sweep_trial_and_fold(
    client: TestClient, alice: Account, api_settings: object
) -> None:
    pid = _pipeline(client, alice)
    sid = _stored(client, alice, pid, "20261205-120000-000-t00002", None, walkforward=True)
    resp = client.post(f"/api/sweeps/{sid}/trials/2/run?fold=1", headers=alice.headers)
    assert resp.status_code == 202, resp.text
    run_id = resp.json()["id"]
    origin = {"sweep_id": sid, "trial": 2, "fold": 1}
    assert client.get(f"/api/runs/{run_id}", headers=alice.headers).json()["sweep"] == origin
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        run = session.get(Run, run_id)
        assert run is not None and (run.sweep_id, run.sweep_trial, run.sweep_fold) == (sid, 2, 1)
    # a plain run names no sweep
    plain = client.post(f"/api/pipelines/{pid}/runs", headers=alice.headers)
    assert plain.status_code == 202, plain.text
    assert plain.json()["sweep"] is None


def test_a_sweep_whose_flow_run_crashed_is_failed_with_the_reason(
    client: TestClient, alice: Account, prefect_stack: Stack, api_settings: object
) -> None:
    flow_run_id = _flow_run(prefect_stack, Running())
    with SyncPrefectClient(api=prefect_stack.api_url) as pc:
        pc.set_flow_run_state(flow_run_id, Crashed(message="the worker was killed"), force=True)
    pid = _pipeline(client, alice)
    key = "20261205-120000-000-c00001"
    sid = _stored(client, alice, pid, key, flow_run_id, status="running", done=4)
    body = client.get(f"/api/sweeps/{sid}", headers=alice.headers).json()
    assert body["status"] == "failed"
    assert "the worker was killed" in body["error"]
    assert body["record"]["status"] == "failed" and body["done"] == 4
    settings = client.app.state.settings  # type: ignore[attr-defined]
    record = read_sweep_record(settings.store_root / "sweeps" / key)
    assert record is not None and record.status == "failed"  # resume and the CLI see it too
    listed = client.get("/api/sweeps", headers=alice.headers).json()["items"]
    assert listed[0]["status"] == "failed"


def test_cancel_ends_the_flow_run_and_the_record_cancelled(
    client: TestClient, alice: Account, observer: Account, prefect_stack: Stack,
    api_settings: object,
) -> None:  # fmt: skip
    flow_run_id = _flow_run(prefect_stack, Scheduled())
    pid = _pipeline(client, alice)
    key = "20261205-120000-000-x00001"
    sid = _stored(client, alice, pid, key, flow_run_id, status="running", done=2)
    assert client.post(f"/api/sweeps/{sid}/cancel", headers=observer.headers).status_code == 403
    resp = client.post(f"/api/sweeps/{sid}/cancel", headers=alice.headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "cancelled"
    with SyncPrefectClient(api=prefect_stack.api_url) as pc:
        state = pc.read_flow_run(UUID(flow_run_id)).state
    assert state is not None and state.is_cancelled()
    settings = client.app.state.settings  # type: ignore[attr-defined]
    record = read_sweep_record(settings.store_root / "sweeps" / key)
    assert record is not None and record.status == "cancelled"
    # a stopped sweep can be resumed only by those who may run it
    assert client.post(f"/api/sweeps/{sid}/resume", headers=observer.headers).status_code == 403


SMALL = SWEPT.replace("[5, 10, 20, 40]", "[5, 10, 20]").replace("[30, 50, 100, 200]", "[30, 50]")


def test_a_sweep_started_over_the_api_runs_on_the_worker_to_completion(
    client: TestClient, alice: Account, observer: Account, api_settings: object
) -> None:
    """The grid fast.window in [5, 10, 20] × slow.window in [30, 50] (fast < slow: 6 trials)
    on the bundled sample data, through the sweep deployment."""
    resp = client.post("/api/pipelines", json={"name": "sma_small", "source": SMALL},
                       headers=alice.headers)  # fmt: skip
    pid = resp.json()["id"]
    started = client.post(f"/api/pipelines/{pid}/sweeps", json={}, headers=alice.headers)
    assert started.status_code == 202, started.text
    sweep = started.json()
    assert sweep["status"] in ("pending", "running") and sweep["prefect_flow_run_id"]
    assert sweep["n_trials"] == 6 and sweep["executor"] == "pool"
    sid = sweep["id"]

    def final() -> dict | None:
        body = client.get(f"/api/sweeps/{sid}", headers=observer.headers).json()
        return body if body["status"] in ("completed", "failed", "cancelled") else None

    body = wait_for(final, 300, what=f"sweep {sid} to end")
    assert body["status"] == "completed", body
    assert body["done"] == 6 and body["n_trials"] == 6
    best = body["record"]["best"]
    assert best["params"]["fast.window"] < best["params"]["slow.window"]
    assert body["record"]["overfit"]["n_trials"] == 6
    trials = client.get(f"/api/sweeps/{sid}/trials?sort=objective&order=desc",
                        headers=alice.headers).json()  # fmt: skip
    assert trials["total"] == 6
    assert trials["items"][0]["objective"] == pytest.approx(best["objective"])
    hm = client.get(f"/api/sweeps/{sid}/heatmap?x=fast.window&y=slow.window",
                    headers=alice.headers).json()  # fmt: skip
    assert hm["x"] == [5, 10, 20] and hm["y"] == [30, 50]
    assert sum(c["trial"] is not None for row in hm["cells"] for c in row) == 6
    listed = client.get(f"/api/sweeps?pipeline_id={pid}", headers=alice.headers).json()
    assert listed["items"][0]["status"] == "completed" and listed["items"][0]["done"] == 6


OPTUNA = (
    SAMPLE.replace("pipeline sma_crossover", "pipeline sma_optuna")
    + """
sweep optuna(trials=4, seed=3) {
    fast.window = int(3, 20)
    objective maximize result.sharpe
}
"""
)


def test_an_optuna_sweep_keeps_its_study_in_the_platforms_postgresql(
    client: TestClient, alice: Account, api_settings: ApiSettings
) -> None:
    """Optuna on the app's database (its own schema): the sweep completes on the worker and
    its study is there, with every trial told."""
    resp = client.post("/api/pipelines", json={"name": "sma_optuna", "source": OPTUNA},
                       headers=alice.headers)  # fmt: skip
    assert resp.status_code == 201, resp.text
    started = client.post(f"/api/pipelines/{resp.json()['id']}/sweeps", headers=alice.headers)
    assert started.status_code == 202, started.text
    sid = started.json()["id"]

    def final() -> dict | None:
        body = client.get(f"/api/sweeps/{sid}", headers=alice.headers).json()
        return body if body["status"] in ("completed", "failed", "cancelled") else None

    body = wait_for(final, 300, what=f"sweep {sid} to end")
    assert body["status"] == "completed", body
    assert body["done"] == 4 and body["method"] == "optuna"
    storage = optuna_storage(api_settings)
    assert storage is not None and api_settings.db_url.startswith("postgresql")
    study = optuna.load_study(study_name=body["sweep_key"], storage=storage)
    told = [t for t in study.trials if t.state.is_finished()]
    assert len(told) == 4 and study.best_value == pytest.approx(body["best_objective"])


SLOW = """pipeline slow_sweep "Slow sweep"

data   = csv_ohlcv(path="data/sample_ohlcv.csv")
fast   = sma(data.close, window=10)
nap    = t_sleep(fast, seconds=3)
slow   = sma(data.close, window=30)
signal = crossover(nap, slow)
result = backtest(data, signal, cash=100_000, fee_bps=5, slippage_bps=2)

sweep grid {
    nap.seconds = [3.0, 3.1, 3.2, 3.3, 3.4, 3.5, 3.6, 3.7]
    objective maximize result.sharpe
}
"""


def test_a_running_sweep_cancels_with_its_chunks_and_resumes_only_the_missing_trials(
    client: TestClient, alice: Account, prefect_stack: Stack, api_settings: object
) -> None:
    resp = client.post("/api/pipelines", json={"name": "slow_sweep", "source": SLOW},
                       headers=alice.headers)  # fmt: skip
    assert resp.status_code == 201, resp.text
    pid = resp.json()["id"]
    sid = client.post(f"/api/pipelines/{pid}/sweeps", json={}, headers=alice.headers).json()["id"]
    parent = wait_for(
        lambda: client.get(f"/api/sweeps/{sid}", headers=alice.headers).json()[
            "prefect_flow_run_id"
        ],
        120,
        what=f"sweep {sid}'s flow run",
    )
    with SyncPrefectClient(api=prefect_stack.api_url) as pc:
        # cancel while a chunk runs its trials on the worker (each chunk: 4 trials of 3 s)
        wait_for(partial(_a_chunk_running, pc, parent), 120, what="a chunk to run")
        cancelled = client.post(f"/api/sweeps/{sid}/cancel", headers=alice.headers)
        asked = time.monotonic()
        assert cancelled.status_code == 200, cancelled.text
        # A user expects the chunks to stop within seconds: each chunk flow run ends
        # Cancelled (its process gone) well inside CHUNKS_STOP_S, even on a loaded machine
        # (they took minutes when a Cancelling the worker never acted on waited for the
        # server's five-minute timeout).
        children = child_flow_run_ids(pc, parent)
        assert children
        for child in children:
            wait_for(partial(_ended, pc, child), CHUNKS_STOP_S, 0.25, what=f"chunk {child}")
        took = time.monotonic() - asked
        print(f"the chunks ended {took:.1f} s after the cancel")  # shown with -s
        assert took < CHUNKS_STOP_S
        for child in children:
            run = pc.read_flow_run(UUID(child))
            assert run.state is not None and run.state.is_cancelled(), (child, run.state)
            if run.infrastructure_pid:  # (none when the cancel came before its process)
                pid = int(str(run.infrastructure_pid).rsplit(":", 1)[-1])
                wait_for(lambda p=pid: not pid_alive(p), 5, 0.1, what=f"chunk process {pid}")

        def ended() -> dict | None:
            body = client.get(f"/api/sweeps/{sid}", headers=alice.headers).json()
            return body if body["status"] not in ("pending", "running") else None

        body = wait_for(ended, 60, what=f"sweep {sid} to stop")
        assert body["status"] == "cancelled", body
        assert body["done"] < 8
        assert body["prefect_flow_run_id"] == parent
        # The flow writes "cancelled" as it stops; Prefect marks the run Cancelled once the
        # worker sees its process gone, a moment later.
        wait_for(partial(_ended, pc, parent), 60, what="the parent flow run")
        state = pc.read_flow_run(UUID(parent)).state
        assert state is not None and state.is_cancelled(), state

    resumed = client.post(f"/api/sweeps/{sid}/resume", headers=alice.headers)
    assert resumed.status_code == 202, resumed.text
    assert resumed.json()["prefect_flow_run_id"] != parent
    body = wait_for(ended, 300, what=f"resumed sweep {sid} to end")
    assert body["status"] == "completed", (body["error"], body["record"])
    assert body["done"] == 8
    settings = client.app.state.settings  # type: ignore[attr-defined]
    rows = list(read_trials(settings.store_root / "sweeps" / body["sweep_key"]))
    assert sorted(r.trial for r in rows) == list(range(8))  # finished trials were not rerun
