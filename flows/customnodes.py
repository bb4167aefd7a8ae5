"""Custom nodes as the rest of the platform sees them from ``flows``.

``kill_run_containers(run_id)`` is what cancelling a run calls (the API's cancel route, and the
pipeline flow's ``on_cancellation`` hook); ``SandboxUnavailable`` is what the node lab raises
when no sandbox can run user code (the API answers 503).
"""

from __future__ import annotations

import contextlib

from runners.custom import (
    TEMPLATE_KINDS,
    CustomNodeError,
    CustomNodeManifest,
    ManifestProblems,
    manifest_errors,
    template,
)
from runners.docker.runner import SandboxUnavailable
from runners.nodestore import ManifestStore

__all__ = [
    "TEMPLATE_KINDS",
    "CustomNodeError",
    "CustomNodeManifest",
    "ManifestProblems",
    "ManifestStore",
    "SandboxUnavailable",
    "kill_run_containers",
    "manifest_errors",
    "template",
]


def kill_run_containers(run_id: str) -> int:
    """Kill and remove every sandbox container labelled with ``run_id``; returns how many.

    A no-op (0) when no Docker engine answers. Safe to call from any process: it finds the
    containers by label (fresh ones) or by the name a pooled one gets when it is taken for the
    run, not through the runner that started them.
    """
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
