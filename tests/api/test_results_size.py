"""What the results endpoint sends for a long run: a chart that keeps the curve's shape in at
most 5,000 points, and the first 10,000 trades with the total (the export has them all)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from api.services import run_files
from flows.spec import RunRecord


def _equity_file(run_dir: Path, equity: np.ndarray) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=len(equity), freq="min", tz="UTC", name="ts")
    frame = pd.DataFrame({"equity": equity, "cash": 0.0, "position": 1.0}, index=index)
    frame["drawdown"] = equity / np.maximum.accumulate(equity) - 1.0
    frame.to_parquet(run_dir / "equity.parquet")
    return frame


def test_a_million_bar_curve_is_charted_in_5000_points_with_every_bucket_extreme(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(11)
    equity = 1e5 * np.exp(np.cumsum(rng.normal(0, 1e-3, 1_000_000)))
    frame = _equity_file(tmp_path, equity)
    points = run_files.equity_points(tmp_path)
    assert 3_000 < len(points) <= run_files.MAX_CHART_POINTS
    stamps = pd.DatetimeIndex([p.ts for p in points])
    assert stamps.is_monotonic_increasing and stamps.is_unique
    assert stamps[0] == frame.index[0] and stamps[-1] == frame.index[-1]
    shown = pd.Series([p.equity for p in points], index=stamps)
    np.testing.assert_array_equal(shown.to_numpy(), frame["equity"].loc[stamps].to_numpy())
    assert shown.max() == equity.max() and shown.min() == equity.min()
    assert min(p.drawdown for p in points) == frame["drawdown"].min()
    # independently: cut the bars into the same runs; each run's low and high are charted
    buckets = (run_files.MAX_CHART_POINTS - 2) // 3
    size = -(-len(equity) // buckets)
    run = np.arange(len(equity)) // size
    lows = frame["equity"].groupby(run).min().to_numpy()
    highs = frame["equity"].groupby(run).max().to_numpy()
    charted = shown.groupby((stamps - frame.index[0]) // pd.Timedelta("1min") // size)
    np.testing.assert_array_equal(charted.min().to_numpy(), lows)
    np.testing.assert_array_equal(charted.max().to_numpy(), highs)


def test_a_short_curve_is_sent_whole(tmp_path: Path) -> None:
    equity = np.linspace(100.0, 90.0, 900)
    _equity_file(tmp_path, equity)
    points = run_files.equity_points(tmp_path)
    assert [p.equity for p in points] == equity.tolist()


def test_results_list_the_first_trades_and_count_them_all(tmp_path: Path) -> None:
    n = run_files.MAX_TRADE_ROWS + 2_345
    trades = pd.DataFrame(
        {
            "entry_ts": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
            "side": np.where(np.arange(n) % 2 == 0, "long", "short"),
            "pnl": np.arange(n, dtype="float64") - 5.0,
            "is_open": np.arange(n) == n - 1,
        }
    )
    trades.to_csv(tmp_path / "trades.csv", index=False)
    record = RunRecord(run_id="r", pipeline="p", metrics={"num_trades": n - 1})
    res = run_files.results(tmp_path, record)
    assert res.trades_total == n
    assert len(res.trades) == run_files.MAX_TRADE_ROWS
    assert [t["pnl"] for t in res.trades[:3]] == [-5.0, -4.0, -3.0]
    assert res.trades[-1]["pnl"] == run_files.MAX_TRADE_ROWS - 6.0
    assert len(run_files.trades_csv(tmp_path).splitlines()) == n + 1  # the export has them all

    trades.head(7).to_csv(tmp_path / "trades.csv", index=False)
    res = run_files.results(tmp_path, None)
    assert res.trades_total == 7 and len(res.trades) == 7
