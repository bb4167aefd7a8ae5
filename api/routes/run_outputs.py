"""A run's node outputs: which tables and series it produced, and one of them for a chart."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import CurrentUser, ObjectId, SessionDep, SettingsDep
from api.models.common import error_responses
from api.models.run import OutputFrame, RunOutput, TickChart
from api.services import run_outputs, run_ticks, runs
from flows.graph import store_for

router = APIRouter(prefix="/api/runs", tags=["runs"], responses=error_responses(401, 403, 404))

_NAME = "^[A-Za-z_][A-Za-z0-9_]{0,99}$"


@router.get("/{run_id}/outputs", response_model=list[RunOutput])
def list_outputs(
    run_id: ObjectId, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> list[RunOutput]:
    """The output ports of the steps that completed, in pipeline order; ``primary`` marks the
    step whose metrics are the run's (e.g. a ``portfolio_backtest``); values that are not
    tables or series (ticks) carry a one-line ``summary``."""
    run = runs.get_run(session, user, run_id, settings)
    return run_outputs.outputs(settings.runs_dir / run.run_key, store_for(settings))


@router.get(
    "/{run_id}/outputs/{node}/{port}",
    response_model=OutputFrame,
    responses=error_responses(422),
)
def get_output(
    run_id: ObjectId,
    node: Annotated[str, Path(pattern=_NAME)],
    port: Annotated[str, Path(pattern=_NAME)],
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    max_rows: Annotated[int, Query(ge=1, le=run_outputs.MAX_OUTPUT_ROWS)] = 1000,
) -> OutputFrame:
    """One table or series a step produced (e.g. a portfolio's ``weights``, ts × symbol), at
    most ``max_rows`` rows and 250,000 values: longer frames have runs of rows merged (numeric
    columns averaged; ``step`` says how many rows each one merges)."""
    run = runs.get_run(session, user, run_id, settings)
    run_dir = settings.runs_dir / run.run_key
    return run_outputs.output_frame(run_dir, store_for(settings), node, port, max_rows)


@router.get("/{run_id}/tick-chart", response_model=TickChart)
def get_tick_chart(
    run_id: ObjectId,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    max_points: Annotated[int, Query(ge=10, le=run_ticks.MAX_POINTS)] = 2000,
    max_fills: Annotated[int, Query(ge=0, le=run_ticks.MAX_FILLS)] = 5000,
) -> TickChart:
    """The run's ``tick_backtest`` result for its chart: mid price (open/high/low/close), position
    and inventory (min/max/last) in buckets of whole seconds, at most ``max_points`` of them,
    and the first ``max_fills`` fills with their exact times; 404 when the run has none."""
    run = runs.get_run(session, user, run_id, settings)
    run_dir = settings.runs_dir / run.run_key
    return run_ticks.tick_chart(run_dir, store_for(settings), max_points, max_fills)
