"""Prefect-driven cancellation of a pipeline flow run kills its sandbox containers.

A real stack (Prefect server + process worker): the web deployment runs a pipeline whose custom
node sleeps; the flow run is set to Cancelling the way the API does it; the worker SIGTERMs the
flow-run process, whose pipeline flow kills every container labelled with the run id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import SyncPrefectClient
from prefect.states import Cancelling

from cli.nodes_dir import LocalNodeResolver
from deployments.deploy import ensure_web_deployment
from dsl import compile_source
from flows.customnodes import kill_run_containers
from flows.record import new_run_id
from flows.spec import RunSpec
from runners.custom import CustomNodeManifest
from runners.nodestore import ManifestStore
from tests.deployments.fixtures import STACK_GROUP, Stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.xdist_group(STACK_GROUP)]

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "data"
SLEEPER = CustomNodeManifest(
    name="sleeper",
    version="1.0.0",
    language="python",
    inputs=({"name": "x", "type": "series"},),  # type: ignore[arg-type]
    outputs=({"name": "y", "type": "series"},),  # type: ignore[arg-type]
    resources={"wall_s": 300},  # type: ignore[arg-type]
    code="import time\n\ndef run(inputs, params):\n    time.sleep(600)\n",
)
SOURCE = """pipeline sleepy "Sleeps in the sandbox"
use sleeper@1
data = csv_ohlcv(path="sample_ohlcv.csv")
nap = sleeper(data.close)
"""


def _containers(client: Any, run_id: str) -> list[Any]:
    return client.api.containers(all=True, filters={"label": f"alphaforge.run_id={run_id}"})


def test_cancelling_the_flow_run_kills_its_containers(
    prefect_stack: Stack, docker_engine: Any, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    resolver = LocalNodeResolver([SLEEPER])
    compiled = compile_source(SOURCE, filename="sleepy.af", resolver=resolver)
    assert compiled.ok and compiled.ir is not None
    resolver.store_into(ManifestStore(data_dir / "custom-nodes"))
    run_id = new_run_id()
    with SyncPrefectClient(api=prefect_stack.api_url) as client:
        deployment = ensure_web_deployment(client)
        flow_run = client.create_flow_run_from_deployment(
            deployment,
            parameters={
                "spec": RunSpec(
                    ir=compiled.ir,
                    run_id=run_id,
                    base_dir=str(SAMPLE_DIR),
                    store_url=str(data_dir),
                    track=False,
                    trigger="test",
                ).to_json()
            },
        )
        try:
            wait_for(
                lambda: any(c["State"] == "running" for c in _containers(docker_engine, run_id)),
                timeout_s=180,
                what="the sleeping node's container",
            )
            client.set_flow_run_state(flow_run.id, Cancelling(message="test"), force=True)
            # gone long before the node's 300 s wall time (or its 600 s sleep) would end it:
            # only the cancel can have removed them
            wait_for(
                lambda: not _containers(docker_engine, run_id),
                timeout_s=120,
                interval_s=0.2,
                what="the run's containers to be gone",
            )
            final = wait_for(
                lambda: (
                    (s := client.read_flow_run(UUID(str(flow_run.id))).state) and s.is_final() and s
                ),
                timeout_s=60,
                what="the flow run to end",
            )
            assert final.is_cancelled(), final
        finally:
            kill_run_containers(run_id)


def test_kill_run_containers_without_containers_is_a_no_op(docker_engine: Any) -> None:
    assert kill_run_containers("no-such-run-" + new_run_id()) == 0
