"""Registered models: the MLflow Model Registry's models and the runs that trained them."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.models.common import error_responses
from api.models.registry import RegisteredModelPublic
from api.services import registry

router = APIRouter(prefix="/api/models", tags=["models"], responses=error_responses(401))


@router.get("", response_model=list[RegisteredModelPublic])
def list_models(
    user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> list[RegisteredModelPublic]:
    """Registered models with the versions the user may see (source run, aliases, IR hash,
    file hash, MLflow link), by name; versions newest first."""
    return registry.registered_models(session, user, settings)
