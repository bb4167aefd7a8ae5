"""Runs: started from the web app through Prefect, listed and read from their rows and files.

Starting a run stores a ``pending`` row, then creates a flow run of the ``web`` deployment
with the version's IR, the run key, a base dir holding the bundled sample data and the
owner's datasets, paths confined to the base dir. The request never runs the pipeline; a
worker does, and the status sync (:mod:`api.services.prefect_sync`) mirrors its progress.
An ``Idempotency-Key`` makes a repeated submission return the first run; the key is bound to
its request (the user, the pipeline, the version asked for): reused for another, 422. Who may
see a run: whoever may see its pipeline (owners, admins, observers); others get 404.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import object_session
from sqlmodel import Session, col, func, select

from api.errors import NotFound, Unprocessable
from api.models.common import Page, utcnow
from api.models.pipeline import Pipeline
from api.models.run import (
    Run,
    RunData,
    RunModel,
    RunPublic,
    RunSandbox,
    RunStatus,
    RunSummary,
    SweepOrigin,
)
from api.models.user import User
from api.services import audit, catalog, datasets, pipelines, registry
from api.services.access import Level
from api.services.flow_rows import (
    flow_run_to_cancel,
    start_flow_run,
    visible_rows,
    wait_until,
)
from api.services.language import require_ir
from api.services.node_resolution import publish_manifests
from api.services.prefect_client import (
    PrefectUnavailable,
    cancel_flow_run,
    create_flow_run,
    prefect_client,
)
from api.services.prefect_sync import sync_run
from api.services.run_files import read_record
from api.settings import ApiSettings
from deployments.deploy import flow_run_url
from dsl.compiler import DATASET_NODE
from dsl.ir import PipelineIR
from flows.record import new_run_id, run_name
from flows.spec import RunRecord, RunSpec, SpecError, Trigger
from flows.tracebacks import user_text

__all__ = [
    "SAMPLE_DATA_DIR",
    "cancel",
    "create",
    "datasets_for",
    "flow_parameters",
    "get_run",
    "list_runs",
    "mlflow_run_url",
    "owner_of",
    "public",
    "require_datasets",
    "run_spec",
    "spec_of",
    "summary",
    "web_base_dir",
]

log = logging.getLogger(__name__)
SAMPLE_DATA_DIR = Path(__file__).resolve().parents[2] / "examples" / "data"
CANCEL_WAIT_S = 10.0


def web_base_dir(settings: ApiSettings) -> Path:
    """The base dir of web runs: ``<store>/workspace``, holding ``data/`` with a copy of the
    bundled sample files (so ``csv_ohlcv(path="data/sample_ohlcv.csv")`` resolves, and nothing
    outside it can be read)."""
    base = settings.store_root / "workspace"
    target = base / "data"
    target.mkdir(parents=True, exist_ok=True)
    for src in SAMPLE_DATA_DIR.glob("*"):
        dst = target / src.name
        if src.is_file() and (not dst.exists() or dst.stat().st_size != src.stat().st_size):
            shutil.copyfile(src, dst)
    return base


def datasets_for(session: Session, settings: ApiSettings, owner_id: int) -> dict[str, str]:
    """The owner's datasets, name -> ``store:`` reference of its Parquet file (what
    ``dataset_ohlcv(name=...)`` reads, wherever the run executes)."""
    paths = datasets.dataset_paths(session, settings, owner_id)
    return {k: settings.store_ref(v) for k, v in paths.items()}


def run_spec(
    session: Session,
    settings: ApiSettings,
    owner_id: int,
    ir_json: str,
    run_key: str | None,
    *,
    trigger: Trigger = "web",
    overrides: dict[str, dict[str, Any]] | None = None,
) -> RunSpec:
    """The run spec of a web run of ``ir_json`` owned by ``owner_id`` (``run_key`` None: the
    id is derived from the flow run, as for scheduled runs): paths confined to the web base
    dir, the owner's datasets, tracked in MLflow; ``overrides`` (node -> param -> value) over
    the IR's params (a sweep's trial opened as a run). Catalog steps are checked against the
    datasets the owner may read now, and ``dataset("x")`` moves to x's latest version (422
    where a dataset or version is gone): the spec's IR names the exact data the run reads."""
    resolver = catalog.OwnerDatasetResolver(settings, datasets.visible_datasets(session, owner_id))
    ir = catalog.pin_catalog_versions(PipelineIR.from_json(ir_json), resolver)
    return RunSpec(
        run_id=run_key,
        ir=ir,
        overrides=overrides or {},
        store_url=settings.store_location,
        # a configured (shared) MLflow store: the workers log and read models there too; the
        # default one is a file under the data dir, which a remote worker does not have
        tracking_uri=settings.mlflow_tracking_uri,
        base_dir=settings.store_ref(web_base_dir(settings)),
        datasets=datasets_for(session, settings, owner_id),
        confine_paths=True,
        catalog_url=settings.catalog_location,
        catalog_namespace=catalog.namespace_of(owner_id),
        # a schedule's spec is made once: its runs move floating steps to the latest then
        catalog_follow=catalog.follow_map(ir, resolver) if trigger == "schedule" else {},
        track=True,
        trigger=trigger,
    )


