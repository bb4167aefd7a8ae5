"""Pipelines: CRUD, versions, diff, restore, fork."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.deps import (
    MAX_ID,
    CurrentUser,
    ObjectId,
    PagingDep,
    SessionDep,
    SettingsDep,
    VersionNumber,
    WriterUser,
)
from api.models.common import Page, error_responses
from api.models.language import DslErrorResponse
from api.models.pipeline import (
    DiffResponse,
    PipelineCreate,
    PipelineFork,
    PipelinePublic,
    PipelineRename,
    PipelineSummary,
    PipelineUpdate,
    VersionPublic,
    VersionSummary,
)
from api.services import pipelines

router = APIRouter(
    prefix="/api/pipelines", tags=["pipelines"], responses=error_responses(401, 403, 404)
)
_DSL_422 = {422: {"model": DslErrorResponse, "description": "the source has errors"}}
_409 = error_responses(409)


@router.get("", response_model=Page[PipelineSummary])
def list_pipelines(
    user: CurrentUser, session: SessionDep, paging: PagingDep
) -> Page[PipelineSummary]:
    """Pipelines the caller may see, most recently updated first."""
    return pipelines.list_pipelines(session, user, offset=paging.offset, limit=paging.limit)


@router.post(
    "",
    response_model=PipelinePublic,
    status_code=status.HTTP_201_CREATED,
    responses={**_DSL_422, **_409},
)
def create_pipeline(
    body: PipelineCreate, user: WriterUser, session: SessionDep, settings: SettingsDep
) -> PipelinePublic:
    """A new pipeline with its first version."""
    return pipelines.create(session, user, body, settings)


@router.get("/{pipeline_id}", response_model=PipelinePublic)
def get_pipeline(pipeline_id: ObjectId, user: CurrentUser, session: SessionDep) -> PipelinePublic:
    """The pipeline with its latest version."""
    return pipelines.public(session, pipelines.get_pipeline(session, user, pipeline_id), user)


@router.put("/{pipeline_id}", response_model=PipelinePublic, responses=_DSL_422)
def update_pipeline(
    pipeline_id: ObjectId,
    body: PipelineUpdate,
    user: WriterUser,
    session: SessionDep,
    settings: SettingsDep,
) -> PipelinePublic:
    """Save a new version (nothing changes when the source is unchanged)."""
    return pipelines.update(session, user, pipeline_id, body.source, body.message, settings)


@router.patch("/{pipeline_id}", response_model=PipelinePublic, responses={**_409, **_DSL_422})
def rename_pipeline(
    pipeline_id: ObjectId,
    body: PipelineRename,
    user: WriterUser,
    session: SessionDep,
    settings: SettingsDep,
) -> PipelinePublic:
    """Rename the pipeline; a new ``title`` is saved as a version whose header carries it."""
    return pipelines.rename(session, user, pipeline_id, body.name, settings, body.title)


@router.delete("/{pipeline_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_pipeline(pipeline_id: ObjectId, user: WriterUser, session: SessionDep) -> Response:
    """Soft delete (the name becomes free; versions are kept)."""
    pipelines.delete(session, user, pipeline_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{pipeline_id}/versions", response_model=list[VersionSummary])
def list_versions(
    pipeline_id: ObjectId, user: CurrentUser, session: SessionDep
) -> list[VersionSummary]:
    """The version history, newest first."""
    return pipelines.list_versions(session, user, pipeline_id)


@router.get("/{pipeline_id}/versions/{number}", response_model=VersionPublic)
def get_version(
    pipeline_id: ObjectId, number: VersionNumber, user: CurrentUser, session: SessionDep
) -> VersionPublic:
    """One version with its source."""
    return pipelines.get_version(session, user, pipeline_id, number)


@router.get("/{pipeline_id}/diff", response_model=DiffResponse)
def diff_versions(
    pipeline_id: ObjectId,
    from_version: Annotated[int, Query(ge=1, le=MAX_ID)],
    to_version: Annotated[int, Query(ge=1, le=MAX_ID)],
    user: CurrentUser,
    session: SessionDep,
) -> DiffResponse:
    """A unified diff between two versions."""
    return pipelines.diff(session, user, pipeline_id, from_version, to_version)


@router.post(
    "/{pipeline_id}/versions/{number}/restore", response_model=PipelinePublic, responses=_DSL_422
)
def restore_version(
    pipeline_id: ObjectId,
    number: VersionNumber,
    user: WriterUser,
    session: SessionDep,
    settings: SettingsDep,
) -> PipelinePublic:
    """A new version with an old version's source."""
    return pipelines.restore(session, user, pipeline_id, number, settings)


@router.post(
    "/{pipeline_id}/fork",
    response_model=PipelinePublic,
    status_code=status.HTTP_201_CREATED,
    responses={**_DSL_422, **_409},
)
def fork_pipeline(
    pipeline_id: ObjectId,
    body: PipelineFork,
    user: WriterUser,
    session: SessionDep,
    settings: SettingsDep,
) -> PipelinePublic:
    """Copy the latest version into a new pipeline owned by the caller."""
    return pipelines.fork(session, user, pipeline_id, body.name, settings, body.title)
