"""The ``pool`` executor on the session's real Prefect stack with two process workers of the test
on its work pool: each chunk is a flow run of the chunk deployment, a child of the sweep's flow
run; the chunks cover every trial exactly once; two workers take chunks of one sweep."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

from flows.settings import CoreSettings
from flows.sweep import CHUNK_FLOW_NAME, run_sweep
from flows.sweepspec import SweepRecord, read_trials, sweep_dir
from tests.deployments.fixtures import STACK_GROUP, Stack
from tests.flows.test_sweep_engine import HEAD, _pairs, _spec

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(STACK_GROUP)]

# 12 trials, each with a short nap downstream of the swept window (so a chunk takes a moment)
NAPPING = (
    HEAD.replace(
        "signal = crossover(fast, slow)",
        "nap    = t_sleep(fast, seconds=0.3)\nsignal = crossover(nap, slow)",
    )
    + """
sweep grid {
    fast.window = [5, 10, 15, 20, 25, 30]
    slow.window = [40, 60]
    objective maximize result.sharpe
}
"""
)


WORKERS = ("alphaforge-test-worker-a", "alphaforge-test-worker-b")


@pytest.fixture(scope="module")
def second_worker(prefect_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The sweep deployments, and two process workers of the test on the stack's pool, each
    taking at most one flow run at a time, while the session's worker is paused (SIGSTOP): with
    two chunks in flight (``workers=2``) each test worker must take chunks, whatever the timing
    of their polls. Yields the second worker's name."""
    from deployments.deploy import ensure_sweep_deployments
    from deployments.flow import EXTRA_NODE_MODULES_ENV
    from deployments.stack import Worker

    with SyncPrefectClient(api=prefect_stack.api_url) as client:
        ensure_sweep_deployments(client)
    started: list[Worker] = []
    session_worker = prefect_stack.worker.proc.pid
    os.kill(session_worker, signal.SIGSTOP)
    try:
        for name in WORKERS:
            home = tmp_path_factory.mktemp(name)
            started.append(
                Worker(
                    prefect_stack.api_url,
                    home,
                    home / "worker.log",
                    name=name,
                    extra_env={EXTRA_NODE_MODULES_ENV: "tests.deployments.slownodes"},
                    limit=1,
                )
            )
        for worker in started:
            worker.wait_ready()
        yield WORKERS[1]
    finally:
        for worker in started:
            worker.stop()
        os.kill(session_worker, signal.SIGCONT)


@pytest.fixture(scope="module")
def pool_sweep(
    prefect_api: str,
    prefect_stack: Stack,
    second_worker: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[SweepRecord, CoreSettings]]:
    from tests.flows.testnodes import install, uninstall

    settings = CoreSettings(
        data_dir=tmp_path_factory.mktemp("sweep-pool") / "data",
        prefect_api_url=prefect_stack.api_url,
    )
    install()
    try:
        spec = _spec(NAPPING, executor="pool", workers=2, chunk_size=2)
        yield run_sweep(spec, settings=settings), settings
    finally:
        uninstall()


def _chunk_runs(api_url: str, parent: str) -> list[Any]:
    with SyncPrefectClient(api=api_url) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[UUID(parent)])
            ),
            limit=200,
        )


def test_pool_chunks_are_child_flow_runs_covering_every_trial_once(
    pool_sweep: tuple[SweepRecord, CoreSettings], prefect_stack: Stack
) -> None:
    record, settings = pool_sweep
    assert record.status == "completed", record.error
    assert record.done == record.n_trials == 12 and record.chunks == 6
    runs = _chunk_runs(prefect_stack.api_url, record.flow_run_id or "")
    assert len(runs) == 6
    assert sorted(str(r.id) for r in runs) == sorted(record.chunk_flow_run_ids)
    assert all(r.state is not None and r.state.is_completed() for r in runs)
    covered: list[int] = []
    for run in runs:
        chunk = run.parameters["chunk"]
        chunk = json.loads(chunk) if isinstance(chunk, str) else chunk
        covered += [number for number, _ in chunk["trials"]]
    assert sorted(covered) == list(range(12))  # every trial in exactly one chunk
    rows = list(read_trials(sweep_dir(settings.store_root, record.sweep_id)))
    assert sorted(r.trial for r in rows) == list(range(12))
    want = [(f, s) for f in (5, 10, 15, 20, 25, 30) for s in (40, 60)]
    assert _pairs(sorted(rows, key=lambda r: r.trial)) == want


def test_two_workers_on_the_pool_both_take_chunks_of_one_sweep(
    pool_sweep: tuple[SweepRecord, CoreSettings], prefect_stack: Stack, second_worker: str
) -> None:
    record, _ = pool_sweep
    runs = _chunk_runs(prefect_stack.api_url, record.flow_run_id or "")
    by_worker = Counter(r.labels.get("prefect.worker.name") for r in runs)
    assert sum(by_worker.values()) == 6
    assert None not in by_worker, by_worker
    assert set(by_worker) == set(WORKERS), by_worker  # the session's worker was paused
    assert second_worker in by_worker
    with SyncPrefectClient(api=prefect_stack.api_url) as client:
        names = {client.read_flow(r.flow_id).name for r in runs}
    assert names == {CHUNK_FLOW_NAME}
