"""Readiness: can this API serve requests that need its dependencies right now?

Three checks run in parallel, each bounded by ``ALPHAFORGE_READY_TIMEOUT_S``: the database (a
``SELECT 1`` on the app's engine, rolled back: nothing is ever written), the Prefect API's
``/health`` (when a Prefect server is configured), and the MLflow tracking server's ``/health``
(when the tracking URI is an HTTP server; an embedded SQLite store is a file, not a service).
A check that is not configured reports ``skipped`` and does not count. The answer names what
failed with the error's type only: the details (hosts, ports) go to the server log, not to an
unauthenticated caller.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import httpx
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from api.settings import ApiSettings

log = logging.getLogger("api.readiness")

CheckStatus = Literal["ok", "failed", "skipped"]


class Check(BaseModel):
    """One dependency's answer."""

    status: CheckStatus
    latency_ms: float | None = None
    error: str | None = None


class Readiness(BaseModel):
    """Every check; ``ready`` only when none failed (``failed`` names those that did)."""

    status: Literal["ready", "unready"]
    checks: dict[str, Check]
    failed: list[str]


def _select_one(engine: Engine) -> None:
    with engine.connect() as conn:  # closed without commit: rolled back
        conn.execute(text("SELECT 1")).scalar_one()


async def _http_health(url: str, timeout_s: float) -> None:
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        answer = await client.get(url)
    if answer.status_code != 200:
        raise RuntimeError(f"HTTP {answer.status_code}")


def mlflow_server_url(settings: ApiSettings) -> str | None:
    """The MLflow tracking server's base URL, or None when tracking is not a server."""
    uri = settings.mlflow_uri
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else None


async def _timed(name: str, probe: Callable[[], Awaitable[None]], timeout_s: float) -> Check:
    start = time.perf_counter()
    try:
        await asyncio.wait_for(probe(), timeout_s)
    except TimeoutError:
        log.warning("readiness: %s did not answer within %.1f s", name, timeout_s)
        return Check(status="failed", error=f"timed out after {timeout_s:g} s")
    except Exception as exc:  # any failure of a dependency is "not ready", never a 500
        log.warning("readiness: %s failed: %s", name, exc)
        return Check(status="failed", error=type(exc).__name__)
    return Check(status="ok", latency_ms=round((time.perf_counter() - start) * 1000, 1))


async def check_readiness(engine: Engine, settings: ApiSettings) -> Readiness:
    """Run the configured checks at once; each is bounded by ``settings.ready_timeout_s``."""
    timeout = settings.ready_timeout_s
    probes: dict[str, Callable[[], Awaitable[None]] | None] = {
        "database": lambda: run_in_threadpool(_select_one, engine),
        "prefect": None,
        "mlflow": None,
    }
    if settings.prefect_api_url:
        prefect = f"{settings.prefect_api_url.rstrip('/')}/health"
        probes["prefect"] = lambda: _http_health(prefect, timeout)
    mlflow = mlflow_server_url(settings)
    if mlflow:
        probes["mlflow"] = lambda: _http_health(f"{mlflow}/health", timeout)
    names = list(probes)
    answers = await asyncio.gather(
        *(_timed(name, probe, timeout) if probe else _skipped() for name, probe in probes.items())
    )
    checks = dict(zip(names, answers, strict=True))
    failed = [name for name, check in checks.items() if check.status == "failed"]
    return Readiness(status="unready" if failed else "ready", checks=checks, failed=failed)


async def _skipped() -> Check:
    return Check(status="skipped")
