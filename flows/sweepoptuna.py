"""An Optuna sweep's search: its study, sampler, pruner and pruning stages.

:func:`optuna_search` runs one window's search for the parent flow (:mod:`flows.sweep`): it asks
the study (kept in the platform's database, :func:`optuna_storage`, so it survives a restart)
for a batch of trials, evaluates them as chunks through the sweep, and tells the study their
objectives. With a pruner, a batch first runs on growing prefixes of the window (the pruning
stages, :func:`_stages` / :func:`_staged`), and the trials the pruner stops get a ``pruned`` row
instead of a full evaluation. A resumed sweep settles the trials a crash left running
(:func:`_settle_interrupted`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsl.ir import OPTUNA_PRUNERS, OPTUNA_SAMPLERS, PRUNE_STEPS_DEFAULT
from flows.sweepchunk import Window
from flows.sweepspec import TrialRow
from flows.sweeptrial import SweepPlanError, overrides_of
from flows.trials import DEFAULT_RANDOM_TRIALS

if TYPE_CHECKING:
    from flows.sweep import _Sweep

__all__ = ["OPTUNA_BATCH_PER_WORKER", "Stage", "optuna_search", "optuna_storage"]

OPTUNA_BATCH_PER_WORKER = 8
Stage = tuple[str, Window | None]  # a pruning stage's (until, window)


def optuna_search(
    sweep: _Sweep, fold: int | None, until: str | None, window: Window | None, tag: str
) -> None:
    """Every trial of an Optuna search on one window (``tag`` names its chunks), in batches:
    ask a batch, evaluate it as chunks (after the pruning stages, with a pruner), tell. Stops
    at the spec's number of trials or timeout, on a stop, or when a chunk did not finish."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    options = sweep.sweep.options
    total = int(options.get("trials", DEFAULT_RANDOM_TRIALS))  # type: ignore[arg-type]
    seed = int(options.get("seed", 0))  # type: ignore[arg-type]
    timeout = options.get("timeout")
    steps = int(options.get("prune_steps", PRUNE_STEPS_DEFAULT))  # type: ignore[arg-type]
    pruner = _pruner(str(options.get("pruner", "none")), steps)
    stages = _stages(sweep, until, window, steps) if pruner is not None else []
    study = optuna.create_study(
        study_name=f"{sweep.spec.sweep_id}" + ("" if fold is None else f"-fold{fold}"),
        storage=optuna_storage(sweep),
        sampler=_sampler(str(options.get("sampler", "tpe")), seed),
        pruner=pruner,
        direction=sweep.objective.direction,
        load_if_exists=True,
    )
    distributions = {f"{p.node}.{p.param}": _distribution(p.space) for p in sweep.sweep.params}
    rows = {r.trial: r for r in sweep.follower.of_fold(fold)}
    _settle_interrupted(study, rows)
    started = time.monotonic()
    batch = max(1, sweep.spec.workers * OPTUNA_BATCH_PER_WORKER)
    while not sweep.stop.is_set():
        written = {r.trial for r in sweep.follower.of_fold(fold)}
        counted = [  # a FAIL without a row was interrupted (its chunk died): asked again
            t
            for t in study.trials
            if t.state.is_finished()
            and "af_trial" in t.user_attrs
            and (t.state != optuna.trial.TrialState.FAIL or t.number in written)
        ]
        left = total - len(counted)
        if left <= 0:
            break
        if timeout is not None and time.monotonic() - started > float(timeout):  # type: ignore[arg-type]
            sweep.record.notes.append(
                f"Optuna stopped at its timeout of {timeout} s after {len(counted)} trial(s)"
            )
            break
        asked = []
        for _ in range(min(batch, left)):
            trial = study.ask(distributions)
            number = trial.number
            trial.set_user_attr("af_trial", number)
            asked.append((number, trial))
        btag = f"{tag}-b{asked[0][0]:05d}"
        if stages:
            asked = _staged(sweep, asked, stages, fold, btag)
        todo = [(n, overrides_of(t.params)) for n, t in asked]
        sweep.run_trials(todo, fold, until, window, btag)
        found = {r.trial: r for r in sweep.follower.of_fold(fold)}
        for number, trial in asked:
            row = found.get(number)
            if row is None or row.objective is None:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(trial, row.objective)
        if any(found.get(n) is None for n, _ in asked):
            break  # chunks that did not finish: stop here, `resume` continues


def _stages(sweep: _Sweep, until: str | None, window: Window | None, steps: int) -> list[Stage]:
    """The (until, window) of pruning stages 1 … ``steps`` − 1: growing prefixes of the
    search window (the fold's training window; without walk-forward, all the data); stage
    ``steps`` is the window itsweep. Empty (no pruning, with a note) when the data has no
    timestamps to cut it by."""
    import pandas as pd

    if window is not None:
        begin, end = pd.Timestamp(window[0]), pd.Timestamp(window[1])
    else:
        try:
            index = sweep.evaluator.index()
        except SweepPlanError as exc:
            sweep.record.notes.append(f"Optuna pruner not used: {exc}")
            return []
        begin, end = index[0], index[-1] + (index[-1] - index[0]) / max(1, len(index) - 1)
    out: list[Stage] = []
    for k in range(1, steps):
        cut = str(begin + (end - begin) * k / steps)
        out.append((cut, (str(begin), cut) if window is not None else None))
    return out


