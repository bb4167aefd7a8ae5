"""Custom nodes inside pipeline runs: real Docker sandbox, real Prefect server, real MLflow.

One shared run compiles a real .af source whose `use` lines resolve (through the CLI's local
resolver) to the nine templates (3 languages x indicator/signal/transform), feeding built-in
nodes; the other tests reuse it (cache, run.json, run log) to keep the suite fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from docker.errors import DockerException

import runners.docker.runner as runner_mod
from cli.nodes_dir import LocalNodeResolver
from dsl import compile_source
from dsl.ir import PipelineIR
from runners.custom import CustomNodeManifest, template
from runners.io import read_value
from runners.nodestore import ManifestStore

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.usefixtures("prefect_api")]

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIR = ROOT / "examples" / "data"
SHORT = {"python": "py", "javascript": "js", "wasm": "wasm"}
LANGS = ("python", "javascript", "wasm")
KINDS = ("indicator", "signal", "transform")


def _templates() -> list[CustomNodeManifest]:
    return [
        template(lang, kind).model_copy(update={"name": f"{SHORT[lang]}_{kind}"})  # type: ignore[arg-type]
        for lang in LANGS
        for kind in KINDS
    ]


SOURCE = "\n".join(
    ['pipeline customs "Templates in a pipeline"', ""]
    + [f"use {SHORT[lang]}_{kind}@1" for lang in LANGS for kind in KINDS]
    + [
        "",
        'data = csv_ohlcv(path="sample_ohlcv.csv")',
        "ref = ema(data.close, window=20)",
        "slow = sma(data.close, window=50)",
    ]
    + [
        line
        for lang in LANGS
        for line in (
            f"{SHORT[lang]}_ema = {SHORT[lang]}_indicator(data.close, span=20)",
            f"{SHORT[lang]}_cross = crossover({SHORT[lang]}_ema, slow)",
            f"{SHORT[lang]}_sig = {SHORT[lang]}_signal(data.close, lookback=10)",
            f"{SHORT[lang]}_feat = {SHORT[lang]}_transform(data)",
            f"{SHORT[lang]}_bt = backtest(data, {SHORT[lang]}_sig, cash=100_000, fee_bps=5)",
        )
    ]
    + ["result = metrics(py_bt.equity, py_bt.trades)", ""]
)


def _compile(source: str, resolver: LocalNodeResolver) -> PipelineIR:
    result = compile_source(source, filename="customs.af", resolver=resolver)
    assert result.ok, [d.message for d in result.diagnostics]
    assert result.ir is not None
    return result.ir


def _run(settings: Any, ir: PipelineIR, **kw: Any) -> Any:
    from tests.flows.support import run_ir

    return run_ir(settings, ir, SAMPLE_DIR, track=False, **kw)


def _output(run_dir: Path, node_id: str, port: str) -> Any:
    record = json.loads((run_dir / "nodes" / f"{node_id}.json").read_text())
    return read_value(record["output_paths"][port])


def test_nine_templates_in_a_pipeline(settings: Any, docker_engine: Any) -> None:
    """One shared pipeline (two runs: the second from the cache) for every check below: run
    as one test so pytest-xdist never runs it twice."""
    resolver = LocalNodeResolver(_templates())
    ir = _compile(SOURCE, resolver)
    resolver.store_into(ManifestStore(settings.root / "custom-nodes"))
    first = _run(settings, ir)
    second = _run(settings, ir)
    shared = (settings, ir, first, second)
    _check_ir_pins(shared)
    _check_outputs_feed_builtins(shared)
    _check_run_json_sandbox(shared)
    _check_cache_hit(shared)
    _check_run_log(shared)


def _check_ir_pins(shared: Any) -> None:
    _, ir, _, _ = shared
    by_name = {m.name: m for m in _templates()}
    for lang in LANGS:
        for kind in KINDS:
            node = next(n for n in ir.nodes if n.type == f"{SHORT[lang]}_{kind}")
            assert node.runtime == lang
            assert node.version == "1.0.0"
            assert node.code_hash == by_name[node.type].code_hash()


def _check_outputs_feed_builtins(shared: Any) -> None:
    _, _, first, _ = shared
    assert first.status == "completed", first.error
    run_dir = first.run_dir
    bars = pd.read_csv(SAMPLE_DIR / "sample_ohlcv.csv")
    close = bars["close"].to_numpy()
    ref = _output(run_dir, "ref", "value").to_numpy()
    pandas_ema = pd.Series(close).ewm(span=20, adjust=False).mean().to_numpy()
    for lang in LANGS:
        s = SHORT[lang]
        ema = _output(run_dir, f"{s}_ema", "ema").to_numpy()
        # the template is pandas' ewm(adjust=False); the built-in is seeded with an SMA: the
        # seeds' difference has decayed far below 1e-9 after a few hundred bars
        np.testing.assert_allclose(ema, pandas_ema, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ema[400:], ref[400:], rtol=0, atol=1e-9)
        cross = _output(run_dir, f"{s}_cross", "signal").to_numpy()
        assert set(np.unique(cross)) <= {-1.0, 0.0, 1.0} and (cross != 0).any()
        sig = _output(run_dir, f"{s}_sig", "signal").to_numpy()
        want = np.sign(close - pd.Series(close).shift(10).to_numpy())
        np.testing.assert_array_equal(sig[10:], want[10:])
        feat = _output(run_dir, f"{s}_feat", "features")
        np.testing.assert_allclose(
            feat["range"].to_numpy(),
            (bars["high"] - bars["low"]).to_numpy() / close,
            rtol=1e-12,
        )
        metrics = _output(run_dir, f"{s}_bt", "metrics")
        assert metrics["num_trades"] > 0
    # the three languages' signals are identical, so are their backtests
    assert _output(run_dir, "js_bt", "metrics") == _output(run_dir, "py_bt", "metrics")
    assert _output(run_dir, "wasm_bt", "metrics") == _output(run_dir, "py_bt", "metrics")
    assert first.metrics["sharpe"] is not None


def _check_run_json_sandbox(shared: Any) -> None:
    _, _, first, second = shared
    record = json.loads((first.run_dir / "run.json").read_text())
    sandbox = record["sandbox"]
    assert sandbox["runner"] == "docker"
    assert set(sandbox["images"]) == set(LANGS)
    assert all(d.startswith("sha256:") for d in sandbox["images"].values())
    assert record["nodes"]["py_ema"]["usage"]["image_digest"] == sandbox["images"]["python"]
    # the repeat ran no user code: every custom node came from the cache
    again = json.loads((second.run_dir / "run.json").read_text())
    assert again["sandbox"] is None


def _check_cache_hit(shared: Any) -> None:
    _, ir, first, second = shared
    assert second.status == "completed"
    customs = [n.id for n in ir.nodes if n.runtime != "builtin"]
    assert len(customs) == 9
    assert all(first.node_states[n] == "completed" for n in customs)
    assert all(second.node_states[n] == "cached" for n in customs)
    assert second.metrics == first.metrics


def _check_run_log(shared: Any) -> None:
    _, _, first, _ = shared
    log = (first.run_dir / "run.log").read_text()
    assert "[py_ema] ema over 900 rows, span=20" in log
    assert "[js_ema] ema over 900 rows, span=20" in log
    assert "[wasm_ema] sandbox: docker" in log


PINNED = """pipeline pinned "Pinned"
use scale{spec}
data = csv_ohlcv(path="sample_ohlcv.csv")
x = scale(data.close)
"""


def _scale(version: str, factor: int) -> CustomNodeManifest:
    return CustomNodeManifest(
        name="scale",
        version=version,
        language="python",
        inputs=({"name": "x", "type": "series"},),  # type: ignore[arg-type]
        outputs=({"name": "y", "type": "series"},),  # type: ignore[arg-type]
        code=f"def run(inputs, params):\n    return {{'y': inputs['x'] * {factor}}}\n",
    )


def test_version_pinning_runs_the_resolved_code(settings: Any, docker_engine: Any) -> None:
    versions = [_scale("1.0.0", 2), _scale("1.1.0", 3), _scale("2.0.0", 4)]
    resolver = LocalNodeResolver(versions)
    caret = _compile(PINNED.format(spec="@1.0"), resolver)
    exact = _compile(PINNED.format(spec="@=1.0.0"), resolver)
    assert caret.node("x").version == "1.1.0"
    assert caret.node("x").code_hash == versions[1].code_hash()
    assert exact.node("x").version == "1.0.0"
    assert exact.node("x").code_hash == versions[0].code_hash()
    ManifestStore(settings.root / "custom-nodes").put(versions[0])  # only what the IR pins
    result = _run(settings, exact)
    assert result.status == "completed", result.error
    close = pd.read_csv(SAMPLE_DIR / "sample_ohlcv.csv")["close"].to_numpy()
    np.testing.assert_allclose(_output(result.run_dir, "x", "y").to_numpy(), close * 2)
    # the caret IR pins 1.1.0, whose code is not in the store: the node fails, naming the hash
    missing = _run(settings, caret)
    assert missing.status == "failed"
    assert versions[1].code_hash()[:12] in (missing.error or "")


def test_process_runner_is_announced_in_the_run_log(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_engine(**_: Any) -> Any:
        raise DockerException("no engine on this machine")

    monkeypatch.setattr(runner_mod, "docker_client", no_engine)
    monkeypatch.setenv("ALPHAFORGE_ALLOW_PROCESS_RUNNER", "1")
    manifest = _scale("1.0.0", 2)
    ManifestStore(settings.root / "custom-nodes").put(manifest)
    ir = _compile(PINNED.format(spec="@1"), LocalNodeResolver([manifest]))
    result = _run(settings, ir)
    assert result.status == "completed", result.error
    log = (result.run_dir / "run.log").read_text()
    assert "[x] WARNING: ran WITHOUT a sandbox" in log
    assert "[flow] user code in this run: WARNING: ran WITHOUT a sandbox" in log
    record = json.loads((result.run_dir / "run.json").read_text())
    assert record["sandbox"] == {"runner": "process", "images": {}}


def test_without_any_sandbox_the_custom_node_fails_cleanly(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_engine(**_: Any) -> Any:
        raise DockerException("no engine on this machine")

    monkeypatch.setattr(runner_mod, "docker_client", no_engine)
    monkeypatch.delenv("ALPHAFORGE_ALLOW_PROCESS_RUNNER", raising=False)
    manifest = _scale("1.0.0", 2)
    ManifestStore(settings.root / "custom-nodes").put(manifest)
    result = _run(settings, _compile(PINNED.format(spec="@1"), LocalNodeResolver([manifest])))
    assert result.status == "failed"
    record = json.loads((result.run_dir / "run.json").read_text())
    assert record["nodes"]["x"]["error_kind"] == "SANDBOX_UNAVAILABLE"
    assert record["sandbox"] is None
