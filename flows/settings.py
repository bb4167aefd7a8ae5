"""Core settings: where data lives and which Prefect / MLflow to talk to.

Embedded defaults need nothing started by hand: Prefect's ephemeral server and MLflow's SQLite
store live under the data dir (``./.alphaforge`` unless ``ALPHAFORGE_DATA_DIR`` says otherwise).
Setting ``ALPHAFORGE_PREFECT_API_URL`` or ``ALPHAFORGE_MLFLOW_TRACKING_URI`` switches to real
services.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CoreSettings(BaseSettings):
    """Settings shared by the CLI, the flows and the API (env prefix ``ALPHAFORGE_``)."""

    model_config = SettingsConfigDict(env_prefix="ALPHAFORGE_", extra="ignore")

    data_dir: Path = Field(default=Path(".alphaforge"), description="Root of all local state.")
    prefect_api_url: str | None = Field(
        default=None, description="A Prefect server's API URL; unset = ephemeral server."
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
        if self.prefect_api_url:
            os.environ["PREFECT_API_URL"] = self.prefect_api_url


@lru_cache(maxsize=1)
def get_settings() -> CoreSettings:
    """The process-wide settings (read once from the environment)."""
    return CoreSettings()
