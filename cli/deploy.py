"""``alphaforge deploy``: register the work pool and every deployment on the configured Prefect
server (a production stack's one-off set-up step; ``serve`` does the same for its own server).

The server is ``ALPHAFORGE_PREFECT_API_URL`` (or ``--api-url``); without one the command refuses
rather than registering on an embedded server that is gone when it exits. Idempotent: run it
after every upgrade (the deployments carry the flows' current parameter schemas).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from flows.settings import CoreSettings

__all__ = ["deploy_command"]


@click.command("deploy")
@click.option("--api-url", help="The Prefect API [default: ALPHAFORGE_PREFECT_API_URL].")
@click.option(
    "--pool",
    default=None,
    envvar="ALPHAFORGE_WORK_POOL",
    help="The work pool [default: ALPHAFORGE_WORK_POOL, else alphaforge, or alphaforge-docker "
    "with --pool-type docker].",
)
@click.option(
    "--pool-type",
    type=click.Choice(["process", "docker"]),
    default="process",
    show_default=True,
    envvar="ALPHAFORGE_POOL_TYPE",
    help="process: flow runs are subprocesses of the workers; docker: each flow run is a "
    "container of --image (prefect-docker; workers: `prefect worker start --type docker`).",
)
@click.option(
    "--image",
    default=None,
    envvar="ALPHAFORGE_DOCKER_POOL_IMAGE",
    help="docker: the flow-run containers' image [default: alphaforge/platform:latest].",
)
@click.option(
    "--network",
    default="host",
    show_default=True,
    envvar="ALPHAFORGE_DOCKER_POOL_NETWORK",
    help="docker: 'host', or the name of the Docker network where Prefect, PostgreSQL, MLflow "
    "and the socket proxy are reachable (a compose stack's network).",
)
@click.option(
    "--volume",
    "volumes",
    multiple=True,
    envvar="ALPHAFORGE_DOCKER_POOL_VOLUMES",
    help="docker: SOURCE:TARGET[:ro] mounted in each flow-run container (repeatable): the data "
    "dir, the sandbox job root at its host path, /sys/fs/cgroup:/sys/fs/cgroup:ro.",
)
@click.option(
    "--env",
    "env_items",
    multiple=True,
    envvar="ALPHAFORGE_DOCKER_POOL_ENV",
    help="docker: NAME=VALUE set in each flow-run container (repeatable), after the ALPHAFORGE_* "
    "variables of this environment (e.g. DOCKER_HOST=tcp://docker-proxy:2375).",
)
@click.option(
    "--pull-policy",
    type=click.Choice(["Never", "IfNotPresent", "Always"]),
    default="Never",
    show_default=True,
    envvar="ALPHAFORGE_DOCKER_POOL_PULL",
    help="docker: Never = the image is built on each worker's host (no registry).",
)
@click.option(
    "--stream-output/--no-stream-output",
    default=True,
    show_default=True,
    envvar="ALPHAFORGE_DOCKER_POOL_STREAM_OUTPUT",
    help="docker: copy each container's output into its worker's log (needs the engine's "
    "logs call, which the socket proxy refuses: off behind it).",
)
@click.option(
    "--user",
    default=None,
    envvar="ALPHAFORGE_DOCKER_POOL_USER",
    help="docker: UID[:GID] the flow-run containers run as [default: the image's, uid 10002]: "
    "the owner of a bind-mounted data dir.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def deploy_command(
    api_url: str | None,
    pool: str | None,
    pool_type: str,
    image: str | None,
    network: str,
    volumes: tuple[str, ...],
    env_items: tuple[str, ...],
    pull_policy: str,
    stream_output: bool,
    user: str | None,
    as_json: bool,
) -> None:
    """Register the work pool, the web, node-lab, sweep, engine and crash-report deployments,
    and the automations (crashed runs, runs past ALPHAFORGE_MAX_RUN_MINUTES).

    With --pool-type docker the pool is a Docker work pool: its base job template (image,
    network, volumes, environment) is written, or rewritten, from the options (each also read
    from its ALPHAFORGE_DOCKER_POOL_* variable; lists split on whitespace); the flow-run
    containers get this environment's ALPHAFORGE_* settings and every --env (the template is
    readable through Prefect's API: see docs/operations.md for secrets)."""
    import os

    from prefect.client.orchestration import SyncPrefectClient

    from deployments.deploy import POOL_NAME, register_all
    from deployments.dockerpool import (
        DEFAULT_IMAGE,
        DOCKER_POOL_NAME,
        DockerPoolConfig,
        forwarded_env,
        parse_env,
    )
    from flows.settings import get_settings

    docker: DockerPoolConfig | None = None
    if pool_type == "docker":
        try:
            env = {**forwarded_env(os.environ), **parse_env(env_items)}
            docker = DockerPoolConfig(
                image=image or DEFAULT_IMAGE,
                network_mode="host" if network == "host" else None,
                networks=() if network == "host" else (network,),
                volumes=volumes,
                env=env,
                pull_policy=pull_policy,
                stream_output=stream_output,
                user=user,
            )
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    else:
        # given on the command line to a process pool: a mistake (from the environment, as a
        # compose file sets them for either pool type: ignored)
        ctx = click.get_current_context()
        given = [
            f"--{name.replace('_items', '').replace('_', '-').rstrip('s')}"
            for name in ("image", "volumes", "env_items", "user", "network", "pull_policy")
            if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
        ]
        if given:
            raise click.UsageError(f"{', '.join(given)}: only for --pool-type docker")
    pool = pool or (DOCKER_POOL_NAME if docker else POOL_NAME)
    url = api_url or get_settings().prefect_api_url
    if not url:
        raise click.UsageError(
            "no Prefect server: set ALPHAFORGE_PREFECT_API_URL (e.g. http://prefect:4200/api) "
            "or pass --api-url"
        )
    created = _ensure_buckets(get_settings())
    try:
        with SyncPrefectClient(api=url) as client:
            client.api_healthcheck()
            ids = register_all(client, pool, docker=docker)
    except click.ClickException:
        raise
    except Exception as exc:  # the server's or the network's: one line, no trace
        raise click.ClickException(f"cannot register on {url}: {exc}") from None
    prefix = "automation/"
    automations = {k.removeprefix(prefix): v for k, v in ids.items() if k.startswith(prefix)}
    deployments = {k: v for k, v in ids.items() if not k.startswith(prefix)}
    if as_json:
        out: dict[str, object] = {"api_url": url, "pool": pool, "pool_type": pool_type}
        if docker is not None:  # names only: the values may be secrets
            out["image"] = docker.image
            out["container_env"] = sorted(docker.env)
        out["deployments"] = deployments
        out["buckets_created"] = created
        click.echo(json.dumps({**out, "automations": automations}))
        return
    for bucket in created:
        click.echo(f"created bucket {bucket!r}")
    click.echo(f"{pool_type} work pool {pool!r} on {url}")
    if docker is not None:
        click.echo(
            f"  image {docker.image}, network {network}, env {', '.join(sorted(docker.env))}"
        )
    for name, deployment_id in sorted(deployments.items()):
        click.echo(f"  {name:<28} {deployment_id}")
    for name, automation_id in sorted(automations.items()):
        click.echo(f"  automation {name:<17} {automation_id}")


