"""The one ``alphaforge serve`` that the browser tours of issue 9 onwards share.

Every browser test runs on one xdist worker (``xdist_group("browser")``), so this session
fixture starts the app once for all of them. Each tour creates its own objects under names of its
own (a suffix per tour), so tours do not see each other's work. It runs with the Prefect and
MLflow UIs (``--with-prefect-ui --with-mlflow-ui``) for the tour of the run page's links to them.

Tours that need a clean app or an environment of their own (the first tour: the test node types,
the sample's runs and every share link; the live and streams tours: PostgreSQL and the engine)
start their own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.driver import PASSWORD, prerequisites
from tests.serve_process import Served, serve


@pytest.fixture(scope="session")
def shared_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A running ``alphaforge serve --with-prefect-ui --with-mlflow-ui`` (admin /
    ``PASSWORD``) with a fresh data dir."""
    prerequisites(docker=True)
    workdir = tmp_path_factory.mktemp("shared-serve")
    with serve(workdir, PASSWORD, "--with-prefect-ui", "--with-mlflow-ui") as served:
        yield served
