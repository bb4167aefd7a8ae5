"""`alphaforge run` of a pipeline on a 3-symbol CSV: loader → per-symbol returns → top_n."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runners.io import read_value
from tests.nodes.panels import long_panel, three_symbols

ALPHAFORGE = Path(sys.executable).parent / "alphaforge"

ROTATION = """pipeline rotation "Momentum rotation"
data = csv_ohlcv(path="prices.csv")
mom  = returns(data.close, periods=5)
w    = top_n(mom, n=1)
"""


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_a_rotation_on_a_three_symbol_csv_runs_from_the_cli(tmp_path: Path) -> None:
    bars = long_panel(three_symbols()).reset_index()
    bars["ts"] = bars["ts"].dt.strftime("%Y-%m-%d")
    bars.to_csv(tmp_path / "prices.csv", index=False)
    (tmp_path / "rotation.af").write_text(ROTATION)
    proc = subprocess.run(
        [
            str(ALPHAFORGE),
            "run",
            str(tmp_path / "rotation.af"),
            "--json",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["status"] == "completed"
    assert payload["node_states"] == {"data": "completed", "mom": "completed", "w": "completed"}
    data_dir = Path(payload["run_dir"]).parent.parent
    weights = [read_value(p) for p in data_dir.rglob("weights.parquet")]
    assert weights and list(weights[0].columns) == ["AAA", "BBB", "CCC"]
    assert set(weights[0].fillna(0.0).sum(axis=1).round(12)) <= {0.0, 1.0}
