"""Health and client configuration."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import CurrentUser, SettingsDep

router = APIRouter(prefix="/api", tags=["meta"])


def _version() -> str:
    try:
        return version("alphaforge")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


class Health(BaseModel):
    """The service is up."""

    status: str
    version: str


class ClientConfig(BaseModel):
    """Links the UI shows (None when the service is not configured)."""

    mlflow_ui_url: str | None
    prefect_ui_url: str | None


@router.get("/health", response_model=Health)
def health() -> Health:
    """Liveness: no auth, no database."""
    return Health(status="ok", version=_version())


@router.get("/config", response_model=ClientConfig)
def config(_user: CurrentUser, settings: SettingsDep) -> ClientConfig:
    """Links to the MLflow and Prefect UIs."""
    return ClientConfig(
        mlflow_ui_url=settings.mlflow_ui_url, prefect_ui_url=settings.derived_prefect_ui_url
    )
