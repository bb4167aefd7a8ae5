"""Reading sweep directories without the app: the heatmap of a search with many distinct
values is binned; ETA from the pace so far."""

from __future__ import annotations

import random
from pathlib import Path

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


def test_eta_follows_the_pace_so_far() -> None:
    rec = _record(status="running", n_trials=100, done=25, started_at=1000.0)
    elapsed, eta = eta_seconds(rec, now=1010.0)
    assert elapsed == 10.0 and eta == 30.0
    assert (
        eta_seconds(_record(status="running", n_trials=10, done=0, started_at=1.0), 5.0)[1] is None
    )


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
