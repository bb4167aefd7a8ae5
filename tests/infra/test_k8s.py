"""The Kubernetes manifests (infra/k8s/) against the Kubernetes API's own schemas, and the
``prefect-kubernetes`` work pool template rendered by prefect-kubernetes itself (no cluster here).

The validator (``kubernetes-validate``: it ships the Kubernetes JSON schemas, so it works
offline) and ``prefect-kubernetes`` are not product dependencies: they go into a separate venv
this test creates once (``~/.cache/alphaforge-tests/``, on top of this interpreter's packages,
with Prefect pinned to the product's version), installed from PyPI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
TEMPLATE = K8S / "work-pool-template.json"
KUBE_VERSION = "1.33.0"
TOOLS = ("kubernetes-validate==1.37.0", "prefect-kubernetes==0.8.0", "prefect==3.8.8")
VENV = Path.home() / ".cache" / "alphaforge-tests" / "kube-tools-1"

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("k8s")]  # one venv build

RENDER = """
import asyncio, json, sys
from uuid import uuid4
from prefect.client.schemas.objects import FlowRun
from prefect_kubernetes.worker import KubernetesWorker, KubernetesWorkerJobConfiguration

template = json.load(open(sys.argv[1]))
values = json.loads(sys.argv[2])

async def render():
    # client: the template names no block document, so none is looked up
    config = await KubernetesWorkerJobConfiguration.from_template_and_values(
        template, values, client=object())
    config.prepare_for_flow_run(FlowRun(flow_id=uuid4(), name="brave-fox", deployment_id=uuid4()))
    return config

config = asyncio.run(render())
default = KubernetesWorker.get_default_base_job_template()
print(json.dumps({
    "default_configuration": sorted(default["job_configuration"]),
    "default_variables": default["variables"]["properties"],
    "manifest": config.job_manifest,
    "command": config.command,
}))
"""


@pytest.fixture(scope="module")
def tools() -> Path:
    """The venv's bin directory (created and filled on first use)."""
    python = VENV / "bin" / "python"
    marker = VENV / "installed.txt"
    if not marker.exists() or marker.read_text() != "\n".join(TOOLS):
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(VENV)],
                       check=True, timeout=300)  # fmt: skip
        pip = subprocess.run([str(python), "-m", "pip", "install", "-q", *TOOLS],
                             capture_output=True, text=True, timeout=900)  # fmt: skip
        assert pip.returncode == 0, f"cannot install {TOOLS} from PyPI:\n{pip.stderr[-3000:]}"
        marker.write_text("\n".join(TOOLS))
    return VENV / "bin"


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    """The pod spec of a Deployment, a Job or a PodTemplate."""
    template = doc["template"] if doc["kind"] == "PodTemplate" else doc["spec"]["template"]
    return dict(template["spec"])


