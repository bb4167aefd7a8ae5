"""Custom nodes against the real Docker sandbox: the look-ahead check on save, test runs,
no sandbox → 503 / ``skipped``, cancel kills a run's containers, the run's sandbox record."""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

import docker
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from api.models.run import Run
from api.services import runs
from api.settings import ApiSettings
from tests.api.conftest import Account
from tests.api.custom_node_helpers import PEEK_CODE, create_node, manifest

pytestmark = pytest.mark.docker

RUN_LABEL = "alphaforge.run_id"


@pytest.fixture
def no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    """No engine answers (and the development process runner is off)."""
    monkeypatch.setenv("DOCKER_HOST", f"unix:///nonexistent-{uuid.uuid4().hex}.sock")
    monkeypatch.delenv("ALPHAFORGE_ALLOW_PROCESS_RUNNER", raising=False)


def test_an_honest_node_passes_the_look_ahead_check(client: TestClient, alice: Account) -> None:
    verdict = create_node(client, alice)["version"]["lookahead"]
    assert verdict["status"] == "pass", verdict
    assert verdict["checked_rows"] == 400 and verdict["prefix_rows"] == 300
    assert verdict["first_difference"] is None


def test_a_node_reading_the_next_bar_fails_the_check_and_warns_in_pipelines(
    client: TestClient, alice: Account
) -> None:
    node = create_node(client, alice, name="peek", code=PEEK_CODE)  # saving is never blocked
    verdict = node["version"]["lookahead"]
    assert verdict["status"] == "fail", verdict
    first = verdict["first_difference"]
    assert first["port"] == "ema" and first["row"] == 299  # the prefix's last row saw the future
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


@pytest.mark.usefixtures("no_docker")
def test_without_a_sandbox_test_runs_are_503_and_saves_skip_the_check(
    client: TestClient, alice: Account
) -> None:
    resp = client.post(
        "/api/custom-nodes/test-run", json={"manifest": manifest()}, headers=alice.headers
    )
    assert resp.status_code == 503 and "no sandbox" in resp.json()["detail"]
    verdict = create_node(client, alice)["version"]["lookahead"]
    assert verdict["status"] == "skipped" and "no sandbox is available" in verdict["message"]


def _sleeper(run_key: str) -> Any:
    client = docker.from_env(version="auto")
    image = next(i for i in client.images.list("alphaforge/sandbox-python") if i.tags)
    return client.containers.run(
        image.tags[0], ["-c", "import time; time.sleep(300)"], entrypoint=["python3"], detach=True,
        labels={RUN_LABEL: run_key}, network_mode="none",
    )  # fmt: skip


def test_cancelling_a_run_kills_its_sandbox_containers(
    client: TestClient, alice: Account, api_settings: ApiSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = client.post("/api/pipelines", headers=alice.headers,
                      json={"name": "p", "source": "pipeline p\n"}).json()["id"]  # fmt: skip
    run_key = f"cancel-{uuid.uuid4().hex[:8]}"
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        run = Run(pipeline_id=pid, version=1, owner_id=alice.id, run_key=run_key, ir_hash="h",
                  status="running", prefect_flow_run_id=str(uuid.uuid4()))  # fmt: skip
        session.add(run)
        session.commit()
        run_id = run.id
    container = _sleeper(run_key)
    asked: list[str] = []

    class _Prefect:
        def __enter__(self) -> object:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    # Prefect itself is another test's business (tests/api/test_runs.py): here it is asked
    # to cancel and the run never reports back, as when a worker is wedged
    monkeypatch.setattr(runs, "prefect_client", lambda settings: _Prefect())
    monkeypatch.setattr(runs, "cancel_flow_run", lambda c, fid: asked.append(fid))
    monkeypatch.setattr(runs, "CANCEL_WAIT_S", 0.5)
    try:
        resp = client.post(f"/api/runs/{run_id}/cancel", headers=alice.headers)
        assert resp.status_code == 200, resp.text
        assert len(asked) == 1
        with pytest.raises(docker.errors.NotFound):
            container.reload()
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


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
    (run_dir / "run.json").write_text(json.dumps({"status": "completed", "sandbox": sandbox}))
    listed = client.get(f"/api/pipelines/{pid}/runs", headers=alice.headers).json()["items"]
    by_version = {r["id"]: r for r in listed}
    first, second = sorted(by_version)
    assert client.get(f"/api/runs/{first}", headers=alice.headers).json()["sandbox"] == sandbox
    assert client.get(f"/api/runs/{second}", headers=alice.headers).json()["sandbox"] is None
