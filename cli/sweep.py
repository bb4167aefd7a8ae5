"""``alphaforge sweep FILE`` and ``alphaforge sweep resume SWEEP_ID``: run a pipeline's ``sweep``
block (and its ``walkforward`` line) through :func:`flows.sweep.run_sweep`, with a progress bar
read from ``sweep.json`` while it runs, and a summary (or one JSON object) at the end.

``sweep`` is a group whose default command takes the file: ``sweep FILE`` runs a new sweep,
``sweep resume ID`` finishes a stored one (only the trials not yet in its ``trials/``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.main import (
    EXIT_FAILED,
    EXIT_INVALID,
    _console,
    _dataset_refs,
    _Exit,
    _fail,
    _load_or_exit,
    _quiet_orchestrator_console,
    _store_datasets,
)
from nodes.errors import AlphaForgeError

if TYPE_CHECKING:
    from flows.settings import CoreSettings
    from flows.sweepspec import SweepRecord, SweepSpec

__all__ = ["sweep_group"]

POLL_S = 0.3
_DEFAULT = "start"


class _SweepGroup(click.Group):
    """``sweep FILE [OPTIONS]`` (the hidden default command) or ``sweep resume ID``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = [_DEFAULT, *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "FILE [OPTIONS]")
        formatter.write_usage(ctx.command_path, "resume SWEEP_ID [OPTIONS]", prefix="       ")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        start = self.commands[_DEFAULT]
        rows = [
            r
            for p in start.get_params(ctx)
            if isinstance(p, click.Option) and (r := p.get_help_record(ctx))
        ]
        with formatter.section("Options"):
            formatter.write_dl(rows)
        self.format_commands(ctx, formatter)


_DATA_DIR = click.option(
    "--data-dir", type=click.Path(path_type=Path), help="Where sweeps, runs and caches live."
)
_JSON = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object on stdout and nothing else."
)
_WORKERS = click.option(
    "--workers",
    type=click.IntRange(1, 256),
    help="Processes / workers to spread trials over [default: 1, in this process].",
)
_EXECUTOR = click.option(
    "--executor",
    type=click.Choice(["local", "pool", "dask"]),
    help="local: this process (1 worker) or workers forked from it; pool: chunks as flow runs "
    "on the work pool; dask: a Dask cluster (--dask-address, else a LocalCluster).",
)


@click.group(name="sweep", cls=_SweepGroup, invoke_without_command=False, no_args_is_help=True)
def sweep_group() -> None:
    """Run FILE's `sweep` block (grid, random or Optuna; per fold with a `walkforward` line),
    with a progress bar, then print the best params, the deflated Sharpe ratio, the PBO and,
    for a walk-forward, the fold table. `sweep resume SWEEP_ID` finishes a stopped sweep."""


@sweep_group.command(name=_DEFAULT, hidden=True)
@click.argument("file", type=click.Path(path_type=Path))
@_WORKERS
@_EXECUTOR
@click.option("--chunk-size", type=click.IntRange(1, 100_000), help="Trials per chunk.")
@click.option(
    "--top-k", type=click.IntRange(0, 1000), help="Best trials that keep their equity curve."
)
@click.option("--dask-address", help="A running Dask scheduler (with --executor dask).")
@_JSON
@_DATA_DIR
@click.option(
    "--nodes",
    type=click.Path(path_type=Path),
    help="Folder of custom-node manifests (*.json) for `use` lines [default: FILE's nodes/].",
)
@click.option("--owner", help="Check dataset names against this web-app user's datasets.")
def start_command(
    file: Path,
    workers: int | None,
    executor: str | None,
    chunk_size: int | None,
    top_k: int | None,
    dask_address: str | None,
    as_json: bool,
    data_dir: Path | None,
    nodes: Path | None,
    owner: str | None,
) -> None:
    """Run FILE's sweep."""
    settings = _settings(data_dir)
    datasets = _store_datasets(file, owner)
    loaded = _load_or_exit(file, nodes, datasets)
    ir = loaded.ir
    assert ir is not None
    if ir.sweep is None:
        raise _fail(
            f"{file}: has no `sweep` block, so there is nothing to sweep: add one, for example\n"
            "  sweep grid {\n    fast.window = [5, 10, 20]\n    objective maximize result.sharpe\n"
            "  }\n(`alphaforge run` runs the pipeline once with its written params)",
            EXIT_INVALID,
        )
    if loaded.resolver is not None:
        from runners.nodestore import ManifestStore

        loaded.resolver.store_into(ManifestStore(settings.custom_nodes_dir))
    from flows.spec import RunSpec
    from flows.sweep import new_sweep_id
    from flows.sweepspec import SweepSpec

    run = RunSpec(
        ir=ir,
        base_dir=str(Path(loaded.base_dir).resolve()),
        store_url=settings.store_location,
        trigger="cli",
        datasets=_dataset_refs(ir, datasets, settings),
    )
    spec = SweepSpec(
        sweep_id=new_sweep_id(),
        run=run,
        executor=executor or "local",  # type: ignore[arg-type]
        workers=workers or 1,
        chunk_size=chunk_size,
        top_k=10 if top_k is None else top_k,
        dask_address=dask_address,
    )
    _execute(spec, settings, as_json)


