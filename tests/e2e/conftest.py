"""The one ``alphaforge serve`` that the browser tours of issue 9 onwards share.

Every browser test runs on one xdist worker (``xdist_group("browser")``), so this session
fixture starts the app once for all of them. Each tour creates its own objects under names of its
own (a suffix per tour), so tours do not see each other's work.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.driver import PASSWORD, prerequisites
from tests.serve_process import Served, serve


@pytest.fixture(scope="session")
def shared_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A running ``alphaforge serve`` (admin / ``PASSWORD``) with a fresh data dir."""
    prerequisites(docker=True)
    with serve(tmp_path_factory.mktemp("shared-serve"), PASSWORD) as served:
        yield served
