"""The node lab seen from the API: custom-node test runs and look-ahead checks, on a worker.

The API never runs user code and never talks to Docker. A test run or a look-ahead check is a
flow run of a ``nodelab`` deployment (:mod:`flows.nodelab`, registered beside the ``web``
deployment by :func:`deployments.deploy.ensure_nodelab_deployments`): its parameters are JSON
only (the manifest with its code, params, rows, a result key and the API's artifact-store URL);
the sample bars are the worker's own. The request waits for the flow run to end, then reads the
outcome the flow wrote into the artifact store under the key the API chose
(:func:`flows.nodelab.read_result`). If it does not end in time the flow run is cancelled (the
worker's flow-run process kills its containers) and the request gets a 504.

Errors: no Prefect server, or no sandbox on the worker → 503 :class:`SandboxMissing`; the wait
ran out → 504 :class:`LabTimeout`; the flow run failed, crashed or left no result → 502
:class:`LabFailed`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.exceptions import ObjectNotFound
from sqlalchemy import Engine
from sqlmodel import Session

from api.errors import ApiError
from api.models.user import User
from api.services import audit
from api.services.prefect_client import PrefectUnavailable, cancel_flow_run, prefect_client
from api.services.sandbox_limits import SandboxLimits
from api.settings import ApiSettings
from deployments.deploy import ensure_nodelab_deployments
from flows.customnodes import AdminCaps, CustomNodeManifest, operator_caps
from flows.nodelab import read_result
from flows.tracebacks import user_text
from nodes.errors import AlphaForgeError

__all__ = [
    "LabFailed",
    "LabTimeout",
    "SandboxMissing",
    "limited_test_run",
    "lookahead",
    "run_lab",
    "test_run",
    "timeout_for",
]

log = logging.getLogger(__name__)
POLL_S = 0.25
_WHAT = {"test_run": "test run", "lookahead": "look-ahead check"}
_lock = threading.Lock()
_deployments: dict[str, dict[str, UUID]] = {}


class SandboxMissing(ApiError):
    """No sandbox can run user code right now (no worker reachable, or no sandbox on it)."""

    status_code = 503


class LabTimeout(ApiError):
    """The worker did not finish a test run or look-ahead check in time (it was cancelled)."""

    status_code = 504


class LabFailed(ApiError):
    """The flow run of a test run or look-ahead check failed on the worker."""

    status_code = 502


def timeout_for(settings: ApiSettings, manifest: CustomNodeManifest) -> float:
    """How long to wait: ``node_lab_timeout_s`` (a worker starting the flow run, the sandbox's
    self-test) plus the node's wall-time limit (the look-ahead check's two executions run at
    once)."""
    try:  # the operator's caps (ALPHAFORGE_SANDBOX_*), as the workers of this deployment
        caps = operator_caps()
    except AlphaForgeError:  # refused settings: the worker says so; wait by the defaults
        caps = AdminCaps()
    wall = min(manifest.resources.wall_s or caps.wall_s, caps.max_wall_s)
    return settings.node_lab_timeout_s + wall


def _deployment_id(
    client: SyncPrefectClient, url: str, pool: str, kind: str, refresh: bool
) -> UUID:
    # on the pool web runs go to (ALPHAFORGE_WORK_POOL): registered on the default one, a
    # stack with another pool (a Docker pool's) moved `alphaforge deploy`'s node-lab
    # deployment to a pool no worker polls, and every test run and look-ahead check timed out
    with _lock:
        cache = f"{url}#{pool}"
        if refresh or cache not in _deployments:
            _deployments[cache] = ensure_nodelab_deployments(client, pool)
        return _deployments[cache][kind]


def _store_url(settings: ApiSettings) -> str:
    return settings.artifact_store_url or str(settings.artifacts_dir)


def run_lab(
    settings: ApiSettings,
    kind: str,
    parameters: dict[str, Any],
    timeout_s: float,
    *,
    job_variables: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the node-lab flow ``kind`` (``test_run`` or ``lookahead``) on a worker and return its
    outcome's value (see :func:`flows.nodelab.lab_outcome`).

    ``parameters`` are the flow's, without ``result_key`` and ``store_url`` (added here);
    ``job_variables`` override the deployment's for this flow run (e.g. its ``env``). Raises
    :class:`SandboxMissing`, :class:`LabTimeout` or :class:`LabFailed` (see the module).
    """
    what = _WHAT[kind]
    key = uuid.uuid4().hex
    store_url = _store_url(settings)
    params = {**parameters, "result_key": key, "store_url": store_url}
    try:
        with prefect_client(settings) as client:
            url = settings.prefect_api_url or ""
            create = client.create_flow_run_from_deployment
            tags = ["alphaforge", "nodelab", f"nodelab:{kind}"]
            try:
                deployment = _deployment_id(client, url, settings.work_pool, kind, refresh=False)
                flow_run = create(
                    deployment, parameters=params, tags=tags, job_variables=job_variables
                )
            except ObjectNotFound:  # the server was reset: register the deployments again
                deployment = _deployment_id(client, url, settings.work_pool, kind, refresh=True)
                flow_run = create(
                    deployment, parameters=params, tags=tags, job_variables=job_variables
                )
            state = _wait(client, flow_run.id, what, timeout_s, settings.work_pool)
    except PrefectUnavailable as exc:
        raise SandboxMissing(
            f"no sandbox is available to run user code: the {what} runs on a worker and "
            f"{exc.detail}"
        ) from None
    if not state.is_completed():
        raise LabFailed(
            f"the {what} ended {state.type.value.lower()} on the worker: "
            f"{user_text(state.message or 'no message')} (flow run {flow_run.id})"
        )
    outcome = read_result(store_url, key)
    if outcome is None:
        raise LabFailed(
            f"the {what} finished on the worker but the API found no result in the artifact "
            "store: the worker and the API must share the store (ALPHAFORGE_ARTIFACT_STORE_URL "
            f"or the data dir; flow run {flow_run.id})"
        )
    if outcome["ok"]:
        value: dict[str, Any] = outcome["value"]
        return value
    if outcome["error_kind"] == "SANDBOX_UNAVAILABLE":
        raise SandboxMissing(f"no sandbox is available to run user code: {outcome['error']}")
    raise LabFailed(f"the {what} failed on the worker: {outcome['error']}")


