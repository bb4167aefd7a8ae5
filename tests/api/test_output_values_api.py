"""Bad values from a node through the web API (issue 10 item 7): a test run answers 200 with the
named failure, never a 500 or a traceback; a pipeline run whose custom node returns metrics that
are not numbers ends ``failed``, not ``completed``."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import Account
from tests.api.custom_node_helpers import create_node, manifest
from tests.api.stack import api_settings
from tests.deployments.fixtures import STACK_GROUP, wait_for

__all__ = ["api_settings"]
pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.xdist_group(STACK_GROUP)]

METRICS_OUT = [{"name": "m", "type": "metrics"}]


@pytest.mark.parametrize(
    ("code", "outputs", "kind", "words"),
    [
        (
            "def run(inputs, params):\n    return {'m': {'n': 10 ** 4000}}\n",
            METRICS_OUT,
            "NUMBER_TOO_LARGE",
            ["metric 'n'", "4,001 digits"],
        ),
        (
            "def run(inputs, params):\n    return {'ema': inputs['x'] / 0.0}\n",
            None,
            "NON_FINITE_OUTPUT",
            ["output 'ema'", "row 0", "+inf"],
        ),
        (
            "def run(inputs, params):\n    return {'m': {'label': 'high', 'n': 1}}\n",
            METRICS_OUT,
            "INVALID_METRIC",
            ["metric 'label'", "a string"],
        ),
    ],
)
def test_a_test_run_with_bad_values_is_200_failed_with_the_named_error(
    client: TestClient, alice: Account, code: str, outputs: list | None, kind: str, words: list
) -> None:
    extra = {"outputs": outputs} if outputs else {}
    body = {"manifest": manifest(code=code, **extra), "rows": 50}
    resp = client.post("/api/custom-nodes/test-run", json=body, headers=alice.headers)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["status"] == "failed" and out["error_kind"] == kind, out
    for word in words:
        assert word in out["error"]
    assert "Traceback" not in resp.text and "OverflowError" not in resp.text


def test_a_run_whose_node_returns_text_metrics_ends_failed(
    client: TestClient, alice: Account
) -> None:
    code = "def run(inputs, params):\n    return {'m': {'label': 'high', 'n': 10 ** 4000}}\n"
    create_node(client, alice, name="tagger", code=code, outputs=METRICS_OUT)
    source = (
        'pipeline tagged "Tags"\n\nuse tagger@1\n\n'
        'data   = csv_ohlcv(path="data/sample_ohlcv.csv")\n'
        "tags   = tagger(data.close)\n"
        "sig    = threshold(data.close, lower=100.0, upper=200.0)\n"
        "result = backtest(data, sig)\n"
    )
    body = {"name": "p", "source": source}
    resp = client.post("/api/pipelines", json=body, headers=alice.headers)
    assert resp.status_code == 201, resp.text
    started = client.post(
        f"/api/pipelines/{resp.json()['id']}/runs", json={}, headers=alice.headers
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]

    def final() -> dict | None:
        run = client.get(f"/api/runs/{run_id}", headers=alice.headers).json()
        return run if run["status"] in ("completed", "failed", "cancelled") else None

    run = wait_for(final, 180, what=f"run {run_id} to end")
    assert run["status"] == "failed", run
    assert "node 'tags'" in run["error"] and "metric 'label'" in run["error"], run["error"]
    assert "Traceback" not in run["error"]
