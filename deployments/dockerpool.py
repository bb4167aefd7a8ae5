"""The Docker work pool: each flow run in a container of the platform image (prefect-docker).

The process pool (:mod:`deployments.deploy`) runs a flow run as a subprocess of its worker's
machine; a ``docker`` pool's worker (``prefect worker start --type docker``, or ``python -m
deployments.drainworker --type docker``) starts a container per flow run instead, from the
image the pool's base job template names. The deployments are the same (their command, ``python
-m deployments.warm_launcher``, becomes ``python -m prefect.engine`` in a container: no warm
processes there), so one ``alphaforge deploy --pool-type docker`` moves every run onto
containers without changing a pipeline.

What a flow-run container needs, set as the template's defaults (job variables still override
them per deployment or flow run):

- the **image** (``alphaforge/platform:latest``: ``infra/Dockerfile``, or
  ``infra/build_platform_image.sh`` offline) and no pull (``Never``: the image is built on the
  worker's host; set ``IfNotPresent`` with a registry);
- a **network** where the Prefect API, PostgreSQL, MLflow, the object store and the Docker
  socket proxy are reachable: ``host`` (one machine) or the stack's compose network;
- the **environment**: the ``ALPHAFORGE_*`` settings (database, data dir or store URL, MLflow
  tracking URI, S3), and for sandboxed custom nodes ``DOCKER_HOST`` pointing at the restricted
  socket proxy (``infra/socket-proxy``), never the raw socket; the worker adds
  ``PREFECT_API_URL`` itself;
- the **volumes**: the data dir (unless the store is S3), the sandbox job root at the same path
  as on the host (the host's engine bind-mounts job directories) and ``/sys/fs/cgroup`` read-only
  (the sandbox's pids-limit check).

The template is stored on the Prefect server: every user of its API can read the environment
written there. Put secrets in Prefect Secret blocks and write ``{{ prefect.blocks.secret.NAME
}}`` as the value (the worker resolves it when it submits a flow run).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

__all__ = [
    "DEFAULT_IMAGE",
    "DOCKER_POOL_NAME",
    "PULL_POLICIES",
    "DockerPoolConfig",
    "docker_base_job_template",
    "ensure_docker_pool",
    "forwarded_env",
    "parse_env",
    "parse_volume",
]

DOCKER_POOL_NAME = "alphaforge-docker"
DEFAULT_IMAGE = "alphaforge/platform:latest"
PULL_POLICIES = ("Never", "IfNotPresent", "Always")
# settings a flow-run container takes from the environment `deploy` runs in (the platform's)
FORWARDED_PREFIX = "ALPHAFORGE_"
# ...but the ones that configure `deploy` itself (cli/deploy.py reads them)
_POOL_VARS = "ALPHAFORGE_DOCKER_POOL_"
# and the web app's token signing key, which no flow run needs
DEPLOY_ONLY = frozenset({"ALPHAFORGE_POOL_TYPE", "ALPHAFORGE_SECRET_KEY"})
# Docker's rules: a variable name; a volume is SOURCE:TARGET[:MODE] with an absolute target
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VOLUME_MODES = {"ro", "rw", "z", "Z", "ro,z", "ro,Z", "rw,z", "rw,Z"}


@dataclass(frozen=True)
class DockerPoolConfig:
    """The defaults of a Docker pool's flow-run containers (see the module doc)."""

    image: str = DEFAULT_IMAGE
    network_mode: str | None = "host"
    networks: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    pull_policy: str = "Never"
    auto_remove: bool = True
    user: str | None = None
    mem_limit: str | None = None
    stream_output: bool = True

    def __post_init__(self) -> None:
        if not self.image.strip():
            raise ValueError("docker pool: the image is empty")
        if self.pull_policy not in PULL_POLICIES:
            raise ValueError(
                f"docker pool: pull policy {self.pull_policy!r} is not one of "
                f"{', '.join(PULL_POLICIES)}"
            )
        if self.networks and self.network_mode:
            raise ValueError(
                f"docker pool: network mode {self.network_mode!r} and networks "
                f"{list(self.networks)} exclude each other (Docker takes one or the other)"
            )
        for name in self.env:
            if not _ENV_NAME.match(name):
                raise ValueError(f"docker pool: {name!r} is not an environment variable name")
        for volume in self.volumes:
            parse_volume(volume)
        if self.user is not None and not re.match(
            r"^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$", self.user
        ):
            raise ValueError(f"docker pool: user {self.user!r} is not UID[:GID] (or a name)")


