"""The node lab in the real Docker sandbox: test runs and the look-ahead check."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from docker.errors import DockerException

import runners.docker.runner as runner_mod
from flows import customnodes
from flows.nodelab import (
    check_lookahead,
    lab_outcome,
    load_sample,
    lookahead_flow,
    node_test_run_flow,
    read_result,
    test_run,
    write_result,
)
from runners.custom import CustomNodeManifest, template

pytestmark = pytest.mark.docker


def _node(language: str, code: str, **kw: Any) -> CustomNodeManifest:
    fields: dict[str, Any] = {
        "name": "lab_node",
        "version": "1.0.0",
        "language": language,
        "inputs": [{"name": "x", "type": "series"}],
        "outputs": [{"name": "y", "type": "series"}],
        "code": code,
    } | kw
    return CustomNodeManifest.model_validate(fields)


PEEK_PY = "def run(inputs, params):\n    return {'y': inputs['x'].shift(-1)}\n"
PEEK_JS = """
function run(inputs, params) {
  const x = inputs.x.values;
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = i + 1 < x.length ? x[i + 1] : NaN;
  return { y: out };
}
module.exports = { run };
"""


def test_test_run_body_for_the_python_indicator(docker_engine: Any) -> None:
    body = test_run(template("python", "indicator"), {"span": 10}, rows=120)
    assert set(body) == {"status", "error_kind", "error", "logs", "wall_s", "inputs", "outputs"}
    assert body["status"] == "completed", body["error"]
    assert body["error"] is None and body["error_kind"] is None
    assert any("ema over 120 rows, span=10" in line for line in body["logs"])
    assert all(line.startswith("[template_indicator] ") for line in body["logs"])
    x = body["inputs"]["x"]
    assert x["type"] == "series" and x["rows"] == 120 and x["columns"] == ["ts", "close"]
    close = load_sample()["close"].iloc[-120:]
    assert x["head"][0] == [close.index[0].isoformat(), close.iloc[0]]
    assert len(x["head"]) == len(x["tail"]) == 10
    assert x["tail"][-1][0] == close.index[-1].isoformat()
    ema = body["outputs"]["ema"]
    want = close.ewm(span=10, adjust=False).mean()
    assert ema["type"] == "series" and ema["rows"] == 120
    assert ema["tail"][-1][1] == pytest.approx(want.iloc[-1], rel=1e-12)


def test_test_run_nan_is_null_and_failures_are_reported(docker_engine: Any) -> None:
    code = "def run(inputs, params):\n    return {'y': inputs['x'].rolling(5).mean()}\n"
    body = test_run(_node("python", code), {}, rows=50)
    assert body["status"] == "completed"
    assert [r[1] for r in body["outputs"]["y"]["head"][:4]] == [None] * 4
    assert body["outputs"]["y"]["head"][4][1] is not None

    bad = test_run(_node("python", "def run(inputs, params):\n    raise ValueError('nope')\n"), {})
    assert bad["status"] == "failed"
    assert bad["error_kind"] == "USER_ERROR"
    assert "nope" in "\n".join(bad["logs"])
    # the user's traceback is the operators' (worker log): users get the summary line
    assert not any("Traceback" in line or 'File "' in line for line in bad["logs"])
    assert bad["outputs"] == {}
    assert bad["inputs"]["x"]["rows"] == 300


def test_every_input_type_gets_its_sample(docker_engine: Any) -> None:
    code = (
        "def run(inputs, params):\n"
        "    return {'m': {k: float(len(v)) for k, v in inputs.items()}}\n"
    )
    manifest = _node(
        "python",
        code,
        inputs=[
            {"name": "bars", "type": "ohlcv"},
            {"name": "s", "type": "signal"},
            {"name": "f", "type": "frame"},
            {"name": "e", "type": "equity"},
        ],
        outputs=[{"name": "m", "type": "metrics"}],
    )
    body = test_run(manifest, {}, rows=30)
    assert body["status"] == "completed", body["error"]
    assert body["outputs"]["m"]["head"] == [["bars", 30.0], ["e", 30.0], ["f", 30.0], ["s", 30.0]]
    ins = body["inputs"]
    assert ins["bars"]["columns"] == ["ts", "open", "high", "low", "close", "volume"]
    assert ins["f"]["columns"] == ["ts", "open", "high", "low", "close"]
    assert ins["e"]["head"][0][1] == 10_000.0
    assert {row[1] for row in ins["s"]["head"] + ins["s"]["tail"]} <= {-1.0, 0.0, 1.0}


@pytest.mark.parametrize("language", ["python", "javascript"])
def test_lookahead_template_passes(docker_engine: Any, language: str) -> None:
    for seed in (1, 2):
        verdict = check_lookahead(template(language, "indicator"), seed=seed)
        assert verdict["status"] == "pass", verdict
        assert verdict["checked_rows"] == 400 and verdict["seed"] == seed
        assert verdict["prefix_rows"] == max(verdict["prefix_lengths"])
        assert verdict["first_difference"] is None


@pytest.mark.parametrize(("language", "code"), [("python", PEEK_PY), ("javascript", PEEK_JS)])
def test_lookahead_catches_reading_the_next_bar(
    docker_engine: Any, language: str, code: str
) -> None:
    verdict = check_lookahead(_node(language, code))
    assert verdict["status"] == "fail", verdict
    diff = verdict["first_difference"]
    close = load_sample()["close"].iloc[-400:]
    n = verdict["prefix_rows"]  # the shortest prefix: its last row saw the next bar
    assert n == verdict["prefix_lengths"][0] and f"(seed {verdict['seed']})" in verdict["message"]
    assert diff["port"] == "y"
    assert diff["row"] == n - 1
    assert diff["ts"] == close.index[n - 1].isoformat()
    assert diff["whole"] == pytest.approx(close.iloc[n])
    assert diff["prefix"] is None


MAX_NORMALISER = {
    "python": "def run(inputs, params):\n    x = inputs['x']\n    return {'y': x / x.max()}\n",
    "javascript": (
        "function run(inputs, params) {\n"
        "  const x = inputs.x.values;\n"
        "  const top = Math.max(...x);\n"
        "  return { y: Array.from(x, (v) => v / top) };\n"
        "}\n"
    ),
}
# honest only at the old check's two lengths (400 and 300 bars), reads the next bar otherwise
TWO_LENGTHS = (
    "def run(inputs, params):\n"
    "    x = inputs['x']\n"
    "    if len(x) in (400, 300):\n"
    "        return {'y': x.ewm(span=10).mean()}\n"
    "    return {'y': x.shift(-1).fillna(x)}\n"
)


@pytest.mark.parametrize(
    ("language", "code"),
    [
        ("python", MAX_NORMALISER["python"]),
        ("javascript", MAX_NORMALISER["javascript"]),
        ("python", TWO_LENGTHS),
    ],
    ids=["max-python", "max-javascript", "two-lengths-python"],
)
def test_lookahead_catches_the_issues_two_cheats(
    docker_engine: Any, language: str, code: str
) -> None:
    t0 = time.perf_counter()
    verdict = check_lookahead(_node(language, code), seed=11)
    elapsed = time.perf_counter() - t0
    assert verdict["status"] == "fail", verdict
    assert verdict["seed"] == 11 and "(seed 11)" in verdict["message"]
    assert check_lookahead(_node(language, code), seed=11)["message"] == verdict["message"]
    assert elapsed < 30  # five executions, two at a time


def test_lookahead_error_and_skipped(docker_engine: Any) -> None:
    code = (
        "def run(inputs, params):\n"
        "    if len(inputs['x']) < 350:\n"
        "        raise ValueError('short')\n"
        "    return {'y': inputs['x']}\n"
    )
    verdict = check_lookahead(_node("python", code))
    assert verdict["status"] == "error"
    assert "the first" in verdict["message"] and "USER_ERROR" in verdict["message"]
    metrics_only = _node("python", "x", outputs=[{"name": "m", "type": "metrics"}])
    assert check_lookahead(metrics_only)["status"] == "skipped"


def test_no_sandbox_raises_sandbox_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_engine(**_: Any) -> Any:
        raise DockerException("no engine here")

    monkeypatch.setattr(runner_mod, "docker_client", no_engine)
    monkeypatch.delenv("ALPHAFORGE_ALLOW_PROCESS_RUNNER", raising=False)
    with pytest.raises(customnodes.SandboxUnavailable):
        test_run(template("python", "indicator"), {})
    with pytest.raises(customnodes.SandboxUnavailable):
        check_lookahead(template("python", "indicator"))


def test_no_sandbox_is_a_sandbox_unavailable_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_engine(**_: Any) -> Any:
        raise DockerException("no engine here")

    monkeypatch.setattr(runner_mod, "docker_client", no_engine)
    monkeypatch.delenv("ALPHAFORGE_ALLOW_PROCESS_RUNNER", raising=False)
    outcome = lab_outcome(lambda: test_run(template("python", "indicator"), {}))
    assert outcome["ok"] is False and outcome["error_kind"] == "SANDBOX_UNAVAILABLE"
    assert "no engine here" in outcome["error"]
    broken = lab_outcome(lambda: {}["missing"])
    assert broken == {"ok": False, "error_kind": "LAB_ERROR", "error": broken["error"]}
    assert broken["error"].startswith("AF790: the node lab stopped on an unexpected KeyError")


def test_results_are_read_once_under_a_hex_key(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    key = uuid.uuid4().hex
    write_result(store, key, {"ok": True, "value": {"n": 1}})
    assert (tmp_path / "store" / "nodelab" / f"{key}.json").is_file()
    assert read_result(store, key, remove=False) == {"ok": True, "value": {"n": 1}}
    assert read_result("file://" + store, key) == {"ok": True, "value": {"n": 1}}
    assert read_result(store, key) is None  # removed once read
    for bad in ("../" + key[3:], key.upper(), key + "0"):
        with pytest.raises(ValueError, match="32 lowercase hex digits"):
            read_result(store, bad)


def test_the_lab_flows_deliver_their_outcome_through_the_store(
    prefect_api: str, docker_engine: Any, tmp_path: Path
) -> None:
    store = str(tmp_path / "store")
    key = uuid.uuid4().hex
    manifest = template("python", "indicator")
    returned = node_test_run_flow(
        manifest_json=manifest.model_dump_json(),
        params={"span": 10},
        rows=120,
        result_key=key,
        store_url=store,
    )
    assert returned["ok"] is True
    assert returned == read_result(store, key)  # what the API reads is what the flow made
    body = returned["value"]
    assert body["status"] == "completed", body["error"]
    want = load_sample()["close"].iloc[-120:].ewm(span=10, adjust=False).mean()
    assert body["outputs"]["ema"]["tail"][-1][1] == pytest.approx(want.iloc[-1], rel=1e-12)

    key = uuid.uuid4().hex
    peek = _node("python", PEEK_PY)
    verdict = lookahead_flow(
        manifest_json=peek.model_dump_json(), result_key=key, store_url=store, seed=5
    )
    assert verdict == read_result(store, key)
    assert verdict["value"]["status"] == "fail" and verdict["value"]["seed"] == 5
    first_prefix = verdict["value"]["prefix_lengths"][0]
    assert verdict["value"]["first_difference"]["row"] == first_prefix - 1
