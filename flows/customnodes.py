"""Custom nodes as the rest of the platform sees them from ``flows``.

``kill_run_containers(run_id)`` is what a cancelled flow run calls on its worker (the pipeline
flow's termination handling and ``on_cancellation`` hook, the node lab's flows); the API never
does: it only asks Prefect to cancel. ``SandboxUnavailable`` is what the node lab raises when no
sandbox can run user code (the API answers 503).

Importing this module never imports ``runners.docker`` or the Docker SDK (the API imports it and
needs no Docker): ``SandboxUnavailable`` is loaded on first access, the engine on first kill.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from runners.caps import operator_caps
from runners.custom import (
    TEMPLATE_KINDS,
    AdminCaps,
    CustomNodeError,
    CustomNodeManifest,
    ManifestProblems,
    manifest_errors,
    template,
)
from runners.nodestore import ManifestStore

if TYPE_CHECKING:
    from runners.docker.runner import SandboxUnavailable

__all__ = [
    "TEMPLATE_KINDS",
    "AdminCaps",
    "CustomNodeError",
    "CustomNodeManifest",
    "ManifestProblems",
    "ManifestStore",
    "SandboxUnavailable",
    "kill_run_containers",
    "manifest_errors",
    "operator_caps",
    "template",
]


def __getattr__(name: str) -> Any:
    if name == "SandboxUnavailable":
        from runners.docker.runner import SandboxUnavailable

        return SandboxUnavailable
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def kill_run_containers(run_id: str) -> int:
    """Kill and remove every sandbox container labelled with ``run_id``; returns how many.

    A no-op (0) when no Docker engine answers. Safe to call from any process: it finds the
    containers by label (fresh ones) or by the name a pooled one gets when it is taken for the
    run, not through the runner that started them. With ``ALPHAFORGE_SANDBOX_BACKEND=kubernetes``
    it deletes the run's sandbox pods instead (found by their run label).
    """
    from runners.caps import SandboxSettingsError, sandbox_backend

    backend = "docker"
    with contextlib.suppress(SandboxSettingsError):  # refused at start: nothing of it runs
        backend = sandbox_backend()
    if backend == "kubernetes":
        from runners.k8s import delete_run_pods

        return delete_run_pods(run_id)
    from docker.errors import DockerException, NotFound

    from runners.docker.engine import docker_client, run_container_ids

    try:
        client = docker_client(timeout=10)
        found = run_container_ids(client, run_id, include_stopped=True)
    except DockerException:
        return 0
    for cid in found:
        with contextlib.suppress(NotFound, DockerException):
            client.api.kill(cid)
        with contextlib.suppress(NotFound, DockerException):
            client.api.remove_container(cid, force=True)
    return len(found)
