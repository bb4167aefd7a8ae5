"""Runs: start, list, read, cancel, logs (and their live stream), results, exports."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Header, Request, Response, status
from fastapi.responses import FileResponse, HTMLResponse, StreamingResponse
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.deps import CurrentUser, ObjectId, PagingDep, SessionDep, SettingsDep, WriterUser
from api.models.common import Page, error_responses
from api.models.run import (
    LogLine,
    Run,
    RunAnalysis,
    RunCreate,
    RunPublic,
    RunResults,
    RunStatus,
    RunSummary,
)
from api.models.user import User
from api.services import pipelines, run_files, run_market, runs, shares
from api.services.prefect_sync import sync_run
from api.services.run_report import ReportContext, render_report
from api.services.run_shares import RunShare
from api.settings import ApiSettings

shares.register_kind("run", RunShare())

pipeline_runs = APIRouter(
    prefix="/api/pipelines", tags=["runs"], responses=error_responses(401, 403, 404)
)
router = APIRouter(prefix="/api/runs", tags=["runs"], responses=error_responses(401, 403, 404))

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=128, description="Same key, same run."),
]
STREAM_WATCH_S = 0.1  # how often the live stream looks at the run directory
STREAM_SYNC_S = 1.0  # and re-reads Prefect's state when no file changed
STREAM_HEARTBEAT_S = 15.0


@pipeline_runs.post(
    "/{pipeline_id}/runs",
    response_model=RunPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(503),
)
def start_run(
    pipeline_id: ObjectId,
    user: WriterUser,
    session: SessionDep,
    settings: SettingsDep,
    body: Annotated[RunCreate | None, Body()] = None,
    idempotency_key: IdempotencyKey = None,
) -> RunPublic:
    """Start a run of a version (default: the latest): a Prefect flow run, status pending."""
    version = body.version if body else None
    return runs.create(session, user, settings, pipeline_id, version, idempotency_key)


@pipeline_runs.get("/{pipeline_id}/runs", response_model=Page[RunSummary])
def list_runs(
    pipeline_id: ObjectId, user: CurrentUser, session: SessionDep, paging: PagingDep
) -> Page[RunSummary]:
    """The pipeline's runs, newest first."""
    return runs.list_runs(session, user, pipeline_id, offset=paging.offset, limit=paging.limit)


