"""examples/tick_custom_strategy.af end to end through `alphaforge run`: the synthetic book, the
custom grid module (examples/strategies/tick_grid.py) in the Docker sandbox driving hftbacktest,
the result files and the MLflow record (the module's config keys as params); a second run is
served from the artifact cache with the same numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "tick_custom_strategy.af"
ALPHAFORGE = Path(sys.executable).parent / "alphaforge"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.docker,
    pytest.mark.usefixtures("prefect_api", "docker_engine"),
]


def _run(data_dir: Path) -> dict:  # type: ignore[type-arg]
    proc = subprocess.run(
        [str(ALPHAFORGE), "run", str(EXAMPLE), "--json", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_the_custom_tick_strategy_example_runs_from_the_cli(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    data_dir = tmp_path / "data"
    first = _run(data_dir)
    assert first["status"] == "completed", first["error"]
    assert first["node_states"] == {"book": "completed", "result": "completed"}
    m = first["metrics"]
    assert m["events"] > 5_000 and m["fills"] > 10
    assert 1_190 <= m["steps"] <= 1_200  # 120 s at 100 ms
    assert m["maker_fills"] == m["fills"]  # post-only quotes
    assert m["total_fees"] == pytest.approx(-0.5e-4 * m["traded_value"])  # the rebate
    assert m["queue_time_median_ms"] >= 2.0  # at least the entry latency
    assert m["max_abs_inventory"] <= 10 + 6
    equity = pd.read_parquet(Path(first["run_dir"]) / "equity.parquet")
    assert equity["equity"].iloc[-1] == pytest.approx(m["final_equity"])
    client = MlflowClient(tracking_uri=f"sqlite:///{data_dir / 'mlflow.db'}")
    run = client.get_run(first["mlflow_run_id"])
    assert float(run.data.params["result.levels"]) == 3
    assert run.data.params["result.strategy"] == "strategies/tick_grid.py"
    assert run.data.metrics["fills"] == m["fills"]
    again = _run(data_dir)
    assert again["node_states"] == {"book": "cached", "result": "cached"}
    assert again["metrics"] == m
