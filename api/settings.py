"""The web app's settings: one pydantic-settings class that refuses unsafe defaults.

Extends :class:`flows.settings.CoreSettings` (data dir, Prefect, MLflow) with what only the API
needs. In production (``ALPHAFORGE_ENV=production``) the secret key must be given and strong; in
development it is generated once and kept in the data dir (``secret_key``, mode 0600), so tokens
survive restarts without anyone choosing a weak default.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from flows.settings import CoreSettings

_REPO_ROOT = Path(__file__).resolve().parents[1]
MIN_SECRET_KEY_LENGTH = 32


class ApiSettings(CoreSettings):
    """Settings of the web API (env prefix ``ALPHAFORGE_``)."""

    env: Literal["development", "production"] = Field(
        default="development", description="production refuses every unsafe default."
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL (postgresql+psycopg://...); unset = SQLite in the data dir.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs the bearer tokens. Required in production; generated in development.",
    )
    token_ttl_minutes: int = Field(default=12 * 60, ge=1, le=30 * 24 * 60)
    admin_password: SecretStr | None = Field(
        default=None, description="The bootstrap admin's password; unset = generated and printed."
    )
    login_max_failures: int = Field(
        default=5, ge=1, description="Failed log-ins per account and address before a 429."
    )
    login_window_s: int = Field(
        default=300, ge=1, description="The window (seconds) failed log-ins are counted over."
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest request body, uploads excepted."
    )
    max_upload_bytes: int = Field(
        default=100 * 1024 * 1024, ge=1024, description="Largest dataset upload (whole request)."
    )
    max_dsl_chars: int = Field(default=256 * 1024, ge=100, description="Longest pipeline source.")
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed cross-site; empty = CORS off."
    )
    public_url: str | None = Field(
        default=None, description="The app's external URL (share links); unset = relative links."
    )
    ui_dist_dir: Path = Field(
        default=_REPO_ROOT / "ui" / "dist", description="The built UI; served at / if it exists."
    )
    mlflow_ui_url: str | None = Field(
        default=None,
        description="The MLflow UI runs link to (`serve --with-mlflow-ui` sets it); unset = no "
        "MLflow links.",
    )
    prefect_ui_url: str | None = Field(
        default=None,
        description="The Prefect UI runs link to; unset = derived from the Prefect API URL.",
    )
    prefect_ui: bool = Field(
        default=True,
        description="Whether the Prefect server has a UI to link to (`serve` without "
        "--with-prefect-ui starts its server without one: no Prefect links).",
    )
    prefect_database_url: str | None = Field(
        default=None,
        description="The database of the Prefect server `serve` starts (postgresql+asyncpg://"
        "...); unset = `<app database>_prefect` when the app is on PostgreSQL, else SQLite in "
        "the data dir.",
    )
    work_pool: str = Field(
        default="alphaforge",
        min_length=1,
        description="The Prefect work pool web runs go to (its workers must share the store).",
    )
    sweep_workers: int = Field(
        default=2,
        ge=1,
        le=256,
        description="Workers a sweep started from the web app spreads its chunks over (the "
        "chunks are flow runs on the work pool: any of its workers takes one).",
    )
    node_lab_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a custom node's test run or look-ahead check may take on a worker "
        "beyond the node's wall-time limit (starting the flow run); then 504 and it is cancelled.",
    )

    sandbox_per_user: int = Field(
        default=2,
        ge=1,
        description="Test runs and look-ahead checks one user may have running at once (as "
        "many more may wait in the queue); beyond that 429 with Retry-After.",
    )
    sandbox_total: int = Field(
        default_factory=lambda: max(2, os.cpu_count() or 2),
        ge=1,
        description="Test runs and look-ahead checks running at once in all (default: the "
        "number of cores, at least 2).",
    )
    sandbox_queue: int = Field(
        default=4,
        ge=0,
        description="Test runs and look-ahead checks that may wait for a free slot in all; "
        "when the queue is full the next gets 429 with Retry-After.",
    )
    sandbox_queue_wait_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a queued test run or look-ahead check waits for a slot before 429.",
    )
    graceful_stop_s: int = Field(
        default=10,
        ge=0,
        le=300,
        description="Seconds a stop (SIGTERM) lets in-flight API requests finish; then "
        "they are cut.",
    )
    ready_timeout_s: float = Field(
        default=2.0,
        gt=0,
        le=30,
        description="Seconds each check of GET /readyz (database, Prefect, MLflow) may take "
        "before it counts as failed.",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses (or networks, e.g. 10.0.0.0/8) of reverse proxies whose "
        "X-Forwarded-For / X-Forwarded-Proto headers are believed; empty = none (the peer "
        "address is the client, also for the log-in throttle).",
    )

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> ApiSettings:
        if self.env != "production":
            return self
        key = self.secret_key.get_secret_value() if self.secret_key else ""
        if len(key) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(
                "ALPHAFORGE_SECRET_KEY must be set to at least "
                f"{MIN_SECRET_KEY_LENGTH} random characters in production"
            )
        if "*" in self.cors_origins:
            raise ValueError("ALPHAFORGE_CORS_ORIGINS may not be '*' in production")
        return self

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """``ALPHAFORGE_TRUSTED_PROXIES=10.0.0.5,10.1.0.0/16`` (a JSON list works too)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [p.strip() for p in text.split(",") if p.strip()]
        return value

    @property
    def db_url(self) -> str:
        """The database URL in force: the configured one, else SQLite in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.root / 'alphaforge.db'}"

    @property
    def datasets_dir(self) -> Path:
        """Where uploaded datasets are stored as Parquet, under server-generated keys (in the
        store: workers read them there)."""
        return self.store_root / "datasets"

    @cached_property
    def signing_key(self) -> str:
        """The key that signs tokens: configured, or (development only) kept in the data dir."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        if self.env == "production":  # unreachable: the validator refuses it
            raise ValueError("ALPHAFORGE_SECRET_KEY is required in production")
        return _development_key(self.root / "secret_key")

    @property
    def derived_prefect_ui_url(self) -> str | None:
        """The Prefect UI link: configured, or derived from a Prefect server's API URL; None
        when the server has no UI (``prefect_ui`` false)."""
        if not self.prefect_ui:
            return None
        if self.prefect_ui_url:
            return self.prefect_ui_url
        if self.prefect_api_url and self.prefect_api_url.rstrip("/").endswith("/api"):
            return self.prefect_api_url.rstrip("/")[: -len("/api")]
        return None


def _development_key(path: Path) -> str:
    """Read the development key, creating it (0600, never overwritten) on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


def _read_key(path: Path) -> str:
    # Another process may have created the file a moment ago and still be writing it.
    for _ in range(50):
        key = path.read_text().strip()
        if key:
            break
        time.sleep(0.02)
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise ValueError(f"{path} holds a key shorter than {MIN_SECRET_KEY_LENGTH} characters")
    if path.stat().st_mode & 0o077:
        raise ValueError(f"{path} is readable by other users; chmod 600 it")
    return key
