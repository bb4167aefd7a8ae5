"""The browser tour (tests/e2e/screenshots.mjs) in headless Chromium against a real
``alphaforge serve``: sample, highlighting, squiggles, fix, run to Completed, metrics and chart,
history, restore, share link read-only, the Share links page (a deleted target, revoke → "Show
revoked" lists it, the link shows not found), datasets, cancel, schedules. Screenshots land in
tests/e2e/screenshots/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deployments.flow import EXTRA_NODE_MODULES_ENV
from tests.e2e.driver import HERE, PASSWORD, prerequisites, run_script
from tests.serve_process import serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("browser")]


def test_browser_tour_passes_every_step_against_alphaforge_serve(tmp_path: Path) -> None:
    prerequisites()
    shots = HERE / "screenshots"
    if shots.exists():
        shutil.rmtree(shots)
    # the test node types (t_sleep): the cancel step needs a run that lasts
    env = {EXTRA_NODE_MODULES_ENV: "tests.deployments.slownodes"}
    with serve(tmp_path, PASSWORD, env=env) as served:
        run_script("screenshots.mjs", served.base, timeout=900)
    taken = sorted(p.name for p in shots.glob("*.png"))
    # the main pages were photographed
    for page in ("01-login", "02-pipelines"):
        assert any(name.startswith(page) for name in taken), taken
    assert len(taken) >= 15, taken
