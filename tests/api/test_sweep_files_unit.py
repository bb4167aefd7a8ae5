"""Reading sweep directories without the app: the heatmap of a search with many distinct
values is binned; ETA from the pace so far."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from api.services.sweep_files import eta_seconds, heatmap, overrides_of
from flows.sweepspec import SweepRecord, TrialRow


def _write(folder: Path, rows: list[TrialRow]) -> None:
    (folder / "trials").mkdir(parents=True)
    (folder / "trials" / "part-0.jsonl").write_text(
        "".join(r.model_dump_json() + "\n" for r in rows)
    )


def _record(**kw: object) -> SweepRecord:
    base = {"sweep_id": "s", "pipeline": "p", "ir_hash": "0", "method": "optuna",
            "objective": "maximize result.sharpe", "params": ["a.x", "b.y"]}  # fmt: skip
    return SweepRecord.model_validate(base | kw)


def test_an_optuna_search_is_binned_and_keeps_the_best_trial(tmp_path: Path) -> None:
    rnd = random.Random(7)
    rows = []
    for i in range(200):
        x, y = rnd.uniform(0.0, 1.0), rnd.randint(1, 50)
        rows.append(
            TrialRow(trial=i, params={"a.x": x, "b.y": y}, objective=-((x - 0.3) ** 2) - y / 100)
        )
    _write(tmp_path, rows)
    hm = heatmap(tmp_path, _record(), "a.x", "b.y")
    assert hm.x_binned and hm.y_binned and len(hm.x) <= 12 and len(hm.y) <= 12
    best = max(rows, key=lambda r: r.objective or 0)
    cells = [c for line in hm.cells for c in line if c.trial is not None]
    assert best.trial in {c.trial for c in cells}
    assert hm.max == best.objective
    small = heatmap(tmp_path, _record(), "a.x", "b.y", bins=4)
    assert len(small.x) <= 4


def test_a_minimised_objective_picks_the_lowest_trial_per_cell(tmp_path: Path) -> None:
    rows = [
        TrialRow(trial=0, params={"a.x": 1, "b.y": 1}, objective=0.5),
        TrialRow(trial=1, params={"a.x": 1, "b.y": 1}, objective=0.2),
        TrialRow(trial=2, params={"a.x": 2, "b.y": 1}, objective=None, status="failed"),
    ]
    _write(tmp_path, rows)
    hm = heatmap(tmp_path, _record(direction="minimize"), "a.x", "b.y")
    assert not hm.x_binned
    assert hm.cells[0][0].trial == 1 and hm.cells[0][1].trial == 2 and hm.cells[0][1].value is None


def test_eta_follows_the_pace_since_the_first_trials_not_the_start_up() -> None:
    # started at 1000; start-up took 6 s; 10 trials were done at 1006, 25 at 1010
    rec = _record(status="running", n_trials=100, done=25, started_at=1000.0,
                  pace={"at": 1006.0, "done": 10})  # fmt: skip
    elapsed, eta = eta_seconds(rec, now=1010.0)
    assert elapsed == 10.0
    assert eta == 4.0 / 15 * 75  # 15 trials in 4 s, 75 to go (the start-up left out)
    no_pace = _record(status="running", n_trials=100, done=25, started_at=1000.0)
    assert eta_seconds(no_pace, now=1010.0) == (10.0, None)
    only_the_first = rec.model_copy(update={"done": 10})
    assert eta_seconds(only_the_first, now=1010.0)[1] is None  # one burst tells no pace
    ended = rec.model_copy(update={"status": "completed", "ended_at": 1020.0})
    assert eta_seconds(ended, now=2000.0) == (20.0, None)


def test_the_best_so_far_comes_from_the_trial_files_while_the_sweep_runs(
    tmp_path: Path,
) -> None:
    from api.services.sweep_files import with_progress

    rows = [
        TrialRow(trial=0, params={"a.x": 1, "b.y": 1}, objective=0.4),
        TrialRow(trial=1, params={"a.x": 2, "b.y": 1}, objective=0.9, metrics={"sharpe": 0.9}),
        TrialRow(trial=2, params={"a.x": 3, "b.y": 1}, objective=None, status="failed"),
    ]
    _write(tmp_path, rows)
    running = with_progress(_record(status="running", n_trials=9), tmp_path)
    assert running is not None and (running.done, running.failed) == (3, 1)
    assert running.best is not None and running.best.trial == 1
    assert running.best.objective == 0.9 and running.best.params == {"a.x": 2, "b.y": 1}

    flow_ahead = _record(status="running", best={"trial": 7, "params": {}, "objective": 1.5})
    best = with_progress(flow_ahead, tmp_path)
    assert best is not None and best.best is not None and best.best.trial == 7  # kept

    lowest = with_progress(_record(status="running", direction="minimize"), tmp_path)
    assert lowest is not None and lowest.best is not None and lowest.best.trial == 0

    # an ended sweep's best is the flow's (it may rank by more than the files show)
    ended = with_progress(_record(status="completed", ended_at=5.0), tmp_path)
    assert ended is not None and ended.best is None


def test_trial_params_become_run_overrides() -> None:
    assert overrides_of({"fast.window": 5, "slow.window": 50, "fast.kind": "ema"}) == {
        "fast": {"window": 5, "kind": "ema"},
        "slow": {"window": 50},
    }


def test_the_trial_table_leaves_out_what_only_the_statistics_need(tmp_path: Path) -> None:
    from api.services.sweep_files import trials_page

    (tmp_path / "trials").mkdir()
    line = ('{"trial": 0, "params": {"a.x": 1}, "objective": 1.0, "metrics": {"sharpe": 1.0}, '
            '"moments": [100, 0.1, 1, 0, 3], "blocks": [[10, 1.0, 2.0]]}\n')  # fmt: skip
    (tmp_path / "trials" / "part-0.jsonl").write_text(line)
    item = trials_page(tmp_path, None).items[0].model_dump()
    assert "moments" not in item and "blocks" not in item and item["objective"] == 1.0


def test_the_heatmap_axes_span_the_sweeps_domain_so_a_running_sweep_keeps_its_shape(
    tmp_path: Path,
) -> None:
    from api.services.sweep_files import Domain

    rows = [
        TrialRow(trial=0, params={"a.x": 10, "b.y": 0.002}, objective=0.5),
        TrialRow(trial=1, params={"a.x": 30, "b.y": 0.09}, objective=0.7),
    ]
    _write(tmp_path, rows)
    domains = {
        "a.x": Domain(values=(10, 20, 30, 40)),  # a grid's four values, two reached so far
        "b.y": Domain(low=0.001, high=0.1, log=True),  # log-uniform: bins of equal ratio
    }
    hm = heatmap(tmp_path, _record(), "a.x", "b.y", bins=4, domains=domains)
    assert hm.x == [10, 20, 30, 40] and not hm.x_binned
    # 0.001..0.1 on a log scale in 4 bins: middles at 10^(-3 + (k + 0.5) / 2)
    assert hm.y_binned and hm.y == pytest.approx([10 ** (-3 + (k + 0.5) / 2) for k in range(4)])
    filled = {(hm.x[i], j) for j, line in enumerate(hm.cells) for i, c in enumerate(line)
              if c.trial is not None}  # fmt: skip
    assert filled == {(10, 0), (30, 3)}  # 0.002 is in the first bin, 0.09 in the last
    # the same axes before any trial finished
    empty = tmp_path / "empty"
    _write(empty, [])
    blank = heatmap(empty, _record(), "a.x", "b.y", bins=4, domains=domains)
    assert (blank.x, blank.y) == (hm.x, hm.y) and blank.min is None
    # a linear range of floats: equal-width bins over the declared range, not the trials'
    linear = heatmap(tmp_path, _record(), "a.x", "b.y", bins=4,
                     domains={"b.y": Domain(low=0.0, high=0.4)})  # fmt: skip
    assert linear.y == pytest.approx([0.05, 0.15, 0.25, 0.35])
