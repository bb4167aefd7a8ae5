"""Keeping run rows in step with Prefect: the status sync.

:func:`sync_once` maps each unfinished run's Prefect flow-run state and its run directory into
the row (status, node states, metrics, error, times). It runs every second in a background
task of one API process — the :class:`SyncLeader`, however many API processes serve —
(:func:`run_sync_loop`), and for one run on every read of it.
It also discovers the flow runs Prefect's scheduler started and reconciles scheduled
pipelines' deployments (:mod:`api.services.schedules`).

Nothing stays "running" forever: a crashed flow run, one that vanished from Prefect, a run
that was never handed to Prefect, a cancellation no worker confirms, and a run no worker picks
up all end as failed or cancelled, with the reason in ``error``. A run whose process is gone
while Prefect still says Running (``serve`` or its worker stopped or killed mid-run) is found by
:mod:`api.services.run_liveness` and set Crashed in Prefect too — on the first pass after a
restart, since the sync runs as soon as the API starts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.objects import FlowRun, StateType
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from api.models.common import as_utc, utcnow
from api.models.run import ACTIVE_STATUSES, Run, RunStatus
from api.services import run_files
from api.services.prefect_client import READ_SYNC_S, prefect_client, read_flow_runs, within
from api.services.run_liveness import end_gone_run, gone_reason
from api.services.run_tracking_close import close_tracked_runs
from api.settings import ApiSettings
from flows.spec import RunRecord
from flows.tracebacks import user_text

__all__ = ["Outcome", "SyncLeader", "decide", "run_sync_loop", "sync_once", "sync_run"]

log = logging.getLogger(__name__)

SYNC_INTERVAL_S = 1.0
SYNC_LOCK_KEY = 0x616C_7068_6166  # pg advisory lock key of the status sync ("alphaf")
SUBMIT_GRACE = timedelta(seconds=60)  # a row without a flow run after this was never submitted
CANCEL_CONFIRM_TIMEOUT = timedelta(seconds=60)
PICKUP_TIMEOUT = timedelta(minutes=30)  # no worker took the run
PREVIEW_KEYS = ("sharpe", "total_return", "max_drawdown", "num_trades")
_PENDING_STATES = {StateType.SCHEDULED, StateType.PENDING, StateType.PAUSED}


@dataclass(frozen=True)
class Outcome:
    """What the row should say now; ``cancel_flow_run`` when Prefect must be told to stop."""

    status: RunStatus
    error: str | None = None
    cancel_flow_run: bool = False


def decide(run: Run, flow_run: FlowRun | None, record: RunRecord | None, now: datetime) -> Outcome:
    """The status a run has, from its flow run (None when Prefect has none) and its record."""
    recorded = record.status if record is not None else None
    recorded_error = record.error if record is not None else None
    if run.prefect_flow_run_id is None:
        if now - as_utc(run.created_at) > SUBMIT_GRACE:
            return Outcome(RunStatus.FAILED, "the run was never handed to Prefect")
        return Outcome(RunStatus.PENDING)
    if flow_run is None or flow_run.state is None:
        if recorded in ("completed", "failed"):
            return Outcome(RunStatus(recorded), recorded_error)
        return Outcome(RunStatus.FAILED, "the Prefect flow run no longer exists")
    state = flow_run.state
    kind = state.type
    if kind == StateType.COMPLETED:
        return Outcome(RunStatus.COMPLETED)
    if kind == StateType.FAILED:
        message = recorded_error or state.message or "the flow run failed"
        return Outcome(RunStatus.FAILED, user_text(message))
    if kind == StateType.CRASHED:
        if run.cancel_requested_at is not None:
            # Stopping the process was what we asked for: a SIGTERM that Prefect could not tie
            # to the cancel request (it landed before the flow-run process was ready for it)
            # is reported as a crash, but the run was cancelled.
            reason = state.message or "no reason"
            return Outcome(
                RunStatus.CANCELLED, f"cancelled; Prefect reported the stopped process as: {reason}"
            )
        return Outcome(RunStatus.FAILED, _crashed(state.message))
    if kind == StateType.CANCELLED:
        return Outcome(RunStatus.CANCELLED, state.message or "cancelled")
    if kind == StateType.CANCELLING:
        asked = run.cancel_requested_at
        if asked is not None and now - as_utc(asked) > CANCEL_CONFIRM_TIMEOUT:
            return Outcome(
                RunStatus.CANCELLED, "cancellation requested; no worker confirmed it in time"
            )
        return Outcome(RunStatus.RUNNING)
    if kind in _PENDING_STATES:
        if now - as_utc(run.created_at) > PICKUP_TIMEOUT:
            return Outcome(
                RunStatus.FAILED, "no worker picked up the run in time", cancel_flow_run=True
            )
        return Outcome(RunStatus.PENDING)
    return Outcome(RunStatus.RUNNING)


# Prefect's words for a flow-run process that exited with a code: "Flow run infrastructure
# exited with non-zero status code 143. …" (a worker), "… exited with status code: -15" (a runner)
_EXIT_CODE = re.compile(r"exited with (?:non-zero )?status code:? *(-?\d+)")
_STOPPED_CODES = {143: "SIGTERM", -15: "SIGTERM", 130: "SIGINT", -2: "SIGINT"}
_KILLED_CODES = {137, -9}


def _crashed(message: str | None) -> str:
    """The error of a run whose flow-run process died (Prefect's state says Crashed). A process
    stopped by a signal is said in the platform's words, as the liveness check says it when
    it finds the process gone first (which of the two notices first is a race)."""
    reason = user_text(message or "its process crashed on the worker").rstrip(".")
    found = _EXIT_CODE.search(message or "")
    code = int(found.group(1)) if found else None
    if code in _STOPPED_CODES:
        reason = (
            "its process stopped before the run finished (the server or its worker was stopped "
            f"or killed while the run was running: {_STOPPED_CODES[code]}, exit code {code})"
        )
    elif code in _KILLED_CODES:
        reason = (
            f"its process was killed (SIGKILL, exit code {code}): out of memory, or stopped by "
            "an operator or a supervisor"
        )
    return (
        f"the run did not finish: {reason}. Run it again; if it happens again, the operators "
        "find the cause in the worker's log."
    )


def _preview(metrics: dict[str, Any]) -> str | None:
    if not metrics:
        return None
    return json.dumps({k: metrics.get(k) for k in PREVIEW_KEYS}, default=str)


def apply(
    run: Run, flow_run: FlowRun | None, settings: ApiSettings, now: datetime
) -> tuple[bool, bool]:
    """Update ``run`` in place; returns (changed, cancel the flow run in Prefect)."""
    run_dir = settings.runs_dir / run.run_key
    record = run_files.read_record(run_dir)
    outcome = decide(run, flow_run, record, now)
    before = (run.status, run.error, run.node_states_json, run.metrics_json, run.started_at)
    run.status = outcome.status.value
    if outcome.status.final:
        run.error = outcome.error if outcome.status != RunStatus.COMPLETED else None
        run.finished_at = run.finished_at or (
            flow_run.end_time if flow_run and flow_run.end_time else now
        )
    if flow_run is not None and flow_run.start_time and run.started_at is None:
        run.started_at = flow_run.start_time
    ended = outcome.status.value if outcome.status.final else None
    run.node_states_json = json.dumps(run_files.live_node_states(run_dir, record, ended))
    if ended is not None:
        run_files.forget_log(run_dir)
    if record is not None:
        run.metrics_json = _preview(record.metrics) or run.metrics_json
        run.mlflow_run_id = record.mlflow_run_id or run.mlflow_run_id
    after = (run.status, run.error, run.node_states_json, run.metrics_json, run.started_at)
    return before != after, outcome.cancel_flow_run


def _sync_runs(session: Session, client: SyncPrefectClient, settings: ApiSettings) -> int:
    runs = session.exec(select(Run).where(col(Run.status).in_(ACTIVE_STATUSES))).all()
    if not runs:
        return 0
    ids = [r.prefect_flow_run_id for r in runs if r.prefect_flow_run_id]
    flow_runs = read_flow_runs(client, ids) if ids else {}
    now = utcnow()
    changed = 0
    for run in runs:
        flow_run = flow_runs.get(run.prefect_flow_run_id or "")
        reason = gone_reason(client, flow_run, settings.runs_dir / run.run_key, now)
        if reason is not None and flow_run is not None:
            flow_run = end_gone_run(client, flow_run, reason)
        dirty, cancel = apply(run, flow_run, settings, now)
        if dirty and run.status in (RunStatus.FAILED.value, RunStatus.CANCELLED.value):
            # a process that died first never ended its MLflow run: not "running" for ever
            close_tracked_runs(settings.mlflow_uri, run.run_key, run.error)
        if cancel and run.prefect_flow_run_id:
            from api.services.prefect_client import cancel_flow_run

            cancel_flow_run(client, run.prefect_flow_run_id)
        if dirty:
            session.add(run)
            changed += 1
    session.commit()
    return changed


def sync_once(engine: Engine, settings: ApiSettings) -> int:
    """One pass: unfinished runs and sweeps, scheduled runs, scheduled deployments. Returns rows
    changed."""
    from api.services import schedules, sweep_sync

    with Session(engine, expire_on_commit=False) as session, prefect_client(settings) as client:
        schedules.reconcile_deployments(session, client, settings)
        schedules.discover_scheduled_runs(session, client, settings)
        changed = _sync_runs(session, client, settings)
        return changed + sweep_sync.sync_active(session, client, settings)


def sync_run(session: Session, settings: ApiSettings, run: Run) -> Run:
    """Bring one unfinished run up to date now (on read), quietly keeping the stored state
    when Prefect cannot be reached."""
    if RunStatus(run.status).final or not settings.prefect_api_url:
        return run
    flow_run_id = run.prefect_flow_run_id

    def read() -> dict[str, FlowRun]:
        with prefect_client(settings) as client:
            return read_flow_runs(client, [flow_run_id]) if flow_run_id else {}

    try:
        found = within(READ_SYNC_S, read)
    except TimeoutError:
        log.warning("run %s: Prefect did not answer within %g s on read", run.id, READ_SYNC_S)
        return run  # the stored state stands; the loop catches up
    except Exception as exc:  # the stored state stands; the loop retries
        log.warning("run %s: Prefect unreachable on read: %s", run.id, exc)
        return run
    dirty, _ = apply(run, found.get(run.prefect_flow_run_id or ""), settings, utcnow())
    if dirty:
        session.add(run)
        session.commit()
    return run


class SyncLeader:
    """Elects the one API process that runs the status sync loop.

    On PostgreSQL the leader holds a session-level advisory lock on a connection of its own
    (released by the server when that process or connection dies, so another takes over); on
    SQLite an exclusive ``flock`` on ``<data_dir>/status-sync.lock`` (released when the process
    exits). :meth:`acquire` is cheap to call on every tick.
    """

    def __init__(self, engine: Engine, settings: ApiSettings) -> None:
        self.engine = engine
        self.settings = settings
        self._conn: Any = None
        self._fh: Any = None

    @property
    def held(self) -> bool:
        """Whether this process is the leader."""
        return self._conn is not None or self._fh is not None

    def acquire(self) -> bool:
        """Become (or stay) the leader if no other process is; True when this one is."""
        if self.engine.dialect.name == "postgresql":
            return self._acquire_pg()
        return self._acquire_file()

    def _acquire_pg(self) -> bool:
        if self._conn is not None:
            try:  # still ours? (a dropped connection loses the lock)
                self._conn.exec_driver_sql("SELECT 1")
                return True
            except Exception:
                self._drop_conn()
        conn = self.engine.connect()
        try:
            got = conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({SYNC_LOCK_KEY})").scalar()
            conn.commit()
        except Exception:
            conn.close()
            raise
        if got:
            self._conn = conn
            return True
        conn.close()
        return False

    def _acquire_file(self) -> bool:
        if self._fh is not None:
            return True
        import fcntl

        path = self.settings.root / "status-sync.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = path.open("a")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        self._fh = fh
        return True

    def _drop_conn(self) -> None:
        conn, self._conn = self._conn, None
        with suppress(Exception):
            conn.close()

    def release(self) -> None:
        """Stop being the leader (another process may take over)."""
        if self._conn is not None:
            with suppress(Exception):
                self._conn.exec_driver_sql(f"SELECT pg_advisory_unlock({SYNC_LOCK_KEY})")
            self._drop_conn()
        if self._fh is not None:
            fh, self._fh = self._fh, None
            fh.close()


async def run_sync_loop(
    engine: Engine, settings: ApiSettings, interval_s: float = SYNC_INTERVAL_S
) -> None:
    """Call :func:`sync_once` every ``interval_s`` (in a thread: the client blocks) while this
    process is the :class:`SyncLeader`; errors are logged and retried, never fatal."""
    failures = 0
    leader = SyncLeader(engine, settings)
    try:
        while True:
            try:
                if await asyncio.to_thread(leader.acquire):
                    await asyncio.to_thread(sync_once, engine, settings)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("run status sync failed (%d in a row): %s", failures, exc)
            await asyncio.sleep(interval_s)
    finally:
        leader.release()
