"""Core settings: where data lives and which Prefect / MLflow to talk to.

Embedded defaults need nothing started by hand: Prefect's ephemeral server and MLflow's SQLite
store live under the data dir (``./.alphaforge`` unless ``ALPHAFORGE_DATA_DIR`` says otherwise).
Setting ``ALPHAFORGE_PREFECT_API_URL`` or ``ALPHAFORGE_MLFLOW_TRACKING_URI`` switches to real
services.

The embedded Prefect server is started by the first run of a process and, on a fresh data dir,
creates its database first: Prefect gives it 20 s, which a loaded machine exceeds. We give it
``ALPHAFORGE_PREFECT_STARTUP_TIMEOUT_S`` (120 s); :func:`prefect_startup_failure` turns Prefect's
time-out error into what to do about it.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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
        default=None, description="fsspec URL of the artifact store; unset = data_dir/artifacts."
    )

    @property
    def root(self) -> Path:
        """The data dir as an absolute path."""
        return self.data_dir.expanduser().resolve()

    @property
    def runs_dir(self) -> Path:
        """Where each run's directory goes."""
        return self.root / "runs"

    @property
    def artifacts_dir(self) -> Path:
        """The local artifact store."""
        return self.root / "artifacts"

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
        """Where MLflow stores run artifacts when it uses the embedded store."""
        return (self.root / "mlartifacts").as_uri()

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


@lru_cache(maxsize=1)
def get_settings() -> CoreSettings:
    """The process-wide settings (read once from the environment)."""
    return CoreSettings()
