"""Scale-out on one machine, as on many (issue 16 item 3): a real Prefect server on PostgreSQL,
two ``prefect worker start`` processes (distinct names) on the one process work pool, sharing
the store, the MLflow tracking store and the app's database, and the API started in-process
against them, as ``serve`` or a production API is.

- runs submitted through the web deployment are spread over both workers;
- a sweep on the ``pool`` executor has its chunks run on both, each trial once;
- a worker SIGKILLed mid-run (with its flow-run process) leaves the run Crashed in Prefect and
  failed in the app within the liveness window, its MLflow run not left running; the retry (the
  same version started again) completes on the other worker with one result set.

The Dask task runner path of sweeps (prefect-dask on a ``distributed.LocalCluster``) is covered
by ``tests/flows/test_sweep_engine.py::test_the_dask_path_gives_the_local_paths_trials_and_best``.

Which worker took a flow run is read from the workers' own logs ("Worker 'NAME' submitting
flow run 'ID'", the line Prefect's worker logs for each flow run it starts).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
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
from api.services.prefect_client import child_flow_run_ids
from api.services.users import create_user
from deployments.deploy import ensure_sweep_deployments, ensure_web_deployment
from deployments.flow import EXTRA_NODE_MODULES_ENV
from deployments.stack import CONSOLE_LEVEL_ENV, PrefectServer, Worker, prefect_database_url
from flows.sweepspec import read_trials
from tests.api.conftest import settings_for
from tests.api.sweep_dirs import SWEPT
from tests.deployments.fixtures import wait_for
from tests.pgdb import PG_ADMIN_DSN, scratch_database

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("scale_out")]

WORKERS = ("af-scale-a", "af-scale-b")
LIMIT = 3  # flow runs at once per worker: N > LIMIT runs submitted together reach both
FINAL = ("completed", "failed", "cancelled")
SHORT = (
    'pipeline scale_short "Short"\n\n'
    'data = csv_ohlcv(path="data/sample_ohlcv.csv")\n'
    "fast = sma(data.close, window=10)\n"
    "slow = sma(data.close, window=30)\n"
    "signal = crossover(fast, slow)\n"
    "result = backtest(data, signal, cash=100_000, fee_bps=5, slippage_bps=2)\n"
    "nap = t_sleep(data.close, seconds=3)\n"
)
SLOW = SHORT.replace("scale_short", "scale_slow").replace('"Short"', '"Slow"')
SLOW = SLOW.replace("seconds=3", "seconds=20")


@dataclass
class Cluster:
    """The running pieces: the API client (a developer's headers), the two workers, Prefect."""

    client: TestClient
    headers: dict[str, str]
    workers: dict[str, Worker]
    api_url: str
    settings: Any


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Prefect on PostgreSQL, the deployments, two workers sharing the store, the API."""
    from tests.flows.testnodes import install, uninstall

    root = tmp_path_factory.mktemp("scale-out")
    with contextlib.ExitStack() as stack:
        app_url = stack.enter_context(scratch_database("af_scale", migrate=True))
        prefect_url = prefect_database_url(app_url)
        assert prefect_url is not None
        stack.callback(_drop, prefect_url.rsplit("/", 1)[1].split("?")[0])
        saved = os.environ.get("PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED")
        os.environ["PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED"] = "false"
        try:
            server = PrefectServer(root / "prefect", ui=False, database_url=prefect_url)
        finally:
            if saved is None:
                os.environ.pop("PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED")
            else:
                os.environ["PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED"] = saved
        stack.callback(server.stop)
        server.wait_ready()
        with SyncPrefectClient(api=server.api_url) as prefect:
            ensure_web_deployment(prefect)
            ensure_sweep_deployments(prefect)
        data = root / "data"
        mlflow_uri = f"sqlite:///{root / 'mlflow.db'}"
        settings = settings_for(
            app_url,
            root,
            prefect_api_url=server.api_url,
            mlflow_tracking_uri=mlflow_uri,
            sweep_workers=4,
        )
        assert settings.data_dir == data
        # what production shares between machines: the store (the data dir here), the
        # tracking store and the database; each worker has a home of its own
        shared = {
            EXTRA_NODE_MODULES_ENV: "tests.deployments.slownodes",
            "PREFECT_LOGGING_LEVEL": "INFO",
            "ALPHAFORGE_DATA_DIR": str(data),
            "ALPHAFORGE_MLFLOW_TRACKING_URI": mlflow_uri,
            "ALPHAFORGE_DATABASE_URL": app_url,
        }
        workers: dict[str, Worker] = {}
        # as after an in-process `alphaforge run` (it quiets Prefect's console for its
        # terminal): the workers' logs must still say which flow runs they submitted
        quieted = os.environ.get(CONSOLE_LEVEL_ENV)
        os.environ[CONSOLE_LEVEL_ENV] = "CRITICAL"
        try:
            for name in WORKERS:
                home = root / name
                worker = Worker(
                    server.api_url, home, home / "worker.log", name=name, extra_env=shared,
                    limit=LIMIT,
                )  # fmt: skip
                stack.callback(worker.stop)
                workers[name] = worker
        finally:
            if quieted is None:
                os.environ.pop(CONSOLE_LEVEL_ENV)
            else:
                os.environ[CONSOLE_LEVEL_ENV] = quieted
        for worker in workers.values():
            worker.wait_ready()
        install()
        stack.callback(uninstall)
        client = stack.enter_context(TestClient(create_app(settings)))
        yield Cluster(client, _developer(client), workers, server.api_url, settings)


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
                username="scaler", password="pw-" + secrets.token_hex(8), role=Role.DEVELOPER
            ),
        )
        token = create_access_token(
            user.id or 0,
            settings.signing_key,
            timedelta(minutes=settings.token_ttl_minutes),
            password_hash=user.password_hash,
        )
    return {"Authorization": f"Bearer {token}"}


def _pipeline(c: Cluster, source: str, name: str) -> int:
    resp = c.client.post("/api/pipelines", json={"name": name, "source": source}, headers=c.headers)
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def _start(c: Cluster, pipeline_id: int) -> dict[str, Any]:
    resp = c.client.post(f"/api/pipelines/{pipeline_id}/runs", headers=c.headers)
    assert resp.status_code == 202, resp.text
    return dict(resp.json())


def _run(c: Cluster, run_id: int) -> dict[str, Any]:
    resp = c.client.get(f"/api/runs/{run_id}", headers=c.headers)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _ended(c: Cluster, run_id: int) -> dict[str, Any] | None:
    got = _run(c, run_id)
    return got if got["status"] in FINAL else None


def _key(c: Cluster, run_id: int) -> str:
    """The run's key (its directory in the store, its MLflow tag)."""
    with Session(c.client.app.state.engine) as session:  # type: ignore[attr-defined]
        run = session.get(Run, run_id)
        assert run is not None
        return run.run_key


def _taken_by(c: Cluster, flow_run_id: str) -> list[str]:
    """The workers that started this flow run: their log says they submitted it and not that
    the submission was aborted (two workers polling at once may both try; Prefect's
    orchestration lets one move it to Pending and tells the other to abort)."""
    fid = re.escape(flow_run_id)
    submitted = re.compile(rf"Worker '([^']+)' submitting flow run '{fid}'")
    aborted = re.compile(rf"Aborted submission of flow run '{fid}'")
    takers = []
    for name, worker in c.workers.items():
        log = worker.tail(5_000_000)
        if any(m.group(1) == name for m in submitted.finditer(log)) and not aborted.search(log):
            takers.append(name)
    return takers


def _mlflow_runs(c: Cluster, run_key: str) -> list[Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=c.settings.mlflow_tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return list(
        client.search_runs(experiments, filter_string=f"tags.`alphaforge.run_id` = '{run_key}'")
    )


def test_runs_submitted_together_spread_over_both_workers(cluster: Cluster) -> None:
    pid = _pipeline(cluster, SHORT, "scale_short")
    started = [_start(cluster, pid) for _ in range(6)]
    finals = [
        wait_for(lambda r=run: _ended(cluster, r["id"]), 180, what=f"run {run['id']}")
        for run in started
    ]
    assert [f["status"] for f in finals] == ["completed"] * 6, [f["error"] for f in finals]
    takers = {
        f["prefect_flow_run_id"]: _taken_by(cluster, f["prefect_flow_run_id"]) for f in finals
    }
    assert all(len(names) == 1 for names in takers.values()), takers  # each by exactly one
    assert {names[0] for names in takers.values()} == set(WORKERS), takers
    with SyncPrefectClient(api=cluster.api_url) as prefect:  # each ran once
        counts = [prefect.read_flow_run(UUID(i)).run_count for i in takers]
    assert counts == [1] * 6, counts
    # one result set per run, in the shared store; one finished MLflow run each
    for final in finals:
        assert (cluster.settings.runs_dir / _key(cluster, final["id"]) / "run.json").is_file()
        [tracked] = _mlflow_runs(cluster, _key(cluster, final["id"]))
        assert tracked.info.status == "FINISHED"


def test_a_pool_sweeps_chunks_run_on_both_workers_each_trial_once(cluster: Cluster) -> None:
    pid = _pipeline(cluster, SWEPT, "sma_sweep")
    resp = cluster.client.post(f"/api/pipelines/{pid}/sweeps", json={}, headers=cluster.headers)
    assert resp.status_code == 202, resp.text
    sweep = resp.json()

    def ended() -> dict[str, Any] | None:
        got = cluster.client.get(f"/api/sweeps/{sweep['id']}", headers=cluster.headers).json()
        return got if got["status"] in FINAL else None

    final = wait_for(ended, 240, what="the sweep")
    assert final["status"] == "completed", final["error"]
    with SyncPrefectClient(api=cluster.api_url) as prefect:
        chunks = child_flow_run_ids(prefect, final["prefect_flow_run_id"])
        flow_runs = [prefect.read_flow_run(UUID(i)) for i in chunks]
    states = [f.state for f in flow_runs]
    assert [f.run_count for f in flow_runs] == [1] * len(chunks)
    assert len(chunks) == 4, chunks  # 15 trials over sweep_workers=4
    assert all(s is not None and s.is_completed() for s in states)
    takers = {i: _taken_by(cluster, i) for i in chunks}
    assert all(len(names) == 1 for names in takers.values()), takers
    assert {names[0] for names in takers.values()} == set(WORKERS), takers
    from flows.sweepspec import sweep_dir

    rows = read_trials(sweep_dir(cluster.settings.store_root, final["sweep_key"]))
    trials = [r.trial for r in rows]
    assert sorted(trials) == list(range(15)), trials  # complete, none twice
    assert final["n_trials"] == final["done"] == 15


def test_a_killed_workers_run_crashes_and_its_retry_completes_on_the_other(
    cluster: Cluster,
) -> None:
    pid = _pipeline(cluster, SLOW, "scale_slow")
    first = _start(cluster, pid)

    def running() -> dict[str, Any] | None:
        got = _run(cluster, first["id"])
        assert got["status"] not in FINAL, got
        return got if got["status"] == "running" and got["prefect_flow_run_id"] else None

    got = wait_for(running, 120, what="the slow run running")
    flow_run_id = got["prefect_flow_run_id"]
    [victim] = wait_for(lambda: _taken_by(cluster, flow_run_id), 30, what="its worker")
    [survivor] = [n for n in WORKERS if n != victim]
    # the machine goes: the worker, its warm processes and the flow-run process, SIGKILLed
    from flows.liveness import read_mark

    run_dir = cluster.settings.runs_dir / _key(cluster, got["id"])
    mark = wait_for(lambda: read_mark(run_dir), 30, what="the run's process marker")
    key = _key(cluster, got["id"])
    [opened] = wait_for(lambda: _mlflow_runs(cluster, key), 60, what="its MLflow run opened")
    assert opened.info.status == "RUNNING"
    dead = cluster.workers[victim]
    for proc in (dead.proc, *([dead.warm.proc] if dead.warm else [])):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(mark.pid, signal.SIGKILL)
    killed_at = time.monotonic()

    crashed = wait_for(lambda: _ended(cluster, first["id"]), 120, what="the run ending")
    took = time.monotonic() - killed_at
    assert crashed["status"] == "failed", crashed
    assert took < 60, f"the dead run was found after {took:.0f}s"
    with SyncPrefectClient(api=cluster.api_url) as prefect:
        state = prefect.read_flow_run(UUID(flow_run_id)).state
    assert state is not None and state.name == "Crashed", state
    # its MLflow run (opened when the run started) is not left "running" for ever
    [dead_tracked] = _mlflow_runs(cluster, key)
    assert dead_tracked.info.status == "KILLED", dead_tracked.info

    retry = _start(cluster, pid)
    done = wait_for(lambda: _ended(cluster, retry["id"]), 150, what="the retry")
    assert done["status"] == "completed", done["error"]
    assert _taken_by(cluster, done["prefect_flow_run_id"]) == [survivor]
    [tracked] = _mlflow_runs(cluster, _key(cluster, done["id"]))
    assert tracked.info.status == "FINISHED"
    # one result set for the retry; the crashed run's directory has no completed record
    runs = cluster.client.get(f"/api/pipelines/{pid}/runs", headers=cluster.headers).json()
    assert sorted(r["status"] for r in runs["items"]) == ["completed", "failed"], runs
    assert (cluster.settings.runs_dir / _key(cluster, done["id"]) / "run.json").is_file()
    crashed_record = run_dir / "run.json"
    assert not crashed_record.exists() or '"completed"' not in crashed_record.read_text()
