"""The web app's path on 1,000,000 one-minute bars: a 70 MB CSV uploaded as a dataset (validated
and stored as Parquet), a pipeline on it run by the real Prefect worker, and the results, export
and logs read back over the API — the figures cross-checked against an independent numpy
re-computation (:func:`tests.real_size.sma_crossover_reference`)."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.services import run_files
from api.settings import ApiSettings
from tests.api.conftest import Account
from tests.api.stack import api_settings
from tests.deployments.fixtures import STACK_GROUP, wait_for
from tests.real_size import BARS, MillionBars, sma_crossover_reference

__all__ = ["api_settings"]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(STACK_GROUP)]

FEE_BPS, SLIPPAGE_BPS = 0.1, 0.05
SOURCE = f"""pipeline minutes "SMA crossover on a million minute bars"

data   = dataset_ohlcv(name="minutes")
fast   = sma(data.close, window=10)
slow   = sma(data.close, window=30)
signal = crossover(fast, slow)
gross  = backtest(data, signal, cash=100_000)
net    = backtest(data, signal, cash=100_000, fee_bps={FEE_BPS}, slippage_bps={SLIPPAGE_BPS})
"""


def test_a_million_bar_upload_runs_on_the_worker_and_reads_back_cross_checked(
    client: TestClient, alice: Account, api_settings: ApiSettings, million_bars: MillionBars
) -> None:
    body = million_bars.csv.read_bytes()
    assert 60e6 < len(body) < api_settings.max_upload_bytes  # a real month-scale export fits
    up = client.post(
        "/api/datasets",
        data={"name": "minutes"},
        files={"file": ("minutes.csv", body, "text/csv")},
        headers=alice.headers,
    )
    assert up.status_code == 201, up.text[:2000]
    dataset = up.json()
    assert dataset["rows"] == BARS
    assert pd.Timestamp(dataset["start"]) == million_bars.frame.index[0]
    assert pd.Timestamp(dataset["end"]) == million_bars.frame.index[-1]

    made = client.post(
        "/api/pipelines", json={"name": "minutes", "source": SOURCE}, headers=alice.headers
    )
    assert made.status_code == 201, made.text
    started = client.post(
        f"/api/pipelines/{made.json()['id']}/runs", json={}, headers=alice.headers
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]

    def final() -> dict | None:
        run = client.get(f"/api/runs/{run_id}", headers=alice.headers).json()
        return run if run["status"] in ("completed", "failed", "cancelled") else None

    run = wait_for(final, 420, what=f"run {run_id} on a million bars to end")
    assert run["status"] == "completed", run["error"]
    assert set(run["node_states"].values()) == {"completed"}

    ref = sma_crossover_reference(million_bars.frame)
    # the primary metrics (the last backtest, with costs): same trades, each fill costs ~2x
    # (fee + slippage) of equity (all equity flips side), so ln(net / gross) ~ -fills x that
    resp = client.get(f"/api/runs/{run_id}/results", headers=alice.headers)
    assert len(resp.content) < 5e6  # not a million points, not 40,000 trade rows
    results = resp.json()
    net = results["metrics"]
    assert net["bars"] == BARS and net["num_trades"] == ref.num_trades
    assert net["total_fees"] > 0
    fills = ref.num_trades + 1
    cost = -math.log(net["final_equity"] / ref.final_equity) / (
        fills * 2 * (FEE_BPS + SLIPPAGE_BPS) / 1e4
    )
    assert 0.98 < cost < 1.02
    assert run["metrics"]["num_trades"] == net["num_trades"]

    # the cost-free backtest of the same run, in the metrics export: equal to the reference
    exported = client.get(f"/api/runs/{run_id}/export/metrics.json", headers=alice.headers)
    gross = exported.json()["by_node"]["gross"]
    assert gross["num_trades"] == ref.num_trades
    assert gross["final_equity"] == pytest.approx(ref.final_equity, rel=1e-9)
    assert gross["max_drawdown"] == pytest.approx(ref.max_drawdown, rel=1e-9)
    assert gross["sharpe"] == pytest.approx(ref.sharpe(gross["ppy"]), rel=1e-9)

    # the chart: at most 5,000 points from first to last bar, keeping the deepest drawdown
    points = results["equity"]
    assert 1_000 < len(points) <= run_files.MAX_CHART_POINTS
    assert pd.Timestamp(points[0]["ts"]) == million_bars.frame.index[0]
    assert pd.Timestamp(points[-1]["ts"]) == million_bars.frame.index[-1]
    assert points[-1]["equity"] == pytest.approx(net["final_equity"], rel=1e-12)
    assert min(p["drawdown"] for p in points) == pytest.approx(net["max_drawdown"], rel=1e-12)
    stamps = pd.DatetimeIndex([p["ts"] for p in points])
    assert stamps.is_monotonic_increasing and stamps.is_unique

    # trades: the first 10,000 listed, all counted, all in the export
    assert results["trades_total"] == ref.num_trades + 1  # and the position open at the end
    assert len(results["trades"]) == run_files.MAX_TRADE_ROWS
    entries = pd.DatetimeIndex([t["entry_ts"] for t in results["trades"]])
    assert entries.is_monotonic_increasing
    csv = client.get(f"/api/runs/{run_id}/export/trades.csv", headers=alice.headers).text
    assert len(csv.splitlines()) == ref.num_trades + 2
    pnl = pd.read_csv(io.StringIO(csv))["pnl"].to_numpy()
    assert np.isclose(pnl.sum(), net["final_equity"] - 100_000, rtol=1e-6)

    logs = client.get(f"/api/runs/{run_id}/logs", headers=alice.headers).json()
    assert any(line["node_id"] == "data" and f"{BARS} bars" in line["message"] for line in logs), (
        logs[:20]
    )
