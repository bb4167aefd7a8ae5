"""ALPHAFORGE_LOG_FORMAT=json in a process that runs a flow: Prefect's flow-run and task-run
loggers write one JSON object per line with the run's context (flow_run_id, task_run_id, ...),
and our own loggers carry what :func:`flows.logformat.log_context` bound."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flows.logformat import JsonFormatter, log_context

FLOW = """
from flows.settings import get_settings
get_settings().apply_prefect_env()  # as the CLI: before Prefect is imported
from prefect import flow, task
from prefect.logging import get_run_logger

@task(name="node_a")
def node_a():
    get_run_logger().info("in the task")

@flow(name="af-json-logs")
def pipeline():
    get_run_logger().info("in the flow")
    node_a()

pipeline()
"""


@pytest.mark.slow
def test_flow_run_processes_log_one_json_object_per_line(
    tmp_path: Path, prefect_server: Any
) -> None:
    # none of the session's PREFECT_* variables (another test's logging level or settings file
    # would silence or reshape the lines): the process is configured as the CLI configures it
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "ALPHAFORGE_LOG_FORMAT": "json",
        "ALPHAFORGE_DATA_DIR": str(tmp_path / "data"),
        "ALPHAFORGE_PREFECT_API_URL": prefect_server.api_url,
        "PREFECT_HOME": str(tmp_path / "prefect"),
    }
    env.pop("PREFECT_LOGGING_SETTINGS_PATH", None)
    done = subprocess.run(
        [sys.executable, "-c", FLOW], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines
    records = [json.loads(line) for line in lines]  # every line is one object
    for record in records:
        assert {"ts", "level", "logger", "message"} <= set(record), record
    [in_flow] = [r for r in records if r["message"] == "in the flow"]
    [in_task] = [r for r in records if r["message"] == "in the task"]
    assert in_flow["logger"] == "prefect.flow_runs" and len(in_flow["flow_run_id"]) == 36
    assert in_task["logger"] == "prefect.task_runs" and in_task["task_run_name"].startswith(
        "node_a"
    )
    assert in_task["flow_run_id"] == in_flow["flow_run_id"] and in_task["task_run_id"]
    assert any("Completed" in r["message"] for r in records)  # Prefect's own state lines


def test_json_lines_carry_context_extra_and_exception() -> None:
    record = logging.LogRecord("api.x", logging.ERROR, __file__, 1, "failed %s", ("now",), None)
    record.run_id = "r-1"
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    with log_context(request_id="req-9", node=None):
        line = JsonFormatter().format(record)
    out = json.loads(line)
    assert "\n" not in line
    assert out["message"] == "failed now" and out["level"] == "ERROR" and out["logger"] == "api.x"
    assert out["request_id"] == "req-9" and out["run_id"] == "r-1" and "node" not in out
    assert out["ts"].endswith("Z") and "ValueError: boom" in out["exception"]
    assert json.loads(JsonFormatter().format(record)).get("request_id") is None  # unbound
