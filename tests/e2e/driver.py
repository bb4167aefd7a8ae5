"""What the browser tests share: the prerequisites check and running one tour script of
``tests/e2e`` against a served app (:func:`run_tour`: with its screenshots checked)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PASSWORD = "admin-e2e-password"


def prerequisites(*, docker: bool = False) -> None:
    """Fail (never skip: `make test` installs these) naming whatever is missing."""
    missing = []
    if not Path("/usr/bin/chromium").exists():
        missing.append("/usr/bin/chromium (apt-get install chromium)")
    if not (HERE / "node_modules" / "playwright-core").exists():
        missing.append("tests/e2e/node_modules (npm ci in tests/e2e)")
    if not (ROOT / "ui" / "dist" / "index.html").exists():
        missing.append("ui/dist (npm run build in ui)")
    if shutil.which("node") is None:
        missing.append("node")
    if docker and shutil.which("docker") is None:
        missing.append("docker (the sandbox runs custom nodes)")
    assert not missing, "browser tests need: " + ", ".join(missing)


def run_script(script: str, base_url: str, timeout: float, extra: tuple[str, ...] = ()) -> None:
    """Run ``node <script>`` as admin against ``base_url`` (with ``extra`` arguments); assert it
    passed every step (the assertion message is its whole output)."""
    proc = subprocess.run(
        ["node", script, "--base-url", base_url, "--user", "admin", "--password", PASSWORD, *extra],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    assert "FAIL" not in proc.stdout, report


def run_tour(
    script: str,
    base_url: str,
    prefix: str,
    expected: set[str],
    timeout: float,
    extra: tuple[str, ...] = (),
) -> None:
    """Run tour ``script`` (see :func:`run_script`) after removing its old screenshots
    (``screenshots/<prefix>*.png``); assert it took every one of ``expected`` (stems) and no
    ``<prefix>fail-*`` one (a tour's failure shot)."""
    shots = HERE / "screenshots"
    for old in shots.glob(f"{prefix}*.png"):
        old.unlink()
    run_script(script, base_url, timeout, extra)
    taken = {p.stem for p in shots.glob(f"{prefix}*.png")}
    assert expected <= taken, sorted(expected - taken)
    assert not any(name.startswith(f"{prefix}fail-") for name in taken), sorted(taken)
