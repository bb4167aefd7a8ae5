"""The sweep engine (flows.sweep) against the session's real Prefect server and a real MLflow
SQLite store: the trial sets of grid, random and Optuna sweeps; upstream nodes computed once per
sweep; chunks as Prefect task runs of the parent; the Dask path; walk-forward windows that
never let a trial see past its window; the MLflow parent and its nested children."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dsl.compiler import compile_or_raise
from flows.settings import CoreSettings
from flows.spec import RunSpec
from flows.sweep import new_sweep_id, run_sweep
from flows.sweepspec import SweepRecord, SweepSpec, TrialRow, read_trials, sweep_dir
from flows.sweeptrial import evaluator_for
from tests.flows.support import task_runs

# one xdist worker runs the whole module, so its module-scoped tracked grid sweep
# is made once (spread test by test, each worker made its own)
pytestmark = pytest.mark.xdist_group("sweep_engine")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

HEAD = """pipeline sw "Sweep engine"

data   = csv_ohlcv(path="data/sample_ohlcv.csv")
fast   = sma(data.close, window=10)
slow   = sma(data.close, window=30)
signal = crossover(fast, slow)
result = backtest(data, signal, cash=100_000, fee_bps=5, slippage_bps=2)
"""

GRID = (
    HEAD
    + """
sweep grid {
    fast.window = [5, 10, 20, 40]
    slow.window = [10, 30, 50]
    where fast.window < slow.window
    objective maximize result.sharpe
}
"""
)


def _spec(source: str, base: Path = EXAMPLES, **fields: Any) -> SweepSpec:
    track = fields.pop("track", False)
    ir = compile_or_raise(source)
    run = RunSpec(ir=ir, base_dir=str(base), trigger="test", track=track)
    return SweepSpec(sweep_id=new_sweep_id(), run=run, **fields)


def _rows(settings: CoreSettings, record: SweepRecord) -> list[TrialRow]:
    return sorted(
        read_trials(sweep_dir(settings.store_root, record.sweep_id)),
        key=lambda r: (r.fold if r.fold is not None else -1, r.trial),
    )


def _pairs(rows: list[TrialRow]) -> list[tuple[int, int]]:
    return [(r.params["fast.window"], r.params["slow.window"]) for r in rows]


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory: pytest.TempPathFactory) -> CoreSettings:
    return CoreSettings(data_dir=tmp_path_factory.mktemp("sweep-engine") / "data")


@pytest.fixture(scope="module")
def grid_local(prefect_api: str, module_settings: CoreSettings) -> tuple[SweepSpec, SweepRecord]:
    """The 8-trial grid, tracked, on two local processes in chunks of 3."""
    spec = _spec(GRID, executor="local", workers=2, chunk_size=3, track=True)
    return spec, run_sweep(spec, settings=module_settings)


# ---- trial sets --------------------------------------------------------------------------------


def test_a_grid_runs_exactly_the_allowed_combinations(
    grid_local: tuple[SweepSpec, SweepRecord], module_settings: CoreSettings
) -> None:
    _, record = grid_local
    assert record.status == "completed", record.error
    want = [(f, s) for f, s in itertools.product([5, 10, 20, 40], [10, 30, 50]) if f < s]
    rows = _rows(module_settings, record)
    assert _pairs(rows) == want  # trial i is the i-th allowed pair, each exactly once
    assert [r.trial for r in rows] == list(range(len(want)))
    assert record.n_trials == record.done == len(want) == 8
    assert all(r.status == "completed" and r.objective is not None for r in rows)
    best = max(rows, key=lambda r: r.objective or -1e9)
    assert record.best is not None and record.best.trial == best.trial
    assert record.best.objective == pytest.approx(best.objective)


RANDOM = (
    HEAD
    + """
sweep random(trials=6, seed=SEED) {
    fast.window = int(2, 60)
    slow.window = int(20, 200)
    where fast.window < slow.window
    objective maximize result.sharpe
}
"""
)


def test_random_sweeps_repeat_with_their_seed_and_differ_with_another(
    prefect_api: str, module_settings: CoreSettings
) -> None:
    got = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        record = run_sweep(
            _spec(RANDOM.replace("SEED", str(seed)), executor="local", workers=1),
            settings=module_settings,
        )
        assert record.status == "completed", record.error
        assert record.done == record.n_trials == 6
        got[name] = (_pairs(_rows(module_settings, record)), record.best)
    assert got["a"][0] == got["b"][0]
    assert len(set(got["a"][0])) == 6 and all(f < s for f, s in got["a"][0])
    assert got["a"][1] is not None and got["b"][1] is not None
    assert got["a"][1].params == got["b"][1].params
    assert got["c"][0] != got["a"][0]


OPTUNA = (
    HEAD
    + """
