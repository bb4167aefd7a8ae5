"""``alphaforge serve``: the whole platform on one machine, stopped cleanly with Ctrl-C.

Starts (unless ``ALPHAFORGE_PREFECT_API_URL`` names a real server) a long-lived Prefect server
with PREFECT_HOME under the data dir — on PostgreSQL (``<app database>_prefect``, created when
missing) whenever the app's database is PostgreSQL, SQLite only when the app's is SQLite too —
and its UI with ``--with-prefect-ui``, makes sure the process work pool, the ``web`` deployment
and the ``nodelab`` deployments (custom-node test runs, look-ahead checks) exist, starts a
process worker, the strategy engine (``alphaforge engine`` in its own process, unless
``--no-engine``: the dashboard's instances run there), optionally the MLflow UI, bootstraps the
admin and the sample pipeline, then serves the API and the built UI with uvicorn. With
``ALPHAFORGE_MLFLOW_TRACKING_URI`` naming a tracking server, ``--with-mlflow-ui`` links to it
instead of starting one. The children it started are supervised: one that exits (a killed
worker) is started again, with back-off, and said so on the terminal
(:mod:`deployments.supervise`). On Ctrl-C or SIGTERM uvicorn stops accepting connections and
lets in-flight requests finish (``ALPHAFORGE_GRACEFUL_STOP_S``), then the supervisor stops, then
the engine (it unloads its instances), the worker (it drains: no new flow runs, the running
ones get ``ALPHAFORGE_WORKER_DRAIN_S`` to finish), the MLflow UI and the Prefect server
(docs/operations.md); runs the stop cut short are ended as Crashed with the reason by the next
start's status sync (:mod:`api.services.run_liveness`).
"""

from __future__ import annotations

import os
import signal
from contextlib import ExitStack, suppress
from types import FrameType
from typing import TYPE_CHECKING

import click

from api.settings import ApiSettings

if TYPE_CHECKING:
    from deployments.stack import Child

__all__ = ["serve_command"]


def _stop_on_sigterm() -> None:
    # uvicorn restores this handler after its own shutdown and re-raises the signal: make that
    # an exception, so the children are stopped in the ``finally`` below.
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


@click.command(name="serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface of the web app.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port of the web app.")
@click.option(
    "--with-prefect-ui",
    is_flag=True,
    help="Serve the Prefect UI (on the Prefect server's port) and link runs to it.",
)
@click.option(
    "--with-mlflow-ui", is_flag=True, help="Start the MLflow UI on the run store; link runs to it."
)
@click.option(
    "--engine/--no-engine",
    default=True,
    show_default=True,
    help="Run the strategy engine (alphaforge engine) beside the worker, supervised.",
)
def serve_command(
    host: str, port: int, with_prefect_ui: bool, with_mlflow_ui: bool, engine: bool
) -> None:
    """Run Alpha Forge: Prefect server and worker, the strategy engine, the API and the web UI."""
    settings = ApiSettings()
    settings.apply_prefect_env()
    _stop_on_sigterm()
    with ExitStack() as children:
        settings, watched = _start_services(settings, children, with_prefect_ui, with_mlflow_ui)
        if engine:
            watched.append(_start_engine(settings, children))
        _supervise(watched, children)
        _bootstrap(settings)
        base = f"http://{host}:{port}"
        click.echo(f"Alpha Forge:   {base}")
        if settings.prefect_api_url:
            click.echo(f"Prefect API:   {settings.prefect_api_url}")
        if settings.derived_prefect_ui_url:
            click.echo(f"Prefect UI:    {settings.derived_prefect_ui_url}")
        if settings.mlflow_ui_url:
            click.echo(f"MLflow UI:     {settings.mlflow_ui_url}")
        click.echo(f"Data dir:      {settings.root}", err=True)
        from api.server import serve

        with suppress(KeyboardInterrupt):
            serve(host=host, port=port, settings=settings)
        click.echo("stopping...", err=True)


@click.command("api")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, help="Port of the web app.")
def api_command(host: str, port: int) -> None:
    """Run only the web API and UI, for a stack whose Prefect server, workers, MLflow and engine
    run as services of their own (infra/compose.yaml): ALPHAFORGE_PREFECT_API_URL names the
    server (register the deployments with `alphaforge deploy`)."""
    settings = ApiSettings()
    if not settings.prefect_api_url:
        raise click.UsageError(
            "`alphaforge api` serves a stack whose Prefect server runs elsewhere: set "
            "ALPHAFORGE_PREFECT_API_URL (or run everything with `alphaforge serve`)"
        )
    settings.apply_prefect_env()
    _stop_on_sigterm()
    _bootstrap(settings)
    click.echo(f"Alpha Forge API: http://{host}:{port} (Prefect {settings.prefect_api_url})")
    from api.server import serve

    with suppress(KeyboardInterrupt):
        serve(host=host, port=port, settings=settings)