def _validate(tools: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    argv = [str(tools / "kubernetes-validate"), "--strict", "-k", KUBE_VERSION, *map(str, files)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)


def test_every_manifest_is_valid_for_the_kubernetes_api(tools: Path, tmp_path: Path) -> None:
    files = sorted(K8S.glob("*.yaml"))
    assert {f.name for f in files} >= {"api.yaml", "engine.yaml", "prefect.yaml", "mlflow.yaml",
                                        "worker.yaml", "sandbox.yaml"}  # fmt: skip
    done = _validate(tools, *files)
    assert done.returncode == 0, done.stdout + done.stderr
    # the validator does reject a wrong manifest (strict: an unknown field; a wrong type)
    typo = tmp_path / "typo.yaml"
    sandbox = (K8S / "sandbox.yaml").read_text()
    typo.write_text(sandbox.replace("runtimeClassName:", "runtimeClass:"))
    bad = _validate(tools, typo)
    assert bad.returncode != 0 and "runtimeClass" in bad.stdout + bad.stderr
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text((K8S / "api.yaml").read_text().replace("replicas: 2", "replicas: two"))
    assert _validate(tools, wrong).returncode != 0


def test_pods_have_resources_probes_and_the_sandbox_runs_under_gvisor() -> None:
    docs = _documents()
    by_kind: dict[tuple[str, str], dict[str, Any]] = {
        (doc["kind"], doc["metadata"]["name"]): doc for _, doc in docs
    }
    for (kind, name), doc in by_kind.items():
        if kind not in {"Deployment", "Job", "PodTemplate"}:
            continue
        for container in _pod_spec(doc)["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), (kind, name)
            assert {"cpu", "memory"} <= set(resources["limits"]), (kind, name)
        assert doc["metadata"].get("namespace") == "alphaforge", (kind, name)
    api = by_kind[("Deployment", "api")]["spec"]["template"]["spec"]["containers"][0]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for name in ("prefect", "mlflow"):
        container = by_kind[("Deployment", name)]["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"] and container["livenessProbe"], name

    runtime = by_kind[("RuntimeClass", "gvisor")]
    assert runtime["handler"] == "runsc"
    sandbox = by_kind[("PodTemplate", "alphaforge-sandbox")]["template"]["spec"]
    assert sandbox["runtimeClassName"] == "gvisor"
    assert sandbox["automountServiceAccountToken"] is False
    [box] = sandbox["containers"]
    assert box["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert box["securityContext"]["allowPrivilegeEscalation"] is False
    policy = by_kind[("NetworkPolicy", "sandbox-no-network")]["spec"]
    labels = by_kind[("PodTemplate", "alphaforge-sandbox")]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["ingress"] == [] and policy["egress"] == []


def test_the_run_store_is_one_shared_volume_every_reader_and_writer_mounts() -> None:
    """Flow-run pods write a run's outputs to the run store (ALPHAFORGE_DATA_DIR, a directory:
    the settings refuse an s3:// store), the API and the engine read them: all three mount one
    ReadWriteMany claim there."""
    docs = _documents()
    by_kind = {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in docs}
    config = by_kind[("ConfigMap", "alphaforge-config")]["data"]
    assert "ALPHAFORGE_STORE_URL" not in config
    data_dir = config["ALPHAFORGE_DATA_DIR"]
    claim = by_kind[("PersistentVolumeClaim", "alphaforge-state")]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    flow_run = json.loads(TEMPLATE.read_text())["job_configuration"]["job_manifest"]["spec"]
    pods = {name: _pod_spec(by_kind[("Deployment", name)]) for name in ("api", "engine")}
    pods["flow-run"] = flow_run["template"]["spec"]
    for name, pod in pods.items():
        volumes = {v["name"]: v for v in pod["volumes"]}
        [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == data_dir]
        source = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
        assert source == "alphaforge-state", name


def test_the_work_pool_template_renders_a_valid_job(tools: Path, tmp_path: Path) -> None:
    """prefect-kubernetes renders our base job template for a flow run (its own
    ``from_template_and_values`` + ``prepare_for_flow_run``): the template has the job
    configuration prefect-kubernetes expects, declares every variable it uses, and the Job it
    renders is valid for the Kubernetes API."""
    template = json.loads(TEMPLATE.read_text())
    values = {"command": "python -m deployments.warm_launcher", "cpu_limit": "3"}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [str(tools / "python"), "-c", RENDER, str(TEMPLATE), json.dumps(values)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rendered = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(template["job_configuration"]) == rendered["default_configuration"]
    declared = template["variables"]["properties"]
    assert set(rendered["default_variables"]) <= set(declared)
    used = {
        part.split("}}")[0].strip()
        for part in json.dumps(template["job_configuration"]).split("{{")[1:]
    }
    assert used <= set(declared), used - set(declared)

    manifest = rendered["manifest"]
    [container] = manifest["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["python", "-m", "deployments.warm_launcher"]
    assert container["resources"]["limits"]["cpu"] == "3"  # a job variable wins
    assert container["image"] == declared["image"]["default"]
    assert {"configMapRef": {"name": "alphaforge-config"}} in container["envFrom"]
    assert manifest["metadata"]["namespace"] == "alphaforge"
    # prefect-kubernetes' own default puts completions/parallelism in the pod spec, where
    # Kubernetes' schema has no such fields: ours has them in the Job's spec
    assert manifest["spec"]["completions"] == 1 and manifest["spec"]["parallelism"] == 1
    job = tmp_path / "job.yaml"
    # the API server names it from generateName; the validator wants a name
    manifest["metadata"]["name"] = manifest["metadata"]["generateName"] + "x1y2z"
    job.write_text(yaml.safe_dump(manifest))
    checked = _validate(tools, job)
    assert checked.returncode == 0, checked.stdout + checked.stderr
