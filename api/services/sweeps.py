"""Sweeps: started from the web app through Prefect, listed and read from their rows and files.

Starting a sweep compiles the chosen version (422 when it has no ``sweep`` block), builds the
run spec exactly as a web run does (store references, the owner's datasets, paths confined to
the web base dir, trigger ``sweep``), wraps it in a :class:`~flows.sweepspec.SweepSpec` (chunks on
the work pool, ``sweep_workers`` of them) and creates a flow run of the ``sweep`` deployment; the
flow writes the sweep directory (``spec.json``, ``sweep.json``, trials). The row mirrors its
status (:mod:`api.services.sweep_sync`). Who sees a sweep: whoever sees its pipeline; who
starts, cancels or resumes one: whoever may run the pipeline (never observers).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.orm import object_session
from sqlmodel import Session, col, func, select

from api.errors import NotFound, Unprocessable
from api.models.common import Page, as_utc, utcnow
from api.models.pipeline import Pipeline
from api.models.run import RunPublic, SweepOrigin
from api.models.sweep import ACTIVE_SWEEP_STATUSES, Sweep, SweepPublic, SweepSummary
from api.models.user import User
from api.services import audit, pipelines, registry, runs, sweep_files
from api.services.access import Level
from api.services.flow_rows import (
    flow_run_to_cancel,
    start_flow_run,
    visible_rows,
    wait_until,
)
from api.services.node_resolution import publish_manifests
from api.services.prefect_client import (
    PrefectUnavailable,
    cancel_flow_run,
    child_flow_run_ids,
    create_flow_run,
    prefect_client,
)
from api.services.sweep_sync import sync_sweep
from api.settings import ApiSettings
from deployments.deploy import flow_run_url
from dsl.ir import PipelineIR
from flows.record import new_run_id
from flows.sweepspec import (
    SweepRecord,
    SweepSpec,
    finite_json,
    read_sweep_record,
    read_sweep_spec,
    sweep_dir,
    write_json_atomic,
)
from flows.tracebacks import user_text

__all__ = [
    "cancel",
    "create",
    "directory",
    "get_sweep",
    "list_sweeps",
    "optuna_storage",
    "public",
    "record_of",
    "resume",
    "run_trial",
]

log = logging.getLogger(__name__)
CANCEL_WAIT_S = 10.0


def directory(settings: ApiSettings, sweep: Sweep) -> Path:
    """The sweep's directory in the store."""
    return sweep_dir(settings.store_root, sweep.sweep_key)


def get_sweep(
    session: Session, user: User, sweep_id: int, settings: ApiSettings | None = None
) -> Sweep:
    """The sweep if ``user`` may see it (404 otherwise), brought up to date with its flow run
    and ``sweep.json`` when ``settings`` are given."""
    sweep = session.exec(
        select(Sweep).join(Pipeline).where(Sweep.id == sweep_id, *visible_rows(Sweep, user))
    ).first()
    if sweep is None:
        raise NotFound("sweep not found")
    return sync_sweep(session, settings, sweep) if settings is not None else sweep


def list_sweeps(
    session: Session,
    user: User,
    settings: ApiSettings,
    *,
    pipeline_id: int | None,
    offset: int,
    limit: int,
) -> Page[SweepSummary]:
    """The sweeps the user may see (of one pipeline when ``pipeline_id`` is given), newest
    first; unfinished ones are brought up to date first."""
    where = visible_rows(Sweep, user)
    if pipeline_id is not None:
        pipelines.get_pipeline(session, user, pipeline_id)
        where.append(Sweep.pipeline_id == pipeline_id)
    rows = session.exec(
        select(Sweep).join(Pipeline).where(*where).order_by(col(Sweep.id).desc()).offset(offset)
        .limit(limit)
    ).all()  # fmt: skip
    for row in rows:
        if row.status in ACTIVE_SWEEP_STATUSES:
            sync_sweep(session, settings, row)
    total = session.exec(select(func.count()).select_from(Sweep).join(Pipeline).where(*where)).one()
    return Page(items=[summary(r) for r in rows], total=total)


