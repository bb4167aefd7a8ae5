"""Location independence: a web run executes on a worker that shares only the Prefect server and
the store with the API (its own working directory, its own data dir, its own work pool), and
the API shows the run's results and logs from the store."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prefect.client.orchestration import SyncPrefectClient

from api.settings import ApiSettings
from deployments.stack import Worker
from tests.api.conftest import SECRET, Account
from tests.api.test_datasets import upload
from tests.deployments.fixtures import STACK_GROUP, Stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(STACK_GROUP)]

ROOT = Path(__file__).resolve().parents[2]
SOURCE = """pipeline remote_one "Runs elsewhere"

data   = dataset_ohlcv(name="walk")
fast   = sma(data.close, window=5)
slow   = sma(data.close, window=20)
signal = crossover(fast, slow)
result = backtest(data, signal, cash=10_000, fee_bps=1)
"""


def _walk_csv(n: int = 400) -> str:
    rng = pd.Series(range(n), dtype=float)
    close = 100 + (rng * 0.37).apply(lambda x: (x % 7) - 3.0).cumsum() * 0.5
    ts = pd.date_range("2024-01-01", periods=n, freq="D")
    rows = [
        f"{t.date()},{c:.4f},{c + 1:.4f},{c - 1:.4f},{c + 0.2:.4f},{1000 + i}\n"
        for i, (t, c) in enumerate(zip(ts, close, strict=True))
    ]
    return "ts,open,high,low,close,volume\n" + "".join(rows)


@pytest.fixture
def pool() -> str:
    """A work pool of the test's own: only the remote worker takes its flow runs."""
    return f"remote-{secrets.token_hex(3)}"


@pytest.fixture
def api_settings(db_url: str, tmp_path: Path, prefect_stack: Stack, pool: str) -> ApiSettings:
    """The API's own data dir, a store elsewhere, web runs to the remote pool."""
    return ApiSettings(
        data_dir=tmp_path / "api-data",
        store_url=(tmp_path / "store").as_uri(),
        database_url=db_url,
        secret_key=SECRET,
        ui_dist_dir=tmp_path / "no-ui",
        prefect_api_url=prefect_stack.api_url,
        work_pool=pool,
    )


@pytest.fixture
def remote(prefect_stack: Stack, tmp_path: Path, pool: str) -> Iterator[tuple[Worker, Path]]:
    """A worker on the test's pool, started in another directory with another data dir."""
    cwd, data = tmp_path / "elsewhere", tmp_path / "worker-data"
    cwd.mkdir()
    worker = Worker(
        prefect_stack.api_url,
        tmp_path / "worker-prefect",
        tmp_path / "remote-worker.log",
        pool=pool,
        cwd=cwd,
        extra_env={"ALPHAFORGE_DATA_DIR": str(data), "PREFECT_LOGGING_LEVEL": "INFO"},
    )
    try:
        worker.wait_ready()
        yield worker, data
    finally:
        worker.stop()


def test_a_web_run_executes_on_a_worker_that_shares_only_prefect_and_the_store(
    client: TestClient,
    alice: Account,
    api_settings: ApiSettings,
    prefect_stack: Stack,
    remote: tuple[Worker, Path],
    pool: str,
    tmp_path: Path,
) -> None:
    worker, worker_data = remote
    settings = api_settings
    assert upload(client, alice, "walk", _walk_csv()).status_code == 201
    resp = client.post(
        "/api/pipelines", json={"name": "remote", "source": SOURCE}, headers=alice.headers
    )
    assert resp.status_code == 201, resp.text
    pid = resp.json()["id"]
    started = client.post(f"/api/pipelines/{pid}/runs", json={}, headers=alice.headers)
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]

    def ended() -> dict | None:
        run = client.get(f"/api/runs/{run_id}", headers=alice.headers).json()
        return run if run["status"] in ("completed", "failed", "cancelled") else None

    run = wait_for(ended, 240, what="the remote run to end")
    assert run["status"] == "completed", (run["error"], worker.tail())

    # the flow run went to the remote pool and carried no path of the API's data dir
    with SyncPrefectClient(api=prefect_stack.api_url) as prefect:
        flow_run = prefect.read_flow_run(run["prefect_flow_run_id"])
    assert flow_run.work_pool_name == pool
    params = json.dumps(flow_run.parameters)
    assert str(settings.root) not in params
    spec = flow_run.parameters["spec"]
    assert spec["base_dir"] == "store:workspace"
    assert spec["datasets"]["walk"].startswith("store:datasets/")

    # the worker wrote into the store, never into the API's data dir or its own cwd
    run_dir = settings.store_root / "runs" / run["run_key"] if "run_key" in run else None
    stored = list((settings.store_root / "runs").iterdir())
    assert len(stored) == 1 and (stored[0] / "run.json").exists()
    assert run_dir is None or run_dir == stored[0]
    assert not (settings.root / "runs").exists()
    assert not (tmp_path / "elsewhere" / "runs").exists()
    assert not (worker_data / "runs").exists()

    results = client.get(f"/api/runs/{run_id}/results", headers=alice.headers).json()
    assert results["metrics"]["bars"] == 400 and results["metrics"]["num_trades"] > 0
    assert len(results["equity"]) == 400
    logs = client.get(f"/api/runs/{run_id}/logs", headers=alice.headers).json()
    assert any(line["node_id"] == "data" and "400 bars" in line["message"] for line in logs)
    assert set(run["node_states"].values()) == {"completed"}
