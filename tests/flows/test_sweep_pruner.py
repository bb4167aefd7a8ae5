"""Optuna sweeps with a pruner, end to end on the session's Prefect server: a batch's trials run
in stages on growing prefixes of the window, the pruner stops the bad ones early (they are
evaluated on fewer stages, get a ``pruned`` row and a PRUNED state in the study), the survivors
finish on the whole window; without a pruner nothing is staged."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dsl import compile_source
from flows.sweepspec import SweepRecord, SweepSpec, TrialRow, read_trials, sweep_dir

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TRIALS = 24
STEPS = 3
PIPELINE = """pipeline sma_prune
data   = csv_ohlcv(path="data/sample_ohlcv.csv")
fast   = sma(data.close, window=10)
slow   = sma(data.close, window=30)
signal = crossover(fast, slow)
result = backtest(data, signal, cash=100_000, fee_bps=5, slippage_bps=2)
"""


def _spec(sweep_id: str, options: str, *, track: bool = False, walkforward: str = "") -> SweepSpec:
    from flows.spec import RunSpec

    text = PIPELINE + (
        f'sweep optuna(trials={TRIALS}, seed=3, sampler="random"{options}) {{\n'
        "    fast.window = int(2, 40)\n"
        "    slow.window = int(20, 200)\n"
        "    objective maximize result.sharpe\n"
        "}\n" + walkforward
    )
    compiled = compile_source(text, filename="sma_prune.af")
    assert compiled.ok and compiled.ir is not None, compiled.format()
    run = RunSpec(ir=compiled.ir, base_dir=str(EXAMPLES), track=track, trigger="test")
    return SweepSpec(sweep_id=sweep_id, run=run, executor="local", workers=1)


def _run(settings: Any, spec: SweepSpec) -> tuple[SweepRecord, list[TrialRow], Path]:
    from flows.sweep import run_sweep

    record = run_sweep(spec, settings=settings)
    assert record.status == "completed", record.error
    directory = sweep_dir(settings.store_root, spec.sweep_id)
    return record, list(read_trials(directory)), directory


def _stage_rows(directory: Path) -> list[tuple[int, TrialRow]]:
    """(stage, row) of every evaluation on a prefix (``stages/<batch>-s<k>-c<i>.jsonl``)."""
    folder = directory / "stages"
    if not folder.is_dir():
        return []
    return [
        (int(re.search(r"-s(\d+)-c", path.name).group(1)), TrialRow.model_validate_json(line))  # type: ignore[union-attr]
        for path in sorted(folder.glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def _study_states(settings: Any, study_name: str) -> Counter[str]:
    import optuna

    storage = f"sqlite:///{settings.store_root / 'sweeps' / 'optuna.db'}"
    study = optuna.load_study(study_name=study_name, storage=storage)
    return Counter(t.state.name for t in study.trials)


def test_the_median_pruner_stops_bad_trials_after_fewer_stages(settings: Any) -> None:
    spec = _spec("sw-prune-median", f', pruner="median", prune_steps={STEPS}', track=True)
    record, rows, directory = _run(settings, spec)

    by_status = Counter(r.status for r in rows)
    assert by_status["pruned"] > 0 and by_status["completed"] > 0, by_status
    assert by_status["completed"] + by_status["pruned"] == TRIALS == len(rows)
    assert record.done == TRIALS and record.pruned == by_status["pruned"]

    # every evaluation on a prefix is a stage row (never a trial row): a pruned trial was
    # evaluated on the stages up to the one it was stopped at and never on the whole window;
    # a completed one on every prefix and then on the whole window
    stages = _stage_rows(directory)
    evaluations = Counter(r.trial for _, r in stages)
    # stage k traded the first k/STEPS of the data (900 bars)
    bars = pd.read_csv(EXAMPLES / "data" / "sample_ohlcv.csv").shape[0]
    for k, r in stages:
        assert r.metrics["bars"] == pytest.approx(bars * k / STEPS, abs=2), (k, r.metrics)
    for row in rows:
        if row.status == "pruned":
            assert row.pruned_stage is not None and 1 <= row.pruned_stage < STEPS
            assert evaluations[row.trial] == row.pruned_stage < STEPS
            assert row.objective is None and row.stage_objective is not None
        else:
            assert evaluations[row.trial] == STEPS - 1
            assert row.objective is not None and row.moments
    total = sum(evaluations.values()) + by_status["completed"]
    assert total < TRIALS * STEPS  # the pruned trials' remaining stages were saved

    # the first batch (8 trials, nothing completed yet) cannot be pruned by the median
    assert all(r.status == "completed" for r in rows if r.trial < 8)

    # the best is a completed trial, and the best of them
    completed = [r for r in rows if r.status == "completed"]
    assert record.best is not None
    best = max(completed, key=lambda r: (r.objective or 0.0, -r.trial))
    assert record.best.trial == best.trial

    # the statistics: N counts the pruned trials, the variance and PBO only the completed ones
    assert record.overfit is not None and record.overfit.n_trials == TRIALS
    assert any("stopped early" in n for n in record.overfit.notes)
    from flows.overfitting import ReturnMoments, deflated_sharpe, overfit_report

    moments = [ReturnMoments(int(x[0]), *x[1:]) for r in completed if (x := r.moments)]
    alone = overfit_report(moments)  # the completed trials only: their variance, their best
    assert alone.n_trials == by_status["completed"] and alone.best is not None
    top = moments[alone.best]
    assert alone.best_sharpe is not None and alone.sharpe_variance is not None
    dsr = deflated_sharpe(
        alone.best_sharpe, top.n, top.skew, top.kurtosis, TRIALS, alone.sharpe_variance
    )
    assert dsr is not None and record.overfit.deflated_sharpe == pytest.approx(dsr, abs=1e-6)
    assert record.overfit.sharpe_variance == pytest.approx(alone.sharpe_variance, rel=1e-5)

    # the study holds PRUNED states for exactly the pruned rows
    states = _study_states(settings, spec.sweep_id)
    assert states == Counter({"COMPLETE": by_status["completed"], "PRUNED": by_status["pruned"]})

    # MLflow: one child per trial; the pruned ones KILLED and tagged as such
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.mlflow_uri)
    assert record.mlflow_run_id and record.mlflow_experiment_id
    children = client.search_runs(
        [record.mlflow_experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{record.mlflow_run_id}'",
        max_results=1000,
    )
    kinds = Counter((c.data.tags["alphaforge.status"], c.info.status) for c in children)
    assert kinds == Counter(
        {
            ("completed", "FINISHED"): by_status["completed"],
            ("pruned", "KILLED"): by_status["pruned"],
        }
    )
    parent = client.get_run(record.mlflow_run_id)
    assert parent.data.metrics["pruned_trials"] == by_status["pruned"]


def test_without_a_pruner_nothing_is_staged_and_results_match_pruner_none(settings: Any) -> None:
    _, plain, plain_dir = _run(settings, _spec("sw-prune-off", ""))
    _, none, none_dir = _run(settings, _spec("sw-prune-none", ', pruner="none"'))
    assert len(plain) == TRIALS and all(r.status == "completed" for r in plain)
    assert not (plain_dir / "stages").exists() and not (none_dir / "stages").exists()

    def key(rows: list[TrialRow]) -> list[tuple[int, dict[str, Any], float | None]]:
        return sorted((r.trial, r.params, r.objective) for r in rows)

    assert key(plain) == key(none)
    # the trials are the sampler's asks as before: a fresh study with the same seed asks them
    import optuna

    fresh = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    space: dict[str, optuna.distributions.BaseDistribution] = {
        "fast.window": optuna.distributions.IntDistribution(2, 40),
        "slow.window": optuna.distributions.IntDistribution(20, 200),
    }
    asked = [fresh.ask(space).params for _ in range(TRIALS)]
    assert [r.params for r in sorted(plain, key=lambda r: r.trial)] == asked
    assert _study_states(settings, "sw-prune-off") == Counter({"COMPLETE": TRIALS})


@pytest.mark.parametrize("pruner", ["successive_halving", "hyperband"])
def test_other_pruners_run_and_keep_the_counts(settings: Any, pruner: str) -> None:
    spec = _spec(f"sw-prune-{pruner}", f', pruner="{pruner}", prune_steps={STEPS}')
    record, rows, _ = _run(settings, spec)
    statuses = Counter(r.status for r in rows)
    assert statuses["completed"] + statuses["pruned"] == TRIALS == record.done
    assert statuses["pruned"] > 0, statuses
    states = _study_states(settings, spec.sweep_id)
    assert states == Counter({"COMPLETE": statuses["completed"], "PRUNED": statuses["pruned"]})
    assert record.best is not None
    assert record.best.trial in {r.trial for r in rows if r.status == "completed"}


def test_walk_forward_stages_cut_each_folds_training_window(settings: Any) -> None:
    spec = _spec(
        "sw-prune-wf",
        f', pruner="median", prune_steps={STEPS}',
        walkforward="walkforward(train=1y, test=6M, step=6M)\n",
    )
    record, rows, directory = _run(settings, spec)
    assert record.folds
    for fold in record.folds:
        fold_rows = [r for r in rows if r.fold == fold.index]
        assert len(fold_rows) == TRIALS == fold.n_trials
        assert fold.best_trial in {r.trial for r in fold_rows if r.status == "completed"}
    # stage k of a fold traded the first k/STEPS of the fold's training window
    stages = _stage_rows(directory)
    assert {r.fold for _, r in stages} == {f.index for f in record.folds}
    train_bars = {f.index: f.train_bars for f in record.folds}
    for k, r in stages:
        assert r.fold is not None
        assert r.metrics["bars"] == pytest.approx(train_bars[r.fold] * k / STEPS, abs=2)
    assert any(r.status == "pruned" for r in rows)


def test_resume_settles_pruned_rows_as_pruned_and_reasks_unfinished_trials() -> None:
    import optuna

    from flows.sweep import _settle_interrupted

    study = optuna.create_study(direction="maximize")
    space: dict[str, optuna.distributions.BaseDistribution] = {
        "fast.window": optuna.distributions.IntDistribution(2, 40)
    }
    asked = [study.ask(space) for _ in range(3)]  # a crash left all three RUNNING
    rows = {
        0: TrialRow(trial=0, params={}, status="pruned", pruned_stage=1, stage_objective=0.1),
        1: TrialRow(trial=1, params={}, objective=0.5),
    }  # trial 2 was between stages: no row
    _settle_interrupted(study, rows)
    states = [t.state.name for t in study.trials]
    assert states == ["PRUNED", "COMPLETE", "FAIL"]
    assert study.best_trial.number == asked[1].number
