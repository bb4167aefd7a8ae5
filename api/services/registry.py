"""The models page: registered models with the runs of this app that trained them.

A version is shown to a user who may see its source run; admins and observers see every
version, those trained outside the web app (the CLI) too. A model with no version left to
show is left out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from sqlmodel import Session, col, select

from api.models.pipeline import Pipeline
from api.models.registry import RegisteredModelPublic, RegisteredVersionPublic, SourceRun
from api.models.run import Run
from api.models.user import Role, User
from api.services.flow_rows import visible_rows
from api.services.runs import mlflow_model_url
from api.settings import ApiSettings
from flows.models import RegisteredModelInfo, list_registered


def registered_models(
    session: Session, user: User, settings: ApiSettings
) -> list[RegisteredModelPublic]:
    """The registered models of the app's MLflow store the user may see, by name."""
    models = list_registered(settings.mlflow_uri)
    keys = {v.run_id for m in models for v in m.versions if v.run_id}
    runs = _visible_runs(session, user, keys)
    sees_all = user.role in (Role.ADMIN, Role.OBSERVER)
    shown: list[RegisteredModelPublic] = []
    for model in models:
        versions = [
            RegisteredVersionPublic(
                version=v.version,
                created_at=_time(v.created_ms),
                aliases=list(v.aliases),
                pipeline=v.pipeline,
                node=v.node,
                ir_hash=v.ir_hash,
                sha256=v.sha256,
                run=runs.get(v.run_id or ""),
                run_key=v.run_id,
                mlflow_url=mlflow_model_url(settings.mlflow_ui_url, model.name, v.version),
            )
            for v in model.versions
            if sees_all or (v.run_id in runs)
        ]
        if versions:
            shown.append(_model(settings, model, versions))
    return shown


def _model(
    settings: ApiSettings, model: RegisteredModelInfo, versions: list[RegisteredVersionPublic]
) -> RegisteredModelPublic:
    ui = settings.mlflow_ui_url
    return RegisteredModelPublic(
        name=model.name,
        description=model.description,
        updated_at=_time(model.updated_ms),
        latest_version=max(v.version for v in model.versions),
        versions=versions,
        mlflow_url=f"{ui.rstrip('/')}/#/models/{quote(model.name, safe='')}" if ui else None,
    )


def _visible_runs(session: Session, user: User, keys: set[str]) -> dict[str, SourceRun]:
    if not keys:
        return {}
    rows = session.exec(
        select(Run, Pipeline.name)
        .join(Pipeline)
        .where(col(Run.run_key).in_(keys), *visible_rows(Run, user))
    ).all()
    return {
        run.run_key: SourceRun(
            id=run.id or 0, pipeline_id=run.pipeline_id, pipeline_name=name, status=run.status
        )
        for run, name in rows
    }


def _time(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms else None
