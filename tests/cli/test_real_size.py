"""``alphaforge run`` end to end on 1,000,000 one-minute bars, from CSV and from Parquet.

The pipeline is the sample's SMA 10/30 crossover without costs; its figures are checked against
an independent numpy re-computation of the same strategy on the same bars
(:func:`tests.real_size.sma_crossover_reference`), to 1e-9. The numba cache starts empty for this
module, so the first run compiles the backtest kernel in the CLI's own process, as a user's
first run does (before the fix it died there: "Untyped global name 'np' ... LazyModule").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.real_size import BARS, MillionBars, sma_crossover_reference

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]

ROOT = Path(__file__).resolve().parents[2]
ALPHAFORGE = Path(sys.executable).with_name("alphaforge")
PIPELINE = """pipeline real_size "SMA crossover on a million minute bars, from CSV and Parquet"

from_csv = csv_ohlcv(path="{csv}")
fast_csv = sma(from_csv.close, window=10)
slow_csv = sma(from_csv.close, window=30)
sig_csv  = crossover(fast_csv, slow_csv)
csv      = backtest(from_csv, sig_csv, cash=100_000)

from_pq  = parquet_ohlcv(path="{parquet}")
fast_pq  = sma(from_pq.close, window=10)
slow_pq  = sma(from_pq.close, window=30)
sig_pq   = crossover(fast_pq, slow_pq)
parquet  = backtest(from_pq, sig_pq, cash=100_000)
"""


@pytest.fixture(scope="module")
def numba_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty numba cache for this module's CLI runs."""
    return tmp_path_factory.mktemp("numba-cache")


def test_cli_run_on_a_million_minute_bars_matches_an_independent_computation(
    million_bars: MillionBars, numba_cache: Path, tmp_path: Path
) -> None:
    source = tmp_path / "real_size.af"
    source.write_text(PIPELINE.format(csv=million_bars.csv, parquet=million_bars.parquet))
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_cache)}
    proc = subprocess.run(
        [str(ALPHAFORGE), "run", str(source), "--json", "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["status"] == "completed", out["error"]
    assert set(out["node_states"].values()) == {"completed"}
    run_dir = Path(out["run_dir"])
    by_node = json.loads((run_dir / "metrics.json").read_text())["by_node"]
    assert out["metrics"] == by_node["parquet"]  # the last backtest gives the run's metrics
    ref = sma_crossover_reference(million_bars.frame)

    for kind in ("csv", "parquet"):
        metrics = by_node[kind]
        assert metrics["bars"] == BARS
        assert metrics["start"] == "2024-01-01T00:00:00+00:00"
        assert pd.Timestamp(metrics["end"]) == million_bars.frame.index[-1]
        assert metrics["ppy"] == 365 * 24 * 60  # minute bars around the clock (a 365-day year)
        assert metrics["num_trades"] == ref.num_trades > 30_000
        assert metrics["final_equity"] == pytest.approx(ref.final_equity, rel=1e-9)
        assert metrics["total_return"] == pytest.approx(ref.total_return, rel=1e-9, abs=1e-12)
        assert metrics["max_drawdown"] == pytest.approx(ref.max_drawdown, rel=1e-9)
        assert metrics["sharpe"] == pytest.approx(ref.sharpe(metrics["ppy"]), rel=1e-9)
        assert metrics["total_fees"] == 0.0
        assert metrics["exposure"] == pytest.approx(1 - 30 / BARS)  # in after the warm-up
    assert by_node["csv"] == by_node["parquet"]  # the same bars, whichever the file

    equity = pd.read_parquet(run_dir / "equity.parquet")
    assert len(equity) == BARS
    np.testing.assert_allclose(equity["equity"].to_numpy(), ref.equity, rtol=1e-9)
    trades = pd.read_csv(run_dir / "trades.csv")
    assert len(trades) == ref.num_trades + 1  # plus the position still open at the end
    assert trades["is_open"].sum() == 1
    record = json.loads((run_dir / "run.json").read_text())
    assert record["mlflow_run_id"] == out["mlflow_run_id"] and record["tracking_error"] is None
    log = (run_dir / "run.log").read_text()
    for loader_id in ("from_csv", "from_pq"):
        assert f"[{loader_id}]" in log
    assert log.count(f"{BARS} bars from 2024-01-01 00:00:00+00:00") == 2