def _start_engine(settings: ApiSettings, children: ExitStack) -> Child:
    """The strategy engine as a supervised child (after the migrations: it reads the tables)."""
    from api.db import make_engine, run_migrations
    from cli.live import DEFAULT_FEEDS_DIR
    from deployments.stack import EngineProcess

    db = make_engine(settings.db_url)
    run_migrations(db)
    db.dispose()
    proc = EngineProcess(settings.root / "logs" / "engine.log", DEFAULT_FEEDS_DIR)
    children.callback(proc.stop)
    click.echo(f"strategy engine started (log: {proc.log})", err=True)
    return proc


def _supervise(watched: list[Child], children: ExitStack) -> None:
    """Restart the children that exit (deployments.supervise); stopped before they are."""
    from deployments.supervise import Supervisor

    supervisor = Supervisor(watched, say=lambda line: click.echo(line, err=True))
    supervisor.start()
    children.callback(supervisor.stop)  # registered last: runs first on the way out


def _start_services(
    settings: ApiSettings, children: ExitStack, with_prefect_ui: bool, with_mlflow_ui: bool
) -> tuple[ApiSettings, list[Child]]:
    """Prefect server (if needed), pool + deployment, worker, MLflow UI; returns the settings
    the API must use (the Prefect and MLflow URLs filled in) and the children started."""
    from deployments.stack import MlflowUi, PrefectServer, Worker, prefect_database_url

    started: list[Child] = []
    logs = settings.root / "logs"
    updates: dict[str, object] = {}
    api_url = settings.prefect_api_url
    if not api_url:
        database = settings.prefect_database_url or prefect_database_url(settings.db_url)
        server = PrefectServer(settings.prefect_home, ui=with_prefect_ui, database_url=database)
        children.callback(server.stop)
        where = "PostgreSQL" if database else "SQLite"
        click.echo(f"starting the Prefect server on {where} (log: {server.log})...", err=True)
        server.wait_ready()
        started.append(server)
        api_url = server.api_url
        updates["prefect_api_url"] = api_url
        updates["prefect_ui"] = with_prefect_ui
    os.environ["PREFECT_API_URL"] = api_url
    os.environ["ALPHAFORGE_PREFECT_API_URL"] = api_url
    # The worker runs each flow run in a temporary directory: a relative data dir would put
    # MLflow's embedded store there (gone with the flow run, never seen by the MLflow UI).
    os.environ["ALPHAFORGE_DATA_DIR"] = str(settings.root)
    # Optuna's study storage (the app's PostgreSQL): the worker reads it from its environment,
    # so a password never travels in a sweep's flow-run parameters
    from api.services.sweeps import OPTUNA_STORAGE_ENV, optuna_storage

    storage = optuna_storage(settings)
    if storage:
        os.environ[OPTUNA_STORAGE_ENV] = storage
    _ensure_deployment(api_url)
    # Sandbox containers of this server: leftovers swept now, deadlines on a timer, all removed
    # at stop (registered before the worker: runs after the worker has stopped).
    from runners.docker.sweeper import ServerSandboxes

    children.callback(ServerSandboxes().start().stop)
    worker = Worker(api_url, settings.prefect_home, logs / "worker.log")
    children.callback(worker.stop)
    worker.wait_ready()
    started.append(worker)
    if worker.warm is not None:
        started.append(worker.warm)  # a dead fork server would make every later run cold
    if with_mlflow_ui and not settings.mlflow_ui_url and _is_server(settings.mlflow_uri):
        updates["mlflow_ui_url"] = settings.mlflow_uri  # a tracking server serves its own UI
    elif with_mlflow_ui and not settings.mlflow_ui_url:
        ui = MlflowUi(settings.mlflow_uri, settings.mlflow_artifacts_uri, logs / "mlflow.log")
        children.callback(ui.stop)
        ui.wait_ready()
        started.append(ui)
        updates["mlflow_ui_url"] = ui.url
    return settings.model_copy(update=updates), started


def _is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _ensure_deployment(api_url: str) -> None:
    from prefect.client.orchestration import SyncPrefectClient

    from deployments.deploy import register_all

    with SyncPrefectClient(api=api_url) as client:
        register_all(client)


def _bootstrap(settings: ApiSettings) -> None:
    """The admin (password printed once when generated) and the sample pipeline."""
    from sqlmodel import Session

    from api.db import make_engine
    from api.server import ensure_admin
    from api.services.language import warm_up
    from api.services.runs import web_base_dir
    from api.services.samples import seed_sample_pipelines
    from flows.pipeline import import_extra_node_modules

    import_extra_node_modules()  # the node types the worker's runs have, known to validation
    password = ensure_admin(settings)
    if password is not None:
        click.echo(
            f"Created user 'admin' with password: {password}  "
            "(shown once; choose a new one at first log-in)"
        )
    warm_up()
    web_base_dir(settings)
    engine = make_engine(settings.db_url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            for name in seed_sample_pipelines(session, settings):
                click.echo(f"Added the sample pipeline for {name}", err=True)
    finally:
        engine.dispose()


if __name__ == "__main__":  # pragma: no cover
    serve_command()
