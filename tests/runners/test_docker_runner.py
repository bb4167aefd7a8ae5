# ruff: noqa: F811  (pytest fixtures imported from the hostile suite are parameters here)
"""The Docker runner end to end: templates, logs, digests, cancel, sweeper, self-test gate."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

import runners
import runners.docker.engine as engine_mod
import runners.docker.runner as runner_mod
from runners.custom import template
from runners.docker import DockerExecutor, SandboxImages
from runners.docker.selftest import SelfTestReport
from tests.hostile.conftest import Sandbox, docker_engine, sandbox  # noqa: F401

pytestmark = pytest.mark.docker

SLEEP = "import time\ndef run(inputs, params):\n    time.sleep(10**6)\n"


@pytest.mark.parametrize("language", ["python", "javascript", "wasm"])
def test_templates_run_unchanged_in_the_sandbox(sandbox: Sandbox, language: str) -> None:
    x = sandbox.x
    expected = {
        "indicator": x.ewm(span=20, adjust=False).mean(),
        "signal": np.sign(x - x.shift(20)).fillna(0.0),
    }
    for kind, want in expected.items():
        out = sandbox.run(language, "", manifest=template(language, kind), node_id=f"t_{kind}")
        assert out.result.ok, out.result.error
        pd.testing.assert_series_equal(out.output, want, check_names=False, check_freq=False)
        assert all(line.startswith(f"[t_{kind}] ") for line in out.result.logs)
        assert out.result.usage["image_digest"].startswith("sha256:")


@pytest.mark.parametrize("language", ["python", "javascript", "wasm"])
def test_transform_template_reads_ohlcv_and_writes_a_frame(sandbox: Sandbox, language: str) -> None:
    from dsl.ir import InputBinding, NodeIR
    from runners.custom import ManifestCatalog
    from runners.docker import DockerRunner
    from runners.io import read_value, write_value

    x = sandbox.x
    bars = pd.DataFrame(
        {"open": x, "high": x + 1, "low": x - 2, "close": x, "volume": 1.0}, index=x.index
    )
    write_value(bars, "ohlcv", sandbox.tmp / "bars.parquet")
    manifest = template(language, "transform")
    runner = DockerRunner(
        ManifestCatalog([manifest]), client=sandbox.client, work_root=sandbox.work_root
    )
    sandbox.run_ids.append(runner.run_id)
    node = NodeIR(
        id="features",
        type=manifest.name,
        version=manifest.version,
        inputs={"bars": InputBinding(node="data", port="bars")},
        outputs={"features": "frame"},
        runtime=language,
        code_hash=manifest.code_hash(),
    )
    result = runner.run(
        node, {"bars": str(sandbox.tmp / "bars.parquet")}, output_dir=sandbox.tmp / "f"
    )
    assert result.ok, result.error
    frame = read_value(result.output_paths["features"])
    pd.testing.assert_series_equal(frame["ret"], x.pct_change(), check_names=False)
    pd.testing.assert_series_equal(frame["range"], 3 / x, check_names=False)


def test_wasm_module_compiled_from_c_runs_in_the_sandbox(sandbox: Sandbox) -> None:
    import base64
    from pathlib import Path

    from runners.custom import CustomNodeManifest

    wasm = (Path(runners.__file__).parent / "sandbox" / "examples" / "ema.wasm").read_bytes()
    manifest = CustomNodeManifest(
        name="ema_c",
        version="1.0.0",
        language="wasm",
        inputs=[{"name": "x", "type": "series"}],
        outputs=[{"name": "ema", "type": "series"}],
        params_schema={
            "type": "object",
            "properties": {"span": {"type": "integer", "default": 20}},
        },
        code=base64.b64encode(wasm).decode(),
        code_format="wasm_base64",
    )
    out = sandbox.run("wasm", "", manifest=manifest)
    assert out.result.ok, out.result.error
    want = sandbox.x.ewm(span=20, adjust=False).mean()
    pd.testing.assert_series_equal(out.output, want, check_names=False, check_freq=False)


def test_python_template_logs_reach_the_result_tagged(sandbox: Sandbox) -> None:
    out = sandbox.run("python", "", manifest=template("python", "indicator"), node_id="ema1")
    assert any(line == "[ema1] ema over 100 rows, span=20" for line in out.result.logs)
    assert out.result.logs[0].startswith("[ema1] sandbox: docker alphaforge/sandbox-python")


def _wait_for_container(client: Any, run_id: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = client.containers.list(filters={"label": f"alphaforge.run_id={run_id}"})
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no running container for {run_id}")


@pytest.mark.parametrize("same_process", [True, False])
def test_cancel_kills_the_runs_container_within_seconds(
    sandbox: Sandbox, same_process: bool
) -> None:
    run_id = f"cancel-{same_process}-{time.time_ns()}"
    result: dict[str, Any] = {}
    runners: list[Any] = []

    def go() -> None:
        result["out"] = sandbox.run("python", SLEEP, run_id=run_id, runner_hook=runners.append)

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    container = _wait_for_container(sandbox.client, run_id)
    assert container.labels["alphaforge.node_id"] == "attack"
    assert container.labels["alphaforge.created_at"].isdigit()
    t0 = time.monotonic()
    # the same worker's runner, or another process's executor (e.g. the API) by label
    killed = (runners[0] if same_process else DockerExecutor(sandbox.client)).cancel(run_id)
    thread.join(timeout=20)
    assert killed == 1
    assert time.monotonic() - t0 < 5
    assert result["out"].result.error_kind == "CANCELLED"


def test_sweeper_removes_stale_and_orphaned_containers_only(docker_engine: Any) -> None:
    from runners.docker import sweep

    now = time.time()
    image = SandboxImages().python
    cmd = ["/usr/local/bin/python3", "-c", "import time; time.sleep(120)"]

    def start(deadline: float, owner: str) -> Any:
        labels = {
            "alphaforge.sandbox": "1",
            "alphaforge.run_id": "sweep-test",
            "alphaforge.deadline": f"{deadline:.0f}",
            "alphaforge.owner": owner,
        }
        return docker_engine.containers.run(
            image, cmd, detach=True, labels=labels, network_mode="none", user="10001"
        )

    stale = start(now - 10, engine_mod.owner_label())
    orphan = start(now + 600, f"{engine_mod.socket.gethostname()}:999999999")
    alive = start(now + 600, engine_mod.owner_label())
    try:
        sweep(docker_engine)  # another xdist worker's sweep may remove them first: same result
        labels = {"label": "alphaforge.run_id=sweep-test"}
        present = {c["Id"] for c in docker_engine.api.containers(all=True, filters=labels)}
        assert stale.id not in present and orphan.id not in present
        assert alive.id in present
        alive.reload()
        assert alive.status == "running"
    finally:
        for c in (stale, orphan, alive):
            with contextlib.suppress(Exception):
                c.remove(force=True)


def test_runner_refuses_user_code_until_the_self_test_passed(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_mod, "_SELF_TESTS", {})
    failing = SelfTestReport(passed=False, failures=["network: {'reached': 1}"])
    monkeypatch.setattr(runner_mod, "run_self_test", lambda executor: failing)
    code = "def run(inputs, params):\n    open('/out/ran', 'w').write('x')\n"
    out = sandbox.run("python", code)
    assert out.result.error_kind == "SANDBOX_UNAVAILABLE"
    assert "self-test failed" in out.result.error and "network" in out.result.error


def test_runner_refuses_when_the_image_is_missing(sandbox: Sandbox) -> None:
    images = SandboxImages(python="alphaforge/no-such-image:0", node="alphaforge/no-such:0")

    def swap(runner: Any) -> None:
        runner.executor.images = images

    out = sandbox.run("python", SLEEP, runner_hook=swap)
    assert out.result.error_kind == "SANDBOX_UNAVAILABLE"
    assert "infra/build_sandbox_images.sh" in out.result.error


def test_real_self_test_passes_on_this_engine(docker_engine: Any) -> None:
    from runners.docker import run_self_test

    report = run_self_test(DockerExecutor(docker_engine))
    assert report.passed, report.failures
