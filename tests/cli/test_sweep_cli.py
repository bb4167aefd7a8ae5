"""``alphaforge sweep FILE`` and ``alphaforge sweep resume ID`` on the real engine (Prefect server
of the session, MLflow in each test's data dir): the JSON summary, the fold table of a
walk-forward, compile errors, resume of a finished, a trimmed and an interrupted sweep."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cli.main import main
from flows.sweepspec import read_sweep_record, read_trials, sweep_dir, write_json_atomic

ROOT = Path(__file__).resolve().parents[2]
ALPHAFORGE = Path(sys.executable).with_name("alphaforge")
EXAMPLES = ROOT / "examples"
SMA_SWEEP = EXAMPLES / "sma_sweep.af"
RSI_WF = EXAMPLES / "rsi_optuna_walkforward.af"
ML_WF = EXAMPLES / "ml_mlp_walkforward.af"

# one xdist worker runs the whole module, so its module-scoped sweep (a CLI process)
# is made once (spread test by test, each worker made its own)
pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.xdist_group("sweep_cli")]


def _cli(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    """The console script in a subprocess, as a user runs it."""
    return subprocess.run(
        [str(ALPHAFORGE), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ},
        timeout=600,
        **kw,
    )


def _rows(data: Path, sweep_id: str) -> list[Any]:
    return list(read_trials(sweep_dir(data, sweep_id)))


@pytest.fixture(scope="module")
def sma(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    """examples/sma_sweep.af swept once with --json: (data dir, summary, stderr)."""
    data = tmp_path_factory.mktemp("sma-sweep") / "data"
    proc = _cli("sweep", str(SMA_SWEEP), "--json", "--data-dir", str(data))
    assert proc.returncode == 0, proc.stderr
    return data, json.loads(proc.stdout), proc.stderr


def test_sweep_json_is_one_object_with_the_grid_the_argmax_and_the_statistics(sma) -> None:
    data, summary, _ = sma
    pairs = [(f, s) for f in range(5, 40, 5) for s in range(20, 120, 10) if f < s]
    assert summary["n_trials"] == len(pairs) == 64
    for key in ("sweep_id", "best_params", "best_metrics", "mlflow_run_id", "folds"):
        assert key in summary
    rows = _rows(data, summary["sweep_id"])
    assert sorted((r.params["fast.window"], r.params["slow.window"]) for r in rows) == pairs
    best = max((r for r in rows if r.objective is not None), key=lambda r: r.objective)
    assert summary["best_params"] == best.params
    assert summary["best_metrics"]["sharpe"] == pytest.approx(best.objective)
    assert 0.0 <= summary["deflated_sharpe"] <= 1.0
    assert 0.0 <= summary["pbo"] <= 1.0 and summary["pbo_note"] is None
    assert summary["folds"] == []
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{data.resolve() / 'mlflow.db'}")
    assert client.get_run(summary["mlflow_run_id"]).info.status == "FINISHED"


def test_sweep_progress_and_notes_stay_off_stdout_with_json(sma) -> None:
    _, summary, stderr = sma
    assert "64/64" in stderr  # the progress bar's last state, on stderr
    assert summary["resume"].startswith(f"alphaforge sweep resume {summary['sweep_id']}")


def test_resume_of_a_finished_sweep_runs_nothing_new_and_gives_the_same_best(sma) -> None:
    data, summary, _ = sma
    before = len(_rows(data, summary["sweep_id"]))
    proc = _cli("sweep", "resume", summary["sweep_id"], "--json", "--data-dir", str(data))
    assert proc.returncode == 0, proc.stderr
    again = json.loads(proc.stdout)
    assert len(_rows(data, summary["sweep_id"])) == before == 64
    assert again["best_params"] == summary["best_params"]
    assert again["deflated_sharpe"] == summary["deflated_sharpe"]
    assert again["mlflow_run_id"] == summary["mlflow_run_id"]  # the same parent run, reopened


def _expected_folds() -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The example's walkforward(train=18M, test=6M, step=6M) over the sample data's dates,
    laid out here by hand: (test begin, test end) per fold."""
    ts = pd.to_datetime(pd.read_csv(EXAMPLES / "data" / "sample_ohlcv.csv")["ts"], utc=True)
    first, last = ts.iloc[0], ts.iloc[-1]
    out = []
    k = 0
    while (begin := first + pd.DateOffset(months=18 + 6 * k)) <= last:
        out.append((begin, first + pd.DateOffset(months=24 + 6 * k)))
        k += 1
    return out