def _wait(
    client: SyncPrefectClient, flow_run_id: UUID, what: str, timeout_s: float, pool: str
) -> Any:
    """The flow run's final state; cancels it and raises :class:`LabTimeout` after
    ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = client.read_flow_run(flow_run_id).state
        if state is not None and state.is_final():
            return state
        if time.monotonic() >= deadline:
            try:
                cancel_flow_run(client, str(flow_run_id))
            except Exception:  # the timeout is the answer; a failed cancel is only logged
                log.exception("could not cancel the timed-out node-lab flow run %s", flow_run_id)
            started = state is not None and (state.is_running() or state.is_cancelling())
            why = (
                "the node did not finish"
                if started
                else f"no worker started it (is a worker polling the {pool!r} pool?)"
            )
            raise LabTimeout(
                f"the {what} did not finish within {timeout_s:.0f} s: {why}; it was cancelled "
                f"(flow run {flow_run_id})"
            )
        time.sleep(POLL_S)


def test_run(
    settings: ApiSettings, manifest: CustomNodeManifest, params: dict[str, Any], rows: int
) -> dict[str, Any]:
    """The test-run body (:func:`flows.nodelab.test_run`) of ``manifest``, run on a worker."""
    return run_lab(
        settings,
        "test_run",
        {"manifest_json": manifest.model_dump_json(), "params": params, "rows": rows},
        timeout_for(settings, manifest),
    )


test_run.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


async def limited_test_run(
    limits: SandboxLimits,
    engine: Engine,
    settings: ApiSettings,
    user: User,
    manifest: CustomNodeManifest,
    params: dict[str, Any],
    rows: int,
) -> dict[str, Any]:
    """:func:`test_run` in one of ``user``'s sandbox slots (429 :class:`SandboxBusy` at once
    when there is no room), in the limiter's threads and without a database session; the
    outcome (completed, failed, or the error that ended it) is then audited as
    ``custom_node.test_run`` in a session of its own. Refused requests ran nothing and are not
    audited."""

    def work() -> dict[str, Any]:  # in the slot's thread: audited even if the client left
        started = time.monotonic()
        try:
            result = test_run(settings, manifest, params, rows)
        except ApiError as exc:
            _audit_test_run(
                engine, user, manifest, started,
                outcome="error", status_code=exc.status_code, error=str(exc.detail)[:500],
            )  # fmt: skip
            raise
        except Exception as exc:  # a bug: the 500 handler logs it; the audit says code ran
            _audit_test_run(
                engine, user, manifest, started,
                outcome="error", status_code=500, error=type(exc).__name__,
            )  # fmt: skip
            raise
        _audit_test_run(
            engine, user, manifest, started,
            outcome=str(result.get("status")), status_code=200,
            error=str(result.get("error_kind") or "") or None,
        )  # fmt: skip
        return result

    return await limits.run(user.id or 0, work)


def _audit_test_run(
    engine: Engine,
    user: User,
    manifest: CustomNodeManifest,
    started: float,
    *,
    outcome: str,
    status_code: int,
    error: str | None,
) -> None:
    with Session(engine) as session:
        audit.record(
            session, user, "custom_node.test_run", "custom_node", None,
            name=manifest.name, language=manifest.language, version=manifest.version,
            code_hash=manifest.code_hash(), outcome=outcome, status_code=status_code,
            error=error, seconds=round(time.monotonic() - started, 2),
        )  # fmt: skip
        session.commit()


def lookahead(settings: ApiSettings, manifest: CustomNodeManifest) -> dict[str, Any]:
    """The look-ahead verdict (:func:`flows.nodelab.check_lookahead`) of ``manifest``, checked
    on a worker."""
    return run_lab(
        settings,
        "lookahead",
        {"manifest_json": manifest.model_dump_json()},
        timeout_for(settings, manifest),
    )
