"""Custom nodes in the browser (tests/e2e/custom_nodes.mjs) against a real ``alphaforge serve``
with the Docker sandbox: a Python, a JavaScript and a WebAssembly node made from templates and
edited in Monaco, test-run and saved with their look-ahead verdicts (one that looks ahead is
flagged red), then used together in a pipeline feeding built-ins that runs to Completed with
metrics. Screenshots land in tests/e2e/screenshots/cn-*.png.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.serve_process import serve

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.docker,
    pytest.mark.xdist_group("browser"),
]

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
    if shutil.which("docker") is None:
        missing.append("docker (the sandbox runs custom nodes)")
    # Never skip: `make test` installs these; a missing one is a failure that says what.
    assert not missing, "browser tests need: " + ", ".join(missing)


def test_custom_nodes_in_three_languages_are_written_run_and_used_in_the_browser(
    tmp_path: Path,
) -> None:
    _prerequisites()
    shots = HERE / "screenshots"
    for old in shots.glob("cn-*.png"):
        old.unlink()
    with serve(tmp_path, PASSWORD) as served:
        proc = subprocess.run(
            [
                "node",
                "custom_nodes.mjs",
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
            timeout=1200,
        )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    assert "FAIL" not in proc.stdout, report
    taken = {p.stem for p in shots.glob("cn-*.png")}
    for name in ("cn-04-python-saved-pass", "cn-09-lookahead-fail", "cn-15-run-results"):
        assert name in taken, sorted(taken)
