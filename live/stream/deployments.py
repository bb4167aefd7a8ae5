"""Writing the desired state of deployed stream pipelines: what the engine should run.

What the API (with authorization and the audit log around it), the CLI and the tests call.
Every function validates before it writes and raises :class:`DeploymentInputError` on bad
input (a compile error carries the compiler's diagnostics, each with its line and column);
nothing is half-written. The engine (:mod:`live.stream.reconciler`) reads the same rows.

- :func:`create_deployment`: compile the text (it must have a ``stream { ... }`` block), store
  it as text version 1, ``stopped`` unless ``start``.
- :func:`set_desired`: ``running`` or ``stopped`` (start / stop).
- :func:`update_text`: a new text (compiled; version + 1, the previous texts kept); a running
  deployment is reloaded by the engine with the new text (its state, hence its
  de-duplication, is kept: the state folder belongs to the deployment id).
- :func:`delete_deployment`: marks it deleted (the engine stops it; its texts stay).
"""

from __future__ import annotations

import re
import secrets
from pathlib import PurePosixPath
from typing import Any

from sqlmodel import Session, SQLModel, col, select

from dsl.compiler import compile_source
from dsl.diagnostics import Diagnostic
from dsl.ir import PipelineIR
from live.stream.tables import DESIRED, StreamDeployment, StreamDeploymentText
from live.tables import utcnow
from nodes.errors import AlphaForgeError

__all__ = [
    "DeploymentInputError",
    "compile_stream",
    "create_deployment",
    "delete_deployment",
    "find_deployment",
    "set_desired",
    "texts_of",
    "update_text",
]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
FILENAME = "stream.af"
#: Params of sources and sinks that name a file: in a deployment, relative and without ``..``
#: (they resolve under the engine's workspace).
_PATH_PARAMS = ("path",)


class DeploymentInputError(AlphaForgeError):
    """Input a deployment refuses; ``field`` names what was wrong, ``diagnostics`` are the
    compiler's (each with line and column) when the text does not compile."""

    code = "AF511"

    def __init__(
        self, field: str, message: str, diagnostics: list[Diagnostic] | None = None
    ) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.diagnostics = diagnostics or []


def compile_stream(text: str, filename: str = FILENAME) -> PipelineIR:
    """The text's IR; :class:`DeploymentInputError` (with the diagnostics, ``line:col``) when
    it does not compile, has no ``stream`` block, names a file outside the workspace or a
    PostgreSQL sink table that is one of the app's own (registered) tables."""
    result = compile_source(text, filename=filename)
    if not result.ok or result.ir is None:
        errors = result.errors
        first = errors[0] if errors else None
        where = f"{first.line}:{first.col}: {first.code} {first.message}" if first else ""
        raise DeploymentInputError(
            "text",
            f"the pipeline does not compile ({len(errors)} error(s); first at {where})",
            result.diagnostics,
        )
    ir = result.ir
    if ir.stream is None:
        raise DeploymentInputError(
            "text",
            f"pipeline {ir.name} has no stream {{ ... }} block: only stream pipelines are "
            "deployed (docs/stream.md)",
        )
    _check_paths(ir)
    return ir


def _check_paths(ir: PipelineIR) -> None:
    assert ir.stream is not None
    named: list[tuple[str, Any]] = [
        (f"source {ir.stream.source}", ir.stream.source_params.get(p)) for p in _PATH_PARAMS
    ]
    named += [(f"emit {s.node} to {s.sink}", s.params.get(p)) for s in ir.stream.sinks
              for p in _PATH_PARAMS]  # fmt: skip
    named += [(f"step {n.id}", n.params.get(p)) for n in ir.nodes for p in _PATH_PARAMS]
    app_tables = {name.rsplit(".", 1)[-1] for name in SQLModel.metadata.tables}
    for sink in ir.stream.sinks:
        table = str(sink.params.get("table") or "").rsplit(".", 1)[-1]
        if sink.sink == "postgres" and table in app_tables:
            raise DeploymentInputError(
                "text",
                f"emit {sink.node} to postgres: table={table!r} is one of the app's own tables: "
                "name a table of your own",
            )
    for where, value in named:
        if value is None:
            continue
        path = PurePosixPath(str(value))
        if path.is_absolute() or ".." in path.parts:
            raise DeploymentInputError(
                "text",
                f"{where}: path={str(value)!r}: a deployed pipeline's paths are relative to "
                "the engine's workspace, without '..'",
            )