def flow_parameters(spec: RunSpec) -> dict[str, Any]:
    """The pipeline flow's parameters for ``spec`` (its only parameter is the spec)."""
    return {"spec": spec.to_json()}


def spec_of(parameters: dict[str, Any]) -> RunSpec | None:
    """The spec in a flow run's parameters, None when they hold none that parses."""
    try:
        return RunSpec.from_json(parameters.get("spec") or {})
    except SpecError:
        return None


def summary(run: Run) -> RunSummary:
    """The run as lists show it, with its pipeline's name and title."""
    session = object_session(run)
    pipeline = session.get(Pipeline, run.pipeline_id) if session is not None else None
    if pipeline is None:
        return RunSummary.of(run)
    return RunSummary.of(run, pipeline.name, pipeline.title)


def mlflow_run_url(ui_url: str | None, experiment_id: str | None, run_id: str | None) -> str | None:
    """The MLflow UI page of one run (None without a UI, or before the run was tracked)."""
    if not ui_url or not experiment_id or not run_id:
        return None
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def public(settings: ApiSettings, run: Run) -> RunPublic:
    """The run with node states, error and links (each link None when its UI is not running:
    the MLflow run's experiment comes from ``run.json``)."""
    record = read_record(settings.runs_dir / run.run_key)
    experiment = record.mlflow_experiment_id if record else None
    return RunPublic(
        **summary(run).model_dump(),
        node_states=json.loads(run.node_states_json),
        error=user_text(run.error) if run.error else None,
        run_name=run_name(record.title, record.pipeline, run.run_key) if record else None,
        mlflow_run_id=run.mlflow_run_id,
        mlflow_url=mlflow_run_url(settings.mlflow_ui_url, experiment, run.mlflow_run_id),
        prefect_flow_run_id=run.prefect_flow_run_id,
        prefect_url=flow_run_url(settings.derived_prefect_ui_url, run.prefect_flow_run_id),
        ir_hash=run.ir_hash,
        sandbox=_sandbox(run, record),
        sweep=(
            SweepOrigin(sweep_id=run.sweep_id, trial=run.sweep_trial or 0, fold=run.sweep_fold)
            if run.sweep_id is not None
            else None
        ),
        models=_models(settings, run, record),
        data=data_read(record),
    )


def data_read(record: RunRecord | None) -> list[RunData]:
    """``run.json``'s datasets: each data step's dataset and version (or file hash)."""
    out: list[RunData] = []
    for node, rec in sorted((record.datasets if record else {}).items()):
        fingerprint = str(rec.get("fingerprint") or "")
        params = rec.get("params") or {}
        name = params.get("name")
        version = (
            fingerprint.removeprefix("catalog:") if fingerprint.startswith("catalog:") else None
        )
        out.append(
            RunData(
                node=node,
                type=str(rec.get("type", "")),
                dataset=str(name).split("@", 1)[0] if name else None,
                version=version,
                sha256=None if version else (fingerprint or None),
                symbols=params.get("symbols"),
            )
        )
    return out


def _models(settings: ApiSettings, run: Run, record: RunRecord | None) -> list[RunModel]:
    """``run.json``'s models: what the run trained, with links to the file and the registry."""
    found: list[RunModel] = []
    for key, rec in (record.models if record else {}).items():
        try:
            model = RunModel.model_validate(
                {
                    **rec,
                    "key": key,
                    "registry_url": registry.mlflow_model_url(
                        settings.mlflow_ui_url,
                        rec.get("registered_name"),
                        rec.get("registered_version"),
                    ),
                    "download_url": f"/api/runs/{run.id}/models/{quote(key, safe='')}",
                }
            )
        except ValidationError:  # a record this API does not understand: left out, not 500
            log.warning("run %s: unreadable model record %r", run.run_key, key)
            continue
        found.append(model)
    return found


