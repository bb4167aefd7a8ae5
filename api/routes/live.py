"""The live side: strategy modules (``/api/strategies``), instances (``/api/instances``) and
stream pipelines (``/api/streams``), the dashboard's data. The engine runs what these rows
say (api/services/live.py, api/services/streams.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from api.deps import (
    CurrentUser,
    ObjectId,
    PagingDep,
    SessionDep,
    SettingsDep,
    VersionNumber,
    WriterUser,
)
from api.models.common import Page, error_responses
from api.models.live import (
    InstanceChangePublic,
    InstanceCreate,
    InstanceEventPublic,
    InstanceOrderPublic,
    InstancePatch,
    InstancePublic,
    StrategyIn,
    StrategyPublic,
    StrategySummary,
    StrategyVersionIn,
    StrategyVersionPublic,
    StreamCreate,
    StreamDeploymentDetail,
    StreamDeploymentPublic,
    StreamTextIn,
    WidgetsPublic,
)
from api.services import live
from api.services import streams as stream_service

InstanceId = Annotated[
    str, Path(min_length=4, max_length=32, pattern=r"^si_[0-9a-f]+$", description="An instance.")
]

StreamId = Annotated[
    str, Path(min_length=4, max_length=32, pattern=r"^sp_[0-9a-f]+$", description="A deployment.")
]

strategies = APIRouter(
    prefix="/api/strategies", tags=["live"], responses=error_responses(401, 403, 404, 422)
)
streams = APIRouter(prefix="/api/streams", tags=["live"], responses=error_responses(401))
instances = APIRouter(
    prefix="/api/instances", tags=["live"], responses=error_responses(401, 403, 404, 422)
)


@strategies.get("", response_model=Page[StrategySummary])
def list_strategies(
    user: CurrentUser, session: SessionDep, paging: PagingDep
) -> Page[StrategySummary]:
    """Strategy modules the caller may see, latest change first."""
    return live.list_strategies(session, user, offset=paging.offset, limit=paging.limit)


@strategies.post("", response_model=StrategyPublic, status_code=status.HTTP_201_CREATED)
def save_strategy(body: StrategyIn, user: WriterUser, session: SessionDep) -> StrategyPublic:
    """Save a module (a new version of the caller's module of that name when the code
    changed; the same code again adds nothing). 422 names the line of a bad module or schema."""
    return live.save(session, user, body.name, body.code, body.message)


@strategies.get("/{strategy_id}", response_model=StrategyPublic)
def get_strategy(strategy_id: ObjectId, user: CurrentUser, session: SessionDep) -> StrategyPublic:
    return live.get_strategy(session, user, strategy_id)


@strategies.post(
    "/{strategy_id}/versions", response_model=StrategyPublic, status_code=status.HTTP_201_CREATED
)
def add_version(
    strategy_id: ObjectId, body: StrategyVersionIn, user: WriterUser, session: SessionDep
) -> StrategyPublic:
    return live.add_version(session, user, strategy_id, body.code, body.message)


@strategies.get("/{strategy_id}/versions/{version}", response_model=StrategyVersionPublic)
def get_version(
    strategy_id: ObjectId, version: VersionNumber, user: CurrentUser, session: SessionDep
) -> StrategyVersionPublic:
    return live.get_strategy_version(session, user, strategy_id, version)


@instances.get("", response_model=Page[InstancePublic])
def list_instances(
    user: CurrentUser, session: SessionDep, paging: PagingDep
) -> Page[InstancePublic]:
    """Instances the caller may see (id, strategy, market, account, mode, status, PnL ...)."""
    return live.list_instances(session, user, offset=paging.offset, limit=paging.limit)


@instances.post("", response_model=InstancePublic, status_code=status.HTTP_201_CREATED)
def create_instance(body: InstanceCreate, user: WriterUser, session: SessionDep) -> InstancePublic:
    """A new instance of one of the caller's strategies: identity fixed for good, config
    validated against the pinned version's CONFIG_SCHEMA, mode off, observe or active."""
    return live.create(session, user, body)


@instances.get("/{instance_id}", response_model=InstancePublic)
def get_instance(instance_id: InstanceId, user: CurrentUser, session: SessionDep) -> InstancePublic:
    return live.get(session, user, instance_id)


@instances.patch("/{instance_id}", response_model=InstancePublic)
def update_instance(
    instance_id: InstanceId, body: InstancePatch, user: WriterUser, session: SessionDep
) -> InstancePublic:
    """Change the config (versioned), the mode (switched in place by the engine) or the
    strategy version (the engine reloads the instance)."""
    return live.update(session, user, instance_id, body)


