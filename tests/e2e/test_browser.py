"""The browser tour (tests/e2e/screenshots.mjs) in headless Chromium against a real
``alphaforge serve``: sample, highlighting, squiggles, fix, run to Completed, metrics and chart,
history, restore, share link read-only, the Share links page (a deleted target, revoke → "Show
revoked" lists it, the link shows not found), datasets, cancel, schedules. Screenshots land in
tests/e2e/screenshots/.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.serve_process import serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("browser")]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PASSWORD = "admin-e2e-password"


def _prerequisites() -> None:
    missing = []
    if not Path("/usr/bin/chromium").exists():
        missing.append("/usr/bin/chromium (apt-get install chromium)")
    if not (HERE / "node_modules" / "playwright-core").exists():
        missing.append("tests/e2e/node_modules (npm ci in tests/e2e)")
    if not (ROOT / "ui" / "dist" / "index.html").exists():
        missing.append("ui/dist (npm run build in ui)")
    if shutil.which("node") is None:
        missing.append("node")
    # Never skip: `make test` installs these; a missing one is a failure that says what.
    assert not missing, "browser tests need: " + ", ".join(missing)


def test_browser_tour_passes_every_step_against_alphaforge_serve(tmp_path: Path) -> None:
    _prerequisites()
    shots = HERE / "screenshots"
    if shots.exists():
        shutil.rmtree(shots)
    with serve(tmp_path, PASSWORD) as served:
        proc = subprocess.run(
            [
                "node",
                "screenshots.mjs",
                "--base-url",
                served.base,
                "--user",
                "admin",
                "--password",
                PASSWORD,
            ],
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=900,
        )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    assert "FAIL" not in proc.stdout, report
    taken = sorted(p.name for p in shots.glob("*.png"))
    # the main pages were photographed
    for page in ("01-login", "02-pipelines"):
        assert any(name.startswith(page) for name in taken), taken
    assert len(taken) >= 15, taken
