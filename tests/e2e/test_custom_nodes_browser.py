"""Custom nodes in the browser (tests/e2e/custom_nodes.mjs) against the shared ``alphaforge
serve`` (tests/e2e/conftest.py; its nodes and pipeline are named with a suffix of this tour's)
with the Docker sandbox: a Python, a JavaScript and a WebAssembly node made from templates and
edited in Monaco, test-run and saved with their look-ahead verdicts (one that looks ahead is
flagged red), then used together in a pipeline feeding built-ins that runs to Completed with
metrics. Screenshots land in tests/e2e/screenshots/cn-*.png.
"""

from __future__ import annotations

import pytest

from tests.e2e.driver import run_tour
from tests.serve_process import Served

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.docker,
    pytest.mark.xdist_group("browser"),
]


def test_custom_nodes_in_three_languages_are_written_run_and_used_in_the_browser(
    shared_serve: Served,
) -> None:
    expected = {"cn-04-python-saved-pass", "cn-09-lookahead-fail", "cn-15-run-results"}
    run_tour("custom_nodes.mjs", shared_serve.base, "cn-", expected, timeout=1200)
