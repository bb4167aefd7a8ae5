"""A pipeline using a custom node, run from the web app by a real Prefect worker in the sandbox."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.settings import ApiSettings
from tests.api.conftest import Account
from tests.api.custom_node_helpers import create_node, pipeline_using
from tests.api.stack import api_settings
from tests.deployments.fixtures import STACK_GROUP, wait_for

__all__ = ["api_settings"]
pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.xdist_group(STACK_GROUP)]


def test_a_web_run_executes_the_pinned_custom_node_in_the_sandbox(
    client: TestClient, alice: Account, api_settings: ApiSettings
) -> None:
    node = create_node(client, alice)
    resp = client.post(
        "/api/pipelines", json={"name": "p", "source": pipeline_using("1")}, headers=alice.headers
    )
    assert resp.status_code == 201, resp.text
    pid = resp.json()["id"]
    started = client.post(f"/api/pipelines/{pid}/runs", json={}, headers=alice.headers)
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]

    def final() -> dict | None:
        run = client.get(f"/api/runs/{run_id}", headers=alice.headers).json()
        return run if run["status"] in ("completed", "failed", "cancelled") else None

    run = wait_for(final, 180, what=f"run {run_id} to end")
    assert run["status"] == "completed", run["error"]
    assert run["node_states"]["e"] == "completed"
    assert run["sandbox"]["runner"] == "docker"
    assert run["sandbox"]["images"]["python"].startswith("sha256:")
    assert (api_settings.root / "custom-nodes" / f"{node['version']['code_hash']}.json").is_file()
    results = client.get(f"/api/runs/{run_id}/results", headers=alice.headers).json()
    assert results["metrics"]["bars"] > 0