@router.get("/{run_id}", response_model=RunPublic)
def get_run(
    run_id: ObjectId, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> RunPublic:
    """The run with node states, error and links."""
    return runs.public(settings, runs.get_run(session, user, run_id, settings))


@router.post("/{run_id}/cancel", response_model=RunPublic, responses=error_responses(503))
def cancel_run(
    run_id: ObjectId, user: WriterUser, session: SessionDep, settings: SettingsDep
) -> RunPublic:
    """Cancel the run: the worker kills its process; the answer comes once it ended (or after
    a few seconds, still running: the status sync finishes the job)."""
    return runs.cancel(session, user, settings, run_id)


@router.get("/{run_id}/logs", response_model=list[LogLine])
def get_logs(
    run_id: ObjectId, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> list[LogLine]:
    """The run log, one entry per record, tagged with its node id (null: the flow itself)."""
    run = runs.get_run(session, user, run_id)
    return run_files.parse_log(settings.runs_dir / run.run_key)


@router.get("/{run_id}/results", response_model=RunResults)
def get_results(
    run_id: ObjectId, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> RunResults:
    """Metrics, equity curve with drawdown (at most 5,000 points) and trades."""
    run = runs.get_run(session, user, run_id, settings)
    run_dir = settings.runs_dir / run.run_key
    return run_files.results(run_dir, run_files.read_record(run_dir))


@router.get("/{run_id}/analysis", response_model=RunAnalysis)
def get_analysis(
    run_id: ObjectId, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> RunAnalysis:
    """The traded prices (at most 5,000 candles), the buy-and-hold benchmark at the equity
    curve's timestamps with its total return, CAGR and max drawdown, and monthly returns —
    computed from the run's files; a note says why a part is missing."""
    run = runs.get_run(session, user, run_id, settings)
    return run_market.analysis(settings.runs_dir / run.run_key)


@router.get(
    "/{run_id}/equity.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "The whole equity curve"}},
)
def equity_csv(
    run_id: ObjectId, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> StreamingResponse:
    """Every bar of the equity curve as CSV: ts, equity, cash, position, drawdown, and close
    and benchmark_equity (buy and hold) when the run stored its prices."""
    run = runs.get_run(session, user, run_id, settings)
    name = f"{_file_stem(run)}-equity.csv"
    return StreamingResponse(
        run_market.equity_csv_chunks(settings.runs_dir / run.run_key),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/{run_id}/report.html",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}, "description": "Self-contained HTML"}},
)
def report(
    run_id: ObjectId, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """A one-page, printable HTML report of the run (inline CSS and SVG charts, no script):
    metrics beside buy and hold, equity and drawdown, monthly returns, trades, params, source."""
    run = runs.get_run(session, user, run_id, settings)
    summary = runs.summary(run)
    version = pipelines.version_of(session, run.pipeline_id, run.version)
    record = run_files.read_record(settings.runs_dir / run.run_key)
    ctx = ReportContext(
        run_id=run.id or 0,
        status=run.status,
        pipeline_name=summary.pipeline_name or f"pipeline-{run.pipeline_id}",
        pipeline_title=summary.pipeline_title,
        version=run.version,
        source=version.source,
        ir_json=version.ir_json,
        ir_hash=run.ir_hash,
        created_at=run.created_at,
        finished_at=run.finished_at,
        metrics=dict(record.metrics) if record is not None else {},
    )
    html = render_report(ctx, settings.runs_dir / run.run_key)
    name = f"{_file_stem(run)}-report.html"
    return HTMLResponse(html, headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _file_stem(run: Run) -> str:
    """``<pipeline name>-run-<id>``: a download's name says what it is (names are
    identifiers, so the name is safe in a header)."""
    return f"{runs.summary(run).pipeline_name or 'pipeline'}-run-{run.id}"


@router.get(
    "/{run_id}/models/{key}",
    response_class=FileResponse,
    responses={
        200: {
            "content": {"application/zip": {}},
            "description": "The model file: model.json and arrays.npz in a zip, no pickle",
        }
    },
)
def model_file(
    run_id: ObjectId, key: str, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> FileResponse:
    """A model the run trained, as its ``.afmodel`` file (``predict`` and
    ``nodes.modelfile.load`` read it back; it holds JSON and numpy arrays only)."""
    run = runs.get_run(session, user, run_id, settings)
    path = runs.model_file(settings, run, key)
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in key)
    return FileResponse(
        path, media_type="application/zip", filename=f"{_file_stem(run)}-{safe}.afmodel"
    )


_EXPORT_TYPES = {
    200: {
        "content": {"text/csv": {}, "application/json": {"schema": {"type": "object"}}},
        "description": "trades.csv (formula cells escaped), metrics.json or ir.json",
    }
}


@router.get("/{run_id}/export/{name}", response_class=Response, responses=_EXPORT_TYPES)
def export(
    run_id: ObjectId,
    name: Literal["trades.csv", "metrics.json", "ir.json"],
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """A result file as a download; CSV cells that a spreadsheet would evaluate are escaped."""
    run = runs.get_run(session, user, run_id, settings)
    run_dir = settings.runs_dir / run.run_key
    headers = {"Content-Disposition": f'attachment; filename="run-{run.id}-{name}"'}
    if name == "trades.csv":
        body, media = run_files.trades_csv(run_dir), "text/csv; charset=utf-8"
    elif name == "metrics.json":
        path = run_dir / "metrics.json"
        body = path.read_text() if path.exists() else "{}\n"
        media = "application/json"
    else:
        body, media = _ir_json(session, run), "application/json"
    return Response(content=body, media_type=media, headers=headers)


def _ir_json(session: Session, run: Run) -> str:
    version = pipelines.version_of(session, run.pipeline_id, run.version)
    return json.dumps(json.loads(version.ir_json), indent=2) + "\n"


@router.get(
    "/{run_id}/logs/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"}},
)
def stream_logs(
    run_id: ObjectId,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
) -> StreamingResponse:
    """Server-sent events: ``data: LogLine`` per new log line, ``event: status`` with the run
    whenever its status or node states change; the stream ends when the run does."""
    run = runs.get_run(session, user, run_id, settings)
    events = _events(request, request.app.state.engine, settings, user, run.id or 0)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)


def _status_now(engine: Engine, settings: ApiSettings, user: User, run_id: int) -> RunPublic:
    with Session(engine, expire_on_commit=False) as session:
        run = runs.get_run(session, user, run_id)
        return runs.public(settings, sync_run(session, settings, run))


async def _events(
    request: Request, engine: Engine, settings: ApiSettings, user: User, run_id: int
) -> AsyncIterator[str]:
    """The stream's body. The run directory is watched every ``STREAM_WATCH_S`` (file sizes and
    modification times: cheap); the run is re-synced with Prefect and re-sent whenever a file
    changed, every ``STREAM_SYNC_S`` regardless (a state only Prefect knows: picked up,
    cancelling), and on every tick once ``run.json`` holds a final status until Prefect's flow
    run says so too (the moment the run page shows the results)."""
    last_state, idle, since_sync = "", 0.0, STREAM_SYNC_S
    run_dir = settings.runs_dir / (await run_in_threadpool(_run_key, engine, run_id))
    tail = run_files.LogTail(run_dir / "run.log")  # reads only what was appended since
    seen: tuple[tuple[int, int], ...] | None = None
    recorded_final = False
    while True:
        now_seen = await run_in_threadpool(_watch_signature, run_dir)
        changed = now_seen != seen
        if changed:
            seen = now_seen
            recorded_final = await run_in_threadpool(_recorded_final, run_dir)
        if changed or recorded_final or since_sync >= STREAM_SYNC_S:
            since_sync = 0.0
            current = await run_in_threadpool(_status_now, engine, settings, user, run_id)
            ended = RunStatus(current.status).final
            for line in await run_in_threadpool(partial(tail.read, final=ended)):
                yield f"id: {line.seq}\ndata: {line.model_dump_json()}\n\n"
            state = json.dumps([current.status, current.node_states], sort_keys=True)
            if state != last_state:
                last_state, idle = state, 0.0
                yield f"event: status\ndata: {current.model_dump_json()}\n\n"
            if ended and tail.drained:
                return
        if await request.is_disconnected():
            return
        # once run.json is final only Prefect's Completed is missing: look twice as often
        tick = STREAM_WATCH_S / 2 if recorded_final else STREAM_WATCH_S
        await asyncio.sleep(tick)
        since_sync += tick
        idle += tick
        if idle >= STREAM_HEARTBEAT_S:
            idle = 0.0
            yield ": keep-alive\n\n"


def _watch_signature(run_dir: Path) -> tuple[tuple[int, int], ...]:
    """(size, mtime) of what a running flow writes: the run directory (``run.json`` is replaced
    atomically), ``run.log`` and ``nodes/`` (one file per node result)."""
    out: list[tuple[int, int]] = []
    for path in (run_dir, run_dir / "run.log", run_dir / "nodes"):
        try:
            st = path.stat()
        except OSError:
            out.append((-1, -1))
            continue
        out.append((st.st_size, st.st_mtime_ns))
    return tuple(out)


def _recorded_final(run_dir: Path) -> bool:
    record = run_files.read_record(run_dir)
    return record is not None and record.ended


def _run_key(engine: Engine, run_id: int) -> str:
    with Session(engine) as session:
        run = session.get(Run, run_id)
        return run.run_key if run else ""
