"""Language services: validate (always 200, fast), compile (IR or 422), the node catalog."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import api.services.language as language
from dsl.ir import PipelineIR
from dsl.parser import metamodel
from tests.api.conftest import Account
from tests.api.sources import BROKEN, SMA
from tests.api.test_datasets import bars, upload


@pytest.fixture(autouse=True)
def _btc(client: TestClient, alice: Account) -> None:
    """The sources read dataset "btc": alice has one (unknown names are AF209 errors)."""
    assert upload(client, alice, "btc", bars()).status_code == 201


@pytest.mark.sqlite_too
def test_validate_returns_ir_outline_and_hash(client: TestClient, alice: Account) -> None:
    r = client.post("/api/validate", json={"source": SMA}, headers=alice.headers)
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is True
    assert body["diagnostics"] == []
    ir = PipelineIR.model_validate(body["ir"])
    assert body["ir_hash"] == ir.content_hash()
    assert [o["id"] for o in body["outline"]] == ["data", "fast", "slow", "signal", "result"]
    fast = body["outline"][1]
    assert fast["type"] == "sma" and fast["line"] == 5 and fast["col"] == 1
    assert fast["inputs"] == ["data.close"] and fast["params"] == {"window": 10}


def test_validate_reports_errors_with_200(client: TestClient, alice: Account) -> None:
    r = client.post("/api/validate", json={"source": BROKEN}, headers=alice.headers)
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is False and body["ir"] is None and body["ir_hash"] is None
    diag = body["diagnostics"][0]
    assert set(diag) == {
        "code", "severity", "message", "line", "col", "end_line", "end_col", "hint", "suggestions",
    }  # fmt: skip
    assert (diag["code"], diag["line"], diag["col"], diag["end_col"]) == ("AF101", 4, 8, 12)
    assert [o["id"] for o in body["outline"]] == ["data", "fast"]


def test_validate_refuses_oversized_source_before_parsing(
    client: TestClient, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_a: object, **_k: object) -> None:
        raise AssertionError("the parser must not see it")

    monkeypatch.setattr(language, "compile_source", explode)
    r = client.post("/api/validate", json={"source": "#" * 20_001}, headers=alice.headers)
    assert r.status_code == 200
    assert r.json()["ok"] is False
    assert r.json()["diagnostics"][0]["code"] == "AF002"


def test_compile_returns_the_ir(client: TestClient, alice: Account) -> None:
    r = client.post("/api/compile", json={"source": SMA}, headers=alice.headers)
    assert r.status_code == 200
    ir = PipelineIR.model_validate(r.json())
    assert ir.name == "sma_crossover" and ir.title == "SMA Crossover"
    assert ir.node_ids() == ["data", "fast", "slow", "signal", "result"]


def test_compile_errors_are_422_with_diagnostics(client: TestClient, alice: Account) -> None:
    r = client.post("/api/compile", json={"source": BROKEN}, headers=alice.headers)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail["message"]
    assert detail["diagnostics"][0]["suggestions"] == ["sma"]


SWEEP_BLOCKS = (
    SMA
    + "sweep grid {\n  fast.window = [5, 10]\n  objective maximize result.sharpe\n}\n"
    + "walkforward(train=2y, test=6M, step=6M)\n"
)
STREAM_BLOCK = (
    SMA
    + "stream {\n"
    + '    source = replay(dataset="btc_1h", speed=0)\n'
    + "    warmup = 30d\n"
    + "    every 1h after 2m\n"
    + '    emit fast to csv_append(path="out.csv")\n'
    + "}\n"
)


def test_sweep_blocks_run_as_sweeps_and_a_stream_is_af008(
    client: TestClient, alice: Account
) -> None:
    # sweep and walkforward blocks are executed by sweeps: no warning
    r = client.post("/api/validate", json={"source": SWEEP_BLOCKS}, headers=alice.headers)
    body = r.json()
    assert r.status_code == 200 and body["ok"] is True and body["ir"] is not None
    assert body["diagnostics"] == []
    # a stream block is checked but not executed by this version: AF008 at its keyword
    r = client.post("/api/validate", json={"source": STREAM_BLOCK}, headers=alice.headers)
    body = r.json()
    got = [
        (d["code"], d["severity"], d["line"], d["col"], d["end_col"]) for d in body["diagnostics"]
    ]
    assert got == [("AF008", "warning", 9, 1, 7)]
    assert "does not execute `stream` blocks yet" in body["diagnostics"][0]["message"]
    assert "once" in body["diagnostics"][0]["message"]
    # /api/compile answers with the IR (warnings do not stop it); with an error, the 422 lists
    # every diagnostic, the AF008 warning included.
    assert client.post("/api/compile", json={"source": SWEEP_BLOCKS}, headers=alice.headers).json()[
        "sweep"
    ]
    broken = STREAM_BLOCK.replace("crossover(fast, slow)", "crossover(fast, nope)")
    r = client.post("/api/compile", json={"source": broken}, headers=alice.headers)
    assert r.status_code == 422
    codes = [d["code"] for d in r.json()["detail"]["diagnostics"]]
    assert "AF008" in codes and "AF203" in codes


def test_observers_may_use_the_language_services(client: TestClient, observer: Account) -> None:
    sample = SMA.replace('dataset_ohlcv(name="btc")', 'csv_ohlcv(path="data/sample_ohlcv.csv")')
    ok = client.post("/api/validate", json={"source": sample}, headers=observer.headers).json()
    assert ok["ok"], ok
    assert client.post("/api/compile", json={"source": SMA}).status_code == 401


def test_each_request_compiles_once(
    client: TestClient, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = language.compile_source

    def counting(text: str, **kwargs: object):  # type: ignore[no-untyped-def]
        calls.append(text)
        return real(text, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(language, "compile_source", counting)
    r = client.post("/api/pipelines", json={"name": "x", "source": SMA}, headers=alice.headers)
    assert r.status_code == 201
    assert len(calls) == 1
    client.post("/api/validate", json={"source": SMA}, headers=alice.headers)
    assert len(calls) == 2


def test_validate_builds_the_parser_and_the_catalog_once(
    client: TestClient, alice: Account
) -> None:
    """What made validation slow was rebuilding textX's metamodel or the node catalog per
    request; counted here, not timed (a loaded machine would fail a stopwatch)."""
    sample = {"source": SMA}
    client.post("/api/validate", json=sample, headers=alice.headers)
    client.get("/api/nodes", headers=alice.headers)
    parsers, catalogs = metamodel.cache_info().misses, language.node_catalog.cache_info().misses
    for _ in range(7):
        assert client.post("/api/validate", json=sample, headers=alice.headers).json()["ok"]
        assert client.get("/api/nodes", headers=alice.headers).status_code == 200
    assert metamodel.cache_info().misses == parsers
    assert language.node_catalog.cache_info().misses == catalogs


def test_node_catalog_lists_the_builtin_nodes(client: TestClient, alice: Account) -> None:
    r = client.get("/api/nodes", headers=alice.headers)
    assert r.status_code == 200
    nodes = {n["name"]: n for n in r.json()}
    assert {"sma", "crossover", "backtest", "dataset_ohlcv", "csv_ohlcv"} <= set(nodes)
    sma = nodes["sma"]
    assert sma["params_schema"]["properties"]["window"]["minimum"] == 1
    assert [p["type"] for p in sma["inputs"]] == ["series"]
    assert sma["runtime"] == "builtin"
    assert (
        "sharpe" in nodes["backtest"]["metric_keys"] or "sharpe" in nodes["metrics"]["metric_keys"]
    )


def test_deep_nesting_is_refused_with_a_diagnostic(client: TestClient, alice: Account) -> None:
    source = "pipeline deep\n\nx = sma(" + "[" * 200 + "]" * 200 + ")\n"
    r = client.post("/api/validate", json={"source": source}, headers=alice.headers)
    assert r.status_code == 200
    assert r.json()["diagnostics"][0]["code"] == "AF003"
