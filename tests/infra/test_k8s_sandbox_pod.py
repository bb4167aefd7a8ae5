"""The sandbox pods ``runners.k8s`` creates: valid for the Kubernetes API (strict, the validator
of test_k8s.py) and, field for field, as locked down as infra/k8s/sandbox.yaml's PodTemplate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from runners.custom import AdminCaps, Limits, ResourceRequest
from runners.k8s import KubernetesExecutor, KubernetesSettings
from runners.k8s.api import KubeApi
from runners.sandboxed import ExecSpec
from tests.infra.test_k8s import K8S, _validate, tools  # noqa: F401  (tools: a fixture)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("k8s")]

CLAIM_MOUNT = Path("/var/lib/alphaforge")
LIMITS = {
    "defaults": Limits.default(),
    "small": ResourceRequest(memory_mb=64, cpus=0.1, wall_s=1).clamp(AdminCaps()),
    "training": ResourceRequest(memory_mb=4096, cpus=2.5, wall_s=1800, output_mb=200).clamp(
        AdminCaps(max_memory_mb=8192, max_cpus=4, max_wall_s=3600, max_output_mb=512)
    ),
}


def _template() -> dict[str, Any]:
    docs = yaml.safe_load_all((K8S / "sandbox.yaml").read_text())
    [template] = [d for d in docs if d and d["kind"] == "PodTemplate"]
    return dict(template["template"])


def _pods() -> dict[str, dict[str, Any]]:
    settings = KubernetesSettings(
        api_url="http://127.0.0.1:9", namespace="alphaforge", claim_mount=CLAIM_MOUNT
    )
    executor = KubernetesExecutor(KubeApi(settings))
    pods = {}
    for label, limits in LIMITS.items():
        for language in ("python", "javascript", "wasm"):
            work = CLAIM_MOUNT / "sandbox" / f"exec-{label}"
            spec = ExecSpec(
                run_id="5f0c2a9e-52c1-4c0e-9d7e-0d2b7b1f8a11",
                node_id=f"node_{label}",
                language=language,
                job_dir=work / "job",
                out_dir=work / "out",
                limits=limits,
            )
            pods[f"{label}-{language}"] = executor.manifest(spec, f"af-sandbox-{label}-{language}")
    return pods


def test_sandbox_pods_are_valid_for_the_kubernetes_api(tools: Path, tmp_path: Path) -> None:  # noqa: F811
    pods = _pods()
    path = tmp_path / "pods.yaml"
    path.write_text(yaml.safe_dump_all([{**p, "metadata": {**p["metadata"],
                                                          "namespace": "alphaforge"}}
                                        for p in pods.values()]))  # fmt: skip
    done = _validate(tools, path)
    assert done.returncode == 0, done.stdout + done.stderr
    # strict: the same check refuses a pod with a field the API does not know
    [pod] = list(pods.values())[:1]
    pod["spec"]["containers"][0]["securityContex"] = {}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(pod))
    assert _validate(tools, bad).returncode != 0


def test_sandbox_pods_carry_the_pod_templates_security_exactly() -> None:
    template = _template()
    spec, [box] = template["spec"], template["spec"]["containers"]
    for name, pod in _pods().items():
        got, [container] = pod["spec"], pod["spec"]["containers"]
        for key in ("runtimeClassName", "restartPolicy", "automountServiceAccountToken",
                    "enableServiceLinks", "securityContext"):  # fmt: skip
            assert got[key] == spec[key], (name, key)
        assert set(spec) <= set(got), (name, set(spec) - set(got))
        assert "serviceAccountName" not in got and "hostNetwork" not in got
        for key in ("name", "imagePullPolicy", "securityContext"):
            assert container[key] == box[key], (name, key)
        assert set(box) <= set(container), (name, set(box) - set(container))
        # the labels the NetworkPolicy selects (the template's), so the pod has no network
        assert template["metadata"]["labels"].items() <= pod["metadata"]["labels"].items()
        # /tmp as the template's: memory-backed; /job read-only, /out writable, on the claim
        tmp = {v["name"]: v for v in spec["volumes"]}["tmp"]["emptyDir"]["medium"]
        volumes = {v["name"]: v for v in got["volumes"]}
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert volumes[mounts["/tmp"]["name"]]["emptyDir"]["medium"] == tmp
        assert mounts["/job"]["readOnly"] is True and mounts["/out"]["readOnly"] is False
        assert volumes[mounts["/job"]["name"]]["persistentVolumeClaim"]["claimName"] == (
            "alphaforge-state"
        )
        label = name.split("-")[0]
        assert mounts["/job"]["subPath"] == f"sandbox/exec-{label}/job"


def test_sandbox_pod_resources_and_deadline_follow_the_limits() -> None:
    pods = _pods()
    small = pods["small-python"]["spec"]
    assert small["containers"][0]["resources"]["limits"] == {
        "cpu": "100m", "memory": "64Mi", "ephemeral-storage": "18Mi"
    }  # fmt: skip
    assert small["activeDeadlineSeconds"] == 1 + 30  # the wall time + the grace
    training = pods["training-javascript"]["spec"]
    resources = training["containers"][0]["resources"]
    assert resources["limits"]["cpu"] == "2500m" and resources["limits"]["memory"] == "4096Mi"
    assert resources["requests"] == resources["limits"]
    assert training["activeDeadlineSeconds"] == 1800 + 30
    assert "--max-old-space-size=3072" in training["containers"][0]["command"]
    assert pods["training-python"]["spec"]["containers"][0]["image"].startswith(
        "alphaforge/sandbox-python:"
    )
    assert pods["training-wasm"]["spec"]["containers"][0]["image"].startswith(
        "alphaforge/sandbox-python:"
    )


def test_flow_run_pods_are_set_up_to_launch_sandbox_pods() -> None:
    """The settings select the pod backend with a work root on the claim, the flow-run pod
    mounts that claim there, and its service account may do what the executor does."""
    docs = [d for p in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    config = by_kind[("ConfigMap", "alphaforge-config")]["data"]
    assert config["ALPHAFORGE_SANDBOX_BACKEND"] == "kubernetes"
    mount = Path(config["ALPHAFORGE_SANDBOX_K8S_CLAIM_MOUNT"])
    assert Path(config["ALPHAFORGE_SANDBOX_WORK_ROOT"]).is_relative_to(mount)
    assert config["ALPHAFORGE_SANDBOX_K8S_CLAIM"] == "alphaforge-state"
    template = json.loads((K8S / "work-pool-template.json").read_text())
    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    [claimed] = [m for m in pod["containers"][0]["volumeMounts"] if Path(m["mountPath"]) == mount]
    claim = volumes[claimed["name"]]["persistentVolumeClaim"]["claimName"]
    assert claim == config["ALPHAFORGE_SANDBOX_K8S_CLAIM"]
    account = template["variables"]["properties"]["service_account_name"]["default"]
    [binding] = [d for d in docs if d["kind"] == "RoleBinding" and
                 {"kind": "ServiceAccount", "name": account,
                  "namespace": "alphaforge"} in d["subjects"]]  # fmt: skip
    rules = by_kind[("Role", binding["roleRef"]["name"])]["rules"]
    allowed = {(r, v) for rule in rules for r in rule["resources"] for v in rule["verbs"]}
    needed = {("pods", v) for v in ("create", "get", "list", "delete")} | {("pods/log", "get")}
    assert needed <= allowed, needed - allowed
