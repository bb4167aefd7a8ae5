"""Runs started over the API, executed by a real Prefect worker, read back over the API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.models.user import Role
from dsl.ir import PipelineIR
from tests.api.conftest import Account
from tests.api.stack import api_settings
from tests.deployments.fixtures import STACK_GROUP, Stack, pid_alive, wait_for

__all__ = ["api_settings"]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(STACK_GROUP)]

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = (ROOT / "examples" / "sma_crossover.af").read_text()
MISSING_DATA = SAMPLE.replace("data/sample_ohlcv.csv", "data/no_such_file.csv").replace(
    "pipeline sma_crossover", "pipeline missing_data"
)
SLOW = 'pipeline slow_one "Slow"\n\ndata = t_bars(n=50)\nnap  = t_sleep(data.close, seconds=300)\n'


def _pipeline(client: TestClient, who: Account, name: str, source: str) -> int:
    resp = client.post("/api/pipelines", json={"name": name, "source": source}, headers=who.headers)
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def _start(client: TestClient, who: Account, pipeline_id: int, **headers: str) -> dict:
    resp = client.post(
        f"/api/pipelines/{pipeline_id}/runs", json={}, headers={**who.headers, **headers}
    )
    assert resp.status_code == 202, resp.text
    return resp.json()


def _wait_final(client: TestClient, who: Account, run_id: int, timeout_s: float = 120) -> dict:
    def final() -> dict | None:
        run = client.get(f"/api/runs/{run_id}", headers=who.headers).json()
        return run if run["status"] in ("completed", "failed", "cancelled") else None

    return wait_for(final, timeout_s, what=f"run {run_id} to end")


def _sse(client: TestClient, who: Account, run_id: int) -> list[tuple[str, dict]]:
    events: list[tuple[str, dict]] = []
    kind = "message"
    with client.stream("GET", f"/api/runs/{run_id}/logs/stream", headers=who.headers) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, json.loads(line.removeprefix("data: "))))
                kind = "message"
    return events


def _cli_metrics(stack: Stack, tmp_path: Path) -> dict:
    env = {**os.environ, "ALPHAFORGE_PREFECT_API_URL": stack.api_url}
    env.pop("PREFECT_API_URL", None)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "run",
            str(ROOT / "examples" / "sma_crossover.af"),
            "--json",
            "--data-dir",
            str(tmp_path / "cli"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=180,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["metrics"]


def test_web_run_completes_through_the_worker_with_the_cli_metrics(
    client: TestClient,
    alice: Account,
    make_user: Callable[..., Account],
    prefect_stack: Stack,
    tmp_path: Path,
) -> None:
    pid = _pipeline(client, alice, "sample", SAMPLE)
    started = _start(client, alice, pid)
    assert started["status"] == "pending" and started["trigger"] == "manual"
    assert started["prefect_flow_run_id"]
    assert started["prefect_url"].endswith(f"/runs/flow-run/{started['prefect_flow_run_id']}")

    events = _sse(client, alice, started["id"])
    lines = [e for kind, e in events if kind == "message"]
    statuses = [e["status"] for kind, e in events if kind == "status"]
    assert statuses[-1] == "completed" and "pending" not in statuses[-1:]
    assert {"data", "fast", "slow", "signal", "result"} <= {line["node_id"] for line in lines}
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))

    run = client.get(f"/api/runs/{started['id']}", headers=alice.headers).json()
    assert run["status"] == "completed" and run["error"] is None
    assert set(run["node_states"].values()) == {"completed"}
    assert run["mlflow_run_id"] and run["started_at"] and run["finished_at"]
    results = client.get(f"/api/runs/{run['id']}/results", headers=alice.headers).json()
    cli = _cli_metrics(prefect_stack, tmp_path)
    assert results["metrics"] == cli
    assert run["metrics"] == {
        k: cli[k] for k in ("sharpe", "total_return", "max_drawdown", "num_trades")
    }
    assert len(results["equity"]) == cli["bars"]
    assert all(p["drawdown"] <= 0 for p in results["equity"])
    assert min(p["drawdown"] for p in results["equity"]) == pytest.approx(cli["max_drawdown"])
    closed = [t for t in results["trades"] if not t["is_open"]]
    assert len(closed) == cli["num_trades"]

    logs = client.get(f"/api/runs/{run['id']}/logs", headers=alice.headers).json()
    assert logs[: len(lines)] == lines
    assert any(entry["node_id"] == "data" and "900 bars" in entry["message"] for entry in logs)

    csv_resp = client.get(f"/api/runs/{run['id']}/export/trades.csv", headers=alice.headers)
    assert csv_resp.headers["content-disposition"].startswith("attachment")
    assert csv_resp.text.splitlines()[0].startswith("entry_ts,exit_ts,side")
    assert len(csv_resp.text.splitlines()) == len(results["trades"]) + 1
    metrics_json = client.get(f"/api/runs/{run['id']}/export/metrics.json", headers=alice.headers)
    assert metrics_json.json()["sharpe"] == cli["sharpe"]
    ir_json = client.get(f"/api/runs/{run['id']}/export/ir.json", headers=alice.headers).text
    assert PipelineIR.from_json(ir_json).content_hash() == run["ir_hash"]

    listing = client.get(f"/api/pipelines/{pid}/runs", headers=alice.headers).json()
    assert listing["total"] == 1 and listing["items"][0]["id"] == run["id"]
    audit = client.get(
        "/api/audit?action=run.create", headers=make_user(Role.ADMIN, "root").headers
    ).json()
    assert audit["items"][0]["actor"] == "alice"
    assert audit["items"][0]["detail"]["ir_hash"] == run["ir_hash"]


def test_run_share_link_is_read_only_and_others_get_404(
    client: TestClient, alice: Account, bob: Account, observer: Account
) -> None:
    pid = _pipeline(client, alice, "sample", SAMPLE)
    run = _wait_final(client, alice, _start(client, alice, pid)["id"])
    assert run["status"] == "completed"
    for path in ("", "/logs", "/results", "/export/trades.csv", "/logs/stream"):
        assert client.get(f"/api/runs/{run['id']}{path}", headers=bob.headers).status_code == 404
    assert client.post(f"/api/runs/{run['id']}/cancel", headers=bob.headers).status_code == 404
    assert client.get(f"/api/pipelines/{pid}/runs", headers=bob.headers).status_code == 404
    assert client.post(f"/api/pipelines/{pid}/runs", headers=bob.headers).status_code == 404
    assert client.get(f"/api/runs/{run['id']}", headers=observer.headers).status_code == 200
    assert client.post(f"/api/runs/{run['id']}/cancel", headers=observer.headers).status_code == 403
    assert client.post(f"/api/pipelines/{pid}/runs", headers=observer.headers).status_code == 403
    refused = client.post(
        "/api/shares", json={"kind": "run", "target_id": run["id"]}, headers=bob.headers
    )
    assert refused.status_code == 404

    share = client.post(
        "/api/shares", json={"kind": "run", "target_id": run["id"]}, headers=alice.headers
    ).json()
    assert share["target"] == {
        "pipeline_id": pid,
        "pipeline_name": share["target"]["pipeline_name"],
        "pipeline_title": share["target"]["pipeline_title"],
        "run_id": run["id"],
    }
    shared = client.get(f"/api/shared/{share['token']}").json()
    assert shared["kind"] == "run" and shared["pipeline"]["source"] == SAMPLE
    assert shared["pipeline"]["name"] == share["target"]["pipeline_name"]
    assert shared["run"]["id"] == run["id"] and shared["run"]["status"] == "completed"
    assert shared["run"]["prefect_url"] is None and shared["run"]["mlflow_url"] is None
    own = client.get(f"/api/runs/{run['id']}/results", headers=alice.headers).json()
    assert shared["results"] == own
    as_bearer = {"Authorization": f"Bearer {share['token']}"}
    assert client.get(f"/api/runs/{run['id']}", headers=as_bearer).status_code == 401
    assert client.post(f"/api/runs/{run['id']}/cancel", headers=as_bearer).status_code == 401
    client.delete(f"/api/shares/{share['token']}", headers=alice.headers)
    assert client.get(f"/api/shared/{share['token']}").status_code == 404


def test_run_with_bad_data_fails_with_the_node_error(client: TestClient, alice: Account) -> None:
    pid = _pipeline(client, alice, "missing", MISSING_DATA)
    run = _wait_final(client, alice, _start(client, alice, pid)["id"])
    assert run["status"] == "failed"
    assert "'data'" in run["error"] and "no_such_file.csv" in run["error"]
    assert run["node_states"]["data"] == "failed"
    assert run["node_states"]["result"] == "cancelled"
    logs = client.get(f"/api/runs/{run['id']}/logs", headers=alice.headers).json()
    assert any(e["node_id"] == "data" and "no_such_file.csv" in e["message"] for e in logs)
    results = client.get(f"/api/runs/{run['id']}/results", headers=alice.headers).json()
    assert results == {"metrics": {}, "equity": [], "trades": [], "trades_total": 0}


@pytest.mark.parametrize(
    "nap_s",
    [
        # the node outlives the flow-run process's 3 s grace: the process is ended for it
        300,
        # the node ends inside the grace, so Prefect's engine gets to report the termination
        # itself (as in the browser tour, where the sample's nodes were already done): that
        # must be a cancellation, never a crash
        3,
    ],
)
def test_cancel_kills_the_flow_run_process_within_seconds(
    client: TestClient, alice: Account, prefect_stack: Stack, nap_s: int
) -> None:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.objects import StateType

    pid = _pipeline(client, alice, "slow", SLOW.replace("seconds=300", f"seconds={nap_s}"))
    started = _start(client, alice, pid)

    def napping() -> dict | None:
        run = client.get(f"/api/runs/{started['id']}", headers=alice.headers).json()
        return run if run["node_states"].get("nap") == "running" else None

    running = wait_for(napping, 120, interval_s=0.1, what="the slow node to start")
    assert running["status"] == "running" and running["node_states"]["data"] == "completed"
    with SyncPrefectClient(api=prefect_stack.api_url) as prefect:
        flow_run = prefect.read_flow_run(started["prefect_flow_run_id"])
    process = int(str(flow_run.infrastructure_pid).rsplit(":", 1)[-1])
    assert pid_alive(process)

    cancelled = client.post(f"/api/runs/{started['id']}/cancel", headers=alice.headers).json()
    if cancelled["status"] != "cancelled":
        # well inside the slow node's 300 s nap: only the cancel can have ended the run
        cancelled = _wait_final(client, alice, started["id"], timeout_s=120)
    assert cancelled["status"] == "cancelled", cancelled["error"]
    assert "crash" not in (cancelled["error"] or "")
    # a node that ends inside the grace keeps its result; one still computing is cancelled
    assert cancelled["node_states"]["nap"] == ("cancelled" if nap_s > 10 else "completed")
    wait_for(lambda: not pid_alive(process), 60, what="the flow-run process to exit")
    with SyncPrefectClient(api=prefect_stack.api_url) as prefect:
        flow_run_id = started["prefect_flow_run_id"]
        wait_for(
            lambda: prefect.read_flow_run(flow_run_id).state.is_cancelled(),
            60,
            what="the flow run to end Cancelled in Prefect",
        )
        history = [s.type for s in prefect.read_flow_run_states(flow_run_id)]
    # Prefect's own record says cancelled all along: the process was never reported crashed
    assert StateType.CRASHED not in history, history


def test_the_same_submission_twice_is_one_run(
    client: TestClient, alice: Account, prefect_stack: Stack
) -> None:
    from datetime import UTC, datetime

    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterTags,
    )

    since = datetime.now(UTC)
    pid = _pipeline(client, alice, "slow", SLOW)
    first = _start(client, alice, pid, **{"Idempotency-Key": "k-123"})
    again = _start(client, alice, pid, **{"Idempotency-Key": "k-123"})
    other = _start(client, alice, pid, **{"Idempotency-Key": "k-456"})
    assert again["id"] == first["id"] and other["id"] != first["id"]
    # the key names one request: on another pipeline, or another version, it is refused
    pid2 = _pipeline(client, alice, "slow2", SLOW)
    reused = client.post(
        f"/api/pipelines/{pid2}/runs",
        json={},
        headers={**alice.headers, "Idempotency-Key": "k-123"},
    )
    assert reused.status_code == 422, reused.text
    assert reused.json()["detail"] == (
        f"This Idempotency-Key was already used to start run {first['id']} of another request "
        f"(pipeline {pid}, version 1); send a new key for a different pipeline or version."
    )
    saved = client.put(f"/api/pipelines/{pid}", json={"source": SLOW + "\n"}, headers=alice.headers)
    assert saved.status_code == 200, saved.text
    assert saved.json()["version"]["number"] == 2
    key = {**alice.headers, "Idempotency-Key": "k-123"}
    v2 = client.post(f"/api/pipelines/{pid}/runs", json={"version": 2}, headers=key)
    assert v2.status_code == 422 and "(pipeline" in v2.json()["detail"], v2.text
    v1 = client.post(f"/api/pipelines/{pid}/runs", json={"version": 1}, headers=key)
    assert v1.status_code == 202 and v1.json()["id"] == first["id"], v1.text
    assert client.get(f"/api/pipelines/{pid2}/runs", headers=alice.headers).json()["total"] == 0
    listing = client.get(f"/api/pipelines/{pid}/runs", headers=alice.headers).json()
    assert listing["total"] == 2
    with SyncPrefectClient(api=prefect_stack.api_url) as prefect:
        flow_runs = prefect.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=[f"run:{first['id']}", f"pipeline:{pid}"]),
                expected_start_time=FlowRunFilterExpectedStartTime(after_=since),
            )
        )
    assert [str(f.id) for f in flow_runs] == [first["prefect_flow_run_id"]]
    for run in (first, other):
        client.post(f"/api/runs/{run['id']}/cancel", headers=alice.headers)
