"""Custom nodes in the browser (tests/e2e/custom_nodes.mjs) against a real ``alphaforge serve``
with the Docker sandbox: a Python, a JavaScript and a WebAssembly node made from templates and
edited in Monaco, test-run and saved with their look-ahead verdicts (one that looks ahead is
flagged red), then used together in a pipeline feeding built-ins that runs to Completed with
metrics. Screenshots land in tests/e2e/screenshots/cn-*.png.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.driver import PASSWORD, prerequisites, run_tour
from tests.serve_process import serve

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.docker,
    pytest.mark.xdist_group("browser"),
]


def test_custom_nodes_in_three_languages_are_written_run_and_used_in_the_browser(
    tmp_path: Path,
) -> None:
    prerequisites(docker=True)
    expected = {"cn-04-python-saved-pass", "cn-09-lookahead-fail", "cn-15-run-results"}
    with serve(tmp_path, PASSWORD) as served:
        run_tour("custom_nodes.mjs", served.base, "cn-", expected, timeout=1200)
