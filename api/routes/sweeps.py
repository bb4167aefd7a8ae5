"""Sweeps: start, list, read, cancel, resume, delete; trials (sorted, paged), heatmap, out-of-sample
equity; open a trial as a run."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Path, Query, Response, status

from api.deps import CurrentUser, ObjectId, PagingDep, SessionDep, SettingsDep, WriterUser
from api.models.common import Page, error_responses
from api.models.run import RunPublic
from api.models.sweep import Heatmap, OosEquity, SweepCreate, SweepPublic, SweepSummary, TrialPage
from api.services import sweep_delete, sweep_files, sweeps

pipeline_sweeps = APIRouter(
    prefix="/api/pipelines", tags=["sweeps"], responses=error_responses(401, 403, 404)
)
router = APIRouter(prefix="/api/sweeps", tags=["sweeps"], responses=error_responses(401, 403, 404))

ParamName = Annotated[str, Query(min_length=1, max_length=200, description="A swept `node.param`.")]


@pipeline_sweeps.post(
    "/{pipeline_id}/sweeps",
    response_model=SweepPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(422, 503),
)
def start_sweep(
    pipeline_id: ObjectId,
    user: WriterUser,
    session: SessionDep,
    settings: SettingsDep,
    body: Annotated[SweepCreate | None, Body()] = None,
) -> SweepPublic:
    """Start a sweep of a version's ``sweep`` block (default: the latest version): a flow run of
    the sweep deployment whose chunks of trials go to the work pool; status pending."""
    return sweeps.create(session, user, settings, pipeline_id, body.version if body else None)


@router.get("", response_model=Page[SweepSummary])
def list_sweeps(
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    paging: PagingDep,
    pipeline_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Page[SweepSummary]:
    """The sweeps the caller may see (of one pipeline with ``pipeline_id``), newest first."""
    return sweeps.list_sweeps(
        session, user, settings, pipeline_id=pipeline_id, offset=paging.offset, limit=paging.limit
    )


@router.get("/{sweep_id}", response_model=SweepPublic)
def get_sweep(
    sweep_id: ObjectId, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> SweepPublic:
    """The sweep: progress (done / total, ETA), the best trial, the overfitting statistics, the
    walk-forward folds, links."""
    return sweeps.public(settings, sweeps.get_sweep(session, user, sweep_id, settings))


@router.get("/{sweep_id}/trials", response_model=TrialPage)
def get_trials(
    sweep_id: ObjectId,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    paging: PagingDep,
    sort: Annotated[str, Query(max_length=200)] = "trial",
    order: Literal["asc", "desc"] = "asc",
    fold: Annotated[int | None, Query(ge=0, le=100_000)] = None,
) -> TrialPage:
    """Finished trials sorted by ``sort`` (``trial``, ``objective``, ``seconds``, a metric or a
    swept ``node.param``; nulls last), one page; ``total`` counts them all."""
    sweep = sweeps.get_sweep(session, user, sweep_id)
    folder = sweeps.directory(settings, sweep)
    return sweep_files.trials_page(
        folder,
        sweeps.record_of(settings, sweep),
        sort=sort,
        order=order,
        offset=paging.offset,
        limit=paging.limit,
        fold=fold,
    )


@router.get("/{sweep_id}/heatmap", response_model=Heatmap)
def get_heatmap(
    sweep_id: ObjectId,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    x: ParamName,
    y: ParamName,
    metric: Annotated[str | None, Query(max_length=200)] = None,
    fold: Annotated[int | None, Query(ge=0, le=100_000)] = None,
    bins: Annotated[int, Query(ge=2, le=50, description="Bins of a many-valued param.")] = 12,
) -> Heatmap:
    """A grid over two swept params: per cell the best trial there and its ``metric`` (default:
    the objective); null where no trial ran."""
    sweep = sweeps.get_sweep(session, user, sweep_id)
    folder = sweeps.directory(settings, sweep)
    domains = sweep_files.sweep_domains(sweeps.read_sweep_spec(folder))
    return sweep_files.heatmap(
        folder, sweeps.record_of(settings, sweep), x, y, metric, fold, bins, domains
    )


@router.get("/{sweep_id}/oos-equity", response_model=OosEquity)
def get_oos_equity(
    sweep_id: ObjectId, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> OosEquity:
    """Walk-forward: the out-of-sample segments stitched into one curve (at most 5,000 points)."""
    sweep = sweeps.get_sweep(session, user, sweep_id)
    return sweep_files.oos_equity(sweeps.directory(settings, sweep))


@router.post("/{sweep_id}/cancel", response_model=SweepPublic, responses=error_responses(503))
def cancel_sweep(
    sweep_id: ObjectId, user: WriterUser, session: SessionDep, settings: SettingsDep
) -> SweepPublic:
    """Cancel the sweep's flow run and its chunk flow runs; it ends cancelled."""
    return sweeps.cancel(session, user, settings, sweep_id)


@router.post(
    "/{sweep_id}/resume",
    response_model=SweepPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(422, 503),
)
def resume_sweep(
    sweep_id: ObjectId, user: WriterUser, session: SessionDep, settings: SettingsDep
) -> SweepPublic:
    """Finish a stopped sweep: a new flow run that runs only the trials not finished yet."""
    return sweeps.resume(session, user, settings, sweep_id)


@router.delete(
    "/{sweep_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(409, 503),
)
def delete_sweep(
    sweep_id: ObjectId, user: WriterUser, session: SessionDep, settings: SettingsDep
) -> Response:
    """Delete a stopped sweep (its owner or an admin; 409 while pending or running): the row,
    its files and Optuna studies; runs opened from its trials stay (no longer linked)."""
    sweep_delete.delete(session, user, settings, sweep_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{sweep_id}/trials/{trial}/run",
    response_model=RunPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(422, 503),
)
def run_trial(
    sweep_id: ObjectId,
    trial: Annotated[int, Path(ge=0, le=2**31 - 1, description="The trial's number.")],
    user: WriterUser,
    session: SessionDep,
    settings: SettingsDep,
    fold: Annotated[int | None, Query(ge=0, le=100_000, description="The trial's fold.")] = None,
) -> RunPublic:
    """Run the pipeline version with this trial's params (a normal run with its charts);
    ``fold`` picks the trial of a walk-forward fold when trial numbers repeat across folds."""
    return sweeps.run_trial(session, user, settings, sweep_id, trial, fold)
