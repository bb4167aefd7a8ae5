"""The sandbox pod's read-back: what an admission step may change is a violation, what the API
server fills in or rewrites canonically is not."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from runners.custom import AdminCaps, ResourceRequest
from runners.k8s.pod import claim_subpath, label_value, pod_manifest, pod_violations, quantity


def _sent() -> dict[str, Any]:
    limits = ResourceRequest(memory_mb=4096, cpus=1, wall_s=60).clamp(
        AdminCaps(max_memory_mb=8192, tmp_mb=1024, max_wall_s=600)
    )
    return pod_manifest(
        name="af-sandbox-1", image="alphaforge/sandbox-python:latest",
        command=["/usr/local/bin/python3", "/opt/alphaforge/python_entry.py", "/job", "/out"],
        limits=limits, run_id="run-1", node_id="sig", claim="alphaforge-state",
        job_subpath="sandbox/exec-1/job", out_subpath="sandbox/exec-1/out", deadline_s=90,
    )  # fmt: skip


def _as_the_api_returns_it(sent: dict[str, Any]) -> dict[str, Any]:
    pod = copy.deepcopy(sent)
    spec, [box] = pod["spec"], pod["spec"]["containers"]
    spec.update(serviceAccountName="default", dnsPolicy="ClusterFirst", priority=0,
                tolerations=[{"operator": "Exists"}])  # fmt: skip
    box["resources"]["limits"]["memory"] = "4Gi"  # canonical for 4096Mi
    box["resources"]["requests"]["cpu"] = "1"  # canonical for 1000m
    box.update(terminationMessagePath="/dev/termination-log", terminationMessagePolicy="File")
    for mount in box["volumeMounts"]:
        if mount.get("readOnly") is False:
            del mount["readOnly"]
    spec["volumes"][1]["emptyDir"]["sizeLimit"] = "1Gi"
    pod["metadata"]["uid"] = "abc"
    return pod


def test_the_apis_defaults_and_canonical_quantities_are_not_violations() -> None:
    sent = _sent()
    assert pod_violations(_as_the_api_returns_it(sent), sent) == []


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda p: p["spec"].update(runtimeClassName="runc"), "runtimeClassName"),
        (lambda p: p["spec"].pop("runtimeClassName"), "runtimeClassName"),
        (lambda p: p["spec"].update(automountServiceAccountToken=True), "automountService"),
        (lambda p: p["spec"]["securityContext"].update(runAsUser=0), "securityContext"),
        (lambda p: p["spec"]["containers"][0]["securityContext"].update(privileged=True),
         "container securityContext"),
        (lambda p: p["spec"]["containers"][0]["resources"]["limits"].update(memory="8Gi"),
         "resources"),
        (lambda p: p["spec"]["containers"][0]["volumeMounts"][0].update(readOnly=False),
         "volumeMounts"),
        (lambda p: p["spec"]["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
         "volumes"),
        (lambda p: p["spec"]["containers"].append({"name": "sidecar"}), "sidecar"),
        (lambda p: p["spec"].update(hostNetwork=True), "hostNetwork"),
        (lambda p: p["metadata"]["labels"].pop("alphaforge.io/role"), "NetworkPolicy"),
        (lambda p: p["spec"]["containers"][0]["env"].append({"name": "AWS_KEY", "value": "s"}),
         "env"),
    ],
)  # fmt: skip
def test_what_keeps_it_a_sandbox_must_come_back_as_sent(change: Any, said: str) -> None:
    sent = _sent()
    pod = _as_the_api_returns_it(sent)
    change(pod)
    bad = pod_violations(pod, sent)
    assert bad and said in " ".join(bad), bad


def test_quantities_labels_and_subpaths() -> None:
    assert quantity("4Gi") == quantity("4096Mi") == 4 << 30
    assert quantity("2500m") == quantity("2.5") == 2.5
    assert label_value("run/with:odd*chars" + "x" * 80) == ("run_with_odd_chars" + "x" * 80)[:63]
    assert label_value("__") == "none"
    from pathlib import Path

    assert claim_subpath(Path("/data/sandbox/exec-1/job"), Path("/data"), "c") == (
        "sandbox/exec-1/job"
    )
    with pytest.raises(Exception, match="not under /data"):
        claim_subpath(Path("/data/../etc/job"), Path("/data"), "c")
    with pytest.raises(Exception, match="not under /data"):
        claim_subpath(Path("/data"), Path("/data"), "c")