@instances.delete("/{instance_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_instance(instance_id: InstanceId, user: WriterUser, session: SessionDep) -> Response:
    """Delete the instance (the engine unloads it; its orders and events stay readable)."""
    live.delete(session, user, instance_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@instances.get("/{instance_id}/events", response_model=Page[InstanceEventPublic])
def instance_events(
    instance_id: InstanceId,
    user: CurrentUser,
    session: SessionDep,
    paging: PagingDep,
    kind: Annotated[str | None, Query(max_length=200, pattern=r"^[a-z,]+$")] = None,
) -> Page[InstanceEventPublic]:
    """What the instance did and said, newest first (``kind``: e.g. ``log,error``)."""
    return live.events(
        session, user, instance_id, kind=kind, offset=paging.offset, limit=paging.limit
    )


@instances.get("/{instance_id}/orders", response_model=list[InstanceOrderPublic])
def instance_orders(
    instance_id: InstanceId,
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[InstanceOrderPublic]:
    """The instance's paper orders, newest first."""
    return live.orders(session, user, instance_id, limit=limit)


@instances.get("/{instance_id}/changes", response_model=list[InstanceChangePublic])
def instance_changes(
    instance_id: InstanceId, user: CurrentUser, session: SessionDep
) -> list[InstanceChangePublic]:
    """Every change of the instance's config and mode, newest first, with who made it."""
    return live.changes(session, user, instance_id)


@instances.post("/{instance_id}/widgets", response_model=WidgetsPublic)
def instance_widgets(
    instance_id: InstanceId, user: CurrentUser, session: SessionDep
) -> WidgetsPublic:
    """Ask for a fresh rendering of the runtime widgets (on demand: nothing renders while
    nobody looks) and get the last one; poll while the view is open."""
    return live.widgets(session, user, instance_id)


@streams.get("", response_model=list[StreamDeploymentPublic])
def list_streams(
    user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> list[StreamDeploymentPublic]:
    """Deployed stream pipelines the caller may see (status, who runs them, the last events
    and each sink's health), then, read-only (``id`` null), those run from a terminal
    (``alphaforge stream``) with this data dir (``reporting`` false: gone)."""
    return stream_service.list_streams(session, user, settings)


@streams.post(
    "",
    response_model=StreamDeploymentDetail,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(403, 404, 422),
)
def create_stream(
    body: StreamCreate, user: WriterUser, session: SessionDep
) -> StreamDeploymentDetail:
    """Deploy ``.af`` text, or the latest version of a saved pipeline, with a ``stream``
    block (422: the compiler's diagnostics, with line and column); ``start`` runs it."""
    return stream_service.create(session, user, body)


@streams.get("/{stream_id}", response_model=StreamDeploymentDetail, responses=error_responses(404))
def get_stream(
    stream_id: StreamId, user: CurrentUser, session: SessionDep
) -> StreamDeploymentDetail:
    """A deployment: its text and texts, status, lease holder, last events, sink health."""
    return stream_service.get(session, user, stream_id)


@streams.post(
    "/{stream_id}/start",
    response_model=StreamDeploymentDetail,
    responses=error_responses(403, 404, 422),
)
def start_stream(
    stream_id: StreamId, user: WriterUser, session: SessionDep
) -> StreamDeploymentDetail:
    """Ask the engine to run it (it resumes after the last bar it processed)."""
    return stream_service.start(session, user, stream_id)


@streams.post(
    "/{stream_id}/stop",
    response_model=StreamDeploymentDetail,
    responses=error_responses(403, 404, 422),
)
def stop_stream(
    stream_id: StreamId, user: WriterUser, session: SessionDep
) -> StreamDeploymentDetail:
    """Ask the engine to stop it (its sinks deliver what is queued; its state is kept)."""
    return stream_service.stop(session, user, stream_id)


@streams.put(
    "/{stream_id}/text",
    response_model=StreamDeploymentDetail,
    responses=error_responses(403, 404, 422),
)
def set_stream_text(
    stream_id: StreamId, body: StreamTextIn, user: WriterUser, session: SessionDep
) -> StreamDeploymentDetail:
    """A new text (versioned; 422 with diagnostics); a running deployment is reloaded."""
    return stream_service.set_text(session, user, stream_id, body.text)


@streams.delete(
    "/{stream_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(403, 404),
)
def delete_stream(stream_id: StreamId, user: WriterUser, session: SessionDep) -> Response:
    """Delete it (the engine stops it)."""
    stream_service.delete(session, user, stream_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
