"""The ``alphaforge`` command: validate, compile and run pipelines; inspect runs and nodes.

Exit codes: 0 ok, 1 the run failed, 2 invalid pipeline or input (a missing file included).
Prefect's own console lines are silenced here (they still go to each run's ``run.log``): users
see our per-node progress, not the orchestrator's chatter.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.load import Loaded, load_pipeline
from nodes.errors import AlphaForgeError

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


class _Exit(click.exceptions.Exit):
    """Leave with an exit code after a message was printed."""


def _console(*, stderr: bool) -> Console:
    from rich.console import Console  # rich only for the commands that print with it

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _fail(message: str, code: int) -> _Exit:
    _console(stderr=True).print(f"[red]error:[/] {message}")
    return _Exit(code)


class _DefaultFolderResolver:
    """The resolver over the implicit ``nodes/`` folder, read at the first ``use`` pin only.

    A pipeline without ``use`` lines then neither imports the manifest machinery nor
    validates every manifest there (~0.1 s of ``alphaforge run``'s start-up).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._inner: Any = None

    def resolve(self, name: str, spec: str) -> Any:
        if self._inner is None:
            from cli.nodes_dir import LocalNodeResolver

            self._inner = LocalNodeResolver.from_dir(self.folder)
        return self._inner.resolve(name, spec)

    def store_into(self, store: Any) -> list[str]:
        return [] if self._inner is None else list(self._inner.store_into(store))


def _resolver(path: Path, nodes: Path | None) -> Any:
    """The ``use`` resolver over ``--nodes DIR`` (default: ``nodes/`` next to the file)."""
    if nodes is not None:
        from cli.nodes_dir import LocalNodeResolver

        return LocalNodeResolver.from_dir(nodes)
    folder = path.resolve().parent / "nodes"  # cli.nodes_dir.default_nodes_dir
    return _DefaultFolderResolver(folder) if folder.is_dir() else None


def _store_datasets(path: Path, owner: str | None) -> Any:
    """The web app's datasets when ``path`` reads one (``dataset_ohlcv``), else None."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None  # load_pipeline says what is wrong with the file
    from cli.datasets import store_datasets, uses_datasets

    if not uses_datasets(text):
        return None
    found = store_datasets(owner)
    if found.problem:
        click.echo(f"{path}: note: dataset names not checked: {found.problem}", err=True)
        return None
    return found


def _dataset_refs(ir: Any, datasets: Any, settings: Any) -> dict[str, str]:
    """``name -> store: reference`` of the web-app datasets the pipeline reads."""
    if datasets is None:
        return {}
    from dsl.compiler import dataset_names

    used = dataset_names(ir)
    ambiguous = datasets.ambiguous(used)
    if ambiguous:
        name, owners = next(iter(sorted(ambiguous.items())))
        msg = f"several users have a dataset called {name!r} ({', '.join(owners)}); pass --owner"
        raise _fail(msg, EXIT_INVALID)
    paths = datasets.paths()
    refs: dict[str, str] = {}
    for name in sorted(used & set(paths)):
        try:
            refs[name] = settings.store_ref(paths[name])
        except ValueError:  # --data-dir names another store: the file by its own path
            refs[name] = str(paths[name])
    return refs


def _catalog(path: Path, settings: Any, namespace: str | None, owner: str | None = None) -> Any:
    """The catalog resolver when ``path`` has a ``dataset(...)`` step, else None: over
    ``namespace``, else web user ``owner``'s, else the settings' namespace."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None  # load_pipeline says what is wrong with the file
    from cli.catalogrefs import CliDatasetResolver, uses_catalog

    if not uses_catalog(text):
        return None
    if namespace is None and owner is not None:
        from cli.datasets import web_namespace

        namespace = web_namespace(owner)
    return CliDatasetResolver(settings, namespace or settings.namespace)


def _load_or_exit(
    path: Path, nodes: Path | None = None, datasets: Any = None, catalog: Any = None
) -> Loaded:
    try:
        names = datasets.names() if datasets is not None else None
        loaded = load_pipeline(path, _resolver(path, nodes), names, catalog)
    except AlphaForgeError as exc:
        raise _fail(str(exc), EXIT_INVALID) from None
    for line in loaded.diagnostics:
        click.echo(line, err=True)
    if loaded.ir is None:
        raise _Exit(EXIT_INVALID)
    return loaded


# name -> (module, attribute) of the subcommands defined in other modules
_LAZY_COMMANDS = {
    "runs": ("cli.inspect", "runs_group"),
    "nodes": ("cli.inspect", "nodes_group"),
    "serve": ("cli.serve", "serve_command"),
    "deploy": ("cli.deploy", "deploy_command"),
    "api": ("cli.serve", "api_command"),
    "convert": ("cli.convert", "convert_command"),
    "sweep": ("cli.sweep", "sweep_group"),
    "data": ("cli.data", "data_group"),
    "ticks": ("cli.ticks", "ticks_group"),
    "engine": ("cli.live", "engine_command"),
    "strategy": ("cli.live", "strategy_group"),
    "instance": ("cli.live", "instance_group"),
    "stream": ("cli.stream", "stream_command"),
    "rerun": ("cli.repro", "rerun_command"),
    "diff": ("cli.repro", "diff_command"),
}


class _LazyGroup(click.Group):
    """A group whose other modules' subcommands are imported only when named (or listed).

    ``alphaforge run`` then imports neither the web API's settings (``serve``) nor the
    inspection commands: start-up time counts (bench/bench_run.py).
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _LAZY_COMMANDS and cmd_name not in self.commands:
            module, attr = _LAZY_COMMANDS[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="alphaforge")
def cli() -> None:
    """Alpha Forge: write a pipeline in .af, validate it, run it, inspect the results."""


_OWNER_OPTION = click.option(
    "--owner",
    help="Check dataset names against this web-app user's datasets [default: every user's]; "
    "dataset(...) steps read their catalog namespace unless --namespace says.",
)
_NAMESPACE_OPTION = click.option(
    "--namespace",
    help="Catalog namespace whose names dataset(...) steps read [default: "
    "$ALPHAFORGE_NAMESPACE, else local].",
)


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--nodes",
    type=click.Path(path_type=Path),
    help="Folder of custom-node manifests (*.json) for `use` lines [default: FILE's nodes/].",
)
@_OWNER_OPTION
@_NAMESPACE_OPTION
def validate(file: Path, nodes: Path | None, owner: str | None, namespace: str | None) -> None:
    """Check FILE and print diagnostics (file:line:col: severity CODE: message).

    Dataset names in ``dataset_ohlcv(name=...)`` are checked against the web app's datasets,
    ``dataset("name@version")`` references against the catalog."""
    from flows.settings import get_settings

    catalog = _catalog(file, get_settings(), namespace, owner)
    loaded = _load_or_exit(file, nodes, _store_datasets(file, owner), catalog)
    ir = loaded.ir
    assert ir is not None
    warn = f", {loaded.warnings} warning(s)" if loaded.warnings else ""
    click.echo(f"ok: {file}: pipeline {ir.name!r}, {len(ir.nodes)} steps{warn}")


@cli.command(name="compile")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--nodes",
    type=click.Path(path_type=Path),
    help="Folder of custom-node manifests (*.json) for `use` lines [default: FILE's nodes/].",
)
@_OWNER_OPTION
@_NAMESPACE_OPTION
def compile_cmd(file: Path, nodes: Path | None, owner: str | None, namespace: str | None) -> None:
    """Compile FILE and print its IR as JSON on stdout (``dataset(...)`` / ``tick_data(...)``
    references pinned to exact catalog versions, as ``run`` would)."""
    from flows.settings import get_settings

    catalog = _catalog(file, get_settings(), namespace, owner)
    loaded = _load_or_exit(file, nodes, None, catalog)
    assert loaded.ir is not None
    click.echo(loaded.ir.to_json())


@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object and nothing else.")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Where runs and caches live.")
@click.option("--no-cache", is_flag=True, help="Recompute every node.")
@click.option(
    "--nodes",
    type=click.Path(path_type=Path),
    help="Folder of custom-node manifests (*.json) for `use` lines [default: FILE's nodes/].",
)
@_OWNER_OPTION
@_NAMESPACE_OPTION
def run(
    file: Path,
    as_json: bool,
    data_dir: Path | None,
    no_cache: bool,
    nodes: Path | None,
    owner: str | None,
    namespace: str | None,
) -> None:
    """Run FILE (a .af pipeline or its IR JSON) as a Prefect flow, tracked in MLflow."""
    from flows.settings import CoreSettings, get_settings

    settings = CoreSettings(data_dir=data_dir) if data_dir else get_settings()
    settings.apply_prefect_env()  # before anything imports prefect
    _quiet_orchestrator_console()
    datasets = _store_datasets(file, owner)
    catalog = _catalog(file, settings, namespace, owner)
    loaded = _load_or_exit(file, nodes, datasets, catalog)
    ir = loaded.ir
    assert ir is not None
    dataset_refs = _dataset_refs(ir, datasets, settings)
    if loaded.resolver is not None:  # the flow finds custom nodes' code in the store, by hash
        from runners.nodestore import ManifestStore

        loaded.resolver.store_into(ManifestStore(settings.custom_nodes_dir))
    out = _console(stderr=as_json)
    out.print(f"[bold]{ir.name}[/] — {ir.title or ''} ({len(ir.nodes)} nodes)")
    # A stream block was reported above as warning AF008 (`alphaforge stream` runs it).
    if ir.sweep is not None:
        out.print(
            "[dim]this run uses the params written in the steps; "
            f"`alphaforge sweep {file}` runs the sweep block[/]"
        )

    from cli.output import Progress
    from flows.run import run_pipeline
    from flows.spec import RunSpec

    spec = RunSpec(
        ir=ir,
        base_dir=str(Path(loaded.base_dir).resolve()),
        store_url=settings.store_location,
        use_cache=not no_cache,
        trigger="cli",
        datasets=dataset_refs,
        catalog_namespace=catalog.namespace if catalog is not None else None,
    )
    width = max(len(n.id) for n in ir.nodes)
    t0 = time.perf_counter()
    try:
        record = run_pipeline(spec, settings=settings, on_event=Progress(out, width))
    except AlphaForgeError as exc:
        raise _fail(str(exc), EXIT_FAILED) from None
    except Exception as exc:  # the orchestrator itself failed (e.g. the server is unreachable)
        from flows.settings import prefect_startup_failure

        hint = prefect_startup_failure(exc, settings)
        msg = hint or f"the run could not be executed: {type(exc).__name__}: {exc}"
        raise _fail(msg, EXIT_FAILED) from None if hint else exc
    run_dir = settings.runs_dir / record.run_id
    if as_json:
        summary = {
            "run_id": record.run_id,
            "status": record.status,
            "run_dir": str(run_dir),
            "metrics": record.metrics,
            "mlflow_run_id": record.mlflow_run_id,
            "flow_run_id": record.flow_run_id,
            "node_states": record.node_states,
            "models": {
                key: {k: v for k, v in m.items() if k != "history"}
                for key, m in record.models.items()
            },
            "error": record.error,
            # the record's timings plus what only this process saw (not stored in run.json)
            "timings": _client_timings(record.timings, time.perf_counter() - t0, loaded),
        }
        click.echo(json.dumps(summary, default=str))
    else:
        _report(out, record, run_dir, settings)
    if record.status != "completed":
        if not as_json:
            _console(stderr=True).print(f"[red]run failed:[/] {record.error}")
        raise _Exit(EXIT_FAILED)


def _client_timings(stored: dict[str, float], total_s: float, loaded: Any) -> dict[str, float]:
    out = {**stored, "compile_s": round(loaded.compile_s, 4), "total_s": round(total_s, 4)}
    if "flow_body_s" in stored and "prefect_start_s" in stored:
        finish = total_s - stored["prefect_start_s"] - stored["flow_body_s"]
        out["prefect_finish_s"] = round(finish, 4)
    return out


def _report(out: Console, result: Any, run_dir: Path, settings: Any) -> None:
    from cli.output import prefect_ui_url, print_metrics

    if result.metrics:
        print_metrics(out, result.metrics, title=f"run {result.run_id}")
    out.print(f"[bold]status[/]        {result.status}")
    out.print(f"[bold]run dir[/]       {run_dir}")
    if result.mlflow_run_id:
        out.print(f"[bold]MLflow run[/]    {result.mlflow_run_id}  ({settings.mlflow_uri})")
    else:
        out.print("[bold]MLflow run[/]    [yellow]not recorded (see run.json)[/]")
    for key, model in (getattr(result, "models", None) or {}).items():
        history = model.get("history") or []
        best = (model.get("summary") or {}).get("best_val_loss")
        trained = f"{len(history)} epochs" + (f", best val loss {best:.4g}" if best else "")
        if model.get("registered_name"):
            alias = f" @{model['alias']}" if model.get("alias") else ""
            where = f"registered {model['registered_name']} v{model['registered_version']}{alias}"
        else:
            where = "not registered"
        out.print(f"[bold]model[/]         {key}: {trained}; {where}; {run_dir / model['file']}")
    url = prefect_ui_url(result.flow_run_id)
    suffix = f"  ({url})" if url else ""
    out.print(f"[bold]Prefect run[/]   {result.flow_run_id}{suffix}")


def _quiet_orchestrator_console() -> None:
    """Prefect's and MLflow's INFO lines off the console (the run log keeps Prefect's)."""
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: run the CLI and return its exit code."""
    try:
        # Without standalone mode click returns the code of an Exit instead of raising it.
        code = cli.main(args=argv, prog_name="alphaforge", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return EXIT_INVALID
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return EXIT_FAILED
    except AlphaForgeError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_INVALID
    return code if isinstance(code, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
