"""examples/tick_grid_mm.af end to end through `alphaforge run`: the synthetic book, the grid
market maker in hftbacktest, the result files and the MLflow record (params and metrics, fill
statistics included); a second run is served from the artifact cache with the same numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "tick_grid_mm.af"
ALPHAFORGE = Path(sys.executable).parent / "alphaforge"

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]


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


def test_the_tick_grid_market_maker_example_runs_from_the_cli(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    data_dir = tmp_path / "data"
    first = _run(data_dir)
    assert first["status"] == "completed", first["error"]
    assert first["node_states"] == {"book": "completed", "result": "completed"}
    m = first["metrics"]
    assert m["events"] > 10_000 and m["fills"] > 20
    assert m["maker_fills"] == m["fills"]  # post-only quotes: every fill is a maker fill
    assert m["total_fees"] == pytest.approx(-0.5e-4 * m["traded_value"])  # the rebate
    assert 0 < m["fill_ratio"] < 1 and m["queue_time_median_ms"] >= 2.0  # ≥ the entry latency
    assert m["max_abs_inventory"] <= 10 + 5  # max_position, plus quotes already in flight
    run_dir = Path(first["run_dir"])
    equity = pd.read_parquet(run_dir / "equity.parquet")
    assert {"mid", "inventory", "position"} <= set(equity.columns)
    assert equity["equity"].iloc[-1] == pytest.approx(m["final_equity"])
    assert len(equity) == m["bars"]
    trades = pd.read_csv(run_dir / "trades.csv")
    assert (~trades["is_open"]).sum() == m["num_trades"] > 0
    # MLflow: the params as written in the example, every numeric metric
    client = MlflowClient(tracking_uri=f"sqlite:///{data_dir / 'mlflow.db'}")
    run = client.get_run(first["mlflow_run_id"])
    assert float(run.data.params["result.half_spread_ticks"]) == 2.0
    assert run.data.params["result.queue_model"] == "power_prob"
    for key in ("fills", "fill_ratio", "maker_fees", "max_abs_inventory", "sharpe"):
        assert run.data.metrics[key] == pytest.approx(m[key])
    again = _run(data_dir)
    assert again["node_states"] == {"book": "cached", "result": "cached"}
    assert again["metrics"] == m