def model_file(settings: ApiSettings, run: Run, key: str) -> Path:
    """The model file of ``key`` in the run's directory (404 when the run trained no such
    model, or its file is gone)."""
    record = read_record(settings.runs_dir / run.run_key)
    rec = (record.models if record else {}).get(key)
    if rec is None:
        raise NotFound(f"run {run.id} trained no model {key!r}")
    path = settings.runs_dir / run.run_key / "models" / Path(str(rec.get("file", ""))).name
    if not path.is_file():
        raise NotFound(f"the model file of {key!r} is no longer in run {run.id}'s directory")
    return path


def _sandbox(run: Run, record: RunRecord | None) -> RunSandbox | None:
    """``run.json``'s ``sandbox`` (runner and image digests), None when no user code ran."""
    sandbox = record.sandbox if record else None
    if not isinstance(sandbox, dict):
        return None
    try:
        return RunSandbox.model_validate(sandbox)
    except ValidationError:  # a record this API does not understand: say nothing, not 500
        log.warning("run %s: unreadable sandbox record %r", run.run_key, sandbox)
        return None


def get_run(session: Session, user: User, run_id: int, settings: ApiSettings | None = None) -> Run:
    """The run if ``user`` may see it (404 otherwise), brought up to date when ``settings``
    are given and it has not ended."""
    run = session.exec(
        select(Run).join(Pipeline).where(Run.id == run_id, *visible_rows(Run, user))
    ).first()
    if run is None:
        raise NotFound("run not found")
    return sync_run(session, settings, run) if settings is not None else run


def list_runs(
    session: Session, user: User, pipeline_id: int, *, offset: int, limit: int
) -> Page[RunSummary]:
    """A visible pipeline's runs, newest first (index ``(pipeline_id, id)``)."""
    pipeline = pipelines.get_pipeline(session, user, pipeline_id)
    rows = session.exec(
        select(Run)
        .where(Run.pipeline_id == pipeline.id)
        .order_by(col(Run.id).desc())
        .offset(offset)
        .limit(limit)
    ).all()
    total = session.exec(
        select(func.count()).select_from(Run).where(Run.pipeline_id == pipeline.id)
    ).one()
    return Page(items=[summary(r) for r in rows], total=total)


def _existing(
    session: Session, user: User, key: str | None, pipeline_id: int, version: int | None
) -> Run | None:
    """The run ``key`` already started for this user, when the request is the same one (same
    pipeline; same version, or none asked for); 422 when the key was used for another request:
    a key names one request, never a run to hand to another."""
    if key is None:
        return None
    found = session.exec(
        select(Run).where(Run.started_by_id == user.id, Run.idempotency_key == key)
    ).first()
    if found is None:
        return None
    if found.pipeline_id != pipeline_id or (version is not None and version != found.version):
        raise Unprocessable(
            f"This Idempotency-Key was already used to start run {found.id} of another "
            f"request (pipeline {found.pipeline_id}, version {found.version}); send a new key "
            "for a different pipeline or version."
        )
    return found


def create(
    session: Session,
    user: User,
    settings: ApiSettings,
    pipeline_id: int,
    version_number: int | None,
    idempotency_key: str | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    origin: SweepOrigin | None = None,
) -> RunPublic:
    """Start a run of a version (default: the latest) through Prefect; 202 semantics.
    ``overrides`` (node -> param -> value) run it with other params: a sweep's trial, which
    ``origin`` names (the run keeps it, and its page links back to the sweep)."""
    pipeline = pipelines.get_pipeline(session, user, pipeline_id, level=Level.EDIT)
    if (
        found := _existing(session, user, idempotency_key, pipeline_id, version_number)
    ) is not None:
        return public(settings, found)
    number = version_number or pipeline.latest_version
    version = pipelines.version_of(session, pipeline.id, number)
    require_datasets(session, settings, pipeline.owner_id, version.source, version.ir_json)
    registry.require_model_access(session, settings, owner_of(session, pipeline), version.ir_json)
    if not settings.prefect_api_url:
        raise PrefectUnavailable("no Prefect server is configured: runs cannot start")
    custom = publish_manifests(session, settings, pipeline.owner_id, version)  # worker reads
    run = Run(
        pipeline_id=pipeline.id or 0,
        version=number,
        owner_id=pipeline.owner_id,
        started_by_id=user.id,
        trigger="manual",
        run_key=new_run_id(),
        ir_hash=version.ir_hash,
        idempotency_key=idempotency_key,
        sweep_id=origin.sweep_id if origin else None,
        sweep_trial=origin.trial if origin else None,
        sweep_fold=origin.fold if origin else None,
    )
    session.add(run)
    try:
        session.flush()
    except IntegrityError:  # the same key, submitted concurrently: one run
        session.rollback()
        found = _existing(session, user, idempotency_key, pipeline_id, version_number)
        if found is not None:
            return public(settings, found)
        raise
    audit.record(
        session, user, "run.create", "run", run.id,
        pipeline_id=pipeline.id, version=number, ir_hash=version.ir_hash, trigger="manual",
        custom_nodes=custom, overrides=overrides or None,
        sweep=origin.model_dump() if origin else None,
    )  # fmt: skip
    session.commit()
    return _submit(session, settings, run, version.ir_json, overrides)


