"""Running the API: the admin bootstrap and the uvicorn server ``alphaforge serve`` calls."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

import uvicorn
from sqlmodel import Session

from api.db import make_engine, run_migrations
from api.main import create_app
from api.services.users import ensure_admin as _ensure_admin
from api.settings import ApiSettings
from flows.logformat import configure_logging, uvicorn_log_config


def ensure_admin(settings: ApiSettings) -> str | None:
    """Migrate the database and create the ``admin`` user on first start.

    Returns the generated password (print it once) or None when the admin already existed or
    its password came from ``ALPHAFORGE_ADMIN_PASSWORD``.
    """
    engine = make_engine(settings.db_url)
    try:
        run_migrations(engine)
        with Session(engine) as session:
            return _ensure_admin(session, settings)
    finally:
        engine.dispose()


def serve(host: str = "127.0.0.1", port: int = 8000, settings: ApiSettings | None = None) -> None:
    """Run the API (and the built UI) with uvicorn until interrupted.

    Creates the admin on first start and prints a generated password once.
    """
    settings = settings or ApiSettings()
    configure_logging(settings.log_format)
    password = ensure_admin(settings)
    if password is not None:
        print(
            f"Created user 'admin' with password: {password}\n"
            "(shown once; you will be asked to choose a new one at first log-in)"
        )
    server = uvicorn.Server(server_config(create_app(settings), settings, host, port))
    with suppress(KeyboardInterrupt):  # as uvicorn.run
        server.run()
    if not server.started:  # as uvicorn.run: a failed start-up is an exit status
        raise SystemExit(3)


def server_config(app: Any, settings: ApiSettings, host: str, port: int) -> uvicorn.Config:
    """uvicorn's configuration of the app: ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are
    believed only from ``settings.trusted_proxies`` (uvicorn's own default would trust any
    client on 127.0.0.1, so anyone on the host could pose as any address to the log-in
    throttle); with none configured the peer address is the client. A stop (SIGTERM, Ctrl-C)
    lets open requests finish for at most ``settings.graceful_stop_s`` (a live log stream, a
    test run in a sandbox would otherwise hold ``serve``'s Ctrl-C for minutes), and uvicorn's
    logs follow ``settings.log_format``."""
    trusted = [p.strip() for p in settings.trusted_proxies if p.strip()]
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or [],
        timeout_graceful_shutdown=settings.graceful_stop_s,
        log_config=uvicorn_log_config(settings.log_format),
    )
