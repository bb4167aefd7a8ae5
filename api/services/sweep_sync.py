"""Keeping sweep rows in step with their parent flow run and their ``sweep.json``.

The record the flow writes says how far the sweep got (trials done, the best so far) and how it
ended. Prefect says what became of the flow run. When both agree, the row mirrors the record.
When the record still says ``running`` but the flow run crashed, failed or was cancelled (its
process killed, a worker gone: the flow had no chance to write), the row ends as Prefect says,
with the reason, exactly as a run does (:func:`api.services.prefect_sync.decide`, and
:mod:`api.services.run_liveness` for a flow run whose process is gone while Prefect still says
Running) — and the record is brought to the same end, so ``resume`` and the CLI see it too.
A chunk flow run whose process is gone is ended Crashed the same way (the parent flow stops
waiting for it and ends the sweep failed, its missing trials left to ``resume``), and a sweep
that ends failed or cancelled has its MLflow runs still RUNNING (its parent run, when its
process died first) ended KILLED with the reason (:mod:`api.services.run_tracking_close`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.objects import FlowRun
from sqlalchemy import update
from sqlmodel import Session, col, select

from api.models.common import as_utc, utcnow
from api.models.sweep import ACTIVE_SWEEP_STATUSES, Sweep
from api.services.prefect_client import READ_SYNC_S, prefect_client, read_flow_runs, within
from api.services.prefect_sync import decide
from api.services.run_liveness import end_gone_run, gone_reason
from api.services.run_tracking_close import close_sweep_runs
from api.services.sweep_files import with_progress
from api.settings import ApiSettings
from flows.sweepspec import (
    SweepRecord,
    process_dir,
    read_sweep_record,
    sweep_dir,
    write_json_atomic,
)

__all__ = ["apply", "sync_active", "sync_sweep"]

log = logging.getLogger(__name__)
RESUBMIT_SLACK_S = 2.0  # clocks of the API and the worker that wrote the record may differ


def apply(sweep: Sweep, flow_run: FlowRun | None, settings: ApiSettings, now: datetime) -> bool:
    """Update ``sweep`` in place from its record and flow run; True when the row changed."""
    folder = sweep_dir(settings.store_root, sweep.sweep_key)
    # done / failed counted from the trial files, as the page's table reads them
    record = with_progress(read_sweep_record(folder), folder)
    before = _state(sweep)
    if record is not None:
        sweep.n_trials = record.n_trials or sweep.n_trials
        sweep.done, sweep.failed = record.done, record.failed
        if record.best is not None:
            sweep.best_objective, sweep.best_trial = record.best.objective, record.best.trial
    if record is not None and record.ended and not _stale(sweep, record):
        status, error = record.status, record.error
        if status == "failed" and _cancel_ended(sweep, flow_run):
            # the cancel's kill interrupted the flow, which recorded that as a failure
            status, error = "cancelled", "cancelled"
            _end_record(folder, record, status, error)
    else:
        outcome = decide(sweep, flow_run, record, now)  # type: ignore[arg-type]
        status, error = outcome.status.value, outcome.error
        if status in ("failed", "cancelled") and record is not None and not _stale(sweep, record):
            _end_record(folder, record, status, error)
        if status == "completed" and (record is None or not record.ended):
            # the flow run ended well but never recorded an end: say so instead of guessing
            status, error = "failed", "the sweep's flow run ended without writing its results"
    sweep.status = status
    if status not in ACTIVE_SWEEP_STATUSES:
        sweep.error = error if status != "completed" else None
        sweep.finished_at = sweep.finished_at or (
            flow_run.end_time if flow_run is not None and flow_run.end_time else now
        )
    return before != _state(sweep)


def _cancel_ended(sweep: Sweep, flow_run: FlowRun | None) -> bool:
    """Whether a cancel was asked for and the parent flow run has ended (or is gone)."""
    if sweep.cancel_requested_at is None:
        return False
    state = flow_run.state if flow_run is not None else None
    return state is None or state.is_final()


def _stale(sweep: Sweep, record: SweepRecord) -> bool:
    """Whether the record's end belongs to an earlier attempt (a resumed sweep whose new flow
    run has not rewritten ``sweep.json`` yet): another flow run wrote it, or it ended before
    this attempt was submitted."""
    if record.flow_run_id and sweep.prefect_flow_run_id:
        return record.flow_run_id != sweep.prefect_flow_run_id
    submitted = as_utc(sweep.created_at).timestamp()
    return record.ended_at is not None and record.ended_at < submitted - RESUBMIT_SLACK_S


def _state(sweep: Sweep) -> tuple[object, ...]:
    return (
        sweep.status, sweep.error, sweep.n_trials, sweep.done, sweep.failed,
        sweep.best_objective, sweep.best_trial,
    )  # fmt: skip


def _end_record(folder: Path, record: SweepRecord, status: str, error: str | None) -> None:
    """Write the end Prefect reported into ``sweep.json`` (its flow could not)."""
    data = record.model_dump(mode="json")
    data.update(status=status, error=error, ended_at=datetime.now(UTC).timestamp())
    try:
        write_json_atomic(folder / "sweep.json", data)
    except (OSError, ValueError) as exc:
        log.warning("sweep %s: could not record its end: %s", record.sweep_id, exc)


def _live(
    client: SyncPrefectClient,
    sweep_key: str,
    key: str | None,
    settings: ApiSettings,
    now: datetime,
) -> FlowRun | None:
    """The parent flow run ``key`` of sweep ``sweep_key`` as Prefect has it, after ending it
    (and any of its chunks) Crashed when its process is gone. Plain values, not the row: a
    page's read runs it in a thread of its own (:func:`sync_sweep`)."""
    folder = sweep_dir(settings.store_root, sweep_key)
    _end_gone_chunks(client, folder, now)
    flow_run = read_flow_runs(client, [key]).get(key) if key else None
    if flow_run is not None:
        reason = gone_reason(client, flow_run, process_dir(folder, str(flow_run.id)), now)
        if reason is not None:
            flow_run = end_gone_run(client, flow_run, reason)
    return flow_run


