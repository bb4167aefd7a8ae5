"""Deployments against a real Prefect server: updating a deployment keeps its schedules."""

from __future__ import annotations

import pytest
from prefect.client.orchestration import SyncPrefectClient

from deployments.deploy import upsert_deployment
from deployments.schedules import ScheduleSpec, add_schedule, find_schedule, schedule_slug
from tests.deployments.fixtures import STACK_GROUP, Stack

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(STACK_GROUP)]


def test_updating_a_deployment_keeps_its_schedules_ids_and_switches(prefect_stack: Stack) -> None:
    name = "pipeline-test-upsert"
    with SyncPrefectClient(api=prefect_stack.api_url) as client:
        first = upsert_deployment(client, name, parameters={"ir_json": "{}"}, tags=["af-version:1"])
        daily = add_schedule(client, first, ScheduleSpec("0 6 * * *", None, "UTC"), True, "a")
        paused = add_schedule(client, first, ScheduleSpec(None, 3600, "UTC"), False, "b")

        again = upsert_deployment(client, name, parameters={"ir_json": "[]"}, tags=["af-version:2"])

        assert again == first
        deployment = client.read_deployment(first)
        assert deployment.parameters["ir_json"] == "[]" and "af-version:2" in deployment.tags
        assert "af-version:1" not in deployment.tags
        kept = {s.id: (s.slug, s.active) for s in client.read_deployment_schedules(first)}
        assert kept == {daily: ("a", True), paused: ("b", False)}
        # found by id, else by slug; neither: None (also for a deployment that is gone)
        assert (found := find_schedule(client, first, daily)) and found.slug == "a"
        assert (found := find_schedule(client, first, None, "b")) and found.id == paused
        assert find_schedule(client, first, None, "c") is None
        client.delete_deployment(first)
        assert find_schedule(client, first, daily, "a") is None
    assert schedule_slug(12) == "alphaforge-schedule-12"
