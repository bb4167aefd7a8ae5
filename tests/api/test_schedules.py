"""Schedules over the API: real Prefect deployment schedules, paused and resumed, and the runs
Prefect's scheduler starts showing up in the run history."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from prefect.client.orchestration import SyncPrefectClient

from flows.spec import RunSpec
from tests.api.conftest import Account
from tests.api.stack import api_settings
from tests.deployments.fixtures import STACK_GROUP, Stack, wait_for

__all__ = ["api_settings"]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(STACK_GROUP)]

SAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "sma_crossover.af").read_text()


@pytest.fixture(autouse=True)
def _no_deployments_of_earlier_tests(prefect_stack: Stack) -> None:
    """Every test starts with a fresh database, so pipeline ids (and deployment names
    ``pipeline-<id>``) repeat across tests on the session's Prefect server: drop the earlier
    tests' pipeline deployments, their schedules with them."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    with SyncPrefectClient(api=prefect_stack.api_url) as prefect:
        for dep in prefect.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(like_="pipeline-"))
        ):
            prefect.delete_deployment(dep.id)


def _pipeline(client: TestClient, who: Account, source: str = SAMPLE) -> int:
    resp = client.post("/api/pipelines", json={"name": "p", "source": source}, headers=who.headers)
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def _prefect_schedules(stack: Stack, deployment_id: str) -> list:
    with SyncPrefectClient(api=stack.api_url) as prefect:
        return prefect.read_deployment_schedules(UUID(deployment_id))


def test_cron_schedule_is_a_prefect_deployment_schedule_that_pauses_and_resumes(
    client: TestClient, alice: Account, prefect_stack: Stack
) -> None:
    pid = _pipeline(client, alice)
    body = {"cron": "30 9 * * 1-5", "timezone": "America/New_York"}
    created = client.post(f"/api/pipelines/{pid}/schedules", json=body, headers=alice.headers)
    assert created.status_code == 201, created.text
    schedule = created.json()
    assert schedule["active"] is True and schedule["interval_seconds"] is None
    [found] = _prefect_schedules(prefect_stack, schedule["prefect_deployment_id"])
    assert found.schedule.cron == "30 9 * * 1-5"
    assert found.schedule.timezone == "America/New_York"
    assert found.active is True
    with SyncPrefectClient(api=prefect_stack.api_url) as prefect:
        deployment = prefect.read_deployment(UUID(schedule["prefect_deployment_id"]))
    assert deployment.name == f"pipeline-{pid}" and deployment.work_pool_name == "alphaforge"
    version = client.get(f"/api/pipelines/{pid}/versions/1", headers=alice.headers).json()
    ir = RunSpec.from_json(deployment.parameters["spec"]).ir
    assert ir.content_hash() == version["ir_hash"]
    assert deployment.parameters["spec"]["confine_paths"] is True

    paused = client.patch(
        f"/api/schedules/{schedule['id']}", json={"active": False}, headers=alice.headers
    )
    assert paused.json()["active"] is False
    assert _prefect_schedules(prefect_stack, schedule["prefect_deployment_id"])[0].active is False
    client.patch(f"/api/schedules/{schedule['id']}", json={"active": True}, headers=alice.headers)
    assert _prefect_schedules(prefect_stack, schedule["prefect_deployment_id"])[0].active is True
    listed = client.get(f"/api/pipelines/{pid}/schedules", headers=alice.headers).json()
    assert [s["id"] for s in listed] == [schedule["id"]] and listed[0]["active"] is True

    gone = client.delete(f"/api/schedules/{schedule['id']}", headers=alice.headers)
    assert gone.status_code == 204
    assert _prefect_schedules(prefect_stack, schedule["prefect_deployment_id"]) == []
    assert client.get(f"/api/pipelines/{pid}/schedules", headers=alice.headers).json() == []


