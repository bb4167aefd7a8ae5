"""Deleting a sweep: its row, its directory in the store and its Optuna studies.

Only the sweep's owner or an admin may delete it (observers never: 403; a sweep the caller
cannot see: 404), and never while it is pending or running (409: cancel it first). What goes:

- the row (``runs.sweep_id`` of the runs opened from its trials is cleared: those runs stay
  whole, with their trial and fold, and their page no longer links to a sweep);
- ``<store>/sweeps/<sweep_key>/`` (spec, record, trials, stages, kept equity curves, the
  out-of-sample curve); nothing outside it (the artifact cache is shared; the runs opened
  from trials have their own directories);
- its Optuna studies (``<key>`` or ``<key>-fold<k>``) in the storage it used: the platform's
  PostgreSQL (``optuna`` schema) or the store's ``sweeps/optuna.db``; other sweeps' studies
  stay.

Not touched: its MLflow parent and child runs and its Prefect flow runs (the API deletes no
run's MLflow or Prefect history; remove them in those UIs if wanted), and the audit log.

Order: the row is deleted and the studies removed in one request transaction (a study that
cannot be removed rolls it back: 503, nothing lost); the directory is renamed aside before
the commit (put back if the commit fails) and removed after it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from pathlib import Path

from sqlalchemy import update
from sqlmodel import Session, col, select

from api.errors import ApiError, Conflict, Forbidden
from api.models.run import Run
from api.models.sweep import ACTIVE_SWEEP_STATUSES, Sweep
from api.models.user import Role, User
from api.services import audit
from api.services.sweeps import directory, get_sweep, optuna_storage
from api.settings import ApiSettings
from flows.sweepspec import read_sweep_spec

__all__ = ["delete", "optuna_studies_of"]

log = logging.getLogger(__name__)


def delete(session: Session, user: User, settings: ApiSettings, sweep_id: int) -> None:
    """Delete the sweep (see the module doc); 403 / 404 / 409 as it says."""
    sweep = get_sweep(session, user, sweep_id, settings)  # 404; its status brought up to date
    if user.role == Role.OBSERVER:
        raise Forbidden("Observers can read but not change sweeps.")
    if user.role != Role.ADMIN and sweep.owner_id != user.id:
        raise Forbidden("Only the owner of this sweep or an admin can delete it.")
    locked = session.exec(
        select(Sweep).where(Sweep.id == sweep.id).with_for_update()
        .execution_options(populate_existing=True)  # a resume may have committed since
    ).one()  # fmt: skip
    if locked.status in ACTIVE_SWEEP_STATUSES:
        raise Conflict(
            f"This sweep is still {locked.status}: cancel it first (or let it finish), then "
            "delete it."
        )
    folder = directory(settings, locked)
    storage = _optuna_url(settings, folder) if locked.method == "optuna" else None
    session.execute(update(Run).where(col(Run.sweep_id) == locked.id).values(sweep_id=None))
    audit.record(
        session, user, "sweep.delete", "sweep", locked.id, pipeline_id=locked.pipeline_id,
        sweep_key=locked.sweep_key, status=locked.status, method=locked.method,
    )  # fmt: skip
    session.delete(locked)
    session.flush()
    if storage is not None:
        try:
            _delete_studies(storage, locked.sweep_key)
        except Exception as exc:
            session.rollback()
            log.error("sweep %s: its Optuna studies could not be removed", sweep_id, exc_info=exc)
            raise ApiError(
                "The sweep's Optuna study could not be removed, so nothing was deleted; try "
                f"again later ({type(exc).__name__}).",
                status_code=503,
            ) from exc
    aside = _set_aside(folder)
    try:
        session.commit()
    except BaseException:
        if aside is not None:
            aside.rename(folder)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
        if aside.exists():
            log.warning("sweep %s deleted, but %s could not be removed", sweep_id, aside)


def _set_aside(folder: Path) -> Path | None:
    """Rename the sweep's directory to a hidden name beside it (None: there is none)."""
    if not folder.exists():
        return None
    aside = folder.with_name(f".deleting-{folder.name}-{os.getpid()}")
    folder.rename(aside)
    return aside


def _optuna_url(settings: ApiSettings, folder: Path) -> str | None:
    """The storage the sweep's studies are in: its spec's (``env:…`` is this API's own
    database, which it put there), else the store's SQLite file; None when that file does not
    exist (no study was ever made there)."""
    spec = read_sweep_spec(folder)
    ref = spec.optuna_storage if spec is not None else optuna_storage(settings)
    if ref and ref.startswith("env:"):
        return os.environ.get(ref[4:]) or optuna_storage(settings)
    if ref:
        return ref
    path = settings.store_root / "sweeps" / "optuna.db"
    return f"sqlite:///{path}" if path.is_file() else None


def optuna_studies_of(names: list[str], sweep_key: str) -> list[str]:
    """Which of ``names`` are the sweep's studies: ``<key>`` and ``<key>-fold<k>``."""
    pattern = re.compile(re.escape(sweep_key) + r"(-fold\d+)?")
    return [n for n in names if pattern.fullmatch(n)]


def _delete_studies(url: str, sweep_key: str) -> None:
    import optuna

    storage = optuna.storages.RDBStorage(url)
    try:
        for name in optuna_studies_of(optuna.get_all_study_names(storage), sweep_key):
            optuna.delete_study(study_name=name, storage=storage)
    finally:
        with contextlib.suppress(Exception):
            storage.engine.dispose()
