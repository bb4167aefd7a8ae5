"""A flow run cancelled before its process started does not run.

A cancel races the worker that takes the run: the API reads a flow run Scheduled and sets it
Cancelled, while the worker has just set it Pending and is starting its process; or the run is
Pending, set Cancelling, and the worker, which has no process of it to kill yet, records it
Cancelled. The process then starts anyway, and Prefect's engine proposes Running: the server
accepts Running after Cancelled (an ad-hoc run's re-run goes that way), so the cancelled run
would run to the end and complete, its cancel forgotten.

:func:`stop_if_cancelled_before_start`, the first thing a deployed flow's body does, reads the
flow run's state history. A Cancelling or Cancelled state recorded since its last Scheduled one
(a retry or a re-run is scheduled again, and runs) means the run was cancelled before it got
here: it records Cancelled again and ends the process at once, before any node, trial or
side effect. Only in a worker's flow-run process (``PREFECT__FLOW_RUN_ID`` names the run): a
flow called in-process (the CLI, a test) was never cancelled before it started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any
from uuid import UUID

__all__ = ["cancel_before_start", "stop_if_cancelled_before_start"]

_LOG = logging.getLogger("alphaforge.flows")


def cancel_before_start(states: Sequence[Any]) -> Any | None:
    """The Cancelling or Cancelled state among ``states`` (a flow run's Prefect states, in any
    order) recorded after its last Scheduled-type state (Scheduled, Late, AwaitingRetry), or
    None when there is none: the run was not cancelled since it was last scheduled."""
    ordered = sorted(states, key=lambda s: s.timestamp)
    since = 0
    for i, state in enumerate(ordered):
        if state.is_scheduled():
            since = i + 1
    for state in ordered[since:]:
        if state.is_cancelling() or state.is_cancelled():
            return state
    return None


def stop_if_cancelled_before_start(flow_run_id: str | None = None) -> None:
    """End this flow-run process, the flow run Cancelled, when the run was cancelled before
    the process started (see the module doc); return otherwise. ``flow_run_id``: the current
    flow run's by default. A failure to read the states never stops a run."""
    if flow_run_id is None:
        from prefect.context import FlowRunContext

        ctx = FlowRunContext.get()
        flow_run_id = str(ctx.flow_run.id) if ctx is not None and ctx.flow_run else None
    if not flow_run_id or os.environ.get("PREFECT__FLOW_RUN_ID") != flow_run_id:
        return
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled

    hit = None
    with contextlib.suppress(Exception), get_client(sync_client=True) as client:
        hit = cancel_before_start(client.read_flow_run_states(UUID(flow_run_id)))
        if hit is not None:
            client.set_flow_run_state(
                UUID(flow_run_id),
                Cancelled(message="Cancelled before it started: the run did not execute."),
                force=True,
            )
    if hit is None:
        return
    message = (
        f"flow run {flow_run_id} was cancelled before its process started "
        f"({hit.type.value} at {hit.timestamp}): it ends now, Cancelled, without running"
    )
    _LOG.warning(message)
    print(message, file=sys.stderr, flush=True)
    logging.shutdown()
    os._exit(0)
