"""One sandbox pod per execution, shaped like infra/k8s/sandbox.yaml's ``alphaforge-sandbox``
PodTemplate.

The security fields are this module's constants (a change is a security review, not a
deployment setting); ``tests/runners/test_k8s_pod.py`` checks they equal the PodTemplate's and
that the manifests are valid for the Kubernetes API. The job directory reaches the pod through
the ReadWriteMany claim both pods mount: ``/job`` read-only and ``/out`` writable, each a
``subPath`` of the claim, so the job directory must be under the claim's mount point here.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

from runners.custom import MIB, Limits
from runners.docker.policy import ENV_ALLOW_LIST
from runners.jobs import SandboxFailure

__all__ = [
    "CONTAINER",
    "POD_SECURITY",
    "SANDBOX_LABELS",
    "JobDirOutsideClaim",
    "claim_subpath",
    "label_value",
    "pod_manifest",
    "pod_violations",
    "quantity",
]

CONTAINER = "sandbox"
# The labels the NetworkPolicy ``sandbox-no-network`` selects: without them a pod has network.
SANDBOX_LABELS = {"app.kubernetes.io/part-of": "alphaforge", "alphaforge.io/role": "sandbox"}
RUN_LABEL, NODE_LABEL = "alphaforge.io/run-id", "alphaforge.io/node-id"
POD_SECURITY: dict[str, Any] = {
    "runtimeClassName": "gvisor",
    "restartPolicy": "Never",
    "automountServiceAccountToken": False,
    "enableServiceLinks": False,
    "securityContext": {
        "runAsNonRoot": True,
        "runAsUser": 65534,
        "runAsGroup": 65534,
        "seccompProfile": {"type": "RuntimeDefault"},
    },
}
CONTAINER_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
# Besides /tmp (memory-backed, so counted in the memory limit, as Docker's tmpfs is): the
# container's log (the kubelet keeps it on the node's disk) and what a read-only root still
# writes. /out is on the claim and bounded by the executor's poll, as with Docker.
_SCRATCH_MIB = 16
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class JobDirOutsideClaim(SandboxFailure):
    """A job directory the sandbox pod cannot reach: it is not on the shared claim."""

    def __init__(self, message: str) -> None:
        super().__init__("SANDBOX_UNAVAILABLE", message)


def claim_subpath(path: Path, claim_mount: Path, claim: str) -> str:
    """``path`` relative to the claim's mount point (the pod mounts the claim at that
    ``subPath``); raises :class:`JobDirOutsideClaim` when it is not under it."""
    resolved, mount = Path(path).resolve(), Path(claim_mount).resolve()
    if resolved == mount or not resolved.is_relative_to(mount):
        raise JobDirOutsideClaim(
            f"the sandbox job directory {path} is not under {claim_mount}, where the claim "
            f"{claim!r} is mounted (ALPHAFORGE_SANDBOX_K8S_CLAIM_MOUNT): a sandbox pod can only "
            "reach job directories on that claim; set ALPHAFORGE_SANDBOX_WORK_ROOT to a "
            "directory under it"
        )
    return resolved.relative_to(mount).as_posix()


def label_value(text: str) -> str:
    """``text`` as a label value (≤ 63 characters of ``[A-Za-z0-9_.-]``, alphanumeric ends)."""
    return _LABEL_UNSAFE.sub("_", text)[:63].strip("_.-") or "none"


def _cpu(cpus: float) -> str:
    return f"{max(1, round(cpus * 1000))}m"


def pod_manifest(
    *,
    name: str,
    image: str,
    command: list[str],
    limits: Limits,
    run_id: str,
    node_id: str,
    claim: str,
    job_subpath: str,
    out_subpath: str,
    deadline_s: float,
) -> dict[str, Any]:
    """The Pod for one execution: the PodTemplate's security, the execution's resources,
    ``/job`` (read-only) and ``/out`` from the claim, a memory-backed ``/tmp``."""
    memory, tmp = f"{limits.memory_mb}Mi", f"{limits.tmp_mb}Mi"
    scratch = f"{_SCRATCH_MIB + math.ceil(2 * limits.log_bytes / MIB)}Mi"
    resources = {"cpu": _cpu(limits.cpus), "memory": memory, "ephemeral-storage": scratch}
    container = {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(command),
        "workingDir": "/tmp",
        "env": [{"name": k, "value": v} for k, v in ENV_ALLOW_LIST.items()],
        "securityContext": copy.deepcopy(CONTAINER_SECURITY),
        # requests = limits: the node is sized for what the sandbox may use, no overcommit
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "volumeMounts": [
            {"name": "state", "mountPath": "/job", "subPath": job_subpath, "readOnly": True},
            {"name": "state", "mountPath": "/out", "subPath": out_subpath, "readOnly": False},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {
                **SANDBOX_LABELS,
                RUN_LABEL: label_value(run_id),
                NODE_LABEL: label_value(node_id),
            },
            "annotations": {"alphaforge.io/run-id": run_id, "alphaforge.io/node-id": node_id},
        },
        "spec": {
            **copy.deepcopy(POD_SECURITY),
            "activeDeadlineSeconds": max(1, math.ceil(deadline_s)),
            "terminationGracePeriodSeconds": 1,
            "containers": [container],
            "volumes": [
                {"name": "state", "persistentVolumeClaim": {"claimName": claim}},
                {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": tmp}},
            ],
        },
    }


_SUFFIX = {"m": 0.001, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
           "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}  # fmt: skip


def quantity(text: Any) -> float:
    """A resource quantity's value (``"4Gi"``, ``"4096Mi"``, ``"2500m"``, ``"2.5"``): the API
    server rewrites quantities in a canonical form, so they are compared by value."""
    text = str(text)
    for suffix in sorted(_SUFFIX, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * _SUFFIX[suffix]
    return float(text)


def _resources(res: dict[str, Any] | None) -> dict[str, dict[str, float]]:
    return {kind: {k: quantity(v) for k, v in (vals or {}).items()}
            for kind, vals in (res or {}).items()}  # fmt: skip


def _volumes(volumes: list[dict[str, Any]] | None) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for v in volumes or []:
        pvc, empty = v.get("persistentVolumeClaim"), v.get("emptyDir")
        if pvc is not None:
            out.append((v.get("name"), "claim", pvc.get("claimName"), bool(pvc.get("readOnly"))))
        elif empty is not None:
            size = empty.get("sizeLimit")
            out.append((v.get("name"), "emptyDir", empty.get("medium"), size and quantity(size)))
        else:  # any other kind (hostPath...) never matches what was sent
            out.append((v.get("name"), "other", sorted(v)))
    return out


def _mounts(mounts: list[dict[str, Any]] | None) -> list[tuple[Any, ...]]:
    # readOnly: false is left out of the API's copy
    return [(m.get("name"), m.get("mountPath"), m.get("subPath"), bool(m.get("readOnly")))
            for m in mounts or []]  # fmt: skip


def pod_violations(pod: dict[str, Any], sent: dict[str, Any]) -> list[str]:
    """Every way the API's copy of a created pod differs from what was sent in what keeps it a
    sandbox (an admission webhook or a policy engine may have changed it); empty: as sent.
    Fields the API server fills in (service account name, DNS policy, tolerations...) and its
    canonical forms (``4Gi`` for ``4096Mi``, no ``readOnly: false``) are not differences."""
    got, want = pod.get("spec") or {}, sent["spec"]
    bad = [
        f"spec.{key} is {got.get(key)!r}, sent {want[key]!r}"
        for key in (*POD_SECURITY, "activeDeadlineSeconds")
        if got.get(key) != want[key]
    ]
    if _volumes(got.get("volumes")) != _volumes(want["volumes"]):
        bad.append(f"spec.volumes are {got.get('volumes')!r}, sent {want['volumes']!r}")
    bad += [f"spec.{k} is set" for k in ("hostNetwork", "hostPID", "hostIPC") if got.get(k)]
    boxes = list(got.get("containers") or []) + list(got.get("initContainers") or [])
    boxes += list(got.get("ephemeralContainers") or [])
    if [b.get("name") for b in boxes] != [CONTAINER]:
        bad.append(f"containers are {[b.get('name') for b in boxes]}, sent [{CONTAINER!r}]")
    (sent_box,) = want["containers"]
    for box in boxes[:1]:
        for key in ("image", "command", "args", "securityContext", "env", "envFrom"):
            if box.get(key) != sent_box.get(key):
                bad.append(f"container {key} is {box.get(key)!r}, sent {sent_box.get(key)!r}")
        if _resources(box.get("resources")) != _resources(sent_box["resources"]):
            bad.append(f"container resources are {box.get('resources')!r}")
        if _mounts(box.get("volumeMounts")) != _mounts(sent_box["volumeMounts"]):
            bad.append(f"container volumeMounts are {box.get('volumeMounts')!r}")
    labels = (pod.get("metadata") or {}).get("labels") or {}
    if not SANDBOX_LABELS.items() <= labels.items():
        bad.append(f"labels {labels!r} lack {SANDBOX_LABELS!r} (the NetworkPolicy's selector)")
    return bad
