"""What ``alphaforge sweep`` prints: the progress bar while it runs, the summary at the end (the
best trial, the overfitting statistics, the walk-forward folds) and its ``--json`` object."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.output import _escape, _fmt, metrics_table

if TYPE_CHECKING:
    from rich.console import Console

    from flows.sweepspec import FoldRow, SweepRecord

__all__ = ["SweepProgress", "print_summary", "summary_json"]


class SweepProgress:
    """A rich progress bar fed with the sweep's record: trials done / total, failed, the best
    objective so far with its params, and the time left (from the trials' pace so far)."""

    def __init__(self, console: Console, directory: Path) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.directory = directory
        self._progress = Progress(
            TextColumn("{task.description}"),
            MofNCompleteColumn(),
            BarColumn(bar_width=20),
            TextColumn("{task.fields[failed]}"),
            TextColumn("{task.fields[eta]}"),
            TextColumn("{task.fields[best]}"),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task("starting", total=None, failed="", eta="", best="")
        self._first: tuple[float, int] | None = None  # (when, done) at the first trial seen

    def start(self) -> None:
        """Show the bar."""
        self._progress.start()

    def stop(self) -> None:
        """Draw the last state and leave the bar on screen."""
        self._progress.stop()

    def update(self, record: SweepRecord) -> None:
        """Redraw from ``record``."""
        total = record.n_trials or None
        done = record.done
        now = time.monotonic()
        if self._first is None and done:
            self._first = (now, done)
        label = "trials"
        if total and done >= total:
            label = "finishing"  # the statistics, the out-of-sample runs, MLflow
        elif record.folds is not None:
            label = f"fold {len(record.folds) + 1}"
        best = ""
        if record.best is not None and record.best.objective is not None:
            params = ", ".join(f"{k}={_short(v)}" for k, v in record.best.params.items())
            best = f"best {record.best.objective:.4f} ({params})"
            best = best if len(best) <= 44 else best[:43] + "…"
        self._progress.update(
            self._task,
            description=label if not record.ended else record.status,
            total=total,
            completed=done,
            failed=f"[red]{record.failed} failed[/]" if record.failed else "",
            eta=_eta(self._first, now, done, total) if not record.ended else "",
            best=_escape(best),
        )


def _eta(first: tuple[float, int] | None, now: float, done: int, total: int | None) -> str:
    if first is None or total is None or done <= first[1]:
        return "ETA —"
    rate = (done - first[1]) / max(now - first[0], 1e-6)
    left = max(total - done, 0) / rate
    return f"ETA {int(left // 60)}:{int(left % 60):02d}"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _pbo_note(record: SweepRecord) -> str | None:
    overfit = record.overfit
    if overfit is None:
        return "no statistics: the sweep did not finish"
    if overfit.pbo is not None:
        return None
    notes = [n for n in overfit.notes if n.startswith("PBO")]
    return notes[0] if notes else (overfit.notes[0] if overfit.notes else "not computed")


def summary_json(record: SweepRecord, directory: Path, resume: str) -> dict[str, Any]:
    """The ``--json`` object: the keys the issue names, then the rest a script may want."""
    best = record.best
    overfit = record.overfit
    from flows.sweepspec import finite_json

    return finite_json(
        {
            "sweep_id": record.sweep_id,
            "status": record.status,
            "n_trials": record.done,
            "planned_trials": record.n_trials,
            "failed_trials": record.failed,
            "method": record.method,
            "objective": record.objective,
            "best_trial": best.trial if best else None,
            "best_objective": best.objective if best else None,
            "best_params": best.params if best else {},
            "best_metrics": best.metrics if best else {},
            "deflated_sharpe": overfit.deflated_sharpe if overfit else None,
            "deflated_sharpe_explanation": overfit.explanation if overfit else None,
            "warning": overfit.warning if overfit else None,
            "pbo": overfit.pbo if overfit else None,
            "pbo_note": _pbo_note(record),
            "stats_trials": overfit.n_trials if overfit else None,
            "folds": [f.model_dump(mode="json") for f in record.folds or []],
            "walkforward_efficiency": record.walkforward_efficiency,
            "walkforward_efficiency_note": record.walkforward_efficiency_note,
            "mlflow_run_id": record.mlflow_run_id,
            "mlflow_experiment_id": record.mlflow_experiment_id,
            "flow_run_id": record.flow_run_id,
            "sweep_dir": str(directory),
            "resume": resume,
            "error": record.error,
            "notes": record.notes,
        }
    )


def print_summary(
    out: Console, record: SweepRecord, directory: Path, mlflow_uri: str, resume: str
) -> None:
    """The readable report of a finished (or stopped) sweep."""
    head = f"{record.done} trial(s)"
    if record.n_trials and record.n_trials != record.done:
        head += f" of {record.n_trials}"
    if record.failed:
        head += f", [red]{record.failed} failed[/]"
    out.print(f"\n[bold]{record.method} sweep[/] {record.objective} — {head}")
    if record.folds:
        _print_folds(out, record.folds, record.objective)
        out.print(f"[bold]walk-forward efficiency[/] {_efficiency_text(record)}")
        out.print("[dim]the best trial and the statistics below are the last fold's search[/]")
    best = record.best
    if best is None:
        out.print("[yellow]no trial produced the objective: there is no best trial[/]")
    else:
        params = ", ".join(f"{k} = {_short(v)}" for k, v in best.params.items())
        out.print(f"[bold]best trial[/]    #{best.trial}: {_escape(params)}")
        out.print(metrics_table(best.metrics, title=f"metrics of trial #{best.trial}"))
    overfit = record.overfit
    if overfit is not None:
        out.print(
            f"[bold]deflated Sharpe[/] {_fmt(overfit.deflated_sharpe)}  "
            + _escape(overfit.explanation)
        )
        if overfit.warning:
            out.print(f"[yellow]warning:[/] {_escape(overfit.warning)}")
        if overfit.pbo is not None:
            out.print(
                f"[bold]PBO[/]           {overfit.pbo:.2f}  probability of backtest overfitting "
                f"(CSCV over {overfit.pbo_blocks} blocks): how often the in-sample best ranks "
                "below the median out of sample"
            )
        else:
            out.print(f"[bold]PBO[/]           — ({_escape(_pbo_note(record) or '')})")
    for note in record.notes:
        out.print(f"[dim]note:[/] {_escape(note)}")
    out.print(f"[bold]status[/]        {record.status}")
    out.print(f"[bold]sweep id[/]      {record.sweep_id}")
    out.print(f"[bold]sweep dir[/]     {directory}")
    if record.mlflow_run_id:
        out.print(f"[bold]MLflow run[/]    {record.mlflow_run_id}  ({mlflow_uri})")
    else:
        out.print("[bold]MLflow run[/]    [yellow]not recorded (see sweep.json)[/]")
    out.print(f"[bold]resume[/]        {resume}  [dim](runs only the trials not yet run)[/]")


def _efficiency_text(record: SweepRecord) -> str:
    """The efficiency with how to read it, or — where the ratio would mean nothing — the
    reason in its place."""
    eff = record.walkforward_efficiency
    if eff is None:
        return f"— ({_escape(record.walkforward_efficiency_note or 'not computed')})"
    ratio = (
        "mean in-sample objective / mean out-of-sample objective, the objective minimised"
        if record.direction == "minimize"
        else "mean out-of-sample objective / mean in-sample objective"
    )
    return f"{_fmt(eff)}  ({ratio}: near 1 holds up out of sample, near 0 or below does not)"


def _print_folds(out: Console, folds: list[FoldRow], objective: str) -> None:
    from rich import box
    from rich.table import Table

    key = objective.split(".")[-1] if objective else "objective"
    title = f"walk-forward folds ({key}: IS in sample, OOS out of sample)"
    table = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD)
    table.add_column("fold", no_wrap=True)
    table.add_column("windows", no_wrap=True)
    table.add_column("bars", justify="right", no_wrap=True)
    table.add_column("best params", min_width=14)
    table.add_column("IS", justify="right", no_wrap=True)
    table.add_column("OOS", justify="right", no_wrap=True)
    for f in folds:
        windows = (
            f"train {_day(f.train_begin)} → {_day(f.train_end)}\n"
            f"test  {_day(f.test_begin)} → {_day(f.test_end)}" + (" *" if f.partial else "")
        )
        params = "\n".join(
            f"{k.split('.')[-1] if _unique(k, f) else k}={_short(v)}"
            for k, v in f.best_params.items()
        )
        table.add_row(
            str(f.index + 1),
            windows,
            f"{f.train_bars}\n{f.test_bars}",
            _escape(params) or "—",
            _fmt(f.is_objective),
            _fmt(f.oos_objective),
        )
    out.print(table)
    if any(f.partial for f in folds):
        out.print("[dim]* the test window is cut short by the end of the data[/]")


def _unique(key: str, fold: FoldRow) -> bool:
    """Whether the param's name alone (``window`` of ``rsi14.window``) is unambiguous."""
    tail = key.split(".")[-1]
    return sum(k.split(".")[-1] == tail for k in fold.best_params) == 1


def _day(stamp: str) -> str:
    return stamp[:10] if stamp[10:19] in ("", " 00:00:00", "T00:00:00") else stamp[:16]
