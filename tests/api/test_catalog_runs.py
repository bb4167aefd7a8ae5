"""A web run of a catalog pipeline through the real Prefect worker: a 3-symbol panel uploaded
as a dataset, a rotation with shared capital, the run recording the version it read; a new
version moves the next run, a pinned reference does not."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dsl.ir import PipelineIR
from tests.api.conftest import Account
from tests.api.stack import api_settings
from tests.api.test_runs import _pipeline, _start, _wait_final
from tests.deployments.fixtures import STACK_GROUP

__all__ = ["api_settings"]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(STACK_GROUP)]

ROTATION = """pipeline rotation "Rotation"
data   = dataset("{ref}")
mom    = returns(data.close, periods=3)
weight = top_n(mom, n=1)
result = portfolio_backtest(data, weight, cash=10_000, fee_bps=0, slippage_bps=0)
"""


def _panel_csv(days: int, bump: float = 0.0) -> str:
    lines = ["ts,symbol,open,high,low,close,volume\n"]
    for d in range(days):
        day = f"2024-03-{d + 1:02d}"
        for i, sym in enumerate(("AAA", "BBB", "CCC")):
            p = 10.0 * (i + 1) + (d * (i - 1)) % 7 + 0.5 * d + bump
            lines.append(f"{day},{sym},{p},{p + 1},{p - 1},{p + 0.25},{100 + d}\n")
    return "".join(lines)


def _upload(client: TestClient, who: Account, csv: str) -> dict:
    r = client.post(
        "/api/datasets",
        data={"name": "trio"},
        files={"file": ("trio.csv", csv.encode(), "text/csv")},
        headers=who.headers,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_a_web_run_reads_the_catalog_and_records_the_version(
    client: TestClient, alice: Account, tmp_path: Path
) -> None:
    ds = _upload(client, alice, _panel_csv(20))
    assert ds["symbols"] == ["AAA", "BBB", "CCC"]
    floating = _pipeline(client, alice, "floating", ROTATION.format(ref="trio"))
    first = _wait_final(client, alice, _start(client, alice, floating)["id"])
    assert first["status"] == "completed", first["error"]
    assert [(d["node"], d["dataset"], d["version"]) for d in first["data"]] == [
        ("data", "trio", ds["version"])
    ]
    results = client.get(f"/api/runs/{first['id']}/results", headers=alice.headers).json()
    assert results["metrics"]["symbols"] == 3 and results["metrics"]["num_trades"] >= 1
    ir = client.get(f"/api/runs/{first['id']}/export/ir.json", headers=alice.headers).text
    assert PipelineIR.from_json(ir).node("data").params["version"] == ds["version"]
    assert PipelineIR.from_json(ir).content_hash() == first["ir_hash"]

    # a new version: the floating pipeline's next run reads it, a pinned one keeps the old
    pinned = _pipeline(client, alice, "pinned", ROTATION.format(ref=f"trio@{ds['version'][:8]}"))
    newer = client.post(
        f"/api/datasets/{ds['id']}/versions",
        files={"file": ("trio.csv", _panel_csv(25, bump=1.0).encode(), "text/csv")},
        headers=alice.headers,
    ).json()
    assert newer["version"] != ds["version"]
    second = _wait_final(client, alice, _start(client, alice, floating)["id"])
    old = _wait_final(client, alice, _start(client, alice, pinned)["id"])
    assert second["status"] == old["status"] == "completed"
    assert second["data"][0]["version"] == newer["version"]
    assert old["data"][0]["version"] == ds["version"]
    old_results = client.get(f"/api/runs/{old['id']}/results", headers=alice.headers).json()
    assert old_results["metrics"] == results["metrics"]  # the same bytes, the same numbers


def test_a_run_of_a_deleted_dataset_is_refused_before_it_starts(
    client: TestClient, alice: Account
) -> None:
    ds = _upload(client, alice, _panel_csv(10))
    pid = _pipeline(client, alice, "gone", ROTATION.format(ref="trio"))
    assert client.delete(f"/api/datasets/{ds['id']}", headers=alice.headers).status_code == 204
    r = client.post(f"/api/pipelines/{pid}/runs", json={}, headers=alice.headers)
    assert r.status_code == 422
    assert "step 'data'" in r.text and "trio" in r.text
    assert client.get(f"/api/pipelines/{pid}/runs", headers=alice.headers).json()["total"] == 0
