"""Issue 9, item 8: a scheduled run shows when it was due and when it started, not when
Prefect's scheduler created its flow run (hours or days ahead); its flow run is named like
every run."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from prefect.client.orchestration import SyncPrefectClient

from flows.record import run_id_for
from tests.api.conftest import Account
from tests.api.stack import api_settings
from tests.deployments.fixtures import STACK_GROUP, Stack, wait_for

__all__ = ["api_settings"]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(STACK_GROUP)]

SAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "sma_crossover.af").read_text()


@pytest.fixture(autouse=True)
def _no_deployments_of_earlier_tests(prefect_stack: Stack) -> None:
    """Pipeline ids (and deployment names ``pipeline-<id>``) repeat across tests on the
    session's Prefect server: drop the earlier tests' pipeline deployments."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    with SyncPrefectClient(api=prefect_stack.api_url) as prefect:
        for dep in prefect.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(like_="pipeline-"))
        ):
            prefect.delete_deployment(dep.id)


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_a_scheduled_run_is_dated_by_when_it_was_due_and_when_it_started(
    client: TestClient, alice: Account, prefect_stack: Stack
) -> None:
    created = client.post(
        "/api/pipelines", json={"name": "p", "source": SAMPLE}, headers=alice.headers
    )
    pid = created.json()["id"]
    schedule = client.post(
        f"/api/pipelines/{pid}/schedules", json={"interval_seconds": 5}, headers=alice.headers
    ).json()

    def scheduled_run() -> dict | None:
        runs = client.get(f"/api/pipelines/{pid}/runs", headers=alice.headers).json()["items"]
        return next((r for r in runs if r["trigger"] == "schedule"), None)

    found = wait_for(scheduled_run, 90, what="a scheduled run in the run history")
    client.delete(f"/api/schedules/{schedule['id']}", headers=alice.headers)

    def ended() -> dict | None:
        got = client.get(f"/api/runs/{found['id']}", headers=alice.headers).json()
        return got if got["status"] in ("completed", "failed", "cancelled") else None

    run = wait_for(ended, 120, what="the scheduled run to end")
    assert run["status"] == "completed", run["error"]
    with SyncPrefectClient(api=prefect_stack.api_url) as prefect:
        flow_run = prefect.read_flow_run(UUID(run["prefect_flow_run_id"]))
    assert flow_run.expected_start_time is not None and flow_run.start_time is not None
    # Prefect's scheduler made the flow run ahead of time: that is not when the run happened
    assert flow_run.created is not None and flow_run.created < flow_run.expected_start_time
    assert _at(run["created_at"]) == flow_run.expected_start_time
    assert _at(run["started_at"]) == flow_run.start_time
    listed = client.get(f"/api/pipelines/{pid}/runs", headers=alice.headers).json()["items"]
    [row] = [r for r in listed if r["id"] == run["id"]]
    assert _at(row["created_at"]) == flow_run.expected_start_time
    assert _at(row["started_at"]) == flow_run.start_time
    # a schedule's spec has no run id: the flow run's gives it, and its name
    assert flow_run.parameters["spec"]["run_id"] is None
    run_id = run_id_for(flow_run.id, flow_run.expected_start_time)
    assert flow_run.name == f"moving-average-crossover-sample/{run_id}"