def test_walkforward_example_reports_its_folds_without_overlap(tmp_path) -> None:
    data = tmp_path / "data"
    proc = _cli("sweep", str(RSI_WF), "--json", "--workers", "1", "--data-dir", str(data))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    folds = summary["folds"]
    expected = _expected_folds()
    assert 3 <= len(expected) <= 5 and len(folds) == len(expected)
    for fold, (test_begin, test_end) in zip(folds, expected, strict=True):
        tb, te = pd.Timestamp(fold["test_begin"]), pd.Timestamp(fold["test_end"])
        assert (tb, te) == (test_begin, test_end)
        assert pd.Timestamp(fold["train_end"]) <= tb < te
        assert fold["n_trials"] == 16 and fold["best_params"]
        assert fold["is_objective"] is not None and fold["oos_objective"] is not None
    for a, b in itertools.pairwise(folds):  # test windows follow one another
        assert pd.Timestamp(a["test_end"]) <= pd.Timestamp(b["test_begin"])
    assert summary["n_trials"] == 16 * len(folds)
    is_mean = sum(f["is_objective"] for f in folds) / len(folds)
    oos_mean = sum(f["oos_objective"] for f in folds) / len(folds)
    if is_mean > 0:  # the example maximises the Sharpe ratio: OOS / IS over a positive IS
        assert summary["walkforward_efficiency"] == pytest.approx(oos_mean / is_mean, abs=1e-6)
        assert summary["walkforward_efficiency_note"] is None
    else:
        assert summary["walkforward_efficiency"] is None
        assert "not above 0" in summary["walkforward_efficiency_note"]
    assert summary["best_params"] == folds[-1]["best_params"]
    assert 0.0 <= summary["deflated_sharpe"] <= 1.0


def test_the_ml_walkforward_example_retrains_per_fold_and_trades_each_test_window(
    tmp_path,
) -> None:
    """examples/ml_mlp_walkforward.af: the same folds as the RSI example; in each, the 6 gate
    settings are tried on the fold's data (the MLP trained on it) and the chosen one traded on
    the test window with the model trained on the data up to that window's end, which predict
    leaves flat up to its last training bar."""
    data = tmp_path / "data"
    proc = _cli("sweep", str(ML_WF), "--json", "--workers", "1", "--data-dir", str(data))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    folds = summary["folds"]
    expected = _expected_folds()
    assert len(folds) == len(expected)
    for fold, (test_begin, test_end) in zip(folds, expected, strict=True):
        assert (pd.Timestamp(fold["test_begin"]), pd.Timestamp(fold["test_end"])) == (
            test_begin,
            test_end,
        )
        assert fold["n_trials"] == 6 and set(fold["best_params"]) == {
            "signal.threshold",
            "signal.cooldown_bars",
        }
        oos = fold["oos_metrics"]
        # the out-of-sample run traded the test window only: its bars are the window's
        window_bars = _bars_between(test_begin, test_end)
        assert oos["bars"] == window_bars, (oos, window_bars)
    rows = _rows(data, summary["sweep_id"])
    assert {r.status for r in rows} == {"completed"} and len(rows) == 6 * len(folds)


