"""The Prefect objects Alpha Forge runs through: one process work pool and its deployments.

Everything runs as a flow run of a deployment of :func:`flows.pipeline.pipeline_flow`
in the ``alphaforge`` process work pool, executed by a ``ProcessWorker`` (see
:mod:`deployments.stack`): the ``web`` deployment for runs started from the web app (the
request passes the IR and run id as parameters), and ``pipeline-<id>`` deployments carrying a
scheduled pipeline's current IR as default parameters. All functions are idempotent (they
create or update) and take a synchronous Prefect client.
"""

from __future__ import annotations

from contextlib import suppress
from functools import lru_cache
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import DeploymentUpdate, WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from deployments.flow import ENTRYPOINT

__all__ = [
    "POOL_NAME",
    "WEB_DEPLOYMENT",
    "deployment_name_for",
    "ensure_pool",
    "ensure_web_deployment",
    "flow_run_url",
    "upsert_deployment",
    "web_deployment_name",
]

POOL_NAME = "alphaforge"
WEB_DEPLOYMENT = "web"
TAG = "alphaforge"


def deployment_name_for(pipeline_id: int) -> str:
    """The name of the deployment that carries a scheduled pipeline."""
    return f"pipeline-{pipeline_id}"


def flow_run_url(ui_url: str | None, flow_run_id: str | None) -> str | None:
    """The Prefect UI page of a flow run (None without a UI URL or a flow run)."""
    if not ui_url or not flow_run_id:
        return None
    return f"{ui_url.rstrip('/')}/runs/flow-run/{flow_run_id}"


def ensure_pool(client: SyncPrefectClient, name: str = POOL_NAME) -> None:
    """Create the process work pool (with the ProcessWorker's default job template) if needed."""
    try:
        client.read_work_pool(name)
        return
    except ObjectNotFound:
        pass
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    with suppress(ObjectAlreadyExists):  # another process may win the race
        client.create_work_pool(
            WorkPoolCreate(
                name=name,
                type="process",
                base_job_template=template,
                description="Alpha Forge pipeline runs (one subprocess per flow run).",
            )
        )


@lru_cache(maxsize=1)
def _parameter_schema() -> dict[str, Any]:
    from prefect.utilities.callables import parameter_schema

    from flows.pipeline import pipeline_flow

    return parameter_schema(pipeline_flow.fn).model_dump_for_openapi()


def _job_variables() -> dict[str, Any]:
    # An explicit command keeps the worker from "preparing a workspace" (uv, pyproject lookups).
    # It names no path of this host: each worker runs the `python` on its own PATH (the
    # platform's interpreter, see deployments.stack.Worker) in its own working directory, and
    # the flow is imported from the installed package.
    return {"command": "python -m prefect.engine"}


def upsert_deployment(
    client: SyncPrefectClient,
    name: str,
    *,
    parameters: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    description: str | None = None,
    pool: str = POOL_NAME,
) -> UUID:
    """Create or update deployment ``name`` of the pipeline flow in ``pool``; returns its id.

    An existing deployment is updated in place (``PATCH``), which keeps its schedules and their
    ids: Prefect's create call is an upsert that replaces every schedule of the deployment, so
    re-creating it would silently drop the schedules the API attached one by one. Prefect drops
    the deployment's future auto-scheduled runs either way (they carry the old parameters).
    """
    from flows.pipeline import FLOW_NAME

    flow_id = client.create_flow_from_name(FLOW_NAME)
    settings: dict[str, Any] = {
        "entrypoint": ENTRYPOINT,
        "work_pool_name": pool,
        "parameters": parameters or {},
        "tags": [TAG, *(tags or [])],
        "description": description,
        "parameter_openapi_schema": _parameter_schema(),
        "enforce_parameter_schema": False,
        "job_variables": _job_variables(),
    }
    try:
        existing = client.read_deployment_by_name(f"{FLOW_NAME}/{name}")
    except ObjectNotFound:
        return client.create_deployment(flow_id=flow_id, name=name, **settings)
    client.update_deployment(existing.id, DeploymentUpdate(**settings))
    return existing.id


def web_deployment_name(pool: str = POOL_NAME) -> str:
    """The web deployment of ``pool``: ``web`` on the default pool, ``web-<pool>`` elsewhere."""
    return WEB_DEPLOYMENT if pool == POOL_NAME else f"{WEB_DEPLOYMENT}-{pool}"


def ensure_web_deployment(client: SyncPrefectClient, pool: str = POOL_NAME) -> UUID:
    """The pool and its web deployment (runs started from the web app); returns its id."""
    ensure_pool(client, pool)
    return upsert_deployment(
        client,
        web_deployment_name(pool),
        description="Runs started from the Alpha Forge web app (parameters per run).",
        pool=pool,
    )
