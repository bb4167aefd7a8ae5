"""The one ``alphaforge serve`` that the browser tours of issue 9 onwards share.

Every browser test runs on one xdist worker (``xdist_group("browser")``), so this session
fixture starts the app once for all of them. Each tour creates its own objects under names of its
own (a suffix per tour), so tours do not see each other's work. It runs with the Prefect and
MLflow UIs (``--with-prefect-ui --with-mlflow-ui``) for the tour of the run page's links to them.

The app and Prefect's server are on PostgreSQL (a scratch database of its own, and Prefect's
beside it, both dropped afterwards), as in production: with SQLite, Prefect's server stalls for
up to a minute on "database is locked" when the machine is loaded (PrefectHQ/prefect#18934), and
every sweep chunk of the sweeps tour waited on it.

Tours that need a clean app or an environment of their own (the first tour: the test node types,
the sample's runs and every share link; the live and streams tours: PostgreSQL and the engine)
start their own.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest

from tests.api.conftest import PG_ADMIN_DSN, PG_URL_BASE
from tests.e2e.driver import PASSWORD, prerequisites
from tests.serve_process import Served, serve


@pytest.fixture(scope="session")
def shared_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A running ``alphaforge serve --with-prefect-ui --with-mlflow-ui`` (admin /
    ``PASSWORD``) with a fresh data dir, on a scratch PostgreSQL database."""
    prerequisites(docker=True)
    workdir = tmp_path_factory.mktemp("shared-serve")
    app = f"af_e2e_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{app}"')
    try:
        env = {"ALPHAFORGE_DATABASE_URL": f"{PG_URL_BASE}/{app}"}
        with serve(workdir, PASSWORD, "--with-prefect-ui", "--with-mlflow-ui", env=env) as served:
            yield served
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            for name in (app, f"{app}_prefect"):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