def _bars_between(begin: pd.Timestamp, end: pd.Timestamp) -> int:
    ts = pd.to_datetime(pd.read_csv(EXAMPLES / "data" / "sample_ohlcv.csv")["ts"], utc=True)
    return int(((ts >= begin) & (ts < end)).sum())


def test_a_compile_error_shows_line_and_column_and_exits_2(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.af"
    bad.write_text(SMA_SWEEP.read_text().replace("fast.window = range", "fast.windw = range"))
    assert main(["sweep", str(bad), "--json", "--data-dir", str(tmp_path / "d")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    line = next(x for x in err.splitlines() if "error" in x)
    assert line.startswith(f"{bad}:13:")  # file:line:col
    assert "AF008" not in err


def test_a_file_without_a_sweep_block_is_a_clear_error(tmp_path, capsys) -> None:
    code = main(["sweep", str(EXAMPLES / "sma_crossover.af"), "--data-dir", str(tmp_path / "d")])
    assert code == 2
    assert "has no `sweep` block" in capsys.readouterr().err


def test_resume_of_an_unknown_id_is_a_clear_error(tmp_path, capsys) -> None:
    assert main(["sweep", "resume", "sw-nope", "--data-dir", str(tmp_path / "d")]) == 2
    assert "no sweep 'sw-nope'" in capsys.readouterr().err


def test_help_shows_both_forms(capsys) -> None:
    assert main(["sweep", "--help"]) == 0
    out = capsys.readouterr().out
    assert "alphaforge sweep FILE" in out and "alphaforge sweep resume SWEEP_ID" in out
    assert "--workers" in out and "--executor" in out


def test_resume_after_lost_trials_runs_only_the_missing_ones(tmp_path, capsys) -> None:
    data = tmp_path / "data"
    assert main(["sweep", str(SMA_SWEEP), "--json", "--data-dir", str(data)]) == 0
    first = json.loads(capsys.readouterr().out)
    directory = sweep_dir(data.resolve(), first["sweep_id"])
    # a crash that lost the last 10 rows of one chunk file, and a record left cancelled
    part = sorted((directory / "trials").glob("*.jsonl"))[0]
    lines = part.read_text().splitlines(keepends=True)
    part.write_text("".join(lines[:-10]))
    lost = {json.loads(x)["trial"] for x in lines[-10:]}
    record = read_sweep_record(directory)
    assert record is not None
    write_json_atomic(
        directory / "sweep.json", {**record.model_dump(mode="json"), "status": "cancelled"}
    )
    files = set((directory / "trials").glob("*.jsonl"))
    assert main(["sweep", "resume", first["sweep_id"], "--json", "--data-dir", str(data)]) == 0
    again = json.loads(capsys.readouterr().out)
    new = set((directory / "trials").glob("*.jsonl")) - files
    rerun = [json.loads(x)["trial"] for p in new for x in p.read_text().splitlines()]
    assert sorted(rerun) == sorted(lost)  # exactly the lost ones, each once
    rows = _rows(data.resolve(), first["sweep_id"])
    assert len(rows) == len({r.trial for r in rows}) == 64
    assert again["n_trials"] == 64 and again["best_params"] == first["best_params"]


BIG_GRID = """pipeline big_grid "a grid long enough to interrupt"
data   = csv_ohlcv(path="{csv}")
fast   = sma(data.close, window=10)
slow   = sma(data.close, window=30)
signal = crossover(fast, slow)
result = backtest(data, signal, cash=100_000, fee_bps=5, slippage_bps=2)
sweep grid {{
    fast.window = range(2, 40, 1)
    slow.window = range(20, 120, 10)
    where fast.window < slow.window
    objective maximize result.sharpe
}}
"""


def test_ctrl_c_cancels_the_sweep_and_resume_finishes_the_rest(tmp_path) -> None:
    af = tmp_path / "big.af"
    af.write_text(BIG_GRID.format(csv=EXAMPLES / "data" / "sample_ohlcv.csv"))
    total = sum(1 for f in range(2, 40) for s in range(20, 120, 10) if f < s)
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [str(ALPHAFORGE), "sweep", str(af), "--chunk-size", "5", "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    sweeps = data.resolve() / "sweeps"
    deadline = time.monotonic() + 300
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        found = list(sweeps.glob("sw-*/trials/*.jsonl"))
        done = sum(p.read_text().count("\n") for p in found)
        if done >= 20:
            break
        time.sleep(0.05)
    assert proc.poll() is None and 20 <= done < total, "the sweep ended before it was interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    (directory,) = [p for p in sweeps.iterdir() if p.name.startswith("sw-")]
    record = read_sweep_record(directory)
    assert record is not None and record.status == "cancelled"
    assert f"alphaforge sweep resume {directory.name}" in err
    kept = len(list(read_trials(directory)))
    assert 20 <= kept < total
    # resumed on two workers forked from the CLI process
    resumed = _cli("sweep", "resume", directory.name, "--workers", "2", "--data-dir", str(data))
    assert resumed.returncode == 0, resumed.stderr
    rows = list(read_trials(directory))
    assert len(rows) == len({r.trial for r in rows}) == total
    assert f"{total} trial(s)" in resumed.stdout and "deflated Sharpe" in resumed.stdout
    assert "PBO" in resumed.stdout and directory.name in resumed.stdout


def test_the_pool_executor_without_a_prefect_server_says_what_it_needs(
    tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    data = tmp_path / "d"
    assert main(["sweep", str(SMA_SWEEP), "--executor", "pool", "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err
    assert "no Prefect server is configured" in err and "alphaforge serve" in err
    assert not (data / "sweeps").exists()  # refused before anything started


def test_a_sweep_varies_a_strategy_modules_config_and_each_trial_is_that_backtest(
    tmp_path: Path,
) -> None:
    """examples/strategy_sweep.af: fast x slow of examples/strategies/sma_cross.py, each trial
    a sandboxed backtest with those config values; the trials' numbers are those of the same
    module backtested on its own with each pair."""
    from dsl import compile_source
    from live.strategyrefs import FileStrategyResolver
    from runners.inprocess import InProcessRunner

    path = EXAMPLES / "strategy_sweep.af"
    proc = _cli("sweep", str(path), "--json", "--data-dir", str(tmp_path / "data"))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["n_trials"] == 4 and summary["failed_trials"] == 0
    rows = _rows(tmp_path / "data", summary["sweep_id"])
    got = {(r.params["result.fast"], r.params["result.slow"]): r.metrics for r in rows}
    assert sorted(got) == [(5, 20), (5, 40), (10, 20), (10, 40)]
    finals = {k: m["final_equity"] for k, m in got.items()}
    assert len(set(finals.values())) == 4  # the config reached the module

    ir = compile_source(
        path.read_text(), strategies=FileStrategyResolver(EXAMPLES), filename=str(path)
    ).ir
    assert ir is not None
    node = ir.node("result")
    bars = pd.read_csv(EXAMPLES / "data" / "sample_ohlcv.csv")
    bars = bars.set_index(pd.DatetimeIndex(pd.to_datetime(bars.pop("ts"), utc=True), name="ts"))
    runner = InProcessRunner(base_dir=EXAMPLES)
    for fast, slow in [(5, 40), (10, 20)]:
        trial = node.model_copy(update={"params": {**node.params, "fast": fast, "slow": slow}})
        alone = runner.compute(trial, {"data": {node.inputs["data"].port: bars}})["metrics"]
        assert got[(fast, slow)]["final_equity"] == pytest.approx(alone["final_equity"], rel=1e-12)
        assert got[(fast, slow)]["num_trades"] == alone["num_trades"]
    best = max(got, key=lambda k: got[k]["sharpe"])
    assert summary["best_params"] == {"result.fast": best[0], "result.slow": best[1]}
