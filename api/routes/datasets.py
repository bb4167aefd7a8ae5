"""Datasets: CSV upload, catalog versions, candles, list, get, preview, delete."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, Response, UploadFile, status
from pydantic import BaseModel

from api.deps import CurrentUser, ObjectId, PagingDep, SessionDep, SettingsDep, WriterUser
from api.models.common import Page, error_responses
from api.models.dataset import (
    Candles,
    DataErrorDetail,
    DatasetPreview,
    DatasetPublic,
    DatasetVersionDetail,
    DatasetVersionPublic,
)
from api.services import catalog, datasets

router = APIRouter(
    prefix="/api/datasets", tags=["datasets"], responses=error_responses(401, 403, 404)
)


class DataErrorResponse(BaseModel):
    """A 422 body for a file that failed validation."""

    detail: DataErrorDetail


@router.post(
    "",
    response_model=DatasetPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        **error_responses(409, 413),
        422: {"model": DataErrorResponse, "description": "the file failed validation"},
    },
)
def upload_dataset(
    name: Annotated[str, Form(description="letters, digits, '_' and '-'; starts with a letter")],
    file: Annotated[UploadFile, File(description="OHLCV bars as CSV")],
    user: WriterUser,
    session: SessionDep,
    settings: SettingsDep,
    timezone: Annotated[str, Form(max_length=64)] = "UTC",
    symbol: Annotated[str | None, Form(max_length=64)] = None,
) -> DatasetPublic:
    """Validate a CSV of bars and store it as Parquet and as the dataset's first catalog
    version (naive timestamps are in ``timezone``; bars without a symbol column are labelled
    ``symbol``, default the dataset's name).

    Volume is optional: without a volume column the dataset says so in ``notes``."""
    return datasets.create(
        session,
        user,
        settings,
        name=name,
        upload=file.file,
        filename=file.filename,
        timezone=timezone,
        symbol=symbol or None,
    )


@router.post(
    "/{dataset_id}/versions",
    response_model=DatasetPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        **error_responses(413, 503),
        422: {"model": DataErrorResponse, "description": "the file failed validation"},
    },
)
def add_version(
    dataset_id: ObjectId,
    file: Annotated[UploadFile, File(description="OHLCV bars as CSV")],
    user: WriterUser,
    session: SessionDep,
    settings: SettingsDep,
    timezone: Annotated[str, Form(max_length=64)] = "UTC",
    symbol: Annotated[str | None, Form(max_length=64)] = None,
    message: Annotated[str, Form(max_length=500)] = "",
) -> DatasetPublic:
    """A new version of the dataset from a new file. Versions are immutable and named by
    their content's hash: the same file again gives the same version, and runs that read an
    older version keep pointing at it."""
    return datasets.add_version(
        session,
        user,
        settings,
        dataset_id,
        upload=file.file,
        filename=file.filename,
        timezone=timezone,
        symbol=symbol or None,
        message=message,
    )


@router.get("/{dataset_id}/versions", response_model=list[DatasetVersionPublic])
def list_versions(
    dataset_id: ObjectId, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> list[DatasetVersionPublic]:
    """The dataset's catalog versions, newest first (empty for a dataset uploaded before the
    catalog)."""
    return catalog.versions(settings, datasets.get_dataset(session, user, dataset_id))


@router.get("/{dataset_id}/versions/{version}", response_model=DatasetVersionDetail)
def get_version(
    dataset_id: ObjectId,
    version: Annotated[str, Path(pattern="^[0-9a-f]{6,64}$")],
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> DatasetVersionDetail:
    """One version (a unique prefix of its hash will do) with its validation report."""
    dataset = datasets.get_dataset(session, user, dataset_id)
    return catalog.version_detail(settings, dataset, version)


@router.get("/{dataset_id}/candles", response_model=Candles)
def get_candles(
    dataset_id: ObjectId,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    symbol: Annotated[str, Query(min_length=1, max_length=64)],
    version: Annotated[str | None, Query(pattern="^[0-9a-f]{6,64}$")] = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=catalog.MAX_CANDLES)] = 1000,
) -> Candles:
    """One symbol's bars of a version (default: the latest) for a candlestick chart: the last
    ``limit`` bars between ``start`` and ``end``, read pruned to that symbol and range."""
    dataset = datasets.get_dataset(session, user, dataset_id)
    return catalog.candles(
        settings, dataset, symbol=symbol, version=version, start=start, end=end, limit=limit
    )


@router.get("", response_model=Page[DatasetPublic])
def list_datasets(
    user: CurrentUser, session: SessionDep, settings: SettingsDep, paging: PagingDep
) -> Page[DatasetPublic]:
    """Datasets the caller may see, newest first (names the caller imported into the catalog
    from the command line included)."""
    catalog.sync_namespace(session, settings, user)
    return datasets.list_datasets(session, user, offset=paging.offset, limit=paging.limit)


@router.get("/{dataset_id}", response_model=DatasetPublic)
def get_dataset(dataset_id: ObjectId, user: CurrentUser, session: SessionDep) -> DatasetPublic:
    """One dataset (with its latest version's symbols and how many versions it has)."""
    return datasets.public(datasets.get_dataset(session, user, dataset_id), session, user)


@router.get("/{dataset_id}/preview", response_model=DatasetPreview)
def preview_dataset(
    dataset_id: ObjectId,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> DatasetPreview:
    """The first rows (timestamps as ISO 8601 UTC)."""
    return datasets.preview(settings, datasets.get_dataset(session, user, dataset_id), limit)


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_dataset(dataset_id: ObjectId, user: WriterUser, session: SessionDep) -> Response:
    """Remove the dataset from lists and name resolution."""
    datasets.delete(session, user, dataset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