@sweep_group.command(name="resume")
@click.argument("sweep_id")
@_WORKERS
@_EXECUTOR
@click.option("--dask-address", help="A running Dask scheduler (with --executor dask).")
@_JSON
@_DATA_DIR
def resume_command(
    sweep_id: str,
    workers: int | None,
    executor: str | None,
    dask_address: str | None,
    as_json: bool,
    data_dir: Path | None,
) -> None:
    """Finish the stored sweep SWEEP_ID: only the trials not yet run are run (none, for a
    finished sweep: its summary is computed again)."""
    from flows.sweepspec import read_sweep_record, read_sweep_spec, sweep_dir

    settings = _settings(data_dir)
    try:
        directory = sweep_dir(settings.store_root, sweep_id)
    except ValueError as exc:
        raise _fail(str(exc), EXIT_INVALID) from None
    spec = read_sweep_spec(directory)
    if spec is None:
        known = sorted(p.name for p in directory.parent.glob("sw-*") if p.is_dir())
        hint = f"; the latest are: {', '.join(known[-3:])}" if known else ""
        raise _fail(
            f"no sweep {sweep_id!r} in {directory.parent} (or it never wrote its spec.json){hint}",
            EXIT_INVALID,
        )
    record = read_sweep_record(directory)
    if record is not None and record.status == "running":
        out = _console(stderr=True)
        out.print(
            f"[yellow]note:[/] sweep {sweep_id} is marked running; resuming it (if it still "
            "runs elsewhere, both will write trials)"
        )
    update: dict[str, Any] = {"resume": True, "submitted_at": None}
    for key, value in (
        ("workers", workers),
        ("executor", executor),
        ("dask_address", dask_address),
    ):
        if value is not None:
            update[key] = value
    spec = spec.model_copy(update=update)
    _execute(spec, settings, as_json)


# ---- running ------------------------------------------------------------------------------


def _settings(data_dir: Path | None) -> CoreSettings:
    from flows.settings import CoreSettings, get_settings

    settings = CoreSettings(data_dir=data_dir) if data_dir else get_settings()
    settings.apply_prefect_env()  # before anything imports prefect
    _quiet_orchestrator_console()
    return settings


def _execute(spec: SweepSpec, settings: CoreSettings, as_json: bool) -> None:
    from cli.sweepout import SweepProgress, print_summary, summary_json
    from flows.sweep import run_sweep
    from flows.sweepspec import read_sweep_record, sweep_dir

    if spec.executor == "pool":
        _require_pool(settings)
    directory = sweep_dir(settings.store_root, spec.sweep_id)
    err = _console(stderr=True)
    out = _console(stderr=as_json)
    ir = spec.run.ir
    what = "resuming" if spec.resume else "sweeping"
    out.print(
        f"[bold]{ir.name}[/] — {what} {spec.sweep_id} on the {spec.executor} executor "
        f"({spec.workers} worker(s))"
    )
    progress = SweepProgress(out, directory)
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(progress, stop), daemon=True)
    progress.start()
    watcher.start()
    interrupted = threading.Event()
    record: SweepRecord | None = None
    cancelled_once = threading.Lock()

    def cancelled() -> None:
        if not cancelled_once.acquire(blocking=False):
            return
        stop.set()
        progress.stop()
        _stop_children()
        _mark_cancelled(directory)
        err.print(
            f"[yellow]cancelled:[/] sweep {spec.sweep_id} stopped; the finished trials are kept.\n"
            f"resume it with: alphaforge sweep resume {spec.sweep_id}" + _data_dir_flag(settings)
        )

    def stuck() -> None:  # the flow did not come back after Ctrl-C: leave without it
        cancelled()
        os._exit(130)

    try:
        with _noting_interrupts(interrupted, stuck):
            record = run_sweep(spec, settings=settings)
    except KeyboardInterrupt:
        interrupted.set()
    except AlphaForgeError as exc:
        stop.set()
        progress.stop()
        raise _fail(str(exc), EXIT_FAILED) from None
    except Exception as exc:  # the orchestrator itself failed (the server is unreachable)
        stop.set()
        progress.stop()
        from flows.settings import prefect_startup_failure

        hint = prefect_startup_failure(exc, settings)
        msg = hint or f"the sweep could not be executed: {type(exc).__name__}: {exc}"
        raise _fail(msg, EXIT_FAILED) from None if hint else exc
    if interrupted.is_set():  # Ctrl-C, however far the flow let the interrupt through
        cancelled()
        raise _Exit(130)
    assert record is not None
    stop.set()
    watcher.join()
    progress.update(read_sweep_record(directory) or record)
    progress.stop()
    resume = f"alphaforge sweep resume {spec.sweep_id}{_data_dir_flag(settings)}"
    if as_json:
        click.echo(json.dumps(summary_json(record, directory, resume), allow_nan=False))
    else:
        print_summary(out, record, directory, settings.mlflow_uri, resume)
    if record.status != "completed":
        err.print(f"[red]sweep {record.status}:[/] {record.error or 'see sweep.json'}")
        err.print(f"the finished trials are kept; resume with: {resume}")
        raise _Exit(EXIT_FAILED)