def _end_gone_chunks(client: SyncPrefectClient, folder: Path, now: datetime) -> None:
    """End Crashed the chunk flow runs of this attempt (``sweep.json`` lists them) whose
    process is gone: a chunk whose worker died stays Running in Prefect, and the parent flow,
    waiting for every chunk to end, would wait for ever. Ended, its missing trials make the
    sweep end failed, and ``resume`` runs them."""
    record = read_sweep_record(folder)
    if record is None or record.ended or not record.chunk_flow_run_ids:
        return
    for flow_run_id, flow_run in read_flow_runs(client, record.chunk_flow_run_ids).items():
        reason = gone_reason(client, flow_run, process_dir(folder, flow_run_id), now)
        if reason is not None:
            end_gone_run(client, flow_run, f"a chunk of the sweep: {reason}")


def sync_sweep(session: Session, settings: ApiSettings | None, sweep: Sweep) -> Sweep:
    """Bring one unfinished sweep up to date now (on read); the stored state stands when
    Prefect cannot be reached (the record's progress is still read)."""
    if settings is None or sweep.status not in ACTIVE_SWEEP_STATUSES:
        return sweep
    now = utcnow()
    flow_run: FlowRun | None = None
    reached = False
    if settings.prefect_api_url:
        sweep_key, flow_run_id = sweep.sweep_key, sweep.prefect_flow_run_id

        def read() -> FlowRun | None:
            with prefect_client(settings) as client:
                return _live(client, sweep_key, flow_run_id, settings, now)

        try:
            flow_run = within(READ_SYNC_S, read)
            reached = True
        except TimeoutError:
            log.warning("sweep %s: Prefect did not answer within %g s on read", sweep.id,
                        READ_SYNC_S)  # fmt: skip
        except Exception as exc:
            log.warning("sweep %s: Prefect unreachable on read: %s", sweep.id, exc)
    if not reached:
        record = read_sweep_record(sweep_dir(settings.store_root, sweep.sweep_key))
        if record is None or not record.ended:
            return sweep  # without Prefect a missing flow run would read as "failed"
    _save(session, sweep, flow_run, settings, now)
    return sweep


def sync_active(session: Session, client: SyncPrefectClient, settings: ApiSettings) -> int:
    """One pass of the status loop over every unfinished sweep; returns rows changed."""
    rows = session.exec(select(Sweep).where(col(Sweep.status).in_(ACTIVE_SWEEP_STATUSES))).all()
    now = utcnow()
    return sum(
        _save(session, s, _live(client, s.sweep_key, s.prefect_flow_run_id, settings, now),
              settings, now)
        for s in rows
    )  # fmt: skip


_SYNCED = ("status", "error", "n_trials", "done", "failed", "best_objective", "best_trial",
           "finished_at")  # fmt: skip


def _save(
    session: Session, sweep: Sweep, flow_run: FlowRun | None, settings: ApiSettings, now: datetime
) -> bool:
    """Apply and store, unless the row changed since it was read (a cancel or a resume in
    another request: theirs wins, this pass's view of it is stale); True when stored."""
    seen = (sweep.status, sweep.prefect_flow_run_id)
    if not apply(sweep, flow_run, settings, now):
        return False
    values = {name: getattr(sweep, name) for name in _SYNCED}
    session.expire(sweep)  # the guarded UPDATE below writes them, never a plain flush
    result = session.execute(
        update(Sweep)
        .where(col(Sweep.id) == sweep.id, col(Sweep.status) == seen[0],
               col(Sweep.prefect_flow_run_id) == seen[1]
               if seen[1] is not None else col(Sweep.prefect_flow_run_id).is_(None))
        .values(**values)
    )  # fmt: skip
    session.commit()
    session.refresh(sweep)
    stored = bool(result.rowcount)  # type: ignore[attr-defined]
    if stored and sweep.status in ("failed", "cancelled"):
        # a sweep whose process died never ended its MLflow parent run: not "running" for ever
        close_sweep_runs(settings.mlflow_uri, sweep.sweep_key, sweep.error)
    return stored
