"""What ``alphaforge sweep`` prints about a walk-forward's efficiency (cli.sweepout), from
records written by hand: the number with how to read it, or the reason in its place; the same
in the ``--json`` object."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from cli.sweepout import print_summary, summary_json
from flows.sweepspec import FoldRow, SweepRecord


def _record(
    direction: str, efficiency: float | None, note: str | None, *pairs: tuple[float, float]
) -> SweepRecord:
    folds = [
        FoldRow(
            index=i,
            train_begin="2020-01-01",
            train_end="2021-01-01",
            test_begin="2021-01-01",
            test_end="2021-07-01",
            train_bars=250,
            test_bars=125,
            n_trials=4,
            best_trial=0,
            best_params={"fast.window": 10},
            is_objective=is_,
            oos_objective=oos,
        )
        for i, (is_, oos) in enumerate(pairs)
    ]
    return SweepRecord(
        sweep_id="sw-test",
        pipeline="p",
        ir_hash="0" * 64,
        method="grid",
        objective=f"{direction} result.sharpe",
        direction=direction,  # type: ignore[arg-type]
        status="completed",
        n_trials=8,
        done=8,
        folds=folds,
        walkforward_efficiency=efficiency,
        walkforward_efficiency_note=note,
    )


def _printed(record: SweepRecord) -> str:
    console = Console(record=True, width=200, color_system=None)
    print_summary(console, record, Path("/tmp/sw"), "sqlite:///m.db", "alphaforge sweep resume x")
    return console.export_text()


def test_the_summary_shows_the_reason_where_the_efficiency_would_be() -> None:
    note = "the mean in-sample objective is -1, not above 0: a ratio over it means nothing"
    record = _record("maximize", None, note, (-1.2, -0.4), (-0.8, -0.6))
    line = next(x for x in _printed(record).splitlines() if "walk-forward efficiency" in x)
    assert line.strip() == f"walk-forward efficiency — ({note})"
    got = summary_json(record, Path("/tmp/sw"), "resume")
    assert got["walkforward_efficiency"] is None and got["walkforward_efficiency_note"] == note


def test_the_summary_shows_the_efficiency_and_which_ratio_it_is() -> None:
    record = _record("maximize", 0.4, None, (1.2, 0.6), (0.8, 0.2))
    line = next(x for x in _printed(record).splitlines() if "walk-forward efficiency" in x)
    assert line.startswith("walk-forward efficiency 0.4000  (mean out-of-sample objective / mean")
    assert summary_json(record, Path("/tmp/sw"), "r")["walkforward_efficiency_note"] is None
    minimised = _record("minimize", 0.5, None, (0.1, 0.25), (0.2, 0.35))
    line = next(x for x in _printed(minimised).splitlines() if "walk-forward efficiency" in x)
    assert "0.5000  (mean in-sample objective / mean out-of-sample objective" in line