def _require_pool(settings: CoreSettings) -> None:
    """``--executor pool`` hands chunks to workers of a Prefect server's work pool: say what is
    missing before the sweep starts (else it fails on its first chunk)."""

    advice = (
        "--executor pool runs chunks as flow runs of the sweep-chunk deployment on a Prefect "
        "server's work pool: start one with `alphaforge serve` (or deploy to your server and "
        "start workers) and set ALPHAFORGE_PREFECT_API_URL; or use --executor local|dask"
    )
    if not (settings.prefect_api_url or os.environ.get("PREFECT_API_URL")):
        raise _fail(f"no Prefect server is configured: {advice}", EXIT_INVALID)
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from flows.sweep import CHUNK_DEPLOYMENT

    try:
        with get_client(sync_client=True) as client:
            client.read_deployment_by_name(CHUNK_DEPLOYMENT)
    except ObjectNotFound:
        msg = f"the server has no {CHUNK_DEPLOYMENT!r} deployment: {advice}"
        raise _fail(msg, EXIT_INVALID) from None
    except Exception as exc:
        msg = f"the Prefect server cannot be reached ({exc}): {advice}"
        raise _fail(msg, EXIT_FAILED) from None


GRACE_S = 5.0


@contextlib.contextmanager
def _noting_interrupts(flag: threading.Event, on_stuck: Any) -> Iterator[None]:
    """Ctrl-C sets ``flag``, ends the pool's workers and interrupts as usual: the flow may turn
    the interrupt into a failed state and return, and the CLI still knows it was cancelled.
    When the flow is still busy ``GRACE_S`` later (in a terminal, Ctrl-C also stops Prefect's
    embedded server, and the engine retries reporting the state to it), ``on_stuck`` runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    timer: threading.Timer | None = None

    def handler(signum: int, frame: Any) -> None:
        nonlocal timer
        flag.set()
        _stop_children(wait=False)  # a pool waiting on its workers would hold the exit up
        if timer is None:
            timer = threading.Timer(GRACE_S, on_stuck)
            timer.daemon = True
            timer.start()
        signal.default_int_handler(signum, frame)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if timer is not None:
            timer.cancel()


def _stop_children(wait: bool = True) -> None:
    """End the process pool's workers this sweep started (they outlive an interrupted pool)."""
    import multiprocessing

    for child in multiprocessing.active_children():
        child.terminate()
    if wait:
        for child in multiprocessing.active_children():
            child.join(timeout=5)


def _watch(progress: Any, stop: threading.Event) -> None:
    from flows.sweepspec import read_sweep_record

    while not stop.wait(POLL_S):
        try:
            record = read_sweep_record(progress.directory)
        except ValueError:  # caught between two writes of another writer: next time
            continue
        if record is not None:
            progress.update(record)


def _mark_cancelled(directory: Path) -> None:
    """After Ctrl-C: the record says ``cancelled`` (the flow marked it failed on its way out)."""
    from flows.sweepspec import read_sweep_record, write_json_atomic

    record = read_sweep_record(directory)
    if record is None:
        return
    record.status = "cancelled"
    record.error = "cancelled from the command line (Ctrl-C)"
    record.ended_at = time.time()
    write_json_atomic(directory / "sweep.json", record.model_dump(mode="json"))


def _data_dir_flag(settings: CoreSettings) -> str:
    from flows.settings import get_settings

    if settings is get_settings():
        return ""
    return f" --data-dir {settings.data_dir}"