def test_bad_schedules_are_refused_and_others_cannot_touch_them(
    client: TestClient, alice: Account, bob: Account, observer: Account
) -> None:
    pid = _pipeline(client, alice)
    url = f"/api/pipelines/{pid}/schedules"
    for body in (
        {"cron": "61 * * * *"},
        {"cron": "0 9 * * *", "timezone": "Mars/Olympus"},
        {"cron": "0 9 * * *", "interval_seconds": 60},
        {},
        {"interval_seconds": 1},
    ):
        assert client.post(url, json=body, headers=alice.headers).status_code == 422, body
    assert client.post(url, json={"interval_seconds": 60}, headers=bob.headers).status_code == 404
    assert client.get(url, headers=bob.headers).status_code == 404
    assert (
        client.post(url, json={"interval_seconds": 60}, headers=observer.headers).status_code == 403
    )
    made = client.post(url, json={"interval_seconds": 3600}, headers=alice.headers).json()
    one = f"/api/schedules/{made['id']}"
    assert client.patch(one, json={"active": False}, headers=bob.headers).status_code == 404
    assert client.delete(one, headers=bob.headers).status_code == 404
    assert client.delete(one, headers=observer.headers).status_code == 403
    assert client.get(url, headers=observer.headers).json()[0]["id"] == made["id"]
    assert client.delete(one, headers=alice.headers).status_code == 204


def test_interval_schedule_runs_show_up_with_trigger_schedule_and_follow_new_versions(
    client: TestClient, alice: Account, prefect_stack: Stack
) -> None:
    pid = _pipeline(client, alice)
    schedule = client.post(
        f"/api/pipelines/{pid}/schedules", json={"interval_seconds": 5}, headers=alice.headers
    ).json()
    [found] = _prefect_schedules(prefect_stack, schedule["prefect_deployment_id"])
    assert found.schedule.interval == timedelta(seconds=5)

    def scheduled_run() -> dict | None:
        runs = client.get(f"/api/pipelines/{pid}/runs", headers=alice.headers).json()["items"]
        return next((r for r in runs if r["trigger"] == "schedule"), None)

    run = wait_for(scheduled_run, 90, what="a scheduled run in the run history")
    assert run["version"] == 1
    pause = {"active": False}  # no more runs: the worker has enough to do
    client.patch(f"/api/schedules/{schedule['id']}", json=pause, headers=alice.headers)

    faster = SAMPLE.replace("window=10", "window=5")
    client.put(f"/api/pipelines/{pid}", json={"source": faster}, headers=alice.headers)
    v2 = client.get(f"/api/pipelines/{pid}/versions/2", headers=alice.headers).json()

    def deployed_v2() -> bool:
        with SyncPrefectClient(api=prefect_stack.api_url) as prefect:
            dep = prefect.read_deployment(UUID(schedule["prefect_deployment_id"]))
        return RunSpec.from_json(dep.parameters["spec"]).ir.content_hash() == v2["ir_hash"]

    wait_for(deployed_v2, 30, what="the deployment to carry version 2")
    client.delete(f"/api/schedules/{schedule['id']}", headers=alice.headers)

    def ended() -> dict | None:
        got = client.get(f"/api/runs/{run['id']}", headers=alice.headers).json()
        return got if got["status"] in ("completed", "failed", "cancelled") else None

    final = wait_for(ended, 120, what="the scheduled run to end")
    assert final["status"] == "completed", final["error"]
    assert final["metrics"]["num_trades"] > 0