def _staged(
    sweep: _Sweep, asked: list[tuple[int, Any]], stages: list[Stage], fold: int | None, btag: str
) -> list[tuple[int, Any]]:
    """Evaluate a batch's trials on the pruning stages, each stage only on the trials
    still alive: report each trial's objective on the stage's prefix as its intermediate
    value, ask the pruner, and write a ``pruned`` row and tell Optuna ``PRUNED`` for each
    trial it stops. Returns the survivors (they run on the whole window as usual). A
    trial with no value on a stage (it failed there, or the metric is null on a short
    prefix) is not reported for that stage and stays alive."""
    import optuna

    alive = dict(asked)
    seconds: dict[int, float] = {}
    pruned: list[tuple[Any, TrialRow]] = []
    for k, (s_until, s_window) in enumerate(stages, start=1):
        if not alive or sweep.stop.is_set():
            break
        part = f"{btag}-s{k}"
        todo = [(n, overrides_of(t.params)) for n, t in alive.items()]
        sweep.run_trials(todo, fold, s_until, s_window, part, stage=k)
        found = _stage_rows(sweep.directory / "stages", part)
        for number, trial in list(alive.items()):
            row = found.get(number)
            if row is None or row.objective is None:
                continue
            seconds[number] = seconds.get(number, 0.0) + row.seconds
            trial.report(row.objective, k)
            if trial.should_prune():
                del alive[number]
                pruned.append(
                    (
                        trial,
                        TrialRow(
                            trial=number,
                            fold=fold,
                            params=dict(trial.params),
                            status="pruned",
                            seconds=round(seconds[number], 6),
                            pruned_stage=k,
                            stage_objective=row.objective,
                        ),
                    )
                )
    if pruned:
        # the parent's own trials file: a row first, then the tell (a crash in between is
        # settled on resume from the row)
        path = sweep.directory / "trials" / f"{btag}-pruned.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            for _, row in pruned:
                fh.write(row.model_dump_json(exclude_none=True) + "\n")
        for trial, _ in pruned:
            trial.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        sweep.refresh()
    return [(n, t) for n, t in asked if n in alive]


def optuna_storage(sweep: _Sweep) -> str:
    """The spec's storage URL; ``env:NAME`` names the variable of this process that holds
    it (the web app's PostgreSQL URL carries a password, which must not travel in flow-run
    parameters); else SQLite in the store."""
    ref = sweep.spec.optuna_storage
    if ref and ref.startswith("env:"):
        found = os.environ.get(ref[4:])
        if not found:
            raise SweepPlanError(
                f"Optuna's study storage is in the environment variable {ref[4:]}, which "
                "this worker does not have: start the worker with it set (`alphaforge "
                "serve` sets it for its own worker)"
            )
        return found
    if ref:
        return ref
    path = sweep.settings.store_root / "sweeps" / "optuna.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _sampler(name: str, seed: int) -> Any:
    import optuna

    samplers = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, constant_liar=True),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "qmc": lambda: optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False),
    }
    assert tuple(samplers) == OPTUNA_SAMPLERS
    if name not in samplers:
        raise SweepPlanError(
            f"unknown Optuna sampler {name!r}: use one of {', '.join(sorted(samplers))}"
        )
    return samplers[name]()


def _pruner(name: str, steps: int) -> Any:
    """The Optuna pruner ``name`` (one of :data:`~dsl.ir.OPTUNA_PRUNERS`) over ``steps``
    stages; None for ``none`` (no staging, no extra cost)."""
    import optuna

    pruners = {
        "none": lambda: None,
        # stop a trial whose value on a stage is worse than the median of the completed
        # trials' values on that stage (after 5 completed trials)
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0),
        # keep the better half of the trials that reached stage 1, 2, 4, 8
        "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(
            min_resource=1, reduction_factor=2
        ),
        # brackets of successive halving (reduction factor 3) over stages 1 … steps
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=steps),
    }
    assert tuple(pruners) == OPTUNA_PRUNERS
    if name not in pruners:
        raise SweepPlanError(f"unknown Optuna pruner {name!r}: use one of {', '.join(pruners)}")
    return pruners[name]()


def _stage_rows(folder: Path, part: str) -> dict[int, TrialRow]:
    """The rows of one pruning stage (every chunk file of ``part``), by trial number."""
    out: dict[int, TrialRow] = {}
    for path in sorted(folder.glob(f"{part}-*.jsonl")):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                row = TrialRow.model_validate_json(line)
                out[row.trial] = row
    return out


def _distribution(space: Any) -> Any:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    kind = space.kind
    if kind == "values":
        return CategoricalDistribution(list(space.values))
    if kind == "int":
        return IntDistribution(space.low, space.high, step=space.step, log=space.log)
    step = space.step if not space.log else None
    return FloatDistribution(space.low, space.high, step=step, log=space.log)


def _settle_interrupted(study: Any, rows: Mapping[int, TrialRow]) -> None:
    """After a crash: tell the study the trials it asked for whose rows were written (their
    chunk finished them, or the parent pruned them) and fail the others (they are asked
    again; a trial stopped between pruning stages is among them)."""
    import optuna

    for frozen in study.trials:
        if frozen.state != optuna.trial.TrialState.RUNNING:
            continue
        row = rows.get(frozen.number)
        with contextlib.suppress(Exception):
            if row is not None and row.status == "pruned":
                study.tell(frozen.number, state=optuna.trial.TrialState.PRUNED)
            elif row is not None and row.objective is not None:
                study.tell(frozen.number, row.objective)
            else:
                study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)


# ---- walk-forward ------------------------------------------------------------------------------
