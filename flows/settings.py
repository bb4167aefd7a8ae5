"""Core settings: where data lives and which Prefect / MLflow to talk to.

Embedded defaults need nothing started by hand: Prefect's ephemeral server and MLflow's SQLite
store live under the data dir (``./.alphaforge`` unless ``ALPHAFORGE_DATA_DIR`` says otherwise).
Setting ``ALPHAFORGE_PREFECT_API_URL`` or ``ALPHAFORGE_MLFLOW_TRACKING_URI`` switches to real
services.

The **store** is what the API and every worker share: run directories (``runs/``), node
artifacts (``artifacts/``), custom-node code (``custom-nodes/``), uploaded datasets
(``datasets/``) and the web runs' workspace (``workspace/``). It is the data dir unless
``ALPHAFORGE_STORE_URL`` names another (a directory or ``file://`` URL every machine mounts).
The data dir itself is private to one process or machine (Prefect home, caches, MLflow's
embedded store). A run spec names files in the store as ``store:<path>`` references, which each
side resolves against its own store root, so flow parameters never carry one host's paths.

The embedded Prefect server is started by the first run of a process and, on a fresh data dir,
creates its database first: Prefect gives it 20 s, which a loaded machine exceeds. We give it
``ALPHAFORGE_PREFECT_STARTUP_TIMEOUT_S`` (120 s); :func:`prefect_startup_failure` turns Prefect's
time-out error into what to do about it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from flows.logformat import LogFormat, apply_log_format_env

# Prefect's own setting for how long its embedded (ephemeral) server may take to answer
EPHEMERAL_STARTUP_TIMEOUT_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
# the start of the RuntimeError Prefect raises when that time runs out (prefect 3.x,
# prefect.server.api.server.SubprocessASGIServer.start)
_EPHEMERAL_TIMEOUT_ERROR = "Timed out while attempting to connect to ephemeral Prefect API server"


class CoreSettings(BaseSettings):
    """Settings shared by the CLI, the flows and the API (env prefix ``ALPHAFORGE_``)."""

    model_config = SettingsConfigDict(env_prefix="ALPHAFORGE_", extra="ignore")

    data_dir: Path = Field(default=Path(".alphaforge"), description="Root of all local state.")
    prefect_api_url: str | None = Field(
        default=None, description="A Prefect server's API URL; unset = ephemeral server."
    )
    prefect_startup_timeout_s: int = Field(
        default=120,
        ge=1,
        description="Seconds the embedded Prefect server may take to start (Prefect's is 20).",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None, description="An MLflow tracking URI; unset = SQLite under the data dir."
    )
    artifact_store_url: str | None = Field(
        default=None, description="fsspec URL of the artifact store; unset = <store>/artifacts."
    )
    store_url: str | None = Field(
        default=None,
        description="The store shared by the API and workers (a directory or file:// URL); "
        "unset = the data dir.",
    )
    catalog_url: str | None = Field(
        default=None,
        description="The dataset catalog: a directory, file:// or s3://bucket/prefix URL; "
        "unset = <store>/catalog.",
    )
    namespace: str = Field(
        default="local", description="The catalog namespace the CLI imports into and reads."
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="An S3-compatible server's URL (unset = AWS)."
    )
    s3_key: str | None = Field(default=None, description="S3 access key id.")
    s3_secret: str | None = Field(default=None, description="S3 secret access key.", repr=False)
    s3_region: str | None = Field(default=None, description="S3 region name.")
    max_run_minutes: int = Field(
        default=360,
        ge=1,
        description="A flow run Running longer than this is cancelled by the "
        "alphaforge-long-runs automation `alphaforge deploy` creates (the strategy engine's "
        "run is exempt).",
    )
    worker_drain_s: int = Field(
        default=60,
        ge=0,
        description="Seconds a stopping worker (serve's SIGTERM) lets its running flow runs "
        "finish before it ends them.",
    )
    log_format: LogFormat = Field(
        default="text",
        description="json: the API, worker, flow-run and engine processes log one JSON object "
        "per line (ts, level, logger, message, context fields).",
    )

    @property
    def root(self) -> Path:
        """The data dir as an absolute path."""
        return self.data_dir.expanduser().resolve()

    @property
    def store_root(self) -> Path:
        """The shared store's root directory (the data dir unless ``store_url`` says)."""
        if not self.store_url:
            return self.root
        url = self.store_url.removeprefix("file://")
        if "://" in url:
            raise ValueError(
                f"ALPHAFORGE_STORE_URL={self.store_url!r}: the run store must be a directory or "
                "file:// URL every worker mounts (object storage holds artifacts only, through "
                "ALPHAFORGE_ARTIFACT_STORE_URL)"
            )
        return Path(url).expanduser().resolve()

    @property
    def catalog_location(self) -> str:
        """The catalog's URL: ``catalog_url``, else ``catalog/`` in the store (the data dir
        unless ``store_url`` says), which every worker mounts."""
        return self.catalog_url or str(self.store_root / "catalog")

    @property
    def store_location(self) -> str:
        """The store as a run spec names it (an absolute directory)."""
        return str(self.store_root)

    @property
    def runs_dir(self) -> Path:
        """Where each run's directory goes (in the store)."""
        return self.store_root / "runs"

    @property
    def artifacts_dir(self) -> Path:
        """The local artifact store (in the store)."""
        return self.store_root / "artifacts"

    @property
    def custom_nodes_dir(self) -> Path:
        """Custom nodes' manifests and code, by code hash (in the store)."""
        return self.store_root / "custom-nodes"

    def store_ref(self, path: Path) -> str:
        """``store:<relative path>`` for a path inside the store (ValueError outside it)."""
        rel = Path(path).resolve().relative_to(self.store_root)
        return f"{STORE_PREFIX}{rel.as_posix()}"

    def resolve_ref(self, ref: str) -> Path:
        """The local path of a ``store:`` reference, or ``ref`` itself as a path."""
        if not ref.startswith(STORE_PREFIX):
            return Path(ref)
        rel = Path(ref.removeprefix(STORE_PREFIX))
        if rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"store reference {ref!r} must stay inside the store")
        return self.store_root / rel

    def with_store(self, store_url: str | None, tracking_uri: str | None = None) -> CoreSettings:
        """These settings with another store and MLflow tracking URI (None: unchanged)."""
        update: dict[str, str] = {}
        if store_url and store_url != self.store_url:
            update["store_url"] = store_url
        if tracking_uri and tracking_uri != self.mlflow_uri:
            update["mlflow_tracking_uri"] = tracking_uri
        return self.model_copy(update=update) if update else self

    @property
    def prefect_home(self) -> Path:
        """PREFECT_HOME for the embedded Prefect."""
        return self.root / "prefect"

    @property
    def mlflow_uri(self) -> str:
        """The MLflow tracking URI in force."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def mlflow_artifacts_uri(self) -> str:
        """Where MLflow stores run artifacts with a SQLite store: ``mlartifacts/`` beside the
        database (the embedded one under the data dir, or a configured ``sqlite:///`` file).
        Never MLflow's own default, ``./mlruns`` of whichever process creates the experiment:
        Prefect runs each flow run in a working directory of its own, so a later run (a
        ``predict`` of a registered model) would look for the files somewhere else."""
        prefix = "sqlite:///"
        uri = self.mlflow_uri
        if uri.startswith(prefix) and not uri.endswith(":memory:"):
            database = Path(uri[len(prefix) :].split("?", 1)[0]).resolve()
            return (database.parent / "mlartifacts").as_uri()
        return (self.root / "mlartifacts").as_uri()

    @property
    def mlflow_artifact_root(self) -> str | None:
        """The artifact root new experiments get: :attr:`mlflow_artifacts_uri` for a SQLite
        store; None for a tracking server (it decides where its artifacts go)."""
        return self.mlflow_artifacts_uri if self.mlflow_uri.startswith("sqlite:///") else None

    def apply_prefect_env(self) -> None:
        """Point Prefect at the configured server (or the embedded one), telemetry off.

        Must run before ``prefect`` is imported; the CLI and flows call it first thing.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("PREFECT_HOME", str(self.prefect_home))
        os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        os.environ.setdefault("DO_NOT_TRACK", "1")
        os.environ[EPHEMERAL_STARTUP_TIMEOUT_ENV] = str(self.prefect_startup_timeout_s)
        if self.prefect_api_url:
            os.environ["PREFECT_API_URL"] = self.prefect_api_url
        apply_log_format_env(self.log_format)


def prefect_startup_failure(exc: BaseException, settings: CoreSettings) -> str | None:
    """What to do when ``exc`` (or its cause) is the embedded Prefect server's start-up time-out;
    None for any other error."""
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in chain:  # the error, its cause, the cause's cause...
        chain.append(link)
        link = link.__cause__ or link.__context__
    if not any(_EPHEMERAL_TIMEOUT_ERROR in str(e) for e in chain):
        return None
    return (
        "the embedded Prefect server did not start within "
        f"{settings.prefect_startup_timeout_s} s (the machine is probably busy, or this is the "
        "first run on this data dir and Prefect is still creating its database). Run again with "
        "a longer time-out, e.g. ALPHAFORGE_PREFECT_STARTUP_TIMEOUT_S="
        f"{max(300, 2 * settings.prefect_startup_timeout_s)}, or point Alpha Forge at a running "
        "Prefect server: start one with `prefect server start` (or `alphaforge serve`) and set "
        "ALPHAFORGE_PREFECT_API_URL=http://127.0.0.1:4200/api"
    )


STORE_PREFIX = "store:"


@lru_cache(maxsize=1)
def get_settings() -> CoreSettings:
    """The process-wide settings (read once from the environment)."""
    return CoreSettings()


_IN_PROCESS: ContextVar[CoreSettings | None] = ContextVar("alphaforge_settings", default=None)


@contextmanager
def using_settings(settings: CoreSettings) -> Iterator[None]:
    """Inside the block, :func:`current_settings` is ``settings``: a caller that runs the flow
    in its own process (the CLI's ``--data-dir``, tests) hands the flow its settings this way;
    a worker's flow-run process has none and uses its environment's."""
    token = _IN_PROCESS.set(settings)
    try:
        yield
    finally:
        _IN_PROCESS.reset(token)


def current_settings() -> CoreSettings:
    """The settings of the caller running the flow in this process, else the process's own."""
    return _IN_PROCESS.get() or get_settings()
