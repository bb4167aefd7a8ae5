"""The FastAPI application factory: wires settings, database, middleware, routers and the UI.

Nothing but wiring lives here; the logic is in ``api/services`` and the routes in
``api/routes``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from api.db import make_engine, run_migrations
from api.errors import install_error_handlers
from api.middleware import (
    BodyLimitMiddleware,
    RequestIdMiddleware,
    SecurityHeadersMiddleware,
    default_message,
    size_text,
)
from api.routes import ROUTERS
from api.services.language import warm_up
from api.services.login_throttle import LoginThrottle
from api.services.prefect_sync import run_sync_loop
from api.services.sandbox_limits import SandboxLimits
from api.settings import ApiSettings
from api.spa import SPAStaticFiles

UPLOAD_ROUTES = {("POST", "/api/datasets")}


def _sandbox_limits(settings: ApiSettings) -> SandboxLimits:
    return SandboxLimits(
        settings.sandbox_per_user,
        settings.sandbox_total,
        settings.sandbox_queue,
        settings.sandbox_queue_wait_s,
    )


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """A configured app. The database is migrated to the latest schema at start-up."""
    settings = settings or ApiSettings()
    engine = make_engine(settings.db_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(run_migrations, engine)
        await run_in_threadpool(warm_up)
        app.state.sandbox_limits = _sandbox_limits(settings)  # fresh threads for each start
        # Run status sync (only with a Prefect server: without one no run can start).
        sync = (
            asyncio.create_task(run_sync_loop(engine, settings))
            if settings.prefect_api_url
            else None
        )
        yield
        if sync is not None:
            sync.cancel()
            with suppress(asyncio.CancelledError):
                await sync
        app.state.sandbox_limits.close()
        engine.dispose()

    app = FastAPI(
        title="Alpha Forge",
        version="1",
        lifespan=lifespan,
        openapi_url="/api/openapi.json",
        docs_url=None,  # Swagger/ReDoc load scripts from a CDN: blocked by our CSP, and offline
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.login_throttle = LoginThrottle(settings.login_max_failures, settings.login_window_s)
    app.state.sandbox_limits = _sandbox_limits(settings)
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)

    def limit_for(method: str, path: str) -> int:
        if (method, path.rstrip("/")) in UPLOAD_ROUTES:
            return settings.max_upload_bytes
        return settings.max_body_bytes

    def message_for(method: str, path: str, limit: int) -> str:
        if (method, path.rstrip("/")) in UPLOAD_ROUTES:
            return (
                f"The upload is larger than the limit of {size_text(limit)} "
                "(ALPHAFORGE_MAX_UPLOAD_BYTES): nothing was stored. Upload a smaller file "
                "(split it by date) or ask your operator to raise the limit."
            )
        return default_message(method, path, limit)

    app.add_middleware(BodyLimitMiddleware, limit_for=limit_for, message_for=message_for)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        )
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.env == "production")
    app.add_middleware(RequestIdMiddleware)  # outermost: every answer carries the id
    if settings.ui_dist_dir.is_dir():
        app.mount("/", SPAStaticFiles(settings.ui_dist_dir), name="ui")
    return app
