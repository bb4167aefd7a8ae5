"""The models page: registered models with the runs of this app that trained them.

A version is shown to a user who may see its source run; admins and observers see every
version, those trained outside the web app (the CLI) too. A model with no version left to
show is left out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from sqlmodel import Session, col, select

from api.errors import Unprocessable
from api.models.pipeline import Pipeline
from api.models.registry import RegisteredModelPublic, RegisteredVersionPublic, SourceRun
from api.models.run import Run
from api.models.user import Role, User
from api.services.flow_rows import visible_rows
from api.settings import ApiSettings
from flows.models import RegisteredModelInfo, list_registered


def mlflow_model_url(ui_url: str | None, name: str | None, version: int | None) -> str | None:
    """The MLflow UI page of one registered model version (None without a UI)."""
    if not ui_url or not name or version is None:
        return None
    return f"{ui_url.rstrip('/')}/#/models/{quote(name, safe='')}/versions/{version}"


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


def require_model_access(
    session: Session, settings: ApiSettings, owner: User, ir_json: str
) -> None:
    """422 naming the step when a run of ``ir_json`` as ``owner`` would read or write a
    registered model of runs the owner may not see.

    Registered model names are one namespace for everyone (the MLflow registry): a
    ``predict(registered=...)`` must name a model with a version the owner may see (the models
    page's rule), and a ``train_torch`` that registers may not add versions to (or move an alias
    of) a model whose versions came from runs the owner may not see — else one user could swap
    the model another user's pipeline trades. Admins may do both."""
    from dsl.ir import PipelineIR

    if owner.role == Role.ADMIN:
        return
    ir = PipelineIR.from_json(ir_json)
    reads = [(n.id, str(n.params["registered"])) for n in ir.nodes
             if n.type == "predict" and n.params.get("registered")]  # fmt: skip
    writes = [
        (n.id, str(n.params.get("registry_name") or f"{ir.name}.{n.id}"))
        for n in ir.nodes
        if n.type == "train_torch" and n.params.get("register_model", True)
    ]
    if not reads and not writes:
        return
    models = {m.name: m for m in list_registered(settings.mlflow_uri)}
    keys = {v.run_id for m in models.values() for v in m.versions if v.run_id}
    mine = _visible_runs(session, owner, keys)
    for step, name in reads:
        model = models.get(name)
        if model is None or not any(v.run_id in mine for v in model.versions):
            usable = sorted(
                m.name for m in models.values() if any(v.run_id in mine for v in m.versions)
            )
            hint = (
                f"registered models you may use: {', '.join(usable[:10])}"
                if usable
                else ("none is registered by runs you may see: train one with train_torch first")
            )
            raise Unprocessable(
                f"step {step!r} (predict) reads registered model {name!r}, which no run you may "
                f"see registered ({hint})"
            )
    for step, name in writes:
        model = models.get(name)
        if model is not None and any(v.run_id not in mine for v in model.versions):
            raise Unprocessable(
                f"step {step!r} (train_torch) would register its model as {name!r}, a registered "
                "model with versions from runs you may not see: give the step another "
                "registry_name (or register_model=false)"
            )
