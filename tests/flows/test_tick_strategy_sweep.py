"""A sweep over a custom tick strategy's config key, through the real sweep flow (the
session's Prefect server, MLflow SQLite) with the strategy in the real Docker sandbox: the grid
of examples/strategies/tick_grid.py run by ``tick_strategy_backtest`` with its
``half_spread_ticks`` swept. Every trial gets its own value (the fills move with it), a trial
gives the metrics of a plain run of the pipeline with that value written in (computed afresh
in another store), and the MLflow children carry the swept key as their param."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dsl import compile_source
from dsl.ir import PipelineIR
from flows.run import run_pipeline
from flows.settings import CoreSettings
from flows.spec import RunSpec
from flows.sweep import new_sweep_id, run_sweep
from flows.sweepspec import SweepSpec, read_trials, sweep_dir
from flows.sweeptrial import evaluator_for
from live.strategyrefs import FileStrategyResolver

pytestmark = [pytest.mark.slow, pytest.mark.docker]

STRATEGIES = Path(__file__).resolve().parents[2] / "examples" / "strategies"
KEY = "result.half_spread_ticks"
VALUES = [0, 2, 6]

STEPS = """pipeline tick_strategy_sweep "Custom grid market maker: spread sweep"

book   = synthetic_book(seed=3, duration_s=60, tick_size=0.01, lot_size=0.1)
result = tick_strategy_backtest(book, strategy="tick_grid.py", step_ms=100, levels=3,
                                half_spread_ticks={half}, qty=1, max_position=5,
                                maker_fee_bps=-0.5, taker_fee_bps=5)
"""
SWEEP = f"""
sweep grid {{
    {KEY} = {VALUES}
    objective maximize result.total_return
}}
"""


def _compile(text: str) -> PipelineIR:
    result = compile_source(text, filename="p.af", strategies=FileStrategyResolver(STRATEGIES))
    assert result.ok and result.ir is not None, [d.message for d in result.diagnostics]
    return result.ir


#: what a trial and a plain run must agree on (the fills, the account and the return)
COMPARED = ("fills", "maker_fills", "taker_fills", "orders_submitted", "orders_filled",
            "traded_units", "total_fees", "final_position", "final_equity",
            "total_return")  # fmt: skip


def test_a_sweep_over_a_custom_tick_strategys_config_key_runs_each_value(
    prefect_api: str, docker_engine: Any, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    settings = CoreSettings(data_dir=tmp_path / "data")
    ir = _compile(STEPS.format(half=1) + SWEEP)
    assert ir.node("result").params["half_spread_ticks"] == 1  # the step's own value
    run = RunSpec(ir=ir, base_dir=str(STRATEGIES), trigger="test", track=True)
    spec = SweepSpec(sweep_id=new_sweep_id(), run=run, executor="local", workers=1)
    record = run_sweep(spec, settings=settings)
    assert record.status == "completed" and record.done == len(VALUES), record.notes
    assert evaluator_for(spec, settings).graph.stats.computed["book"] == 1
    rows = sorted(read_trials(sweep_dir(settings.store_root, spec.sweep_id)), key=lambda r: r.trial)
    assert [r.params for r in rows] == [{KEY: v} for v in VALUES]
    assert all(r.status == "completed" for r in rows), [r.error for r in rows]
    fills = [r.metrics["fills"] for r in rows]
    # quotes further from the mid fill less often: each trial's value reached the sandbox
    assert fills[0] > fills[1] > fills[2] >= 0, fills
    steps = {r.metrics["steps"] for r in rows}  # ≈ 60 s at 100 ms: each trial ran through
    assert len(steps) == 1 and 550 < steps.pop() <= 600, [r.metrics["steps"] for r in rows]

    # a trial is the plain run of the pipeline with its value written in (another store: the
    # run computes it again, in its own sandbox, rather than reading the sweep's artifacts)
    plain_settings = CoreSettings(data_dir=tmp_path / "plain")
    plain_ir = _compile(STEPS.format(half=VALUES[1]))
    plain = run_pipeline(
        RunSpec(ir=plain_ir, base_dir=str(STRATEGIES), trigger="test", track=False),
        settings=plain_settings,
    )
    assert plain.status == "completed", plain.error
    assert plain.metrics["fills"] > 0
    for key in COMPARED:
        assert rows[1].metrics[key] == plain.metrics[key], key
    # and another value does not give the same account
    assert rows[0].metrics["total_fees"] != plain.metrics["total_fees"]

    client = MlflowClient(tracking_uri=settings.mlflow_uri)
    children = client.search_runs(
        [record.mlflow_experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{record.mlflow_run_id}'",
    )
    assert len(children) == len(VALUES)
    for child in children:
        row = rows[int(child.data.tags["alphaforge.trial"])]
        assert child.data.params == {KEY: str(row.params[KEY])}
        assert child.data.metrics["fills"] == row.metrics["fills"]
        assert child.data.metrics["total_return"] == pytest.approx(row.metrics["total_return"])
    assert record.best is not None
    best = max(rows, key=lambda r: r.objective or float("-inf"))
    assert record.best.params == best.params