def summary(sweep: Sweep) -> SweepSummary:
    """The sweep as lists show it, with its pipeline's name and title."""
    session = object_session(sweep)
    pipeline = session.get(Pipeline, sweep.pipeline_id) if session is not None else None
    return SweepSummary(
        id=sweep.id or 0,
        pipeline_id=sweep.pipeline_id,
        pipeline_name=pipeline.name if pipeline else None,
        pipeline_title=pipeline.title if pipeline else None,
        version=sweep.version,
        status=sweep.status,  # type: ignore[arg-type]
        method=sweep.method,
        objective=sweep.objective,
        walkforward=sweep.walkforward,
        n_trials=sweep.n_trials,
        done=sweep.done,
        failed=sweep.failed,
        best_objective=sweep.best_objective,
        best_trial=sweep.best_trial,
        error=user_text(sweep.error) if sweep.error else None,
        created_at=as_utc(sweep.created_at),
        finished_at=as_utc(sweep.finished_at) if sweep.finished_at else None,
    )


def public(settings: ApiSettings, sweep: Sweep) -> SweepPublic:
    """The sweep with its record (progress, best, statistics, folds), spec summary and links."""
    folder = directory(settings, sweep)
    record = sweep_files.with_progress(read_sweep_record(folder), folder)
    spec = read_sweep_spec(folder)
    elapsed, eta = sweep_files.eta_seconds(record)
    if sweep.status not in ACTIVE_SWEEP_STATUSES:
        eta = None
    if record is not None and sweep.status != record.status:  # the row knows better (a crash)
        record = record.model_copy(update={"status": sweep.status, "error": sweep.error})
    head = summary(sweep).model_dump()
    if record is not None:  # the file is ahead of the row (it is what the flow writes)
        head.update(n_trials=record.n_trials or head["n_trials"], done=record.done,
                    failed=record.failed)  # fmt: skip
        if record.best is not None:
            head.update(best_objective=record.best.objective, best_trial=record.best.trial)
    return SweepPublic(
        **finite_json(head),
        sweep_key=sweep.sweep_key,
        direction=record.direction if record else "maximize",
        params=list(record.params) if record else [],
        record=record,
        executor=spec.executor if spec else (record.executor if record else "pool"),
        workers=spec.workers if spec else (record.workers if record else settings.sweep_workers),
        eta_s=eta,
        elapsed_s=elapsed,
        prefect_flow_run_id=sweep.prefect_flow_run_id,
        prefect_url=flow_run_url(settings.derived_prefect_ui_url, sweep.prefect_flow_run_id),
        mlflow_url=runs.mlflow_run_url(
            settings.mlflow_ui_url,
            record.mlflow_experiment_id if record else None,
            record.mlflow_run_id if record else None,
        ),
    )


def _objective_text(ir: PipelineIR) -> str:
    sweep = ir.sweep
    if sweep is None or sweep.objective is None:
        return ""
    o = sweep.objective
    return f"{o.direction} {o.node}.{o.key}"


def _planned_trials(ir: PipelineIR) -> int:
    """Trials the block asks for (the record says how many in all once the flow has planned:
    a walk-forward runs them per fold); 0 when not known before."""
    if ir.sweep is None or ir.walkforward is not None:
        return 0
    if ir.sweep.grid_size is not None:
        return ir.sweep.grid_size
    trials = ir.sweep.options.get("trials")
    return trials if isinstance(trials, int) else 0


OPTUNA_SCHEMA = "optuna"  # created by migration 0006


def optuna_storage(settings: ApiSettings) -> str | None:
    """Optuna's study storage: the platform's database when it is PostgreSQL (a study survives a
    restart and every worker reaches it), in its own ``optuna`` schema (the connection's
    ``search_path``): Optuna keeps its own ``alembic_version``, which the app's would shadow
    (``create_study`` then refuses the schema), and its ``studies`` / ``trials`` tables must not
    sit where the app's migrations, autogenerate and table sweeps look. Else None: the sweep's
    default (SQLite in the store)."""
    url = make_url(settings.db_url)
    if not url.drivername.startswith("postgresql"):
        return None
    options = str(url.query.get("options") or "")
    options = f"{options} -csearch_path={OPTUNA_SCHEMA}".strip()
    return url.update_query_dict({"options": options}).render_as_string(hide_password=False)


OPTUNA_STORAGE_ENV = "ALPHAFORGE_OPTUNA_STORAGE"


