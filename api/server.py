"""Running the API: the admin bootstrap and the uvicorn server ``alphaforge serve`` calls."""

from __future__ import annotations

import uvicorn
from sqlmodel import Session

from api.db import make_engine, run_migrations
from api.main import create_app
from api.services.users import ensure_admin as _ensure_admin
from api.settings import ApiSettings


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
    password = ensure_admin(settings)
    if password is not None:
        print(
            f"Created user 'admin' with password: {password}\n"
            "(shown once; you will be asked to choose a new one at first log-in)"
        )
    uvicorn.run(create_app(settings), host=host, port=port, proxy_headers=True)