def test_every_schedule_of_a_pipeline_pauses_resumes_and_goes_on_its_own(
    client: TestClient, alice: Account, prefect_stack: Stack
) -> None:
    pid = _pipeline(client, alice)
    url = f"/api/pipelines/{pid}/schedules"
    first = client.post(url, json={"interval_seconds": 86_400}, headers=alice.headers).json()
    second = client.post(url, json={"cron": "0 6 * * 1-5"}, headers=alice.headers).json()
    third = client.post(url, json={"cron": "0 7 * * *"}, headers=alice.headers).json()
    deployment = first["prefect_deployment_id"]
    assert second["prefect_deployment_id"] == third["prefect_deployment_id"] == deployment

    def in_prefect() -> dict[str, bool]:
        """Prefect's schedules of the deployment: what each is (cron or interval) -> active."""
        return {
            getattr(s.schedule, "cron", None) or f"every {s.schedule.interval}": s.active
            for s in _prefect_schedules(prefect_stack, deployment)
        }

    every_day = f"every {timedelta(days=1)}"
    assert in_prefect() == {every_day: True, "0 6 * * 1-5": True, "0 7 * * *": True}

    # the oldest schedule first: adding the others must not have made its Prefect id stale
    paused = client.patch(
        f"/api/schedules/{first['id']}", json={"active": False}, headers=alice.headers
    )
    assert paused.status_code == 200, paused.text
    assert paused.json()["active"] is False
    assert in_prefect() == {every_day: False, "0 6 * * 1-5": True, "0 7 * * *": True}
    paused = client.patch(
        f"/api/schedules/{second['id']}", json={"active": False}, headers=alice.headers
    )
    assert paused.status_code == 200, paused.text
    assert in_prefect() == {every_day: False, "0 6 * * 1-5": False, "0 7 * * *": True}
    resumed = client.patch(
        f"/api/schedules/{first['id']}", json={"active": True}, headers=alice.headers
    )
    assert resumed.status_code == 200, resumed.text
    assert in_prefect() == {every_day: True, "0 6 * * 1-5": False, "0 7 * * *": True}

    # a new version redeploys the pipeline: its schedules stay, with their ids and switches
    ids = {s.id for s in _prefect_schedules(prefect_stack, deployment)}
    v2 = SAMPLE.replace("window=10", "window=5")
    assert (
        client.put(f"/api/pipelines/{pid}", json={"source": v2}, headers=alice.headers).status_code
        == 200
    )
    hashes = client.get(f"/api/pipelines/{pid}/versions", headers=alice.headers).json()

    def deployed_v2() -> bool:
        with SyncPrefectClient(api=prefect_stack.api_url) as prefect:
            dep = prefect.read_deployment(UUID(deployment))
        return RunSpec.from_json(dep.parameters["spec"]).ir.content_hash() == hashes[0]["ir_hash"]

    wait_for(deployed_v2, 30, what="the deployment to carry version 2")
    assert {s.id for s in _prefect_schedules(prefect_stack, deployment)} == ids
    assert in_prefect() == {every_day: True, "0 6 * * 1-5": False, "0 7 * * *": True}
    paused = client.patch(
        f"/api/schedules/{third['id']}", json={"active": False}, headers=alice.headers
    )
    assert paused.status_code == 200, paused.text
    assert in_prefect() == {every_day: True, "0 6 * * 1-5": False, "0 7 * * *": False}

    assert client.delete(f"/api/schedules/{second['id']}", headers=alice.headers).status_code == 204
    assert in_prefect() == {every_day: True, "0 7 * * *": False}
    assert client.delete(f"/api/schedules/{first['id']}", headers=alice.headers).status_code == 204
    assert in_prefect() == {"0 7 * * *": False}
    listed = client.get(url, headers=alice.headers).json()
    assert [(s["id"], s["active"]) for s in listed] == [(third["id"], False)]


def test_a_schedule_lost_in_prefect_is_put_back_when_switched(
    client: TestClient, alice: Account, prefect_stack: Stack
) -> None:
    pid = _pipeline(client, alice)
    url = f"/api/pipelines/{pid}/schedules"
    kept = client.post(url, json={"cron": "0 6 * * *"}, headers=alice.headers).json()
    lost = client.post(url, json={"cron": "0 8 * * *"}, headers=alice.headers).json()
    deployment = UUID(lost["prefect_deployment_id"])
    with SyncPrefectClient(api=prefect_stack.api_url) as prefect:
        [gone] = [
            s
            for s in prefect.read_deployment_schedules(deployment)
            if s.schedule.cron == "0 8 * * *"
        ]
        prefect.delete_deployment_schedule(deployment, gone.id)  # behind the API's back

    paused = client.patch(
        f"/api/schedules/{lost['id']}", json={"active": False}, headers=alice.headers
    )
    assert paused.status_code == 200, paused.text
    now = {s.schedule.cron: s.active for s in _prefect_schedules(prefect_stack, str(deployment))}
    assert now == {"0 6 * * *": True, "0 8 * * *": False}
    assert client.delete(f"/api/schedules/{lost['id']}", headers=alice.headers).status_code == 204
    with SyncPrefectClient(api=prefect_stack.api_url) as prefect:
        prefect.delete_deployment(deployment)  # the whole deployment, behind the API's back
    # gone from Prefect already: deleting it is still fine
    assert client.delete(f"/api/schedules/{kept['id']}", headers=alice.headers).status_code == 204
    assert client.get(url, headers=alice.headers).json() == []
