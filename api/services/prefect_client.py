"""The API's window on Prefect: a client for the configured server, runs submitted and read.

The API never runs a pipeline: it creates flow runs of the ``web`` and ``sweep`` deployments
and reads their states. Without a Prefect server (``ALPHAFORGE_PREFECT_API_URL`` unset) runs
cannot start: that is a 503 with a clear message, never a silent fallback to an in-process run;
a Prefect server that answers with an error is a 502 with what it said (:func:`prefect_client`).
All calls are blocking; routes run in the thread pool and the sync loop calls them from a thread.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypeVar
from uuid import UUID

import httpx
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound, PrefectException
from prefect.states import Cancelled, Cancelling

from api.errors import ApiError
from api.settings import ApiSettings
from deployments.deploy import ensure_sweep_deployments, ensure_web_deployment
from flows.tracebacks import user_text

__all__ = [
    "PrefectError",
    "PrefectUnavailable",
    "cancel_flow_run",
    "child_flow_run_ids",
    "create_flow_run",
    "prefect_client",
    "read_flow_runs",
    "within",
]

Deployment = Literal["web", "sweep"]
T = TypeVar("T")
_lock = threading.Lock()
_deployments: dict[tuple[str, str, str], UUID] = {}  # (kind, server url, pool) -> id
#: how long a read (a run or sweep page) waits for Prefect before it shows the stored state
READ_SYNC_S = 5.0
#: reads waiting on Prefect at once; past it, a read shows the stored state without asking
MAX_PENDING_READS = 16
_pending_reads = threading.BoundedSemaphore(MAX_PENDING_READS)


def within(seconds: float, fn: Callable[[], T]) -> T:
    """``fn()`` (a few calls to Prefect) if it returns within ``seconds``, else
    :class:`TimeoutError`; what it raises is raised here. Prefect's client waits up to a minute
    and retries a timed-out read five times: a page that reads its run's state on the way
    (:func:`api.services.prefect_sync.sync_run`) shows the stored state instead of hanging
    while Prefect is stalled (its SQLite database locked under load), and the status loop
    catches up. A call that outlives the wait finishes in its own daemon thread (it never
    holds the process's exit), its answer unused; at most :data:`MAX_PENDING_READS` wait at
    once, and past that a read times out at once rather than pile more onto a stalled server."""
    if not _pending_reads.acquire(blocking=False):
        raise TimeoutError("too many reads are already waiting for Prefect")
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc
        finally:
            _pending_reads.release()
            done.set()

    context = contextvars.copy_context()  # Prefect's settings context, as the caller has it
    threading.Thread(target=context.run, args=(run,), name="af-prefect-read", daemon=True).start()
    if not done.wait(seconds):
        raise TimeoutError(f"Prefect did not answer within {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


class PrefectUnavailable(ApiError):
    """No Prefect server is configured or it does not answer."""

    status_code = 503


class PrefectError(ApiError):
    """The Prefect server answered a request with an error (a bad gateway for the API)."""

    status_code = 502


def _api_url(settings: ApiSettings) -> str:
    if not settings.prefect_api_url:
        raise PrefectUnavailable(
            "no Prefect server is configured (ALPHAFORGE_PREFECT_API_URL); "
            "start the platform with `alphaforge serve`"
        )
    return settings.prefect_api_url


def _prefect_detail(exc: Exception) -> str:
    """What Prefect said: the status and the ``detail`` of its answer, else the exception."""
    response = getattr(exc, "response", None)
    if response is None:
        http_exc = getattr(exc, "http_exc", None)  # ObjectNotFound and friends wrap it
        response = getattr(http_exc, "response", None)
    if isinstance(response, httpx.Response):
        try:
            detail = response.json().get("detail")
        except (ValueError, AttributeError):
            detail = None
        return f"{response.status_code} {detail or response.reason_phrase}"
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


@contextmanager
def prefect_client(settings: ApiSettings) -> Iterator[SyncPrefectClient]:
    """A synchronous client of the configured Prefect server.

    Whatever goes wrong with Prefect inside the block becomes an :class:`ApiError`, never a 500:
    it cannot be reached → 503 (:class:`PrefectUnavailable`); it answered with an error →
    502 (:class:`PrefectError`, with Prefect's status and detail).
    """
    url = _api_url(settings)
    try:
        with SyncPrefectClient(api=url) as client:
            yield client
    except ApiError:
        raise
    except (OSError, RuntimeError, httpx.TransportError) as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise PrefectUnavailable(
            f"the Prefect server at {url} is unreachable ({reason}): runs and schedules wait "
            "for it; start it (`alphaforge serve` does) or set ALPHAFORGE_PREFECT_API_URL to a "
            "running one, then try again"
        ) from exc
    except (httpx.HTTPStatusError, PrefectException) as exc:
        raise PrefectError(
            f"Prefect refused the request: {user_text(_prefect_detail(exc))}; try again, and if "
            "it keeps refusing, the operators find why in the Prefect server's log"
        ) from exc


def _ensure_web(client: SyncPrefectClient, pool: str) -> UUID:
    return ensure_web_deployment(client, pool)


def _ensure_sweep(client: SyncPrefectClient, pool: str) -> UUID:
    try:
        return ensure_sweep_deployments(client, pool)["sweep"]
    except ImportError as exc:  # a platform without the sweep engine
        raise PrefectUnavailable(
            f"this installation cannot run sweeps: the sweep flows do not load ({exc})"
        ) from exc


# deployment kind -> how to register it on a server (once per server and pool)
_ENSURE: dict[Deployment, Callable[[SyncPrefectClient, str], UUID]] = {
    "web": _ensure_web,
    "sweep": _ensure_sweep,
}


def _deployment_id(
    client: SyncPrefectClient, url: str, pool: str, deployment: Deployment, refresh: bool = False
) -> UUID:
    key = (deployment, url, pool)
    with _lock:
        if refresh or key not in _deployments:
            _deployments[key] = _ENSURE[deployment](client, pool)
        return _deployments[key]


def create_flow_run(
    settings: ApiSettings,
    deployment: Deployment,
    parameters: dict[str, Any],
    *,
    idempotency_key: str,
    tags: list[str],
    name: str | None = None,
) -> FlowRun:
    """A flow run named ``name`` of the ``web`` deployment (one pipeline run) or the ``sweep``
    one (``alphaforge-sweep/sweep``: the parent flow that plans a sweep's trials and fans chunks
    out to the pool). Prefect de-duplicates on ``idempotency_key``; the deployment is registered
    once per server and pool, again if the server forgot it."""
    options: dict[str, Any] = {
        "parameters": parameters,
        "idempotency_key": idempotency_key,
        "tags": tags,
        "name": name,
    }
    with prefect_client(settings) as client:
        url = _api_url(settings)
        deployment_id = _deployment_id(client, url, settings.work_pool, deployment)
        try:
            return client.create_flow_run_from_deployment(deployment_id, **options)
        except ObjectNotFound:  # the server was reset: recreate the deployment once
            deployment_id = _deployment_id(client, url, settings.work_pool, deployment, True)
            return client.create_flow_run_from_deployment(deployment_id, **options)


def read_flow_runs(client: SyncPrefectClient, ids: list[str]) -> dict[str, FlowRun]:
    """The flow runs among ``ids`` that exist, by id (one request per 200 ids)."""
    out: dict[str, FlowRun] = {}
    for start in range(0, len(ids), 200):
        chunk = [UUID(i) for i in ids[start : start + 200]]
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)), limit=len(chunk)
        )
        out.update({str(r.id): r for r in runs})
    return out


def child_flow_run_ids(client: SyncPrefectClient, parent_id: str) -> list[str]:
    """The flow runs ``parent_id`` started (``run_deployment`` from inside it: a sweep's
    chunks), whatever their state."""
    runs = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[UUID(parent_id)])
        ),
        limit=200,
    )
    return [str(r.id) for r in runs]


def cancel_flow_run(client: SyncPrefectClient, flow_run_id: str) -> None:
    """Ask for cancellation: a run no worker has taken is cancelled outright; a pending or
    running one is set to Cancelling and its worker kills the process."""
    try:
        run = client.read_flow_run(UUID(flow_run_id))
    except ObjectNotFound:
        return
    state = run.state
    if state is None or state.is_final():
        return
    if state.is_scheduled() or state.is_paused():
        client.set_flow_run_state(
            run.id, Cancelled(message="Cancelled from Alpha Forge"), force=True
        )
    elif not state.is_cancelling():
        # not forced: a run that reached a terminal state since the read stays there (the
        # server refuses CANCELLING after a terminal state; a forced one left a Cancelled
        # chunk Cancelling for good, its process already gone)
        client.set_flow_run_state(run.id, Cancelling(message="Cancelled from Alpha Forge"))
