"""``alphaforge stream``: stream pipelines from a terminal.

- ``alphaforge stream FILE.af [FILE.af ...]`` (or ``stream run ...``) runs pipelines' ``stream``
  blocks as a service in this process, in the foreground (below).
- ``alphaforge stream deploy FILE.af --owner USER [--name NAME] [--start]``, ``stream ls``,
  ``stream start|stop|rm NAME``: deployments the engine runs (``alphaforge engine`` or the
  ``alphaforge-engine`` deployment), the same rows as the web app's (cli/streamdeploy.py).

The foreground run prints one line per emitted event (``ts symbol pipeline.node.port = value``;
``--quiet`` leaves them out) and, at the end, each pipeline's and each sink's health. Runs until
Ctrl+C or SIGTERM; with ``--until-end``, until the sources end (a replay), the triggered
pipelines are done and the sinks have delivered. Several files run in one service: ``trigger``
sinks feed one another's ``events()`` pipelines.

Exit codes: 0 ok, 1 a pipeline failed, 2 invalid input (a file that does not compile, a
source or sink that cannot be built).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import click

from nodes.errors import AlphaForgeError

__all__ = ["stream_command"]

EXIT_FAILED, EXIT_INVALID = 1, 2


class _StreamGroup(click.Group):
    """``stream`` with subcommands, where ``stream FILE...`` (no subcommand) means
    ``stream run FILE...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("stream", cls=_StreamGroup)
def stream_command() -> None:
    """Stream pipelines: run FILE.af in the foreground (`alphaforge stream FILE...`), or
    deploy them for the engine to run (deploy, ls, start, stop, rm)."""


@stream_command.command("run")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--until-end",
    is_flag=True,
    help="Stop when the sources end (a replay) and the sinks have delivered.",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    help="Where each pipeline keeps its state, status and sink records "
    "[default: <data dir>/stream].",
)
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where local state lives.")
@click.option("--quiet", is_flag=True, help="Print no line per event, only the summary.")
def stream_run(
    files: tuple[Path, ...],
    until_end: bool,
    state_dir: Path | None,
    data_dir: Path | None,
    quiet: bool,
) -> None:
    """Run the stream block of each FILE (.af) as a service."""
    from cli.load import load_pipeline
    from cli.main import _Exit, _fail
    from flows.settings import CoreSettings, get_settings

    settings = CoreSettings(data_dir=data_dir) if data_dir else get_settings()
    settings.apply_prefect_env()
    from live.stream import StreamError, StreamPipeline, StreamService

    root = state_dir or settings.root / "stream"
    printing = threading.Lock()

    def show(event: Any) -> None:
        if quiet:
            return
        where = f"{event.pipeline}.{event.node}.{event.column or event.port}"
        depth = f"  (depth {event.depth})" if event.depth else ""
        with printing:
            click.echo(f"{event.ts}  {event.symbol:<10} {where} = {event.value}{depth}")

    pipelines = []
    for file in files:
        try:
            loaded = load_pipeline(file)
        except AlphaForgeError as exc:
            raise _fail(str(exc), EXIT_INVALID) from None
        for line in loaded.diagnostics:
            if " AF008" not in line:  # "a run does not execute stream blocks": this one does
                click.echo(line, err=True)
        if loaded.ir is None:
            raise _Exit(EXIT_INVALID)
        try:
            pipelines.append(
                StreamPipeline(
                    loaded.ir,
                    base_dir=loaded.base_dir,
                    state_dir=root / loaded.ir.name,
                    settings=settings,
                    on_event=show,
                )
            )
        except AlphaForgeError as exc:
            raise _fail(f"{file}: {exc}", EXIT_INVALID) from None
    try:
        service = StreamService(pipelines)
        service.start()
    except (StreamError, AlphaForgeError) as exc:
        raise _fail(str(exc), EXIT_INVALID) from None

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if until_end:
            while not stop.is_set() and not service.wait(0.5):
                pass
            if not stop.is_set():
                service.drain_sinks()
        else:
            click.echo("streaming; Ctrl+C stops", err=True)
            stop.wait()
    except KeyboardInterrupt:
        click.echo("stopping ...", err=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        service.stop()
    health = service.health()
    _summary(health)
    failed = service.failed
    if failed:
        for name in failed:
            message = health["pipelines"][name].get("failure")
            click.echo(f"error: pipeline {name} failed: {message}", err=True)
        raise _Exit(EXIT_FAILED)


def _summary(health: dict[str, Any]) -> None:
    """Each pipeline's state and counts, and each sink's delivery record."""
    for name, p in health["pipelines"].items():
        click.echo(
            f"{name}: {p['state']}, {p['bars']} bars ({p['duplicates']} repeated), "
            f"{p['evaluations']} evaluations, {p['events']} events"
            + (
                f", warm-up {p['warmup_bars']} bars from {p['warmup_from']}"
                if p["warmup_from"]
                else ""
            )
        )
        for gap in p["gaps"][-3:]:
            click.echo(f"  gap: {gap}")
        for error in p["errors"][-3:]:
            click.echo(f"  error: {error}")
        for s in p["sinks"].values():
            line = (
                f"  sink {s['kind']} {s['target']}: {s['delivered']} delivered, "
                f"{s['pending']} pending, {s['failures']} failed, {s['duplicates']} duplicates"
            )
            if s["last_error"]:
                line += f"; last error {s['last_error_at']}: {s['last_error']}"
            click.echo(line)
        for target in p["triggers"].values():
            click.echo(f"  trigger -> {target}")


def _register() -> None:
    from cli.streamdeploy import deploy, ls, rm, start, stop

    for command in (deploy, ls, start, stop, rm):
        stream_command.add_command(command)


_register()