def _check_name(name: str) -> None:
    if not _NAME.match(name or ""):
        raise DeploymentInputError(
            "name", "1 to 64 letters, digits, _ . or -, starting with a letter"
        )


def find_deployment(session: Session, owner_id: int, name: str) -> StreamDeployment | None:
    """The owner's deployment ``name`` that is not deleted."""
    return session.exec(
        select(StreamDeployment)
        .where(col(StreamDeployment.owner_id) == owner_id)
        .where(col(StreamDeployment.name) == name)
        .where(col(StreamDeployment.deleted_at).is_(None))
    ).first()


def create_deployment(
    session: Session,
    owner_id: int,
    text: str,
    *,
    name: str | None = None,
    start: bool = False,
    pipeline_id: int | None = None,
    user_id: int | None = None,
) -> StreamDeployment:
    """A new deployment of ``text`` (see the module doc), named ``name`` or after the
    pipeline; commits."""
    ir = compile_stream(text)
    name = name or ir.name
    _check_name(name)
    if find_deployment(session, owner_id, name) is not None:
        raise DeploymentInputError("name", f"you already have a stream deployment named {name!r}")
    waiting = ("starting", "waiting for an engine to pick it up") if start else ("stopped", None)
    row = StreamDeployment(
        id=f"sp_{secrets.token_hex(6)}",
        status=waiting[0],
        status_reason=waiting[1],
        owner_id=owner_id,
        name=name,
        pipeline=ir.name,
        pipeline_id=pipeline_id,
        text=text,
        ir_hash=ir.content_hash(),
        text_version=1,
        desired="running" if start else "stopped",
    )
    session.add(row)
    session.flush()
    _keep_text(session, row, user_id or owner_id)
    session.commit()
    session.refresh(row)
    return row


def set_desired(session: Session, row: StreamDeployment, desired: str) -> bool:
    """Ask the engine to run (``running``) or stop (``stopped``) it; True when it changed."""
    if row.deleted_at is not None:
        raise DeploymentInputError("deployment", "this stream deployment was deleted")
    if desired not in DESIRED:
        raise DeploymentInputError("desired", f"must be one of {', '.join(DESIRED)}")
    if row.desired == desired:
        return False
    row.desired = desired
    row.updated_at = row.status_at = utcnow()
    if desired == "running" and row.engine_id is None:
        row.status, row.status_reason = "starting", "waiting for an engine to pick it up"
    session.add(row)
    session.commit()
    session.refresh(row)
    return True


def update_text(
    session: Session, row: StreamDeployment, text: str, user_id: int | None = None
) -> bool:
    """A new text (compiled first); True when it changed (the same text adds nothing)."""
    if row.deleted_at is not None:
        raise DeploymentInputError("deployment", "this stream deployment was deleted")
    ir = compile_stream(text)
    if text == row.text:
        return False
    row.text, row.ir_hash, row.pipeline = text, ir.content_hash(), ir.name
    row.text_version += 1
    row.updated_at = utcnow()
    session.add(row)
    _keep_text(session, row, user_id)
    session.commit()
    session.refresh(row)
    return True


def delete_deployment(session: Session, row: StreamDeployment) -> None:
    """Mark it deleted and stopped (the engine stops it); commits."""
    if row.deleted_at is not None:
        return
    row.deleted_at = utcnow()
    row.desired = "stopped"
    session.add(row)
    session.commit()


def texts_of(session: Session, row: StreamDeployment) -> list[StreamDeploymentText]:
    """Every text the deployment had, newest first."""
    return list(
        session.exec(
            select(StreamDeploymentText)
            .where(col(StreamDeploymentText.deployment_id) == row.id)
            .order_by(col(StreamDeploymentText.version).desc())
        ).all()
    )


def _keep_text(session: Session, row: StreamDeployment, user_id: int | None) -> None:
    session.add(
        StreamDeploymentText(
            deployment_id=row.id,
            version=row.text_version,
            text=row.text,
            ir_hash=row.ir_hash,
            user_id=user_id,
        )
    )
