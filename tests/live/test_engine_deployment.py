"""The engine as a Prefect deployment (``alphaforge-engine/engine``) on the session's worker:
its flow run loads an active instance in the Docker sandbox and trades; cancelling the flow run
stops it (no container left); an engine started afterwards takes the instance back at once
(its holder's process is gone) and finishes the replay with every bar processed exactly once."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import pandas as pd
import pytest
from prefect.client.orchestration import SyncPrefectClient
from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from deployments.deploy import ensure_engine_deployment
from live.instances import create_instance, save_strategy
from live.service import build_engine
from live.tables import LiveBar, StrategyInstance
from tests.deployments.fixtures import STACK_GROUP, Stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.xdist_group(STACK_GROUP)]

ROOT = Path(__file__).resolve().parents[2]
CODE = (ROOT / "examples" / "strategies" / "sma_cross.py").read_text()


def test_the_engine_deployment_runs_until_cancelled_and_a_new_engine_resumes(
    live_db: Engine, live_db_url: str, prefect_stack: Stack, docker_engine: Any, tmp_path: Path
) -> None:
    bars = pd.read_csv(ROOT / "examples" / "data" / "sample_ohlcv.csv").head(400)
    (tmp_path / "data").mkdir()
    bars.to_csv(tmp_path / "data" / "bars.csv", index=False)
    with Session(live_db) as s:
        strategy, _ = save_strategy(s, 1, "sma_cross", CODE)
        iid = create_instance(
            s, 1, strategy, account="paper", market="ASSET", mode="active",
            config={"fast": 5, "slow": 20, "qty": 10},
            # 10 bars/s: the replay's remaining ~38 s leave the cancel room on a loaded
            # machine (at 25/s the replay once ended, 15 s after the wait, before the cancel)
            feed={"kind": "replay", "path": "data/bars.csv", "start": 0, "warmup": 30,
                  "speed": 10},
        ).id  # fmt: skip

    def row() -> StrategyInstance:
        with Session(live_db) as s:
            found = s.get(StrategyInstance, iid)
            assert found is not None
            return found

    with SyncPrefectClient(api=prefect_stack.api_url) as client:
        deployment = ensure_engine_deployment(client)
        flow_run = client.create_flow_run_from_deployment(
            deployment,
            parameters={"cycle_s": 0.5, "runner": "docker", "feeds_dir": str(tmp_path)},
            job_variables={"env": {"ALPHAFORGE_DATABASE_URL": live_db_url}},
        )
        try:
            wait_for(lambda: row().status == "running" and row().bars_seen > 20, 180,
                  what="the deployment's engine trading")  # fmt: skip
            assert "engine-flow@" in (row().engine_id or "")
        finally:
            from prefect.states import Cancelling

            client.set_flow_run_state(flow_run.id, Cancelling(), force=True)

        def ended() -> bool:
            state = client.read_flow_run(UUID(str(flow_run.id))).state
            return state is not None and state.is_final()

        wait_for(ended, 120, what="the engine's flow run to end")
    stopped_at = row().bars_seen
    assert 20 < stopped_at < len(bars)

    def no_container() -> bool:
        found = docker_engine.containers.list(all=True, filters={"label": "alphaforge.sandbox=1"})
        return not [c for c in found if iid in str(c.labels) or iid in c.name]

    wait_for(no_container, 60, what="the instance's sandbox container to go")

    engine = build_engine(live_db_url, tmp_path, runner="docker", confine=True)
    try:
        report = engine.reconcile()
        assert report.loaded == [iid]  # at once: the holder's process is gone
        wait_for(lambda: row().status == "ended", 120, what="the rest of the replay")
    finally:
        engine.shutdown()
    with Session(live_db) as s:
        count = s.exec(select(func.count()).select_from(LiveBar)
                       .where(col(LiveBar.instance_id) == iid)).one()  # fmt: skip
    assert count == len(bars) == row().bars_seen  # every bar exactly once across both engines
