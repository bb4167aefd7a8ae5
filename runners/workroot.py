"""Where sandbox job directories are made: ``ALPHAFORGE_SANDBOX_WORK_ROOT``, else
``<temp dir>/alphaforge-sandbox``.

The Docker engine bind-mounts a job directory into its sandbox container by its path on the
engine's host. A process that is itself in a container (a worker or a Docker-pool flow run of
the production stack) must therefore make its job directories under a directory mounted at the
same path on the host and in its container: the compose file mounts
``/var/lib/alphaforge-sandbox`` so and sets this variable (infra/compose.yaml). On Kubernetes
(``runners.k8s``) it must be on the claim the sandbox pods mount by ``subPath``
(infra/k8s/config.yaml: ``/var/lib/alphaforge/sandbox``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["WORK_ROOT_ENV", "sandbox_work_root"]

WORK_ROOT_ENV = "ALPHAFORGE_SANDBOX_WORK_ROOT"


def sandbox_work_root() -> Path:
    """The sandbox work root of this process (see the module doc)."""
    configured = os.environ.get(WORK_ROOT_ENV, "").strip()
    if configured:
        path = Path(configured)
        if not path.is_absolute():
            raise ValueError(f"{WORK_ROOT_ENV}={configured!r} is not an absolute path")
        return path
    return Path(tempfile.gettempdir()) / "alphaforge-sandbox"