def owner_of(session: Session, pipeline: Pipeline) -> User:
    """The pipeline's owner (its runs run as them)."""
    owner = session.get(User, pipeline.owner_id)
    if owner is None:  # an owner row is never deleted while its pipelines exist
        raise NotFound("the pipeline's owner no longer exists")
    return owner


def require_datasets(
    session: Session, settings: ApiSettings, owner_id: int, source: str, ir_json: str
) -> None:
    """422 with the editor's AF209 diagnostics (line, column, nearest names) when the version
    reads a dataset its owner does not have: a pipeline may be saved before its data is
    uploaded, but it does not start a run that could only fail. Catalog steps: 422 naming the
    step when their dataset or version is not one the owner may read now."""
    ir = PipelineIR.from_json(ir_json)
    catalog.pin_catalog_versions(  # 422 when a catalog dataset or version is not readable now
        ir, catalog.OwnerDatasetResolver(settings, datasets.visible_datasets(session, owner_id))
    )
    known = datasets.dataset_names(session, settings, owner_id)
    wanted = {
        str(node.params.get("name"))
        for node in ir.nodes
        if node.type == DATASET_NODE and node.runtime == "builtin"
    }
    if wanted <= known:
        return
    require_ir(pipelines.compile_for(session, source, owner_id, settings, dataset_severity="error"))


def _submit(
    session: Session,
    settings: ApiSettings,
    run: Run,
    ir_json: str,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> RunPublic:
    """Create the flow run (Prefect de-duplicates by the run key); a failure fails the row."""
    spec = run_spec(session, settings, run.owner_id, ir_json, run.run_key, overrides=overrides)
    executed = spec.ir.content_hash()
    if executed != run.ir_hash:  # catalog steps moved to the versions the run reads
        run.ir_hash = executed
        session.add(run)
        session.commit()
    params = flow_parameters(spec.model_copy(update={"submitted_at": time.time()}))
    start_flow_run(
        session,
        run,
        "run",
        lambda: create_flow_run(
            settings,
            "web",
            params,
            idempotency_key=f"alphaforge-run-{run.run_key}",
            tags=[f"pipeline:{run.pipeline_id}", f"af-version:{run.version}", f"run:{run.id}"],
            name=run_name(spec.ir.title, spec.ir.name, run.run_key),
        ),
    )
    return public(settings, run)


def cancel(session: Session, user: User, settings: ApiSettings, run_id: int) -> RunPublic:
    """Cancel the flow run through Prefect only: its worker kills the flow-run process, which
    kills the run's sandbox containers (the API has no Docker); waits a few seconds for it."""
    run = get_run(session, user, run_id, settings)
    pipelines.get_pipeline(session, user, run.pipeline_id, level=Level.EDIT)
    if RunStatus(run.status).final:
        return public(settings, run)
    run.cancel_requested_at = utcnow()
    session.add(run)
    audit.record(session, user, "run.cancel", "run", run.id, pipeline_id=run.pipeline_id)
    session.commit()
    flow_run_id = flow_run_to_cancel(session, run)
    if flow_run_id is None:
        return public(settings, run)
    with prefect_client(settings) as client:
        cancel_flow_run(client, flow_run_id)

    def ended() -> bool:
        return RunStatus(sync_run(session, settings, run).status).final

    wait_until(ended, CANCEL_WAIT_S)
    return public(settings, run)
