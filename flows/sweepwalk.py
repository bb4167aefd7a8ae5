"""A walk-forward sweep: one search per fold, the chosen params out of sample, stitched.

:func:`walk_forward` lays the folds on the data's calendar (:mod:`flows.walkforward`), runs the
parent's search (:meth:`flows.sweep._Sweep.search`) on each fold's training window, evaluates
the best trial's params on the fold's test window, writes the out-of-sample segments as
``oos_equity.parquet`` and the walk-forward efficiency into the record; the reported best and
statistics are the last fold's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flows.sweepspec import BestTrial, FoldRow
from flows.sweeptrial import SweepPlanError, overrides_of

if TYPE_CHECKING:
    from flows.sweep import _Sweep

__all__ = ["walk_forward"]


def walk_forward(sweep: _Sweep) -> None:
    """One search per fold on its training window; the chosen params on its test window."""
    import pandas as pd

    from flows.walkforward import efficiency, folds

    wf = sweep.ir.walkforward
    assert wf is not None
    index = sweep.evaluator.index()
    try:
        layout = folds(index, wf, wf.embargo)
    except ValueError as exc:
        raise SweepPlanError(str(exc)) from None
    per_fold = sweep.planned_per_fold()
    sweep.record.n_trials = per_fold * len(layout)
    sweep.record.folds = []
    segments: list[pd.DataFrame] = []
    level = 1.0
    for fold in layout:
        if sweep.stop.is_set():
            break
        train = (str(fold.train_begin), str(fold.train_end))
        rows = sweep.search(fold.index, str(fold.train_end), train)
        best = sweep.best_of(rows)
        stats = sweep.overfit(rows)
        entry = FoldRow(
            index=fold.index,
            train_begin=str(fold.train_begin),
            train_end=str(fold.train_end),
            test_begin=str(fold.test_begin),
            test_end=str(fold.test_end),
            train_bars=fold.train_bars,
            test_bars=fold.test_bars,
            partial=fold.partial,
            n_trials=len(rows),
            deflated_sharpe=stats.deflated_sharpe,
            pbo=stats.pbo,
        )
        if best is not None:
            test = (fold.test_begin, fold.test_end)
            oos = sweep.evaluator.run(
                best.trial,
                overrides_of(best.params),
                fold=fold.index,
                until=fold.test_end,
                window=test,
            )
            entry = entry.model_copy(
                update={
                    "best_trial": best.trial,
                    "best_params": best.params,
                    "is_metrics": best.metrics,
                    "is_objective": best.objective,
                    "oos_metrics": oos.row.metrics,
                    "oos_objective": oos.row.objective,
                }
            )
            if oos.equity is not None and len(oos.equity):
                curve = oos.equity / float(oos.equity.iloc[0]) * level
                level = float(curve.iloc[-1])
                segments.append(pd.DataFrame({"equity": curve, "fold": fold.index}))
        sweep.record.folds.append(entry)
        sweep.logger.info(
            f"[sweep] fold {fold.index}: best {best.params if best else None}, in sample "
            f"{entry.is_objective}, out of sample {entry.oos_objective}"
        )
        sweep.save()
    if segments:
        stitched = pd.concat(segments)
        stitched.index.name = "ts"
        stitched.to_parquet(sweep.directory / "oos_equity.parquet")
    pairs = [(f.is_objective, f.oos_objective) for f in sweep.record.folds]
    sweep.record.walkforward_efficiency, sweep.record.walkforward_efficiency_note = (
        efficiency(pairs, sweep.objective.direction)
        if pairs
        else (None, "no fold finished (the sweep stopped before the first fold's test)")
    )
    if sweep.record.folds:
        last = sweep.record.folds[-1]
        rows = sweep.follower.of_fold(last.index)
        sweep.record.overfit = sweep.overfit(rows)
        best = sweep.best_of(rows)
        sweep.record.best = (
            BestTrial(
                trial=best.trial, params=best.params, metrics=best.metrics, objective=best.objective
            )
            if best
            else None
        )
