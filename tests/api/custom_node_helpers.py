"""Manifests and helpers the custom-node API tests share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.services import custom_nodes
from tests.api.conftest import Account

EMA_CODE = """\
def run(inputs, params):
    x = inputs["x"]
    return {"ema": x.ewm(span=params["span"], adjust=False).mean()}
"""
# reads the next bar: the look-ahead check must catch it
PEEK_CODE = """\
def run(inputs, params):
    x = inputs["x"]
    return {"ema": x.shift(-1).fillna(x)}
"""


def manifest(name: str = "my_ema", code: str = EMA_CODE, **kw: Any) -> dict[str, Any]:
    """A Python series indicator: ``x`` in, ``ema`` out, an integer ``span`` param."""
    body: dict[str, Any] = {
        "name": name,
        "language": "python",
        "summary": "EMA of a series.",
        "inputs": [{"name": "x", "type": "series"}],
        "outputs": [{"name": "ema", "type": "series"}],
        "params_schema": {
            "type": "object",
            "properties": {"span": {"type": "integer", "minimum": 1, "default": 10}},
        },
        "code": code,
    }
    body.update(kw)
    return body


def create_node(client: TestClient, who: Account, **kw: Any) -> dict[str, Any]:
    """POST a node; asserts 201."""
    resp = client.post("/api/custom-nodes", json=manifest(**kw), headers=who.headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


def save_node(client: TestClient, who: Account, node_id: int, **kw: Any) -> dict[str, Any]:
    """PUT a new version; asserts 200."""
    resp = client.put(f"/api/custom-nodes/{node_id}", json=manifest(**kw), headers=who.headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def pipeline_using(spec: str, name: str = "my_ema") -> str:
    """A pipeline on the bundled sample that feeds ``use name@spec`` into a backtest."""
    return (
        f'pipeline uses_custom "Uses a custom node"\n\nuse {name}@{spec}\n\n'
        'data   = csv_ohlcv(path="data/sample_ohlcv.csv")\n'
        f"e      = {name}(data.close, span=5)\n"
        "sig    = threshold(e, lower=100.0, upper=200.0)\n"
        "result = backtest(data, sig)\n"
    )


@pytest.fixture
def verdicts(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, dict[str, Any]]]:
    """Look-ahead verdicts by code (default: pass) instead of the sandbox, for the tests that
    are about the registry, not the check; set ``verdicts[code] = {...}`` to change one."""
    table: dict[str, dict[str, Any]] = {}

    def fake(m: Any, *_args: Any) -> dict[str, Any]:
        return table.get(m.code, {"status": "pass", "message": "no look-ahead (fake)"})

    monkeypatch.setattr(custom_nodes, "lookahead_check", fake)
    yield table
