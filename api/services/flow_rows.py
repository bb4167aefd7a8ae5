"""What runs and sweeps share: rows that mirror a Prefect flow run of a pipeline.

A run and a sweep are both seen through their pipeline, started by creating a flow run (a
failure fails the row and says why), and cancelled through Prefect (one not started yet ends
at once; otherwise the request waits a few seconds for the worker to confirm).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from prefect.client.schemas.objects import FlowRun
from sqlmodel import Session, col, or_

from api.errors import ApiError
from api.models.common import utcnow
from api.models.pipeline import Pipeline
from api.models.user import Role, User
from api.services.access import granted_ids
from api.services.prefect_client import PrefectUnavailable
from flows.tracebacks import unexpected

__all__ = ["flow_run_to_cancel", "start_flow_run", "visible_rows", "wait_until"]

log = logging.getLogger(__name__)


class FlowRow(Protocol):
    """A row that mirrors a flow run (a run, a sweep)."""

    id: Any
    pipeline_id: Any
    owner_id: Any
    status: Any
    error: Any
    finished_at: Any
    prefect_flow_run_id: Any


R = TypeVar("R", bound=FlowRow)


def visible_rows(model: type[FlowRow], user: User) -> list[Any]:
    """WHERE clauses (with ``model`` joined to ``Pipeline``): rows of live pipelines the user may
    see (their own, or of a pipeline granted to a team of theirs)."""
    where: list[Any] = [col(Pipeline.deleted_at).is_(None)]
    if user.role not in (Role.ADMIN, Role.OBSERVER):
        where.append(
            or_(
                model.owner_id == user.id,
                col(model.pipeline_id).in_(granted_ids(user, "pipeline")),
            )
        )
    return where


def start_flow_run(
    session: Session, row: FlowRow, what: str, create: Callable[[], FlowRun]
) -> None:
    """Call ``create`` and store the flow run's id on ``row``; when it fails, the row fails with
    ``could not start: <reason>`` and the error is raised as an :class:`ApiError` (503 for
    anything that is not one already). ``what``: "run", "sweep"."""
    try:
        flow_run = create()
    except Exception as exc:
        if isinstance(exc, ApiError):
            reason = str(exc.detail)
        else:
            log.error("%s %s: could not create its flow run", what, row.id, exc_info=exc)
            reason = unexpected(f"starting the {what}", exc, "in the server's log")
        row.status, row.error, row.finished_at = "failed", f"could not start: {reason}", utcnow()
        session.add(row)
        session.commit()
        if isinstance(exc, ApiError):
            raise
        raise PrefectUnavailable(f"could not start the {what}: {reason}") from exc
    row.prefect_flow_run_id = str(flow_run.id)
    session.add(row)
    session.commit()


def flow_run_to_cancel(session: Session, row: FlowRow) -> str | None:
    """The id of the flow run to cancel; a row cancelled before its flow run was created has
    none: it ends ``cancelled`` at once (None)."""
    if row.prefect_flow_run_id is not None:
        return str(row.prefect_flow_run_id)
    row.status, row.error, row.finished_at = "cancelled", "cancelled before it started", utcnow()
    session.add(row)
    session.commit()
    return None


def wait_until(done: Callable[[], bool], seconds: float, poll_s: float = 0.25) -> None:
    """Call ``done`` until it says True or ``seconds`` have passed (a cancel waiting for the
    worker to confirm)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(poll_s)