def _ensure_buckets(settings: CoreSettings) -> list[str]:
    """Create the S3 buckets the catalog and the artifact store are in (``s3://`` URLs in the
    settings) when missing, with the settings' endpoint and credentials; the created ones'
    names. The catalog refuses a missing bucket, and nothing else creates it: a new stack's
    object store starts empty."""
    urls = [u for u in (settings.catalog_url, settings.artifact_store_url) if u]
    buckets = sorted(
        {u.split("://", 1)[1].strip("/").split("/", 1)[0] for u in urls if u.startswith("s3://")}
        - {""}
    )
    if not buckets:
        return []
    import s3fs

    region = settings.s3_region
    fs = s3fs.S3FileSystem(
        endpoint_url=settings.s3_endpoint_url,
        key=settings.s3_key,
        secret=settings.s3_secret,
        # s3fs sends the client's region as the bucket's location constraint, which S3 refuses
        # for us-east-1 (the default region: no constraint)
        client_kwargs={"region_name": region} if region and region != "us-east-1" else {},
        skip_instance_cache=True,
        use_listings_cache=False,
        # a one-off step: an unreachable store fails it in seconds, not after botocore's
        # retries (compose starts it once the store is healthy)
        config_kwargs={"retries": {"max_attempts": 1}, "connect_timeout": 5},
    )
    created = []
    for bucket in buckets:
        try:
            if not fs.exists(bucket):
                fs.mkdir(bucket)
                created.append(bucket)
        except Exception as exc:  # the store's or the network's: one line, no trace
            where = settings.s3_endpoint_url or "AWS"
            raise click.ClickException(
                f"cannot create bucket {bucket!r} at {where}: {exc}"
            ) from None
    return created
