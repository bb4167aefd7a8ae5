"""A sweep over the grid market maker's spread, through the real sweep flow (the session's
Prefect server, MLflow SQLite): every trial runs ``tick_backtest`` on the same synthetic book
(computed once), its metrics and fill statistics reach the trial rows and the MLflow children,
and a repeated run is served from the artifact cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl.compiler import compile_or_raise
from flows.settings import CoreSettings
from flows.spec import RunSpec
from flows.sweep import new_sweep_id, run_sweep
from flows.sweepspec import SweepSpec, read_trials, sweep_dir
from flows.sweeptrial import evaluator_for

pytestmark = [pytest.mark.slow]

SOURCE = """pipeline tick_sweep "Grid market maker: spread sweep"

book   = synthetic_book(seed=3, duration_s=120, tick_size=0.01, lot_size=0.1)
result = tick_backtest(book, strategy="grid_mm", grid_levels=3, half_spread_ticks=1,
                       order_qty=1, max_position=5, maker_fee_bps=-0.5, taker_fee_bps=5)

sweep grid {
    result.half_spread_ticks = [0, 2, 6]
    objective maximize result.total_return
}
"""


def test_a_spread_sweep_runs_every_trial_and_tracks_fill_statistics(
    prefect_api: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    settings = CoreSettings(data_dir=tmp_path / "data")
    ir = compile_or_raise(SOURCE)
    run = RunSpec(ir=ir, base_dir=str(tmp_path), trigger="test", track=True)
    spec = SweepSpec(sweep_id=new_sweep_id(), run=run, executor="local", workers=1)
    record = run_sweep(spec, settings=settings)
    assert record.status == "completed" and record.done == 3, record.notes
    stats = evaluator_for(spec, settings).graph.stats
    assert stats.computed["book"] == 1  # the book once for the three trials
    rows = sorted(read_trials(sweep_dir(settings.store_root, spec.sweep_id)), key=lambda r: r.trial)
    assert [r.params["result.half_spread_ticks"] for r in rows] == [0, 2, 6]
    assert all(r.status == "completed" for r in rows), [r.error for r in rows]
    fills = [r.metrics["fills"] for r in rows]
    # quotes further from the mid fill less often: the spread really reaches the simulation
    assert fills[0] > fills[1] >= fills[2] >= 0
    assert rows[0].metrics["maker_fills"] == fills[0] and rows[0].metrics["fill_ratio"] > 0
    assert record.best is not None
    best = max(rows, key=lambda r: r.objective or float("-inf"))
    assert record.best.params == best.params
    client = MlflowClient(tracking_uri=settings.mlflow_uri)
    children = client.search_runs(
        [record.mlflow_experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{record.mlflow_run_id}'",
    )
    assert len(children) == 3
    for child in children:
        row = rows[int(child.data.tags["alphaforge.trial"])]
        assert child.data.params == {
            "result.half_spread_ticks": str(row.params["result.half_spread_ticks"])
        }
        assert child.data.metrics["fills"] == row.metrics["fills"]
        assert child.data.metrics["fill_ratio"] == pytest.approx(row.metrics["fill_ratio"])
        # a null metric (no fills: no queue time) is left out, never logged as NaN
        has_queue = row.metrics["queue_time_median_ms"] is not None
        assert (
            ("queue_time_median_ms" in child.data.metrics)
            == has_queue
            == (row.metrics["fills"] > 0)
        )
