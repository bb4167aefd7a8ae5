"""Custom nodes as the rest of the platform sees them from ``flows``.

``kill_run_containers(run_id)`` is what cancelling a run calls (the API's cancel route, and the
pipeline flow's ``on_cancellation`` hook); ``SandboxUnavailable`` is what the node lab raises
when no sandbox can run user code (the API answers 503).
"""

from __future__ import annotations

import contextlib

from runners.custom import TEMPLATE_KINDS, CustomNodeError, CustomNodeManifest, template
from runners.docker.runner import SandboxUnavailable
from runners.nodestore import ManifestStore

__all__ = [
    "TEMPLATE_KINDS",
    "CustomNodeError",
    "CustomNodeManifest",
    "ManifestStore",
    "SandboxUnavailable",
    "kill_run_containers",
    "template",
]

RUN_LABEL = "alphaforge.run_id"


def kill_run_containers(run_id: str) -> int:
    """Kill and remove every sandbox container labelled with ``run_id``; returns how many.

    A no-op (0) when no Docker engine answers. Safe to call from any process: it finds the
    containers by label, not through the runner that started them.
    """
    from docker.errors import DockerException, NotFound

    from runners.docker.engine import docker_client

    try:
        client = docker_client(timeout=10)
        found = client.api.containers(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})
    except DockerException:
        return 0
    for c in found:
        with contextlib.suppress(NotFound, DockerException):
            client.api.kill(c["Id"])
        with contextlib.suppress(NotFound, DockerException):
            client.api.remove_container(c["Id"], force=True)
    return len(found)