def optuna_storage_ref(settings: ApiSettings) -> str | None:
    """What a sweep's spec carries for :func:`optuna_storage`: the URL itself when it holds no
    password, else ``env:ALPHAFORGE_OPTUNA_STORAGE`` — the spec is a flow-run parameter, shown
    in the Prefect UI and stored in ``spec.json``; the workers read the URL from their
    environment (``alphaforge serve`` sets it for its own)."""
    url = optuna_storage(settings)
    if url is None or make_url(url).password is None:
        return url
    return f"env:{OPTUNA_STORAGE_ENV}"


def create(
    session: Session, user: User, settings: ApiSettings, pipeline_id: int, number: int | None
) -> SweepPublic:
    """Start a sweep of a version (default: the latest) through Prefect; 202 semantics."""
    pipeline = pipelines.get_pipeline(session, user, pipeline_id, level=Level.EDIT)
    number = number or pipeline.latest_version
    version = pipelines.version_of(session, pipeline.id, number)
    ir = PipelineIR.from_json(version.ir_json)
    if ir.sweep is None:
        raise Unprocessable(
            f"Version {number} of this pipeline has no sweep block, so there is nothing to sweep: "
            "add one (for example `sweep grid { fast.window = [5, 10, 20] objective maximize "
            "result.sharpe }`), save, and start the sweep again."
        )
    runs.require_datasets(session, settings, pipeline.owner_id, version.source, version.ir_json)
    registry.require_model_access(
        session, settings, runs.owner_of(session, pipeline), version.ir_json
    )
    if not settings.prefect_api_url:
        raise PrefectUnavailable("no Prefect server is configured: sweeps cannot start")
    custom = publish_manifests(session, settings, pipeline.owner_id, version)
    sweep = Sweep(
        sweep_key=new_run_id(),
        pipeline_id=pipeline.id or 0,
        version=number,
        owner_id=pipeline.owner_id,
        started_by_id=user.id,
        method=ir.sweep.method,
        objective=_objective_text(ir),
        walkforward=ir.walkforward is not None,
        ir_hash=version.ir_hash,
        n_trials=_planned_trials(ir),
    )
    session.add(sweep)
    session.flush()
    audit.record(
        session, user, "sweep.create", "sweep", sweep.id,
        pipeline_id=pipeline.id, version=number, ir_hash=version.ir_hash, custom_nodes=custom,
    )  # fmt: skip
    session.commit()
    spec = SweepSpec(
        sweep_id=sweep.sweep_key,
        run=runs.run_spec(
            session, settings, pipeline.owner_id, version.ir_json, None, trigger="sweep"
        ),
        executor="pool",
        workers=settings.sweep_workers,
        optuna_storage=optuna_storage_ref(settings),
        submitted_at=time.time(),
    )
    _submit(session, settings, sweep, spec, key=f"alphaforge-sweep-{sweep.sweep_key}")
    return public(settings, sweep)


def _submit(
    session: Session, settings: ApiSettings, sweep: Sweep, spec: SweepSpec, *, key: str
) -> None:
    """Create the parent flow run; a failure fails the row (and says why)."""
    title = spec.run.ir.title or spec.run.ir.name
    start_flow_run(
        session,
        sweep,
        "sweep",
        lambda: create_flow_run(
            settings,
            "sweep",
            {"spec": spec.to_json()},
            idempotency_key=key,
            tags=[
                f"pipeline:{sweep.pipeline_id}",
                f"af-version:{sweep.version}",
                f"sweep:{sweep.id}",
            ],
            name=f"sweep {title}/{sweep.id}",
        ),
    )


def _require_edit(session: Session, user: User, sweep: Sweep) -> None:
    pipelines.get_pipeline(session, user, sweep.pipeline_id, level=Level.EDIT)


