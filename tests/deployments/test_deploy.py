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


def test_the_nodelab_deployments_sit_in_the_pool_with_module_entrypoints(
    prefect_stack: Stack,
) -> None:
    import importlib

    from deployments.deploy import NODELAB_DEPLOYMENT, POOL_NAME, ensure_nodelab_deployments

    with SyncPrefectClient(api=prefect_stack.api_url) as client:
        ids = ensure_nodelab_deployments(client)
        assert ensure_nodelab_deployments(client) == ids  # idempotent: updated in place
        assert set(ids) == {"test_run", "lookahead"}
        for kind, deployment_id in ids.items():
            deployment = client.read_deployment(deployment_id)
            assert deployment.name == NODELAB_DEPLOYMENT
            assert deployment.work_pool_name == POOL_NAME
            assert deployment.entrypoint is not None
            module, _, attr = deployment.entrypoint.rpartition(".")
            lab_flow = getattr(importlib.import_module(module), attr)  # what the worker loads
            assert client.read_flow(deployment.flow_id).name == lab_flow.name
            schema = deployment.parameter_openapi_schema or {}
            assert schema["required"] == ["manifest_json"], kind
            assert {"params", "result_key", "store_url"} <= set(schema["properties"])


def test_alphaforge_deploy_registers_the_pool_and_every_deployment_once(
    prefect_stack: Stack, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """``alphaforge deploy`` as an operator runs it against a real server, twice: the same ids
    (idempotent), one deployment per flow in the pool; without a server it refuses."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("alphaforge")
    env = {k: v for k, v in os.environ.items() if k != "ALPHAFORGE_PREFECT_API_URL"}
    env["ALPHAFORGE_DATA_DIR"] = str(tmp_path)

    def deploy(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(exe), "deploy", *args], capture_output=True, text=True,
                              env=env, timeout=300)  # fmt: skip

    pool = "af-deploy-test"
    first = deploy("--api-url", prefect_stack.api_url, "--pool", pool, "--json")
    assert first.returncode == 0, first.stderr
    again = deploy("--api-url", prefect_stack.api_url, "--pool", pool, "--json")
    assert again.returncode == 0, again.stderr
    ids = json.loads(first.stdout)["deployments"]
    assert json.loads(again.stdout)["deployments"] == ids
    assert set(ids) == {f"web-{pool}", "nodelab/test_run", "nodelab/lookahead", "sweep/sweep",
                        "sweep/chunk", "engine", "crash-report"}  # fmt: skip
    automations = json.loads(first.stdout)["automations"]
    assert json.loads(again.stdout)["automations"] == automations  # updated, not duplicated
    assert set(automations) == {"alphaforge-crashed-runs", "alphaforge-long-runs"}
    with SyncPrefectClient(api=prefect_stack.api_url) as client:
        assert client.read_work_pool(pool).type == "process"
        in_pool = [d for d in client.read_deployments() if d.work_pool_name == pool]
        assert sorted(str(d.id) for d in in_pool) == sorted(ids.values())
        for name, automation_id in automations.items():
            [found] = client.read_automations_by_name(name)
            assert str(found.id) == automation_id
            client.delete_automation(found.id)  # the session's other tests run without them
    refused = deploy()
    assert refused.returncode == 2 and "ALPHAFORGE_PREFECT_API_URL" in refused.stderr
