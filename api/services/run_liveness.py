"""Runs whose process is gone: found, and ended as Crashed with the reason.

Prefect does not notice by itself when a flow-run process dies with its worker (``serve``
stopped or killed mid-run, a worker SIGKILLed, a machine restarted): the flow run stays Running
for ever. The status sync asks :func:`gone_reason` about every run Prefect says is Running or
Cancelling, and :func:`end_gone_run` then sets the flow run Crashed with the reason (Cancelled
when it was being cancelled: its process ending is what the cancel asked for), so Prefect's
UI and the app say the same.

Two ways to know, the exact one first:

- the run's process marker (:mod:`flows.liveness`): when the flow-run process ran on this host,
  whether that very process (pid and start time) still exists;
- otherwise Prefect's flow-run heartbeats (``prefect.flow-run.heartbeat`` events, every
  ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds — ``serve``'s worker sets 30): no beat for
  :data:`MISSED_BEATS` intervals means the process is gone. The interval is read from the last
  two beats; a run with fewer than two is measured against Prefect's default (180 s).

A run is looked at once per :data:`CHECK_EVERY_S` at most (the heartbeat query is a request).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.events.filters import (
    EventFilter,
    EventNameFilter,
    EventOccurredFilter,
    EventResourceFilter,
)
from prefect.states import Cancelled, Crashed

from api.models.common import as_utc
from flows.liveness import process_gone, read_mark, runs_here

__all__ = ["CHECK_EVERY_S", "MISSED_BEATS", "end_gone_run", "gone_reason"]

log = logging.getLogger(__name__)

HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"
DEFAULT_BEAT_S = 180.0  # Prefect's default PREFECT_FLOWS_HEARTBEAT_FREQUENCY
MIN_BEAT_S = 30.0  # Prefect's minimum
MISSED_BEATS = 3
CHECK_EVERY_S = 15.0
_ACTIVE = {StateType.RUNNING, StateType.CANCELLING}
_last_check: dict[str, datetime] = {}


def gone_reason(
    client: SyncPrefectClient, flow_run: FlowRun | None, run_dir: Path, now: datetime
) -> str | None:
    """Why ``flow_run``'s process is gone, as a sentence; None when it is alive (or when it
    cannot be told yet, or the flow run is not Running or Cancelling)."""
    if flow_run is None or flow_run.state is None or flow_run.state.type not in _ACTIVE:
        return None
    if runs_here(run_dir):
        return process_gone(run_dir)  # exact, and cheap: every pass
    key = str(flow_run.id)
    last = _last_check.get(key)
    if last is not None and (now - last).total_seconds() < CHECK_EVERY_S:
        return None
    _last_check[key] = now
    return _heartbeats_stopped(client, flow_run, read_mark(run_dir) is not None, now)


def _heartbeats_stopped(
    client: SyncPrefectClient, flow_run: FlowRun, marked: bool, now: datetime
) -> str | None:
    started = flow_run.start_time
    if started is None:
        return None
    since = as_utc(started) - timedelta(seconds=5)
    try:
        page = client.read_events(
            EventFilter(
                occurred=EventOccurredFilter(since=since, until=now + timedelta(seconds=60)),
                event=EventNameFilter(name=[HEARTBEAT_EVENT]),
                resource=EventResourceFilter(id=[f"prefect.flow-run.{flow_run.id}"]),
            ),
            limit=2,
        )
    except Exception as exc:  # Prefect unreachable: decide nothing now
        log.warning("flow run %s: heartbeats could not be read: %s", flow_run.id, exc)
        return None
    beats = sorted((as_utc(e.occurred) for e in page.events), reverse=True)
    if len(beats) >= 2:
        interval = max(MIN_BEAT_S, (beats[0] - beats[1]).total_seconds())
    else:
        interval = DEFAULT_BEAT_S
    last = beats[0] if beats else as_utc(started)
    silent = (now - last).total_seconds()
    if silent <= MISSED_BEATS * interval:
        return None
    where = "its process" if marked else "its flow-run process"
    return (
        f"{where} stopped sending heartbeats {silent:.0f} s ago (every {interval:.0f} s "
        "expected): the worker or its machine stopped while the run was running"
    )


def end_gone_run(client: SyncPrefectClient, flow_run: FlowRun, reason: str) -> FlowRun:
    """Set ``flow_run`` Crashed with ``reason`` (Cancelled when it was being cancelled), and
    return it as Prefect has it now."""
    assert flow_run.state is not None
    if flow_run.state.type == StateType.CANCELLING:
        # the process ending is what a cancel does: the worker just has not said so yet
        state = Cancelled(message="cancelled")
    else:
        state = Crashed(message=reason)
    try:
        client.set_flow_run_state(flow_run.id, state, force=False)
    except Exception as exc:
        log.warning("flow run %s: could not be set %s: %s", flow_run.id, state.type, exc)
        return flow_run
    _last_check.pop(str(flow_run.id), None)
    log.warning("flow run %s ended %s: %s", flow_run.id, state.type.value, reason)
    return client.read_flow_run(UUID(str(flow_run.id)))