def cancel(session: Session, user: User, settings: ApiSettings, sweep_id: int) -> SweepPublic:
    """Cancel the parent flow run and every chunk flow run it started (their workers stop
    them); waits a few seconds for Prefect to confirm, then the record ends ``cancelled``."""
    sweep = get_sweep(session, user, sweep_id, settings)
    _require_edit(session, user, sweep)
    if sweep.status not in ACTIVE_SWEEP_STATUSES:
        return public(settings, sweep)
    sweep.cancel_requested_at = utcnow()
    session.add(sweep)
    audit.record(session, user, "sweep.cancel", "sweep", sweep.id, pipeline_id=sweep.pipeline_id)
    session.commit()
    flow_run_id = flow_run_to_cancel(session, sweep)
    if flow_run_id is None:
        return public(settings, sweep)
    record = read_sweep_record(directory(settings, sweep))
    chunks = list(record.chunk_flow_run_ids) if record else []
    with prefect_client(settings) as client:
        cancel_flow_run(client, flow_run_id)
        # the chunks the record lists, and any the parent started since it last wrote it
        chunks += [c for c in child_flow_run_ids(client, flow_run_id) if c not in chunks]
        for chunk in chunks:
            cancel_flow_run(client, chunk)

    def ended() -> bool:
        return sync_sweep(session, settings, sweep).status not in ACTIVE_SWEEP_STATUSES

    wait_until(ended, CANCEL_WAIT_S)
    return public(settings, sweep)


def resume(session: Session, user: User, settings: ApiSettings, sweep_id: int) -> SweepPublic:
    """A new flow run of the sweep deployment with the stored spec and ``resume=True``: only
    the trials not yet in ``trials/`` run. 409-like 422 while the sweep is still running."""
    sweep = get_sweep(session, user, sweep_id, settings)
    _require_edit(session, user, sweep)
    if sweep.status in ACTIVE_SWEEP_STATUSES:
        raise Unprocessable("This sweep is still running: cancel it first, or let it finish.")
    folder = directory(settings, sweep)
    spec = read_sweep_spec(folder)
    if spec is None:
        raise Unprocessable(
            "This sweep cannot be resumed: it never wrote its definition (spec.json), so it did "
            "not get as far as its first trial; start a new sweep instead."
        )
    record = read_sweep_record(folder)
    if record is not None and record.status == "completed" and record.done >= record.n_trials:
        raise Unprocessable("This sweep has finished every trial: there is nothing to resume.")
    spec = spec.model_copy(update={"resume": True, "submitted_at": time.time()})
    if record is not None and record.ended:  # the last attempt's end is not this one's
        write_json_atomic(
            folder / "sweep.json",
            record.model_copy(
                update={"status": "pending", "error": None, "ended_at": None}
            ).model_dump(mode="json"),
        )
    attempt = int(time.time() * 1000)
    # The row forgets the last attempt's flow run in the same commit that makes it pending
    # again: the status sync, running between this commit and the new flow run's, would
    # otherwise read that ended (cancelled, failed) flow run as this attempt's end.
    sweep.status, sweep.error, sweep.finished_at, sweep.cancel_requested_at = (
        "pending", None, None, None,
    )  # fmt: skip
    sweep.prefect_flow_run_id = None
    sweep.created_at = utcnow()  # the pickup and submit timeouts count from the resume
    audit.record(session, user, "sweep.resume", "sweep", sweep.id, pipeline_id=sweep.pipeline_id)
    session.add(sweep)
    session.commit()
    _submit(session, settings, sweep, spec, key=f"alphaforge-sweep-{sweep.sweep_key}-{attempt}")
    return public(settings, sweep)


def run_trial(
    session: Session,
    user: User,
    settings: ApiSettings,
    sweep_id: int,
    trial: int,
    fold: int | None = None,
) -> RunPublic:
    """Open a trial as a normal web run: the sweep's pipeline version with the trial's params
    as overrides (over all the data, also for a walk-forward fold's trial); the run records the
    sweep, trial and fold it came from, and its page shows its charts and links back."""
    sweep = get_sweep(session, user, sweep_id)
    _require_edit(session, user, sweep)
    row = sweep_files.trial_of(directory(settings, sweep), trial, fold)
    if row is None:
        where = f" in fold {fold + 1}" if fold is not None else ""
        raise NotFound(f"trial {trial} of this sweep has not run{where} (yet)")
    overrides = sweep_files.overrides_of(row.params)
    origin = SweepOrigin(sweep_id=sweep.id or 0, trial=trial, fold=row.fold)
    return runs.create(
        session, user, settings, sweep.pipeline_id, sweep.version, overrides=overrides,
        origin=origin,
    )  # fmt: skip


def record_of(settings: ApiSettings, sweep: Sweep) -> SweepRecord | None:
    """The sweep's ``sweep.json`` (None before the flow wrote it)."""
    return read_sweep_record(directory(settings, sweep))
