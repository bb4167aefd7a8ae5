"""The embedded MLflow store survives a process killed while MLflow builds it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from flows.tracking import mlflow_client

ROOT = Path(__file__).resolve().parents[2]

BUILD = """
import sys
from flows.tracking import mlflow_client
mlflow_client(sys.argv[1]).search_experiments(max_results=1)
"""


def test_a_store_build_killed_midway_leaves_no_broken_store(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    proc = subprocess.Popen(
        [sys.executable, "-c", BUILD, uri],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(tmp_path.glob(".mlflow.db.building-*")):
            assert proc.poll() is None, "the build ended before its file appeared"
            time.sleep(0.01)
        time.sleep(0.3)  # inside MLflow's table creation and migrations
        assert proc.poll() is None, "the build finished before the kill (the test proves nothing)"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not db.exists()  # half a store is never in place

    client = mlflow_client(uri)  # the next open builds it whole
    exp = client.create_experiment("after-the-kill")
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "sharpe", 1.5)
    assert client.get_run(run.info.run_id).data.metrics == {"sharpe": 1.5}
    assert db.exists()
    assert not list(tmp_path.glob(".mlflow.db.building-*"))  # the killed one's copy and ours
