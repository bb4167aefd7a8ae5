"""The Prefect objects Alpha Forge runs through: one process work pool and its deployments.

Everything runs as a flow run of a deployment of :func:`flows.pipeline.pipeline_flow`
in the ``alphaforge`` process work pool, executed by a ``ProcessWorker`` (see
:mod:`deployments.stack`): the ``web`` deployment for runs started from the web app (the
request passes the IR and run id as parameters), and ``pipeline-<id>`` deployments carrying a
scheduled pipeline's current IR as default parameters. Beside them, the ``nodelab`` deployments
of the node lab's two flows (:mod:`flows.nodelab`: a custom node's test run and its look-ahead
check), so user code only ever runs on a worker. All functions are idempotent (they create or
update) and take a synchronous Prefect client.

Importing this module imports no flow (the API imports it and must not load the sandbox
runners): the flows are imported when a deployment is written, for their parameter schemas.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import DeploymentUpdate, WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

if TYPE_CHECKING:
    from deployments.dockerpool import DockerPoolConfig

__all__ = [
    "CRASHED_AUTOMATION",
    "CRASH_DEPLOYMENT",
    "FLOW_RUN_COMMAND",
    "LONG_RUN_AUTOMATION",
    "NODELAB_DEPLOYMENT",
    "NODELAB_FLOWS",
    "POOL_NAME",
    "SWEEP_DEPLOYMENT",
    "SWEEP_FLOWS",
    "WEB_DEPLOYMENT",
    "automation_specs",
    "deployment_name_for",
    "ensure_automations",
    "ensure_crash_report_deployment",
    "ensure_engine_deployment",
    "ensure_nodelab_deployments",
    "ensure_pool",
    "ensure_sweep_deployments",
    "ensure_web_deployment",
    "flow_run_url",
    "register_all",
    "upsert_deployment",
    "web_deployment_name",
]

POOL_NAME = "alphaforge"
WEB_DEPLOYMENT = "web"
NODELAB_DEPLOYMENT = "nodelab"
# The node lab's flows by kind: (module, flow function). Flow names come from the flows.
NODELAB_FLOWS: dict[str, tuple[str, str]] = {
    "test_run": ("flows.nodelab", "node_test_run_flow"),
    "lookahead": ("flows.nodelab", "lookahead_flow"),
}
# A sweep's two flows: the parent that plans, tracks and reports (flows.sweep), and the chunk
# flow a parent fans its trials out to (flows.sweepchunk; any worker of the pool takes a chunk).
SWEEP_DEPLOYMENT = "sweep"
SWEEP_FLOWS: dict[str, tuple[str, str]] = {
    "sweep": ("flows.sweep", "sweep_flow"),
    "chunk": ("flows.sweepchunk", "sweep_chunk_flow"),
}
# The strategy engine: one long-running flow run reconciles instances with the database.
ENGINE_DEPLOYMENT = "engine"
ENGINE_FLOWS: dict[str, tuple[str, str]] = {"engine": ("live.engineflow", "engine_flow")}
# The crash report (flows/crashreport.py): what the crashed-runs automation runs.
CRASH_DEPLOYMENT = "crash-report"
CRASH_FLOWS: dict[str, tuple[str, str]] = {
    "crash_report": ("flows.crashreport", "crash_report_flow")
}
# The automations `deploy` creates (found by name and updated: never duplicated).
CRASHED_AUTOMATION = "alphaforge-crashed-runs"
LONG_RUN_AUTOMATION = "alphaforge-long-runs"
# The flows the automations leave alone: the engine runs until cancelled, and a crash report
# that crashed must not report itself. Names, as the flow-run events' related flow says them.
ENGINE_FLOW = "alphaforge-engine"
CRASH_REPORT_FLOW = "alphaforge-crash-report"
# Every state a Running flow run can leave Running for (the long-run trigger's "expect").
_LEFT_RUNNING = ("Completed", "Failed", "Crashed", "Cancelled", "Cancelling", "Paused", "Suspended")
TAG = "alphaforge"
FLOW_RUN_COMMAND = "python -m deployments.warm_launcher"


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
    # the flow is imported from the installed package. The launcher runs the flow run in one
    # of the worker's warm processes when it has them, else it becomes `python -m
    # prefect.engine` (deployments.warm_launcher).
    return {"command": FLOW_RUN_COMMAND}


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
    from deployments.flow import ENTRYPOINT
    from flows.pipeline import FLOW_NAME

    return _upsert_flow_deployment(
        client,
        FLOW_NAME,
        name,
        entrypoint=ENTRYPOINT,
        schema=_parameter_schema(),
        parameters=parameters,
        tags=tags,
        description=description,
        pool=pool,
    )


def _upsert_flow_deployment(
    client: SyncPrefectClient,
    flow_name: str,
    name: str,
    *,
    entrypoint: str,
    schema: dict[str, Any],
    parameters: dict[str, Any] | None,
    tags: list[str] | None,
    description: str | None,
    pool: str,
) -> UUID:
    """Create or update deployment ``flow_name/name`` (PATCH when it exists; see above)."""
    flow_id = client.create_flow_from_name(flow_name)
    settings: dict[str, Any] = {
        "entrypoint": entrypoint,
        "work_pool_name": pool,
        "parameters": parameters or {},
        "tags": [TAG, *(tags or [])],
        "description": description,
        "parameter_openapi_schema": schema,
        "enforce_parameter_schema": False,
        "job_variables": _job_variables(),
    }
    try:
        existing = client.read_deployment_by_name(f"{flow_name}/{name}")
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


def ensure_nodelab_deployments(client: SyncPrefectClient, pool: str = POOL_NAME) -> dict[str, UUID]:
    """The pool and the ``nodelab`` deployment of each node-lab flow (a custom node's test
    run, its look-ahead check: parameters per flow run); returns their ids by kind
    (``test_run``, ``lookahead``)."""
    return _ensure_flow_deployments(
        client,
        NODELAB_FLOWS,
        NODELAB_DEPLOYMENT,
        tag="nodelab",
        describe=lambda kind: (
            f"The node lab's {kind.replace('_', ' ')} (user code in the "
            "sandbox, on the worker; the API waits on the result)."
        ),
        pool=pool,
    )


def ensure_sweep_deployments(client: SyncPrefectClient, pool: str = POOL_NAME) -> dict[str, UUID]:
    """The pool and the ``sweep`` deployment of each sweep flow: ``sweep`` (the parent:
    ``alphaforge-sweep/sweep``) and ``chunk`` (a chunk of trials:
    ``alphaforge-sweep-chunk/sweep``); returns their ids by kind."""
    return _ensure_flow_deployments(
        client,
        SWEEP_FLOWS,
        SWEEP_DEPLOYMENT,
        tag="sweep",
        describe=lambda kind: (
            "A sweep: plans the trials, fans chunks out, reports."
            if kind == "sweep"
            else "A chunk of a sweep's trials (started by a sweep flow run)."
        ),
        pool=pool,
    )


def ensure_engine_deployment(client: SyncPrefectClient, pool: str = POOL_NAME) -> UUID:
    """The pool and the ``alphaforge-engine/engine`` deployment (the strategy engine's
    reconciler, live/engineflow.py: run it once; it runs until cancelled)."""
    return _ensure_flow_deployments(
        client,
        ENGINE_FLOWS,
        ENGINE_DEPLOYMENT,
        tag="engine",
        describe=lambda _kind: (
            "The strategy engine: loads, reloads and unloads strategy instances as the "
            "database says, until cancelled."
        ),
        pool=pool,
    )["engine"]


def _ensure_flow_deployments(
    client: SyncPrefectClient,
    flows: dict[str, tuple[str, str]],
    name: str,
    *,
    tag: str,
    describe: Any,
    pool: str,
) -> dict[str, UUID]:
    import importlib

    from prefect.utilities.callables import parameter_schema

    ensure_pool(client, pool)
    out: dict[str, UUID] = {}
    for kind, (module, attr) in flows.items():
        the_flow = getattr(importlib.import_module(module), attr)
        out[kind] = _upsert_flow_deployment(
            client,
            the_flow.name,
            name,
            entrypoint=f"{module}.{attr}",
            schema=parameter_schema(the_flow.fn).model_dump_for_openapi(),
            parameters=None,
            tags=[tag],
            description=describe(kind),
            pool=pool,
        )
    return out


def register_all(
    client: SyncPrefectClient, pool: str = POOL_NAME, *, docker: DockerPoolConfig | None = None
) -> dict[str, str]:
    """The pool, every deployment Alpha Forge runs through and the automations
    (:func:`ensure_automations`) — ``alphaforge deploy``, and ``serve`` for its own server:
    ``{flow/deployment name or automation/<name>: id}``. With ``docker`` (a
    :class:`deployments.dockerpool.DockerPoolConfig`) the pool is a Docker pool with that
    template (created, or its template updated), else a process pool."""
    if docker is not None:
        from deployments.dockerpool import ensure_docker_pool

        ensure_docker_pool(client, pool, docker)
    ensure_pool(client, pool)
    ids: dict[str, str] = {web_deployment_name(pool): str(ensure_web_deployment(client, pool))}
    for kind, deployment_id in ensure_nodelab_deployments(client, pool).items():
        ids[f"nodelab/{kind}"] = str(deployment_id)
    for kind, deployment_id in ensure_sweep_deployments(client, pool).items():
        ids[f"sweep/{kind}"] = str(deployment_id)
    ids["engine"] = str(ensure_engine_deployment(client, pool))
    ids["crash-report"] = str(ensure_crash_report_deployment(client, pool))
    for name, automation_id in ensure_automations(client, pool).items():
        ids[f"automation/{name}"] = str(automation_id)
    return ids


def ensure_crash_report_deployment(client: SyncPrefectClient, pool: str = POOL_NAME) -> UUID:
    """The pool and the ``alphaforge-crash-report/crash-report`` deployment (the crash report
    the crashed-runs automation runs: flows/crashreport.py)."""
    return _ensure_flow_deployments(
        client,
        CRASH_FLOWS,
        CRASH_DEPLOYMENT,
        tag="crash-report",
        describe=lambda _kind: (
            "Reports a crashed flow run: ends its run record as failed with the reason, emits "
            "alphaforge.run.crashed (run by the alphaforge-crashed-runs automation)."
        ),
        pool=pool,
    )["crash_report"]


def automation_specs(crash_deployment_id: UUID, max_run: timedelta) -> list[Any]:
    """The automations of an Alpha Forge stack (``AutomationCore`` objects):

    - ``alphaforge-crashed-runs``: a flow run of an Alpha Forge deployment (tag ``alphaforge``)
      that enters Crashed → run the crash-report deployment with its id;
    - ``alphaforge-long-runs``: a flow run Running for ``max_run`` without leaving Running
      (``ALPHAFORGE_MAX_RUN_MINUTES``) → cancel it. The strategy engine's flow runs until
      cancelled by design and is exempt (so is the crash report, from the first).
    """
    from prefect.events.actions import CancelFlowRun, RunDeployment
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    ours = {"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{TAG}"}
    flow_run = {"prefect.resource.id": "prefect.flow-run.*"}
    crashed = AutomationCore(
        name=CRASHED_AUTOMATION,
        description="A crashed Alpha Forge flow run: its run record is ended as failed with "
        "the reason and alphaforge.run.crashed is emitted (alphaforge-crash-report).",
        trigger=EventTrigger(
            posture=Posture.Reactive,
            match=flow_run,
            match_related=[
                ours,
                {"prefect.resource.role": "flow", "prefect.resource.name": f"!{CRASH_REPORT_FLOW}"},
            ],
            expect={"prefect.flow-run.Crashed"},
            for_each={"prefect.resource.id"},
            threshold=1,
            within=timedelta(0),
        ),
        actions=[
            RunDeployment(
                source="selected",
                deployment_id=crash_deployment_id,
                parameters={
                    "flow_run_id": {"__prefect_kind": "jinja", "template": "{{ flow_run.id }}"}
                },
            )
        ],
    )
    long_runs = AutomationCore(
        name=LONG_RUN_AUTOMATION,
        description=f"An Alpha Forge flow run Running longer than {max_run} is cancelled "
        "(ALPHAFORGE_MAX_RUN_MINUTES; the strategy engine is exempt).",
        trigger=EventTrigger(
            posture=Posture.Proactive,
            match=flow_run,
            match_related=[
                ours,
                {"prefect.resource.role": "flow", "prefect.resource.name": f"!{ENGINE_FLOW}"},
            ],
            after={"prefect.flow-run.Running"},
            expect={f"prefect.flow-run.{state}" for state in _LEFT_RUNNING},
            for_each={"prefect.resource.id"},
            threshold=1,
            within=max_run,
        ),
        actions=[CancelFlowRun()],
    )
    return [crashed, long_runs]


def ensure_automations(
    client: SyncPrefectClient, pool: str = POOL_NAME, *, max_run: timedelta | None = None
) -> dict[str, UUID]:
    """Create or update the stack's automations (:func:`automation_specs`; ``max_run``
    defaults to ``ALPHAFORGE_MAX_RUN_MINUTES``) and the crash-report deployment they use;
    returns their ids by name. Found by name: an existing one is updated in place, extra
    copies (a race of two deploys) are deleted."""
    from flows.settings import get_settings

    if max_run is None:
        max_run = timedelta(minutes=get_settings().max_run_minutes)
    crash_id = ensure_crash_report_deployment(client, pool)
    ids: dict[str, UUID] = {}
    for spec in automation_specs(crash_id, max_run):
        found = client.read_automations_by_name(spec.name)
        if found:
            keep, *extra = sorted(found, key=lambda a: str(a.id))
            # not client.update_automation: it sends model_dump(exclude_unset=True), which
            # drops each action's defaulted `type` (the server then reads do-nothing)
            client.request(
                "PUT",
                "/automations/{id}",
                path_params={"id": keep.id},
                json=spec.model_dump(mode="json", exclude={"owner_resource"}),
            ).raise_for_status()
            for automation in extra:
                client.delete_automation(automation.id)
            ids[spec.name] = keep.id
        else:
            ids[spec.name] = client.create_automation(spec)
    return ids
