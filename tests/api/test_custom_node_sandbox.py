"""Custom nodes against the real Docker sandbox, through the real Prefect stack: the look-ahead
check on save and test runs run as flow runs of the ``nodelab`` deployments on the worker; no
sandbox on the worker → 503 / ``skipped``; a worker too slow → 504 and the flow run cancelled,
its containers gone; the run's sandbox record. (Cancelling a pipeline run, and all of this with
no Docker in the API process: ``test_api_without_docker.py``.)"""

from __future__ import annotations

import functools
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import docker
import pytest
from fastapi.testclient import TestClient
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from sqlmodel import Session

from api.models.run import Run
from api.services import node_lab
from api.settings import ApiSettings
from flows.customnodes import CustomNodeManifest, kill_run_containers
from tests.api.conftest import Account
from tests.api.custom_node_helpers import PEEK_CODE, create_node, manifest
from tests.api.stack import api_settings
from tests.deployments.fixtures import STACK_GROUP, Stack, wait_for

__all__ = ["api_settings"]
pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.xdist_group(STACK_GROUP)]

RUN_LABEL = "alphaforge.run_id"


@pytest.fixture
def no_docker_on_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lab's flow-run processes get an environment where no Docker engine answers (and the
    development process runner is off), the way a worker without Docker would run them."""
    env = {
        "DOCKER_HOST": f"unix:///nonexistent-{uuid.uuid4().hex}.sock",
        "ALPHAFORGE_ALLOW_PROCESS_RUNNER": "0",
    }
    real = node_lab.run_lab
    monkeypatch.setattr(node_lab, "run_lab", functools.partial(real, job_variables={"env": env}))


def test_an_honest_node_passes_the_look_ahead_check(client: TestClient, alice: Account) -> None:
    verdict = create_node(client, alice)["version"]["lookahead"]
    assert verdict["status"] == "pass", verdict
    assert verdict["checked_rows"] == 400 and verdict["prefix_rows"] == max(
        verdict["prefix_lengths"]
    )
    assert isinstance(verdict["seed"], int) and f"(seed {verdict['seed']})" in verdict["message"]
    assert verdict["first_difference"] is None


def test_a_node_reading_the_next_bar_fails_the_check_and_warns_in_pipelines(
    client: TestClient, alice: Account
) -> None:
    node = create_node(client, alice, name="peek", code=PEEK_CODE)  # saving is never blocked
    verdict = node["version"]["lookahead"]
    assert verdict["status"] == "fail", verdict
    first = verdict["first_difference"]
    # the shortest prefix's last row saw the future
    assert first["port"] == "ema" and first["row"] == verdict["prefix_rows"] - 1
    assert verdict["prefix_rows"] == verdict["prefix_lengths"][0]
    assert first["ts"] and first["whole"] != first["prefix"]
    source = (
        "pipeline peeking\n\nuse peek@1\n\n"
        'data   = csv_ohlcv(path="data/sample_ohlcv.csv")\n'
        "e      = peek(data.close)\n"
        "sig    = threshold(e, lower=100.0, upper=200.0)\n"
        "result = backtest(data, sig)\n"
    )
    body = client.post("/api/validate", json={"source": source}, headers=alice.headers).json()
    assert body["ok"]
    (warning,) = [d for d in body["diagnostics"] if d["code"] == "AF407"]
    assert warning["line"] == 3
    assert warning["message"].startswith("peek@1.0.0 failed the look-ahead check: ")


def test_a_node_that_crashes_gets_an_error_verdict(client: TestClient, alice: Account) -> None:
    code = 'def run(inputs, params):\n    raise ValueError("boom")\n'
    verdict = create_node(client, alice, name="crash", code=code)["version"]["lookahead"]
    assert verdict["status"] == "error" and "boom" in verdict["message"]


def test_test_run_returns_previews_and_logs_and_saves_nothing(
    client: TestClient, alice: Account
) -> None:
    code = 'def run(inputs, params):\n    print("hello from the node")\n' + (
        '    return {"ema": inputs["x"].ewm(span=params["span"]).mean()}\n'
    )
    body = {"manifest": manifest(code=code), "params": {"span": 3}, "rows": 50}
    resp = client.post("/api/custom-nodes/test-run", json=body, headers=alice.headers)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["status"] == "completed" and out["error"] is None
    assert any("hello from the node" in line for line in out["logs"])
    assert out["inputs"]["x"]["rows"] == 50 and out["outputs"]["ema"]["rows"] == 50
    preview = out["outputs"]["ema"]
    assert preview["columns"][0] == "ts" and len(preview["head"]) == 10
    assert preview["head"][0][0].startswith("20")  # ISO timestamp
    assert client.get("/api/custom-nodes", headers=alice.headers).json()["total"] == 0


def test_test_run_of_a_failing_node_is_200_failed(client: TestClient, alice: Account) -> None:
    code = 'def run(inputs, params):\n    raise RuntimeError("nope")\n'
    body = {"manifest": manifest(code=code)}
    out = client.post("/api/custom-nodes/test-run", json=body, headers=alice.headers).json()
    assert out["status"] == "failed" and "nope" in (out["error"] or "")


def test_test_run_with_an_invalid_manifest_is_422_under_manifest(
    client: TestClient, alice: Account
) -> None:
    body = {"manifest": manifest(outputs=[{"name": "o", "type": "trades"}]), "rows": 0}
    resp = client.post("/api/custom-nodes/test-run", json=body, headers=alice.headers)
    assert resp.status_code == 422
    locs = [e["loc"] for e in resp.json()["detail"]["errors"]]
    assert ["rows"] in locs  # rows below 1, refused before anything runs
    body["rows"] = 20
    resp = client.post("/api/custom-nodes/test-run", json=body, headers=alice.headers)
    assert resp.status_code == 422
    assert resp.json()["detail"]["errors"][0]["loc"] == ["manifest", "outputs", 0, "type"]
    assert "cannot produce a trades" in resp.json()["detail"]["errors"][0]["msg"]


@pytest.mark.usefixtures("no_docker_on_the_worker")
def test_without_a_sandbox_test_runs_are_503_and_saves_skip_the_check(
    client: TestClient, alice: Account
) -> None:
    resp = client.post(
        "/api/custom-nodes/test-run", json={"manifest": manifest()}, headers=alice.headers
    )
    assert resp.status_code == 503 and "no sandbox" in resp.json()["detail"]
    verdict = create_node(client, alice)["version"]["lookahead"]
    assert verdict["status"] == "skipped" and "no sandbox is available" in verdict["message"]


SLEEPER = CustomNodeManifest.model_validate(
    {
        "name": "napper",
        "version": "1.0.0",
        "language": "python",
        "inputs": [{"name": "x", "type": "series"}],
        "outputs": [{"name": "y", "type": "series"}],
        "resources": {"wall_s": 120},
        "code": "import time\n\ndef run(inputs, params):\n    time.sleep(600)\n",
    }
)


def _lab_containers(engine: Any, flow_run_id: UUID) -> list[Any]:
    label = f"{RUN_LABEL}=nodelab-{flow_run_id.hex}"
    return engine.api.containers(all=True, filters={"label": label})


def test_a_lab_run_past_its_timeout_is_504_cancelled_and_leaves_no_container(
    api_settings: ApiSettings, prefect_stack: Stack
) -> None:
    engine = docker.from_env(version="auto")
    tag = "nodelab:test_run"
    lab_filter = FlowRunFilter(tags=FlowRunFilterTags(all_=[tag]))
    params = {"manifest_json": SLEEPER.model_dump_json(), "params": {}, "rows": 20}
    with SyncPrefectClient(api=prefect_stack.api_url) as prefect:
        before = {r.id for r in prefect.read_flow_runs(flow_run_filter=lab_filter)}
        with ThreadPoolExecutor(max_workers=1) as pool:
            waiting = pool.submit(node_lab.run_lab, api_settings, "test_run", params, 45.0)

            def new_run() -> Any:
                runs = prefect.read_flow_runs(flow_run_filter=lab_filter)
                return next((r for r in runs if r.id not in before), None)

            flow_run = wait_for(new_run, 30, what="the lab's flow run")
            try:
                # the node is asleep in its container when the API's wait runs out
                wait_for(
                    lambda: any(
                        c["State"] == "running" for c in _lab_containers(engine, flow_run.id)
                    ),
                    timeout_s=40,
                    what="the sleeping node's container",
                )
                with pytest.raises(node_lab.LabTimeout) as raised:
                    waiting.result(timeout=120)
                assert raised.value.status_code == 504
                assert "did not finish within 45 s: the node did not finish" in raised.value.detail
                assert f"it was cancelled (flow run {flow_run.id})" in raised.value.detail
                final = wait_for(
                    lambda: (s := prefect.read_flow_run(flow_run.id).state) and s.is_final() and s,
                    timeout_s=90,
                    what="the timed-out lab flow run to end",
                )
                assert final.is_cancelled(), final
                wait_for(
                    lambda: not _lab_containers(engine, flow_run.id),
                    timeout_s=30,
                    what="the lab's containers to be gone",
                )
            finally:
                kill_run_containers(f"nodelab-{flow_run.id.hex}")


def test_the_run_shows_the_sandbox_its_record_names(
    client: TestClient, alice: Account, api_settings: ApiSettings
) -> None:
    pid = client.post("/api/pipelines", headers=alice.headers,
                      json={"name": "p", "source": "pipeline p\n"}).json()["id"]  # fmt: skip
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        session.add(Run(pipeline_id=pid, version=1, owner_id=alice.id, run_key="with-sandbox",
                        ir_hash="h", status="completed"))  # fmt: skip
        session.add(Run(pipeline_id=pid, version=1, owner_id=alice.id, run_key="no-record",
                        ir_hash="h", status="completed"))  # fmt: skip
        session.commit()
    run_dir = api_settings.runs_dir / "with-sandbox"
    run_dir.mkdir(parents=True)
    sandbox = {"runner": "docker", "images": {"python": "sha256:" + "a" * 64}}
    record = {"run_id": run_dir.name, "pipeline": "p", "status": "completed", "sandbox": sandbox}
    (run_dir / "run.json").write_text(json.dumps(record))
    listed = client.get(f"/api/pipelines/{pid}/runs", headers=alice.headers).json()["items"]
    by_version = {r["id"]: r for r in listed}
    first, second = sorted(by_version)
    assert client.get(f"/api/runs/{first}", headers=alice.headers).json()["sandbox"] == sandbox
    assert client.get(f"/api/runs/{second}", headers=alice.headers).json()["sandbox"] is None
