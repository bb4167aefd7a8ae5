"""Datasets: CSV upload, list, get, preview, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status
from pydantic import BaseModel

from api.deps import CurrentUser, ObjectId, PagingDep, SessionDep, SettingsDep, WriterUser
from api.models.common import Page, error_responses
from api.models.dataset import DataErrorDetail, DatasetPreview, DatasetPublic
from api.services import datasets

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
) -> DatasetPublic:
    """Validate a CSV of bars and store it as Parquet (naive timestamps are in ``timezone``).

    Volume is optional: without a volume column the dataset says so in ``notes``."""
    return datasets.create(
        session,
        user,
        settings,
        name=name,
        upload=file.file,
        filename=file.filename,
        timezone=timezone,
    )


@router.get("", response_model=Page[DatasetPublic])
def list_datasets(user: CurrentUser, session: SessionDep, paging: PagingDep) -> Page[DatasetPublic]:
    """Datasets the caller may see, newest first."""
    return datasets.list_datasets(session, user, offset=paging.offset, limit=paging.limit)


@router.get("/{dataset_id}", response_model=DatasetPublic)
def get_dataset(dataset_id: ObjectId, user: CurrentUser, session: SessionDep) -> DatasetPublic:
    """One dataset."""
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
