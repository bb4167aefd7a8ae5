"""The sandbox-pod executor end to end against a fake Kubernetes API (tests/runners/fake_kube.py)
whose "kubelet" runs each pod's container in the local Docker engine: real custom nodes compute
real outputs through the pod path, equal to the Docker executor's; timeouts, OOM kills, cancels,
unstartable pods and job directories off the claim are classified, and no pod outlives its
execution."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dsl.ir import InputBinding, NodeIR
from runners.base import NodeResult
from runners.custom import CustomNodeManifest, Limits, ManifestCatalog, template
from runners.docker import DockerExecutor, SandboxImages
from runners.io import read_value, write_value
from runners.k8s import JobDirOutsideClaim, KubeApi, KubernetesExecutor, KubernetesSettings
from runners.sandboxed import ExecSpec, SandboxedRunner
from tests.runners.fake_kube import TOKEN, FakeKube

pytestmark = pytest.mark.docker

CLAIM, NAMESPACE = "alphaforge-state", "alphaforge"


@pytest.fixture
def kube(docker_engine: Any, tmp_path: Path) -> Iterator[FakeKube]:
    claim_root = tmp_path / "claim"
    claim_root.mkdir()
    fake = FakeKube(docker_engine, claim_root, CLAIM, NAMESPACE)
    yield fake
    fake.close()


def _settings(kube: FakeKube, **kw: Any) -> KubernetesSettings:
    return KubernetesSettings(
        api_url=kube.url,
        token=TOKEN,
        namespace=NAMESPACE,
        claim=CLAIM,
        claim_mount=kube.claim_root,
        poll_s=0.05,
        start_timeout_s=30,
        grace_s=5,
        **kw,
    )


def _executor(kube: FakeKube, images: SandboxImages | None = None) -> KubernetesExecutor:
    return KubernetesExecutor(KubeApi(_settings(kube)), images)


def _manifest(code: str, **resources: Any) -> CustomNodeManifest:
    return CustomNodeManifest(
        name="probe",
        version="1.0.0",
        language="python",
        inputs=({"name": "x", "type": "series"},),
        outputs=({"name": "report", "type": "metrics"},),
        resources=resources,
        code=code,
    )


def _series(tmp: Path) -> Path:
    idx = pd.date_range("2024-01-01", periods=200, freq="h", tz="UTC", name="ts")
    x = pd.Series(100 + np.cumsum(np.random.default_rng(7).normal(size=200)), index=idx)
    path = tmp / "x.parquet"
    write_value(x.rename("x"), "series", path)
    return path


def _run(
    runner: SandboxedRunner, manifest: CustomNodeManifest, inputs: Path, out: Path
) -> NodeResult:
    (port,) = manifest.inputs
    node = NodeIR(
        id="k8s_node",
        type=manifest.name,
        version=manifest.version,
        inputs={port.name: InputBinding(node="data", port="x")},
        outputs={p.name: p.type.value for p in manifest.outputs},
        runtime=manifest.language,
        code_hash=manifest.code_hash(),
    )
    return runner.run(node, {port.name: str(inputs)}, output_dir=out)


def _pods_gone(kube: FakeKube) -> None:
    """Every pod created was deleted, and its container with it."""
    kube.settle()
    created = [p["metadata"]["name"] for p in kube.created]
    assert created and sorted(kube.deleted) == sorted(created)
    assert kube.pods == {}
    left = kube.client.api.containers(all=True, filters={"label": "alphaforge.fakekube"})
    assert [c for c in left if c["Labels"]["alphaforge.fakekube"] in created] == []


@pytest.mark.parametrize("language", ["python", "javascript"])
def test_a_custom_node_computes_in_a_pod_what_it_computes_in_a_container(
    kube: FakeKube, docker_engine: Any, tmp_path: Path, language: str
) -> None:
    inputs = _series(tmp_path)
    manifest = template(language, "indicator")
    catalog = ManifestCatalog([manifest])
    pod_runner = SandboxedRunner(_executor(kube), catalog, work_root=kube.claim_root / "sandbox")
    in_pod = _run(pod_runner, manifest, inputs, tmp_path / "pod-out")
    assert in_pod.ok, "\n".join(in_pod.logs)
    docker_runner = SandboxedRunner(
        DockerExecutor(docker_engine), catalog, work_root=tmp_path / "docker-work"
    )
    in_docker = _run(docker_runner, manifest, inputs, tmp_path / "docker-out")
    assert in_docker.ok, in_docker.error
    (port,) = manifest.outputs
    got = read_value(in_pod.output_paths[port.name])
    pd.testing.assert_series_equal(got, read_value(in_docker.output_paths[port.name]))
    x = read_value(inputs)
    pd.testing.assert_series_equal(
        got, x.ewm(span=20, adjust=False).mean(), check_names=False, check_freq=False
    )
    assert in_pod.usage["runner"] == "kubernetes"
    assert in_pod.usage["image_digest"].startswith("docker-pullable://")
    assert "sandbox: kubernetes pod (gVisor)" in in_pod.logs[0]
    assert all(line.startswith("[k8s_node] ") for line in in_pod.logs)
    assert not any("@@alphaforge-done@@" in line for line in in_pod.logs)
    [pod] = kube.created
    assert pod["spec"]["runtimeClassName"] == "gvisor"
    assert pod["metadata"]["labels"]["alphaforge.io/run-id"] == pod_runner.run_id
    mounts = {m["mountPath"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["/job"]["readOnly"] is True and mounts["/out"]["readOnly"] is False
    assert mounts["/job"]["subPath"].startswith("sandbox/exec-")
    assert kube.ended[pod["metadata"]["name"]]["exitCode"] == 0
    _pods_gone(kube)
    assert list((kube.claim_root / "sandbox").iterdir()) == []  # the job dir went too


def test_a_node_past_its_wall_time_is_a_timeout_and_its_pod_is_deleted(
    kube: FakeKube, tmp_path: Path
) -> None:
    manifest = _manifest("import time\ndef run(inputs, params):\n    time.sleep(600)\n", wall_s=1)
    runner = SandboxedRunner(
        _executor(kube), ManifestCatalog([manifest]), work_root=kube.claim_root / "w"
    )
    t0 = time.monotonic()
    result = _run(runner, manifest, _series(tmp_path), tmp_path / "out")
    assert result.error_kind == "TIMEOUT", result.logs
    assert "1 s wall time" in str(result.error)
    assert time.monotonic() - t0 < 15
    _pods_gone(kube)


def test_a_node_over_its_memory_is_oom_killed_and_classified_so(
    kube: FakeKube, tmp_path: Path
) -> None:
    code = (
        "def run(inputs, params):\n"
        "    block = bytearray(1 << 30)\n"
        "    for i in range(0, len(block), 4096):\n"
        "        block[i] = 1\n"
        "    return {'report': {}}\n"
    )
    manifest = _manifest(code, memory_mb=256)
    runner = SandboxedRunner(
        _executor(kube), ManifestCatalog([manifest]), work_root=kube.claim_root / "w"
    )
    result = _run(runner, manifest, _series(tmp_path), tmp_path / "out")
    assert result.error_kind == "MEMORY_LIMIT", result.logs
    assert "256 MiB" in str(result.error)
    [pod] = kube.created
    assert pod["spec"]["containers"][0]["resources"]["limits"]["memory"] == "256Mi"
    assert kube.ended[pod["metadata"]["name"]]["reason"] == "OOMKilled"
    _pods_gone(kube)


def test_cancel_deletes_the_runs_pod_and_the_node_is_cancelled(
    kube: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.customnodes import kill_run_containers

    manifest = _manifest("import time\ndef run(inputs, params):\n    time.sleep(600)\n")
    runner = SandboxedRunner(
        _executor(kube), ManifestCatalog([manifest]), work_root=kube.claim_root / "w"
    )
    results: list[NodeResult] = []
    thread = threading.Thread(
        target=lambda: results.append(_run(runner, manifest, _series(tmp_path), tmp_path / "o"))
    )
    thread.start()
    until = time.monotonic() + 20
    while time.monotonic() < until and not any(
        p["status"].get("phase") == "Running" for p in list(kube.pods.values())
    ):
        time.sleep(0.05)
    # what a cancelled flow run's hook calls, in any process: it finds the pod by its run label
    _backend_env(kube, monkeypatch)
    assert kill_run_containers(f"{runner.run_id}-other") == 0
    assert kill_run_containers(runner.run_id) == 1
    thread.join(timeout=20)
    assert results and results[0].error_kind == "CANCELLED", results
    _pods_gone(kube)


def _backend_env(kube: FakeKube, monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings of a flow-run pod (infra/k8s/config.yaml) pointed at the fake."""
    env = {
        "ALPHAFORGE_SANDBOX_BACKEND": "kubernetes",
        "ALPHAFORGE_SANDBOX_K8S_API_URL": kube.url,
        "ALPHAFORGE_SANDBOX_K8S_TOKEN": TOKEN,
        "ALPHAFORGE_SANDBOX_K8S_NAMESPACE": NAMESPACE,
        "ALPHAFORGE_SANDBOX_K8S_CLAIM_MOUNT": str(kube.claim_root),
        "ALPHAFORGE_SANDBOX_WORK_ROOT": str(kube.claim_root / "sandbox"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_a_pod_that_cannot_start_fails_the_node_and_is_deleted(
    kube: FakeKube, tmp_path: Path
) -> None:
    manifest = template("python", "indicator")
    images = SandboxImages(python="alphaforge/no-such-image:0", node="alphaforge/no-such-image:0")
    runner = SandboxedRunner(
        _executor(kube, images), ManifestCatalog([manifest]), work_root=kube.claim_root / "w"
    )
    result = _run(runner, manifest, _series(tmp_path), tmp_path / "out")
    assert result.error_kind == "SANDBOX_UNAVAILABLE"
    assert "cannot start: ErrImagePull" in str(result.error)
    _pods_gone(kube)


def test_a_pod_evicted_before_its_container_ran_fails_the_node_and_is_deleted(
    kube: FakeKube, tmp_path: Path
) -> None:
    kube.evict = True
    manifest = template("python", "indicator")
    runner = SandboxedRunner(
        _executor(kube), ManifestCatalog([manifest]), work_root=kube.claim_root / "w"
    )
    result = _run(runner, manifest, _series(tmp_path), tmp_path / "out")
    assert result.error_kind == "SANDBOX_UNAVAILABLE"
    assert "ended Failed before its container ran: Evicted" in str(result.error)
    _pods_gone(kube)


def test_a_pod_changed_at_admission_is_deleted_as_a_violation(
    kube: FakeKube, tmp_path: Path
) -> None:
    def webhook(pod: dict[str, Any]) -> None:  # e.g. a policy engine "defaulting" the runtime
        pod["spec"]["runtimeClassName"] = "runc"

    kube.admit = webhook
    manifest = template("python", "indicator")
    runner = SandboxedRunner(
        _executor(kube), ManifestCatalog([manifest]), work_root=kube.claim_root / "w"
    )
    result = _run(runner, manifest, _series(tmp_path), tmp_path / "out")
    assert result.error_kind == "SANDBOX_VIOLATION"
    assert "spec.runtimeClassName is 'runc', sent 'gvisor'" in str(result.error)
    _pods_gone(kube)


def test_a_log_flood_is_an_output_limit_and_its_pod_is_deleted(
    kube: FakeKube, tmp_path: Path
) -> None:
    code = "def run(inputs, params):\n    while True:\n        print('x' * 4000)\n"
    manifest = _manifest(code)
    runner = SandboxedRunner(
        _executor(kube), ManifestCatalog([manifest]), work_root=kube.claim_root / "w"
    )
    result = _run(runner, manifest, _series(tmp_path), tmp_path / "out")
    assert result.error_kind == "OUTPUT_LIMIT", result.error
    assert sum(len(line) for line in result.logs) < 2 * (1 << 20)
    _pods_gone(kube)


def test_a_job_dir_outside_the_claim_is_refused_before_any_pod(
    kube: FakeKube, tmp_path: Path
) -> None:
    manifest = template("python", "indicator")
    executor = _executor(kube)
    runner = SandboxedRunner(executor, ManifestCatalog([manifest]), work_root=tmp_path / "off")
    result = _run(runner, manifest, _series(tmp_path), tmp_path / "out")
    assert result.error_kind == "SANDBOX_UNAVAILABLE"
    assert f"is not under {kube.claim_root}" in str(result.error)
    assert "ALPHAFORGE_SANDBOX_WORK_ROOT" in str(result.error)
    spec = ExecSpec(
        run_id="r",
        node_id="n",
        language="python",
        job_dir=kube.claim_root / ".." / "escape" / "job",
        out_dir=kube.claim_root / "w" / "out",
        limits=Limits.default(),
    )
    with pytest.raises(JobDirOutsideClaim, match="not under"):
        executor.execute(spec)
    assert kube.created == []


def test_the_backend_setting_picks_sandbox_pods(
    kube: FakeKube, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runners.caps import SandboxSettingsError
    from runners.docker.runner import SandboxUnavailable, user_code_runner

    _backend_env(kube, monkeypatch)
    runner = user_code_runner(ManifestCatalog([]), run_id=f"r-{uuid.uuid4().hex[:8]}")
    assert isinstance(runner, SandboxedRunner)
    assert isinstance(runner.executor, KubernetesExecutor)
    monkeypatch.setenv("ALPHAFORGE_SANDBOX_K8S_TOKEN", "wrong")
    with pytest.raises(SandboxUnavailable, match="401"):
        user_code_runner(ManifestCatalog([]))
    monkeypatch.setenv("ALPHAFORGE_SANDBOX_K8S_TOKEN", TOKEN)
    monkeypatch.setenv("ALPHAFORGE_SANDBOX_WORK_ROOT", "/var/tmp/elsewhere")
    with pytest.raises(SandboxUnavailable, match="not under"):
        user_code_runner(ManifestCatalog([]))
    monkeypatch.setenv("ALPHAFORGE_SANDBOX_BACKEND", "podman")
    with pytest.raises(SandboxSettingsError, match="ALPHAFORGE_SANDBOX_BACKEND='podman'"):
        user_code_runner(ManifestCatalog([]))
    from flows.customnodes import kill_run_containers

    assert kill_run_containers("no-such-run") == 0  # a cancel hook never raises for it