sweep optuna(trials=6, seed=SEED, sampler=SAMPLER) {
    fast.window = int(2, 60)
    slow.window = int(20, 200)
    objective maximize result.sharpe
}
"""
)


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_optuna_sweeps_repeat_with_their_seed(
    prefect_api: str, module_settings: CoreSettings, sampler: str
) -> None:
    import optuna

    got = []
    for seed in (3, 3, 4):
        spec = _spec(
            OPTUNA.replace("SEED", str(seed)).replace("SAMPLER", f'"{sampler}"'),
            executor="local",
            workers=1,
        )
        record = run_sweep(spec, settings=module_settings)
        assert record.status == "completed", record.error
        rows = _rows(module_settings, record)
        assert [r.trial for r in rows] == list(range(6)) and record.done == 6
        storage = f"sqlite:///{module_settings.store_root / 'sweeps' / 'optuna.db'}"
        study = optuna.load_study(study_name=spec.sweep_id, storage=storage)
        assert len(study.trials) == 6
        assert [t.params for t in study.trials] == [
            {"fast.window": f, "slow.window": s} for f, s in _pairs(rows)
        ]
        got.append(_pairs(rows))
    assert got[0] == got[1]
    assert got[2] != got[0]


# ---- upstream nodes once per sweep -----------------------------------------------------------


def test_upstream_nodes_run_once_per_sweep_and_equal_params_once(
    prefect_api: str, module_settings: CoreSettings
) -> None:
    source = (
        HEAD.replace(
            "slow   = sma(data.close, window=30)",
            "slow   = sma(data.close, window=30)\nnoise  = sma(data.close, window=7)",
        )
        + """
sweep grid {
    fast.window = [5, 10, 20]
    result.fee_bps = [1, 5, 10]
    objective maximize result.sharpe
}
"""
    )
    spec = _spec(source, executor="local", workers=1)
    record = run_sweep(spec, settings=module_settings)
    assert record.status == "completed" and record.done == 9
    stats = evaluator_for(spec, module_settings).graph.stats
    # the loader and the unswept indicator: once for 9 trials; `noise` is not upstream of the
    # objective: never; `fast` once per distinct window (3), not once per trial (9)
    assert stats.computed["data"] == 1 and stats.computed["slow"] == 1
    assert "noise" not in stats.computed
    assert stats.computed["fast"] == 3
    # each trial once in the search, and the top K (all 9 here) once more for their kept
    # equity curves, after the search
    assert record.top_trials == list(range(9))
    assert stats.computed["result"] == 9 + 9
    assert stats.reused["fast"] == 6 + 9


# ---- chunks are Prefect task runs ------------------------------------------------------------


def test_local_chunks_each_trial_in_one_of_them(
    grid_local: tuple[SweepSpec, SweepRecord], module_settings: CoreSettings
) -> None:
    spec, record = grid_local
    assert record.flow_run_id and record.chunks == 3 and record.chunk_size == 3
    folder = sweep_dir(module_settings.store_root, spec.sweep_id) / "trials"
    parts = sorted(folder.glob("*.jsonl"))
    assert len(parts) == 3
    seen: list[int] = []
    for part in parts:
        seen += [json.loads(line)["trial"] for line in part.read_text().splitlines()]
    assert sorted(seen) == list(range(8))  # every trial in exactly one chunk


NAPS = """pipeline naps "Slow trials"

data   = csv_ohlcv(path="data/sample_ohlcv.csv")
fast   = sma(data.close, window=10)
slow   = sma(data.close, window=30)
nap    = t_sleep(fast, seconds=0.4)
signal = crossover(nap, slow)
result = backtest(data, signal, cash=100_000)

