"""``alphaforge stream deploy|ls|start|stop|rm``: deployed stream pipelines from a terminal.

The same rows as the web app's ``/api/streams`` (live/stream/deployments.py): ``deploy``
compiles the file and stores it (diagnostics printed gcc-style, exit 2, when it does not
compile); a deployment the owner already has under that name gets the file as a new text
(the engine reloads it). ``start``, ``stop`` and ``rm`` take a deployment's id (``sp_...``)
or its name (with ``--owner`` when two users have one of that name). The engine does the
running; these commands only write what it should run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

__all__ = ["deploy", "ls", "rm", "start", "stop"]


def _find(session: Any, ref: str, owner: str | None) -> Any:
    from sqlmodel import col, select

    from cli.live import _user_id
    from live.stream.tables import StreamDeployment

    query = select(StreamDeployment).where(col(StreamDeployment.deleted_at).is_(None))
    if ref.startswith("sp_"):
        query = query.where(col(StreamDeployment.id) == ref)
    else:
        query = query.where(col(StreamDeployment.name) == ref)
    if owner:
        query = query.where(col(StreamDeployment.owner_id) == _user_id(session, owner))
    rows = session.exec(query).all()
    if not rows:
        raise click.UsageError(f"no stream deployment {ref!r} (see `alphaforge stream ls`)")
    if len(rows) > 1:
        raise click.UsageError(f"several users have a deployment named {ref!r}: give --owner")
    return rows[0]


@click.command("deploy")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--owner", required=True, help="The web-app user who owns it.")
@click.option("--name", help="The deployment's name [default: the pipeline's].")
@click.option("--start", "start_", is_flag=True, help="Ask the engine to run it now.")
def deploy(file: Path, owner: str, name: str | None, start_: bool) -> None:
    """Deploy FILE (.af with a stream block) for the engine to run."""
    from sqlmodel import Session

    from cli.live import _db, _user_id
    from cli.main import _Exit
    from live.stream.deployments import (
        DeploymentInputError,
        compile_stream,
        create_deployment,
        find_deployment,
        set_desired,
        update_text,
    )

    text = file.read_text(encoding="utf-8")
    with Session(_db()) as session:
        uid = _user_id(session, owner)
        try:
            ir = compile_stream(text, filename=str(file))
            row = find_deployment(session, uid, name or ir.name)
            if row is None:
                row = create_deployment(session, uid, text, name=name, start=start_)
                what = "deployed"
            else:
                what = "updated" if update_text(session, row, text, uid) else "unchanged"
                if start_:
                    set_desired(session, row, "running")
        except DeploymentInputError as exc:
            for d in exc.diagnostics:
                click.echo(d.format(str(file)), err=True)
            if not exc.diagnostics:
                click.echo(f"error: {file}: {exc}", err=True)
            raise _Exit(2) from None
        click.echo(f"{what} {row.id} {row.name} (text v{row.text_version}, {row.desired})")


@click.command("ls")
@click.option("--owner", help="Only this user's.")
def ls(owner: str | None) -> None:
    """The deployed stream pipelines: id, name, owner, wish, status, engine."""
    from sqlmodel import Session, col, select

    from cli.live import _db, _user_id
    from live.stream.tables import StreamDeployment

    with Session(_db()) as session:
        query = select(StreamDeployment).where(col(StreamDeployment.deleted_at).is_(None))
        if owner:
            query = query.where(col(StreamDeployment.owner_id) == _user_id(session, owner))
        rows = session.exec(query.order_by(col(StreamDeployment.created_at))).all()
        if not rows:
            click.echo("no stream deployments")
        for r in rows:
            reason = f" ({r.status_reason})" if r.status_reason else ""
            click.echo(f"{r.id}  {r.name:<24} v{r.text_version}  want {r.desired:<8} "
                       f"{r.status}{reason}  {r.engine_id or '-'}")  # fmt: skip


def _desire(ref: str, owner: str | None, desired: str) -> None:
    from sqlmodel import Session

    from cli.live import _db
    from live.stream.deployments import set_desired

    with Session(_db()) as session:
        row = _find(session, ref, owner)
        changed = set_desired(session, row, desired)
        click.echo(f"{row.id} {row.name}: {desired}" + ("" if changed else " (already)"))


@click.command("start")
@click.argument("ref")
@click.option("--owner", help="The owner, when a name is not unique.")
def start(ref: str, owner: str | None) -> None:
    """Ask the engine to run deployment REF (id or name)."""
    _desire(ref, owner, "running")


@click.command("stop")
@click.argument("ref")
@click.option("--owner", help="The owner, when a name is not unique.")
def stop(ref: str, owner: str | None) -> None:
    """Ask the engine to stop deployment REF (its state is kept)."""
    _desire(ref, owner, "stopped")


@click.command("rm")
@click.argument("ref")
@click.option("--owner", help="The owner, when a name is not unique.")
def rm(ref: str, owner: str | None) -> None:
    """Delete deployment REF (the engine stops it)."""
    from sqlmodel import Session

    from cli.live import _db
    from live.stream.deployments import delete_deployment

    with Session(_db()) as session:
        row = _find(session, ref, owner)
        delete_deployment(session, row)
        click.echo(f"{row.id} {row.name}: deleted")
