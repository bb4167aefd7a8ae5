"""Deployed stream pipelines in the browser (tests/e2e/streams.mjs) against the real API and
the real engine (``alphaforge engine``: it runs the deployed stream pipelines too), both on one
fresh PostgreSQL database: a batch pipeline refused in the Deploy dialog, a stream pipeline
deployed, started (the engine runs it; last events and a healthy sink appear and grow),
stopped (asked first; no engine holds it afterwards). Screenshots land in
tests/e2e/screenshots/streams-*.png."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from deployments.stack import free_port
from tests.e2e.driver import PASSWORD, prerequisites, run_tour
from tests.e2e.test_live_browser import _process, _wait_healthy
from tests.pgdb import scratch_database
from tests.serve_process import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("browser")]

EXPECTED = {
    "streams-01-deploy-refused",
    "streams-02-deploy-dialog",
    "streams-03-running",
    "streams-04-stopped",
    "streams-05-live-page",
}


def test_a_stream_pipeline_is_deployed_started_watched_and_stopped_in_the_browser(
    tmp_path: Path,
) -> None:
    prerequisites()
    with scratch_database("af_e2e_streams") as db_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ALPHAFORGE_", "PREFECT_"))}
        env |= {
            "ALPHAFORGE_DATA_DIR": str(tmp_path / "data"),
            "ALPHAFORGE_DATABASE_URL": db_url,
            "ALPHAFORGE_ADMIN_PASSWORD": PASSWORD,
            "PYTHONPATH": str(ROOT),
        }
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        api = [sys.executable, "-c", f"from api.server import serve; serve(port={port})"]
        engine = [sys.executable, "-m", "cli.main", "engine", "--cycle-s", "0.5"]
        api_out, engine_out = tmp_path / "api.out", tmp_path / "engine.out"
        with _process(api, env, api_out) as api_proc:
            _wait_healthy(base, api_proc, api_out, 120)
            with _process(engine, env, engine_out) as engine_proc:
                try:
                    run_tour("streams.mjs", base, "streams-", EXPECTED, 600)
                except AssertionError as exc:
                    raise AssertionError(
                        f"{exc}\n--- engine ---\n{engine_out.read_text()[-6000:]}"
                    ) from None
                assert engine_proc.poll() is None, engine_out.read_text()
        log = engine_out.read_text()
        assert "Traceback" not in log, log[-6000:]
        written = list((tmp_path / "data" / "workspace" / "out").glob("tour_signals_*.csv"))
        assert len(written) == 1 and written[0].stat().st_size > 0  # the sink's file
