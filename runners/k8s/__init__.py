"""Sandboxes as Kubernetes pods under gVisor: the executor a flow-run pod uses instead of a
Docker engine (``ALPHAFORGE_SANDBOX_BACKEND=kubernetes``; infra/k8s/sandbox.yaml)."""

from runners.k8s.api import KubeApi, KubeApiError, KubernetesSettings
from runners.k8s.executor import KubernetesExecutor, delete_run_pods
from runners.k8s.pod import JobDirOutsideClaim, pod_manifest

__all__ = [
    "JobDirOutsideClaim",
    "KubeApi",
    "KubeApiError",
    "KubernetesExecutor",
    "KubernetesSettings",
    "delete_run_pods",
    "pod_manifest",
]
