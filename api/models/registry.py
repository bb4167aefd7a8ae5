"""Registered models (the MLflow Model Registry) as the models page lists them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class SourceRun(BaseModel):
    """The run of this app that trained a version."""

    id: int
    pipeline_id: int
    pipeline_name: str | None
    status: str


class RegisteredVersionPublic(BaseModel):
    """One version of a registered model."""

    version: int
    created_at: datetime | None
    aliases: list[str]
    pipeline: str | None = Field(None, description="The pipeline that trained it (its name).")
    node: str | None = Field(None, description="The step that trained it.")
    ir_hash: str | None
    sha256: str | None = Field(None, description="The model file's sha256.")
    run: SourceRun | None = Field(
        None, description="The source run, when it ran in this app and the user may see it."
    )
    run_key: str | None = Field(None, description="The source run's id in run directories.")
    mlflow_url: str | None = Field(None, description="The version's page in the MLflow UI.")


class RegisteredModelPublic(BaseModel):
    """A registered model and the versions the user may see, newest first."""

    name: str
    description: str | None
    updated_at: datetime | None
    latest_version: int
    versions: list[RegisteredVersionPublic]
    mlflow_url: str | None = Field(None, description="The model's page in the MLflow UI.")
