"""The pipeline flow end to end on a real Prefect server and a real MLflow SQLite store."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from flows.events import NodeEvent
from tests.flows.support import check_mlflow_record, flow_run, run_ir, task_runs
from tests.flows.testnodes import calls, crossover_ir

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api", "test_nodes")]


def _run(settings, tmp_path: Path, ir=None, **kw):  # type: ignore[no-untyped-def]
    return run_ir(settings, ir or crossover_ir(), tmp_path, **kw)


def test_a_run_writes_its_directory_and_its_mlflow_record(settings, tmp_path) -> None:
    events: list[NodeEvent] = []
    ir = crossover_ir()
    result = _run(settings, tmp_path, ir, on_event=events.append)
    assert result.status == "completed", result.error
    assert result.node_states == dict.fromkeys(ir.node_ids(), "completed")
    assert re.fullmatch(r"\d{8}-\d{6}-\d{3}-[0-9a-f]{6}", result.run_id)
    run_dir = result.run_dir
    assert run_dir == settings.runs_dir / result.run_id
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "completed" and record["pipeline"] == "t_pipeline"
    assert record["ir_hash"] == ir.content_hash()
    assert record["flow_run_id"] == result.flow_run_id
    assert record["mlflow_run_id"] == result.mlflow_run_id
    assert record["package_versions"]["prefect"] and record["package_versions"]["pandas"]
    assert record["result_fingerprint"] and record["timings"]["nodes_s"] > 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["by_node"]["result"] == result.metrics
    assert {k: metrics[k] for k in result.metrics} == result.metrics
    equity = pd.read_parquet(run_dir / "equity.parquet")
    assert equity.index.name == "ts" and "equity" in equity.columns
    assert (run_dir / "trades.csv").read_text().startswith("entry_ts,side,pnl")
    # the bars the backtest read, for the run page's price chart and buy-and-hold benchmark
    prices = pd.read_parquet(run_dir / "prices.parquet")
    assert prices.index.equals(equity.index) and "close" in prices.columns
    market = json.loads((run_dir / "market.json").read_text())
    assert market == {"backtest_node": "result", "backtest_type": "t_backtest", "data_node": "data"}
    assert json.loads((run_dir / "ir.json").read_text())["name"] == "t_pipeline"
    log = (run_dir / "run.log").read_text()
    assert "[data] 80 bars" in log and "[result] Finished in state Completed()" in log
    started = [e.node_id for e in events if e.state == "started"]
    done = {e.node_id: e.state for e in events if e.state != "started"}
    assert sorted(started) == sorted(ir.node_ids())
    assert done == dict.fromkeys(ir.node_ids(), "completed")
    check_mlflow_record(settings.mlflow_uri, result, ir)
    assert flow_run(result.flow_run_id).state.is_completed()


def test_task_runs_are_named_by_node_id(settings, tmp_path) -> None:
    result = _run(settings, tmp_path)
    runs = task_runs(result.flow_run_id, expected=5)
    assert sorted(r.name for r in runs) == sorted(crossover_ir().node_ids())
    assert all(r.state.is_completed() for r in runs)


def test_independent_branches_run_concurrently(settings, tmp_path) -> None:
    ir = crossover_ir(fast_sleep=1.5, slow_sleep=1.5)
    result = _run(settings, tmp_path, ir)
    assert result.status == "completed"
    log = (result.run_dir / "run.log").read_text()
    spans = {
        m.group(1): (float(m.group(2)), float(m.group(3)))
        for m in re.finditer(r"\[(fast|slow)\] slept from ([\d.]+) to ([\d.]+)", log)
    }
    (a0, a1), (b0, b1) = spans["fast"], spans["slow"]
    # the nodes' own records of when they slept: the two intervals overlap only if the branches
    # ran at the same time (no stopwatch on the whole run: a loaded machine only stretches both)
    assert a0 < b1 and b0 < a1, f"branches did not overlap: {spans}"


def test_a_second_run_is_served_from_the_cache(settings, tmp_path) -> None:
    first = _run(settings, tmp_path)
    assert calls(tmp_path, "t_backtest") == 1
    second = _run(settings, tmp_path)
    assert second.node_states == dict.fromkeys(crossover_ir().node_ids(), "cached")
    assert calls(tmp_path, "t_bars") == 1 and calls(tmp_path, "t_backtest") == 1
    assert "[result] cache hit" in (second.run_dir / "run.log").read_text()
    assert second.metrics == first.metrics
    assert second.run_id != first.run_id


def test_a_changed_data_file_invalidates_the_cache(settings, tmp_path) -> None:
    csv = tmp_path / "prices.csv"
    idx = pd.date_range("2024-01-01", periods=40, freq="D", tz="UTC")
    close = [100 + (i % 7) - (i % 3) for i in range(40)]
    pd.DataFrame({"ts": idx, "close": close}).to_csv(csv, index=False)
    ir = crossover_ir(path="prices.csv")
    first = _run(settings, tmp_path, ir)
    assert first.status == "completed"
    close[-1] += 5
    pd.DataFrame({"ts": idx, "close": close}).to_csv(csv, index=False)
    second = _run(settings, tmp_path, ir)
    assert second.node_states["data"] == "completed"
    assert calls(tmp_path, "t_bars") == 2
    first_fp = json.loads((first.run_dir / "run.json").read_text())["datasets"]["data"]
    second_fp = json.loads((second.run_dir / "run.json").read_text())["datasets"]["data"]
    assert first_fp["fingerprint"] != second_fp["fingerprint"]


def test_the_same_pipeline_twice_gives_identical_results(settings, tmp_path) -> None:
    a = _run(settings, tmp_path, use_cache=False)
    b = _run(settings, tmp_path, use_cache=False)
    assert calls(tmp_path, "t_backtest") == 2
    assert a.metrics == b.metrics
    assert (a.run_dir / "trades.csv").read_bytes() == (b.run_dir / "trades.csv").read_bytes()
    rec_a, rec_b = (json.loads((r.run_dir / "run.json").read_text()) for r in (a, b))
    assert rec_a["result_fingerprint"] == rec_b["result_fingerprint"]


def test_a_failing_node_fails_the_run_and_skips_its_downstream(settings, tmp_path) -> None:
    events: list[NodeEvent] = []
    result = _run(settings, tmp_path, crossover_ir(fail=True), on_event=events.append)
    assert result.status == "failed"
    assert result.error == "node 'broken' (t_fail) failed: the oracle is closed"
    assert result.node_states == {
        "data": "completed",
        "fast": "completed",
        "slow": "completed",
        "broken": "failed",
        "signal": "skipped",
        "result": "skipped",
    }
    assert {e.node_id for e in events if e.state == "skipped"} == {"signal", "result"}
    assert calls(tmp_path, "t_backtest") == 0
    record = json.loads((result.run_dir / "run.json").read_text())
    assert record["nodes"]["broken"]["error_kind"] == "NodeError"
    # the traceback is for operators: beside the log users read, not in it
    run_log = (result.run_dir / "run.log").read_text()
    assert "Traceback" not in run_log and 'File "' not in run_log
    assert "operator-details.log" in run_log and "the oracle is closed" in run_log
    details = (result.run_dir / "operator-details.log").read_text()
    assert "Traceback (most recent call last)" in details and "the oracle is closed" in details
    assert flow_run(result.flow_run_id).state.is_failed()
    states = {r.name: r.state for r in task_runs(result.flow_run_id, expected=6)}
    assert states["broken"].is_failed() and not states["result"].is_completed()
    from tests.flows.support import mlflow_run

    run, _ = mlflow_run(settings.mlflow_uri, result.mlflow_run_id)
    assert run.info.status == "FAILED"


def test_a_missing_data_file_fails_the_loading_node_with_its_message(settings, tmp_path) -> None:
    result = _run(settings, tmp_path, crossover_ir(path="nowhere.csv"))
    assert result.status == "failed" and result.node_states["data"] == "failed"
    assert "nowhere.csv" in (result.error or "")
