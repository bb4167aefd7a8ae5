"""For API tests that run pipelines: the API settings pointing at the session's Prefect stack
(``prefect_stack`` in tests/conftest.py). Import ``api_settings`` into a test module to use it
(it overrides the plain one of tests/api/conftest.py) and put the module in
``xdist_group(STACK_GROUP)``."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.settings import ApiSettings
from tests.api.conftest import settings_for
from tests.deployments.fixtures import Stack

__all__ = ["api_settings"]


@pytest.fixture
def api_settings(
    db_url: str, tmp_path: Path, prefect_stack: Stack, test_nodes: None
) -> ApiSettings:
    """The API tests' settings plus the session's Prefect server; the test node types
    (``t_sleep`` ...) registered for the test, since the API compiles sources that use them."""
    return settings_for(db_url, tmp_path, prefect_api_url=prefect_stack.api_url)
