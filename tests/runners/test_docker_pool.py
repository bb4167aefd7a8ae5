# ruff: noqa: F811  (pytest fixtures imported from the hostile suite are parameters here)
"""The warm pool: pre-started, single-use containers with the same policy and limits."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dsl.ir import InputBinding, NodeIR
from runners.custom import AdminCaps, CustomNodeManifest, ManifestCatalog, template
from runners.docker import DockerRunner
from runners.docker.pool import close_process_pool
from runners.io import read_value
from tests.hostile.conftest import Sandbox, sandbox  # noqa: F401

pytestmark = pytest.mark.docker

MARKER = """
import os
def run(inputs, params):
    seen = os.path.exists('/tmp/pool-marker')
    open('/tmp/pool-marker', 'w').write('x')
    return {'report': {'seen': int(seen), 'host': int(os.uname().nodename, 16)}}
"""


def _manifest(code: str) -> CustomNodeManifest:
    return CustomNodeManifest(
        name="pooled",
        version="1.0.0",
        language="python",
        inputs=[{"name": "x", "type": "series"}],
        outputs=[{"name": "report", "type": "metrics"}],
        code=code,
    )


def _run(runner: DockerRunner, m: CustomNodeManifest, box: Sandbox, name: str) -> Any:
    node = NodeIR(
        id=name,
        type=m.name,
        version=m.version,
        inputs={"x": InputBinding(node="d", port="x")},
        outputs={p.name: p.type.value for p in m.outputs},
        runtime=m.language,
        code_hash=m.code_hash(),
    )
    return runner.run(node, {"x": str(box.input_path)}, output_dir=box.tmp / name)


@pytest.fixture
def pooled(sandbox: Sandbox) -> Any:
    manifests = [_manifest(MARKER), _manifest("def run(i, p):\n    while True: pass\n")]
    manifests += [template(lang, "indicator") for lang in ("python", "javascript", "wasm")]
    runner = DockerRunner(
        ManifestCatalog(manifests),
        caps=AdminCaps(wall_s=3),
        client=sandbox.client,
        work_root=sandbox.work_root,
        pool_size=1,
    )
    sandbox.run_ids.append(runner.run_id)
    runner.ensure_ready()
    pool = runner.start_pool()
    assert pool.wait_ready(60)
    yield runner, manifests
    runner.close()
    close_process_pool()  # the pool is the process's: a runner's close leaves it warm
    labels = {"label": "alphaforge.pool=1"}
    deadline = time.monotonic() + 60  # executed ones are removed in the background
    while True:
        mine = [
            c
            for c in sandbox.client.api.containers(all=True, filters=labels)
            if str(sandbox.work_root) in str(c.get("Mounts"))
        ]
        if not mine or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert mine == [], "close_process_pool() left waiting containers"


@pytest.mark.parametrize("language", ["python", "javascript", "wasm"])
def test_pooled_execution_matches_the_fresh_result(
    pooled: Any, sandbox: Sandbox, language: str
) -> None:
    runner, _ = pooled
    runner.executor.pool.wait_ready(60)
    result = _run(runner, template(language, "indicator"), sandbox, f"p_{language}")
    assert result.ok, result.error
    assert result.usage["pooled"] is True
    got = read_value(result.output_paths["ema"])
    want = sandbox.x.ewm(span=20, adjust=False).mean()
    pd.testing.assert_series_equal(got, want, check_names=False, check_freq=False)


def test_pooled_containers_are_single_use(pooled: Any, sandbox: Sandbox) -> None:
    runner, manifests = pooled
    reports = []
    for i in range(2):
        runner.executor.pool.wait_ready(60)
        result = _run(runner, manifests[0], sandbox, f"m{i}")
        assert result.ok and result.usage["pooled"], result.error
        reports.append(read_value(Path(result.output_paths["report"])))
    assert [r["seen"] for r in reports] == [0, 0]
    assert reports[0]["host"] != reports[1]["host"]


def test_pooled_container_is_killed_at_the_wall_time(pooled: Any, sandbox: Sandbox) -> None:
    runner, manifests = pooled
    runner.executor.pool.wait_ready(60)
    result = _run(runner, manifests[1], sandbox, "busy")
    assert result.usage["pooled"] is True
    assert result.error_kind == "TIMEOUT"


def test_a_pooled_container_is_found_and_killed_by_run_from_another_client(
    pooled: Any, sandbox: Sandbox
) -> None:
    """Pooled containers are labelled before their run is known: taking one names it after
    the run, so ``kill_run_containers`` (the API's cancel, another process) finds it."""
    import threading

    from flows.customnodes import kill_run_containers
    from runners.docker.engine import docker_client, run_container_ids

    runner, manifests = pooled
    runner.executor.pool.wait_ready(60)
    results: list[Any] = []
    thread = threading.Thread(
        target=lambda: results.append(_run(runner, manifests[1], sandbox, "spin")), daemon=True
    )
    thread.start()
    other = docker_client(timeout=10)  # not the runner's client, as another process would be
    found: set[str] = set()
    while not found and thread.is_alive():
        found = run_container_ids(other, runner.run_id)
        time.sleep(0.02)
    assert len(found) == 1, "the claimed pooled container was not found by its run"
    assert run_container_ids(other, runner.run_id[:-1]) == set()  # no prefix matches
    assert kill_run_containers(runner.run_id) == 1
    thread.join(10)
    (result,) = results
    assert result.usage["pooled"] is True
    # CANCELLED, not TIMEOUT: the kill came before the 3 s wall time would have ended it
    assert result.error_kind == "CANCELLED", result.error