def parse_env(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``KEY=VALUE`` strings (``--env``) → a dict; ValueError naming the bad one."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not _ENV_NAME.match(name):
            raise ValueError(f"--env {item!r}: expected NAME=VALUE with a variable name")
        out[name] = value
    return out


def parse_volume(volume: str) -> str:
    """Check a ``SOURCE:TARGET[:MODE]`` volume (``--volume``); ValueError saying what is wrong."""
    parts = volume.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise ValueError(f"--volume {volume!r}: expected SOURCE:TARGET[:MODE]")
    if not parts[1].startswith("/"):
        raise ValueError(f"--volume {volume!r}: the target {parts[1]!r} is not an absolute path")
    if len(parts) == 3 and parts[2] not in _VOLUME_MODES:
        raise ValueError(f"--volume {volume!r}: mode {parts[2]!r} is not ro or rw")
    return volume


def forwarded_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``ALPHAFORGE_*`` variables of ``environ``: what ``deploy`` writes into the template
    (the containers then see the settings the platform's services see)."""
    return {
        k: v
        for k, v in sorted(environ.items())
        if k.startswith(FORWARDED_PREFIX) and k not in DEPLOY_ONLY and not k.startswith(_POOL_VARS)
    }


def docker_base_job_template(config: DockerPoolConfig) -> dict[str, Any]:
    """prefect-docker's default base job template with ``config`` as the variables' defaults."""
    from prefect_docker.worker import DockerWorker

    template = copy.deepcopy(DockerWorker.get_default_base_job_template())
    props = template["variables"]["properties"]
    defaults: dict[str, Any] = {
        "image": config.image,
        "image_pull_policy": config.pull_policy,
        "network_mode": config.network_mode,
        "networks": list(config.networks),
        "volumes": list(config.volumes),
        # heartbeats every 30 s (Prefect's minimum): a container's process cannot be looked
        # at from the API's host, its beats tell it is alive (api.services.run_liveness)
        "env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30", **config.env},
        "auto_remove": config.auto_remove,
        "stream_output": config.stream_output,
        "mem_limit": config.mem_limit,
        "container_create_kwargs": {"user": config.user} if config.user else None,
        "labels": {"io.alphaforge.platform": "flow-run"},
    }
    for name, value in defaults.items():
        if name not in props:  # pragma: no cover - a prefect-docker that renamed a variable
            raise RuntimeError(f"prefect-docker's job template has no variable {name!r}")
        if value is None:
            props[name].pop("default", None)
        else:
            props[name]["default"] = value
    return dict(template)


def ensure_docker_pool(
    client: SyncPrefectClient, name: str = DOCKER_POOL_NAME, config: DockerPoolConfig | None = None
) -> None:
    """Create the Docker pool ``name`` with ``config``'s template, or update its template (the
    pool keeps its id, queues and workers). A pool of another type by that name is an error."""
    template = docker_base_job_template(config or DockerPoolConfig())
    try:
        pool = client.read_work_pool(name)
    except ObjectNotFound:
        with suppress(ObjectAlreadyExists):  # another process may win the race
            client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type="docker",
                    base_job_template=template,
                    description="Alpha Forge pipeline runs (one container of the platform "
                    "image per flow run).",
                )
            )
            return
        pool = client.read_work_pool(name)
    if pool.type != "docker":
        raise ValueError(
            f"work pool {name!r} exists with type {pool.type!r}, not docker: choose another "
            "--pool name (a pool's type cannot change)"
        )
    client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