sweep grid {
    nap.scale = [0.90, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99,
                 1.01, 1.02, 1.03, 1.04, 1.05, 1.06, 1.07, 1.08, 1.09, 1.10]
    objective maximize result.sharpe
}
"""


def test_two_local_workers_are_forked_from_the_flow_and_share_the_chunks(
    prefect_api: str,
    test_nodes: None,
    module_settings: CoreSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """20 trials of 0.4 s, one a chunk, on 2 local workers: two processes forked from the flow's
    process take the chunks (each some, neither the flow's own process); every trial runs
    exactly once; the workers are gone when the sweep ends."""
    monkeypatch.setenv("ALPHAFORGE_EXTRA_NODE_MODULES", "tests.flows.testnodes_installed")
    spec = _spec(NAPS, executor="local", workers=2, chunk_size=1)
    record = run_sweep(spec, settings=module_settings)
    assert record.status == "completed", record.error
    assert record.done == record.n_trials == 20 and record.chunks == 20
    assert sum(record.chunk_pids.values()) == 20
    assert len(record.chunk_pids) == 2 and min(record.chunk_pids.values()) >= 1, record.chunk_pids
    assert str(os.getpid()) not in record.chunk_pids  # the flow ran here: the chunks did not
    for pid in record.chunk_pids:
        assert not Path(f"/proc/{pid}").exists() or _zombie(int(pid))
    trials = sorted(r.trial for r in _rows(module_settings, record))
    assert trials == list(range(20))


def _zombie(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")


def test_the_top_k_trials_keep_their_equity_curves_and_no_other(
    prefect_api: str, module_settings: CoreSettings
) -> None:
    """top_k=3 of the 8-trial grid: the three best trials by the objective (ties by number)
    have a curve, evaluated again after the search; each curve's final value is the trial's
    own final equity (the row its chunk wrote) and its total return agrees with it."""
    record = run_sweep(
        _spec(GRID, executor="local", workers=2, chunk_size=3, top_k=3),
        settings=module_settings,
    )
    assert record.status == "completed", record.error
    rows = [r for r in _rows(module_settings, record) if r.objective is not None]
    best3 = sorted(rows, key=lambda r: (-(r.objective or 0.0), r.trial))[:3]
    assert record.top_trials == sorted(r.trial for r in best3)
    folder = sweep_dir(module_settings.store_root, record.sweep_id) / "equity"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"trial-{r.trial}.parquet" for r in best3
    )
    for row in best3:
        curve = pd.read_parquet(folder / f"trial-{row.trial}.parquet")["equity"]
        assert curve.iloc[-1] == pytest.approx(row.metrics["final_equity"], rel=1e-12)
        assert curve.iloc[-1] / curve.iloc[0] - 1 == pytest.approx(
            row.metrics["total_return"], rel=1e-9
        )


def test_the_dask_path_gives_the_local_paths_trials_and_best(
    grid_local: tuple[SweepSpec, SweepRecord], module_settings: CoreSettings
) -> None:
    _, local = grid_local
    record = run_sweep(
        _spec(GRID, executor="dask", workers=2, chunk_size=4), settings=module_settings
    )
    assert record.status == "completed", record.error
    assert record.chunks == 2
    runs = [
        r
        for r in task_runs(record.flow_run_id or "", expected=2)
        if r.name.startswith("sweep-chunk")
    ]
    assert len(runs) == 2 and all(r.state is not None and r.state.is_completed() for r in runs)
    dask_rows = _rows(module_settings, record)
    local_rows = _rows(module_settings, local)
    assert _pairs(dask_rows) == _pairs(local_rows)
    assert [r.objective for r in dask_rows] == pytest.approx([r.objective for r in local_rows])
    assert record.best is not None and local.best is not None
    assert record.best.trial == local.best.trial and record.best.params == local.best.params


# ---- MLflow ------------------------------------------------------------------------------------


def test_mlflow_has_a_parent_with_the_definition_and_one_child_per_trial(
    grid_local: tuple[SweepSpec, SweepRecord], module_settings: CoreSettings
) -> None:
    from mlflow import MlflowClient

    spec, record = grid_local
    client = MlflowClient(tracking_uri=module_settings.mlflow_uri)
    assert record.mlflow_run_id and record.mlflow_experiment_id
    parent = client.get_run(record.mlflow_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["alphaforge.ir_hash"] == spec.run.ir.content_hash()
    data = (EXAMPLES / "data" / "sample_ohlcv.csv").read_bytes()
    assert parent.data.tags["alphaforge.data.data"] == hashlib.sha256(data).hexdigest()
    assert parent.data.params["sweep.method"] == "grid"
    assert parent.data.metrics["n_trials"] == 8
    assert record.best is not None
    assert parent.data.tags["best.fast.window"] == str(record.best.params["fast.window"])
    artifacts = {a.path for a in client.list_artifacts(record.mlflow_run_id)}
    assert "spec.json" in artifacts
    stored = json.loads(
        Path(client.download_artifacts(record.mlflow_run_id, "spec.json")).read_text()
    )
    assert SweepSpec.from_json(stored).run.ir.content_hash() == spec.run.ir.content_hash()
    assert stored["run"]["ir"]["sweep"]["method"] == "grid"
    children = client.search_runs(
        [record.mlflow_experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{record.mlflow_run_id}'",
    )
    assert not [n for n in record.notes if n.startswith("MLflow")], record.notes
    assert len(children) == 8
    by_trial = {int(c.data.tags["alphaforge.trial"]): c for c in children}
    assert sorted(by_trial) == list(range(8))
    for row in _rows(module_settings, record):
        child = by_trial[row.trial]
        assert child.data.params == {k: str(v) for k, v in row.params.items()}
        assert child.data.metrics["sharpe"] == pytest.approx(row.objective)


# ---- walk-forward --------------------------------------------------------------------------------

PEEK = """pipeline peek "Peeking"

data   = csv_ohlcv(path="data/sample_ohlcv.csv")
signal = t_peek(data.close, peek=0)
result = backtest(data, signal, cash=100_000)

sweep grid {
    signal.peek = [0, 1, 3]
    objective maximize result.sharpe
}
walkforward(train=1y, test=6M, embargo=5d)
"""


@pytest.fixture
def peek_sweep(
    prefect_api: str, test_nodes: None, tmp_path: Path, module_settings: CoreSettings
) -> Iterator[tuple[SweepRecord, Path]]:
    base = tmp_path / "base"
    (base / "data").mkdir(parents=True)
    (base / "data" / "sample_ohlcv.csv").write_bytes(
        (EXAMPLES / "data" / "sample_ohlcv.csv").read_bytes()
    )
    record = run_sweep(_spec(PEEK, base, executor="local", workers=1), settings=module_settings)
    yield record, base


def test_walk_forward_windows_never_overlap_or_look_ahead(
    peek_sweep: tuple[SweepRecord, Path], module_settings: CoreSettings
) -> None:
    record, base = peek_sweep
    assert record.status == "completed", record.error
    folds = record.folds or []
    assert len(folds) >= 3
    stamp = pd.Timestamp
    for f in folds:
        assert stamp(f.train_begin) < stamp(f.train_end)
        assert stamp(f.test_begin) >= stamp(f.train_end) + pd.Timedelta(days=5)  # the embargo
    for a, b in itertools.pairwise(folds):
        assert stamp(a.test_end) <= stamp(b.test_begin)
    # what the signal node was given: in a fold's search the bars before its train end, in
    # its out-of-sample run the bars before its test end; never a later bar
    bars = pd.read_csv(EXAMPLES / "data" / "sample_ohlcv.csv", parse_dates=["ts"])["ts"]
    bars = (
        pd.DatetimeIndex(bars).tz_localize("UTC") if bars.dt.tz is None else pd.DatetimeIndex(bars)
    )

    def last_before(end: str) -> pd.Timestamp:
        return bars[bars < stamp(end)].max()

    lines = [
        (int(p), stamp(ts))
        for p, ts in (line.split() for line in (base / ".peek-max").read_text().splitlines())
    ]
    # each (peek, window) computed once, but for the last fold's top trials, computed again on
    # the same window after the search for their kept equity curves
    assert record.top_trials
    assert len(lines) == len(set(lines)) + len(record.top_trials)
    want = set()
    for f in folds:
        want |= {(p, last_before(f.train_end)) for p in (0, 1, 3)}  # the fold's search
        want.add((f.best_params["signal.peek"], last_before(f.test_end)))  # its OOS run
    assert set(lines) == want  # nothing else: no evaluation ever got a later bar
    assert last_before(folds[0].train_end) < bars.max()
    # the out-of-sample curve: each fold's segment inside its own test window
    oos = pd.read_parquet(
        sweep_dir(module_settings.store_root, record.sweep_id) / "oos_equity.parquet"
    )
    for f in folds:
        seg = oos[oos["fold"] == f.index].index
        assert len(seg) == f.test_bars
        assert seg.min() >= stamp(f.test_begin) and seg.max() < stamp(f.test_end)
