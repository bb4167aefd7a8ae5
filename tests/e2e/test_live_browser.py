"""The live dashboard in the browser (tests/e2e/live.mjs) against the real API and the real
strategy engine, both on one fresh PostgreSQL database: a strategy written from the template in
Monaco, an instance of it run by ``alphaforge engine`` on the replay feed in observe mode (status,
widgets that change between polls, intents not placed), then active (orders fill, PnL moves),
its config saved as a new version, a stream pipeline (run first with ``alphaforge stream``) with
its last events and a healthy sink, and an observer's read-only view. Screenshots land in
tests/e2e/screenshots/live-*.png.

The engine runs strategies in the Docker sandbox when this tree has the Docker strategy host
(runners/docker/strategy.py) and ``AF_E2E_STRATEGY_RUNNER`` does not say otherwise; else (or
with ``AF_E2E_STRATEGY_RUNNER=process``) in the development process host, enabled by
``ALPHAFORGE_ALLOW_PROCESS_RUNNER=1`` in the engine's environment only.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deployments.stack import free_port
from tests.e2e.driver import PASSWORD, prerequisites, run_tour
from tests.pgdb import scratch_database
from tests.serve_process import ROOT, children

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("browser")]

STREAM = "live_tour_signals"
STREAM_AF = f"""pipeline {STREAM} "SMA crossover signals for the live tour"

data   = csv_ohlcv(path="data/sample_ohlcv.csv")
fast   = sma(data.close, window=5)
slow   = sma(data.close, window=20)
signal = crossover(fast, slow)

stream {{
    source = replay(speed=0, start=800)
    warmup = 40d
    every 1d
    emit signal to csv_append(path="out/signals.csv")
}}
"""

EXPECTED = {
    "live-01-editor-template",
    "live-02-editor-line-error",
    "live-03-editor-saved-config-form",
    "live-04-new-instance-dialog",
    "live-04a-new-instance-futures",
    "live-05-detail-observe-widgets",
    "live-06-confirm-active",
    "live-07-detail-active",
    "live-08-instances-list",
    "live-09-strategies-list",
    "live-10-observer-detail",
    "live-11-strategy-backtest-pipeline",
}


def _runner() -> str:
    chosen = os.environ.get("AF_E2E_STRATEGY_RUNNER")
    if chosen:
        assert chosen in ("docker", "process"), f"AF_E2E_STRATEGY_RUNNER={chosen}: docker/process"
        return chosen
    return "docker" if importlib.util.find_spec("runners.docker.strategy") else "process"


@contextlib.contextmanager
def _process(argv: list[str], env: dict[str, str], out: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``argv`` running from the repository root with its output in ``out``; killed (with its
    children) on exit."""
    with out.open("w") as sink:
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            leftovers = children(proc.pid)
            proc.send_signal(signal.SIGTERM)  # the engine unloads its instances on SIGTERM
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for child in leftovers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], out: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"the API exited early:\n{out.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"the API not healthy in {timeout_s:.0f} s:\n{out.read_text()}")
        time.sleep(0.5)


def test_a_strategy_is_written_deployed_watched_and_switched_to_active_in_the_browser(
    tmp_path: Path,
) -> None:
    runner = _runner()
    prerequisites(docker=runner == "docker")
    with scratch_database("af_e2e_live") as db_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPHAFORGE_", "PREFECT_"))}
        env |= {
            "ALPHAFORGE_DATA_DIR": str(tmp_path / "data"),
            "ALPHAFORGE_DATABASE_URL": db_url,
            "ALPHAFORGE_ADMIN_PASSWORD": PASSWORD,
            "PYTHONPATH": str(ROOT),
        }
        for passed in ("ALPHAFORGE_SANDBOX_TAG", "ALPHAFORGE_SANDBOX_IMAGE_PYTHON"):
            if passed in os.environ:  # which sandbox image the engine runs
                env[passed] = os.environ[passed]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        api = [sys.executable, "-c", f"from api.server import serve; serve(port={port})"]
        engine_env = dict(env)
        if runner == "process":
            engine_env["ALPHAFORGE_ALLOW_PROCESS_RUNNER"] = "1"  # the engine's environment only
        engine = [sys.executable, "-m", "cli.main", "engine", "--feeds-dir", "examples",
                  "--runner", runner, "--cycle-s", "1"]  # fmt: skip
        api_out, engine_out = tmp_path / "api.out", tmp_path / "engine.out"
        # a stream pipeline that ran to its end with this data dir: the dashboard lists it
        work = tmp_path / "stream"
        (work / "data").mkdir(parents=True)
        shutil.copy(ROOT / "examples" / "data" / "sample_ohlcv.csv", work / "data")
        (work / f"{STREAM}.af").write_text(STREAM_AF)
        ran = subprocess.run(
            [sys.executable, "-m", "cli.main", "stream", str(work / f"{STREAM}.af"), "--until-end",
             "--quiet"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert (work / "out" / "signals.csv").is_file(), ran.stdout
        with _process(api, env, api_out) as api_proc:
            _wait_healthy(base, api_proc, api_out, 120)
            with _process(engine, engine_env, engine_out) as engine_proc:
                try:
                    run_tour("live.mjs", base, "live-", EXPECTED, 900, ("--stream", STREAM))
                except AssertionError as exc:
                    raise AssertionError(
                        f"{exc}\n--- engine ({runner}) ---\n{engine_out.read_text()[-6000:]}"
                    ) from None
                assert engine_proc.poll() is None, engine_out.read_text()
        log = engine_out.read_text()
        assert "engine stopped: every instance unloaded" in log, log[-4000:]
        assert "Traceback" not in log, log[-6000:]
