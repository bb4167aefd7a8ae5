"""Resume after a killed sweep process (SIGKILL mid-sweep, as a worker dies): only the missing
trials run, none twice, the best equals an uninterrupted sweep's; the MLflow parent is reused
and no child is logged twice; an Optuna study in its SQLite storage ends with the requested
trials, each once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from api.services.run_tracking_close import close_sweep_runs
from flows.settings import CoreSettings
from flows.sweep import run_sweep
from flows.sweepspec import SweepSpec, read_sweep_record, read_trials, sweep_dir
from flows.tracking import KILLED_REASON_TAG
from tests.flows.test_sweep_engine import HEAD, ROOT, _spec

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api", "test_nodes")]

NAP = "nap    = t_sleep(fast, seconds=SECONDS)\nsignal = crossover(nap, slow)"

GRID = (
    HEAD.replace("signal = crossover(fast, slow)", NAP)
    + """
sweep grid {
    fast.window = [5, 10, 15, 20, 25, 30]
    slow.window = [40, 60]
    objective maximize result.sharpe
}
"""
)

OPTUNA = (
    HEAD.replace("signal = crossover(fast, slow)", NAP)
    + """
sweep optuna(trials=10, seed=5, sampler="tpe") {
    fast.window = int(3, 40)
    slow.window = int(41, 120)
    objective maximize result.sharpe
}
"""
)

CHILD = """
import sys
from flows.settings import CoreSettings
from flows.sweep import run_sweep
from flows.sweepspec import SweepSpec
import tests.deployments.slownodes  # the t_* node types
spec = SweepSpec.from_json(open(sys.argv[1]).read())
run_sweep(spec, settings=CoreSettings(data_dir=sys.argv[2]))
"""


def _killed_midway(spec: SweepSpec, settings: CoreSettings, tmp: Path, rows: int) -> int:
    """Run ``spec`` in a child process (as a worker or the CLI would) and SIGKILL it once
    ``rows`` trials are written; returns how many were written then."""
    path = tmp / "spec.json"
    path.write_text(spec.model_dump_json())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(settings.data_dir)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "child.log").open("w"),
        start_new_session=True,
    )
    directory = sweep_dir(settings.store_root, spec.sweep_id)
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(read_trials(directory))) >= rows:
                break
            time.sleep(0.05)
        assert proc.poll() is None, (tmp / "child.log").read_text()[-3000:]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return len(list(read_trials(directory)))


@pytest.fixture
def settings(tmp_path: Path) -> CoreSettings:
    return CoreSettings(data_dir=tmp_path / "data")


def test_a_killed_grid_sweep_resumes_only_its_missing_trials(
    settings: CoreSettings, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    spec = _spec(GRID.replace("SECONDS", "0.3"), executor="local", workers=1, track=True)
    before = _killed_midway(spec, settings, tmp_path, rows=4)
    assert 4 <= before < 12
    directory = sweep_dir(settings.store_root, spec.sweep_id)
    first = {r.trial: r for r in read_trials(directory)}
    stopped = read_sweep_record(directory)
    # The parent run opens in a thread beside the first trials: its id may not have reached
    # sweep.json before the kill; the resume then adopts the run by its sweep-id tag.
    assert stopped is not None and stopped.status == "running"
    # the API's status sync ends the dead process's MLflow parent run KILLED, with why
    closed = close_sweep_runs(settings.mlflow_uri, spec.sweep_id, "its process was killed")
    assert stopped.mlflow_run_id in (None, *closed) and len(closed) <= 1

    record = run_sweep(spec.model_copy(update={"resume": True}), settings=settings)
    assert record.status == "completed", record.error
    rows = list(read_trials(directory))
    counts = Counter(r.trial for r in rows)
    assert sorted(counts) == list(range(12)) and set(counts.values()) == {1}  # none twice
    again = {r.trial: r for r in rows}
    for number, row in first.items():  # the finished trials were not rerun
        assert again[number].seconds == row.seconds

    whole = run_sweep(_spec(GRID.replace("SECONDS", "0.0"), executor="local", workers=1),
                      settings=settings)  # fmt: skip
    assert whole.status == "completed"
    assert record.best is not None and whole.best is not None
    assert (record.best.trial, record.best.params) == (whole.best.trial, whole.best.params)
    assert record.best.objective == pytest.approx(whole.best.objective)

    # MLflow: the same parent, one child per trial
    assert record.mlflow_run_id, record.notes
    assert stopped.mlflow_run_id in (None, record.mlflow_run_id)
    client = MlflowClient(tracking_uri=settings.mlflow_uri)
    parents = client.search_runs(
        [record.mlflow_experiment_id or ""], filter_string="tags.`alphaforge.kind` = 'sweep'"
    )
    assert [p.info.run_id for p in parents if p.data.tags.get("alphaforge.sweep_id") ==
            spec.sweep_id] == [record.mlflow_run_id]  # fmt: skip
    reopened = client.get_run(record.mlflow_run_id)
    assert reopened.info.status == "FINISHED"
    assert closed in ([], [record.mlflow_run_id])  # the KILLED parent is the one reopened
    assert KILLED_REASON_TAG not in reopened.data.tags  # running again: the reason is gone
    children = client.search_runs(
        [record.mlflow_experiment_id or ""],
        filter_string=f"tags.`mlflow.parentRunId` = '{record.mlflow_run_id}'",
    )
    trials = Counter(int(c.data.tags["alphaforge.trial"]) for c in children)
    assert sorted(trials) == list(range(12)) and set(trials.values()) == {1}


def test_an_optuna_study_survives_a_killed_sweep_and_ends_with_the_requested_trials(
    settings: CoreSettings, tmp_path: Path
) -> None:
    import optuna

    spec = _spec(OPTUNA.replace("SECONDS", "0.3"), executor="local", workers=1)
    before = _killed_midway(spec, settings, tmp_path, rows=3)
    assert 3 <= before < 10
    directory = sweep_dir(settings.store_root, spec.sweep_id)
    first = {r.trial for r in read_trials(directory)}

    record = run_sweep(spec.model_copy(update={"resume": True}), settings=settings)
    assert record.status == "completed", record.error
    storage = f"sqlite:///{settings.store_root / 'sweeps' / 'optuna.db'}"
    study = optuna.load_study(study_name=spec.sweep_id, storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert len(complete) == 10  # the requested trials, the interrupted ones asked again
    rows = list(read_trials(directory))
    counts = Counter(r.trial for r in rows)
    assert set(counts.values()) == {1} and len(rows) == 10
    assert sorted(counts) == sorted(t.number for t in complete)
    assert first <= set(counts)
    by_number = {r.trial: r for r in rows}
    for t in complete:
        assert t.value == pytest.approx(by_number[t.number].objective)
        assert t.params == by_number[t.number].params
    assert record.done == 10
