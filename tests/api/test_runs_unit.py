"""Run pieces that need no Prefect: status mapping, log parsing, exports, listing at scale."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prefect.client.schemas.objects import StateType
from sqlalchemy import event
from sqlmodel import Session

from api.models.run import Run, RunStatus
from api.services import run_files
from api.services.prefect_sync import decide
from flows.spec import RunRecord
from tests.api.conftest import Account
from tests.api.sources import SMA

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def _run(**kw: object) -> Run:
    base = {"pipeline_id": 1, "version": 1, "owner_id": 1, "run_key": "k", "ir_hash": "h"}
    base.update({"prefect_flow_run_id": "x", "created_at": NOW - timedelta(seconds=5)})
    return Run(**{**base, **kw})


def _flow(kind: StateType, message: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(state=SimpleNamespace(type=kind, message=message))


def _record(status: str, error: str | None = None) -> RunRecord:
    return RunRecord(run_id="r", pipeline="p", status=status, error=error)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        (StateType.SCHEDULED, "pending"),
        (StateType.PENDING, "pending"),
        (StateType.RUNNING, "running"),
        (StateType.CANCELLING, "running"),
        (StateType.COMPLETED, "completed"),
        (StateType.CANCELLED, "cancelled"),
    ],
)
def test_flow_run_states_map_to_run_statuses(kind: StateType, status: str) -> None:
    assert decide(_run(), _flow(kind), None, NOW).status == status  # type: ignore[arg-type]


def test_a_crashed_flow_run_fails_the_run_with_its_reason() -> None:
    out = decide(_run(), _flow(StateType.CRASHED, "process exited -9"), None, NOW)  # type: ignore[arg-type]
    assert out.status == RunStatus.FAILED
    assert out.error == (
        "the run did not finish: process exited -9. Run it again; if it happens again, the "
        "operators find the cause in the worker's log."
    )


def test_a_flow_run_process_stopped_by_a_signal_is_said_in_plain_words() -> None:
    worker = "Flow run infrastructure exited with non-zero status code 143. Process was terminated."
    out = decide(_run(), _flow(StateType.CRASHED, worker), None, NOW)  # type: ignore[arg-type]
    assert out.status == RunStatus.FAILED and out.error is not None
    assert "stopped before the run finished (the server or its worker was stopped" in out.error
    assert "SIGTERM, exit code 143" in out.error and out.error.endswith("in the worker's log.")
    runner = "Process for flow run 'x' exited with status code: -9"
    killed = decide(_run(), _flow(StateType.CRASHED, runner), None, NOW)  # type: ignore[arg-type]
    assert (
        killed.error is not None and "killed (SIGKILL, exit code -9): out of memory" in killed.error
    )
    other = "Flow run infrastructure exited with non-zero status code 1."
    plain = decide(_run(), _flow(StateType.CRASHED, other), None, NOW)  # type: ignore[arg-type]
    assert plain.error is not None and "status code 1" in plain.error  # Prefect's own words


def test_a_flow_run_crashed_after_a_cancel_request_is_a_cancelled_run() -> None:
    asked = _run(cancel_requested_at=NOW - timedelta(seconds=2))
    crashed = _flow(StateType.CRASHED, "Execution was aborted by a termination signal.")
    out = decide(asked, crashed, _record("running"), NOW)  # type: ignore[arg-type]
    assert out.status == RunStatus.CANCELLED
    assert "termination signal" in (out.error or "")
    assert not out.cancel_flow_run


def test_a_failed_flow_run_reports_the_node_error_from_the_record() -> None:
    record = _record("failed", "node 'data' (csv_ohlcv) failed: FILE_NOT_FOUND")
    out = decide(_run(), _flow(StateType.FAILED, "run failed"), record, NOW)  # type: ignore[arg-type]
    assert out.status == RunStatus.FAILED and out.error == record.error


def test_nothing_stays_pending_or_running_forever() -> None:
    vanished = decide(_run(), None, _record("running"), NOW)
    assert vanished.status == RunStatus.FAILED and "no longer exists" in vanished.error
    finished_then_vanished = decide(_run(), None, _record("completed"), NOW)
    assert finished_then_vanished.status == RunStatus.COMPLETED
    never = _run(prefect_flow_run_id=None, created_at=NOW - timedelta(minutes=5))
    assert decide(never, None, None, NOW).status == RunStatus.FAILED
    fresh = _run(prefect_flow_run_id=None)
    assert decide(fresh, None, None, NOW).status == RunStatus.PENDING
    stuck = _run(cancel_requested_at=NOW - timedelta(minutes=5))
    assert decide(stuck, _flow(StateType.CANCELLING), None, NOW).status == RunStatus.CANCELLED  # type: ignore[arg-type]
    unpicked = decide(
        _run(created_at=NOW - timedelta(hours=2)),
        _flow(StateType.SCHEDULED),
        None,
        NOW,  # type: ignore[arg-type]
    )
    assert unpicked.status == RunStatus.FAILED and unpicked.cancel_flow_run


def test_run_log_lines_are_parsed_with_node_ids_and_tracebacks_left_out(tmp_path: Path) -> None:
    (tmp_path / "run.log").write_text(
        "2026-11-21 10:00:00,123 INFO    [flow] run r: pipeline 'p', 2 nodes\n"
        "2026-11-21 10:00:00,200 ERROR   [data] Traceback (most recent call last):\n"
        '  File "x.py", line 1\n'
        "ValueError: bad\n"
        "2026-11-21 10:00:01,000 INFO    [data] failed: bad\n"
        "2026-11-21 10:00:01,100 INFO    half a li"
    )
    lines = run_files.parse_log(tmp_path)
    assert [(x.seq, x.node_id, x.level) for x in lines] == [
        (1, None, "INFO"),
        (2, "data", "ERROR"),
        (3, "data", "INFO"),
    ]
    # (a log written before issue 9: runs now keep tracebacks in operator-details.log)
    assert "operator-details.log" in lines[1].message
    assert "Traceback" not in lines[1].message and 'File "' not in lines[1].message
    assert [x.seq for x in run_files.parse_log(tmp_path, after=2)] == [3]


def test_trades_export_escapes_formula_cells_but_not_numbers(tmp_path: Path) -> None:
    (tmp_path / "trades.csv").write_text(
        'side,pnl,note\nlong,-12.5,"=HYPERLINK(""http://x"")"\nshort,3,@SUM(A1)\nlong,1,+cmd\n'
    )
    rows = run_files.trades_csv(tmp_path).splitlines()
    assert rows[1] == 'long,-12.5,"\'=HYPERLINK(""http://x"")"'
    assert rows[2] == "short,3,'@SUM(A1)" and rows[3] == "long,1,'+cmd"


def test_equity_is_thinned_to_the_chart_limit_keeping_the_deepest_drawdown(
    tmp_path: Path,
) -> None:
    n = 20_000
    equity = 100 + np.cumsum(np.sin(np.arange(n) / 50))
    equity[12_345] = 10.0  # the crash
    frame = pd.DataFrame(
        {"equity": equity}, index=pd.date_range("2020", periods=n, freq="min", tz="UTC")
    )
    frame.to_parquet(tmp_path / "equity.parquet")
    points = run_files.equity_points(tmp_path)
    assert len(points) <= run_files.MAX_CHART_POINTS
    assert points[-1].ts == frame.index[-1].to_pydatetime()
    assert min(p.drawdown for p in points) == pytest.approx(10.0 / equity[:12_345].max() - 1)


def test_starting_a_run_without_a_prefect_server_is_503(client: TestClient, alice: Account) -> None:
    # (a source whose data exists: a missing dataset is a 422 before Prefect is asked)
    source = SMA.replace('dataset_ohlcv(name="btc")', 'csv_ohlcv(path="data/sample_ohlcv.csv")')
    pid = client.post("/api/pipelines", json={"name": "p", "source": source}, headers=alice.headers)
    resp = client.post(f"/api/pipelines/{pid.json()['id']}/runs", headers=alice.headers)
    assert resp.status_code == 503 and "Prefect" in resp.json()["detail"]
    runs = client.get(f"/api/pipelines/{pid.json()['id']}/runs", headers=alice.headers).json()
    assert runs == {"items": [], "total": 0}


def test_listing_a_thousand_runs_is_paged_with_a_fixed_number_of_queries(
    client: TestClient, alice: Account
) -> None:
    pid = client.post(
        "/api/pipelines", json={"name": "p", "source": SMA}, headers=alice.headers
    ).json()["id"]
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        for i in range(1000):
            session.add(
                Run(
                    pipeline_id=pid, version=1, owner_id=alice.id, run_key=f"r{i:04d}",
                    ir_hash="h", status="completed", metrics_json='{"sharpe": 1.5}',
                )
            )  # fmt: skip
        session.commit()
    url = f"/api/pipelines/{pid}/runs?offset=100&limit=50"
    engine = client.app.state.engine  # type: ignore[attr-defined]
    few = client.get(f"/api/pipelines/{pid}/runs?offset=0&limit=1", headers=alice.headers)
    assert few.status_code == 200
    with _statements(engine) as small:
        client.get(f"/api/pipelines/{pid}/runs?offset=0&limit=1", headers=alice.headers)
    with _statements(engine) as statements:
        page = client.get(url, headers=alice.headers).json()
    assert page["total"] == 1000 and len(page["items"]) == 50
    ids = [r["id"] for r in page["items"]]
    assert ids == sorted(ids, reverse=True) and ids[0] == 900
    assert page["items"][0]["metrics"]["sharpe"] == 1.5
    # the page is read with the same few queries as a one-row page: none per run (speed itself
    # is for bench/, not a timed test)
    assert len(statements) == len(small) <= 6, statements


@contextlib.contextmanager
def _statements(engine: Any) -> Iterator[list[str]]:
    """The SQL statements ``engine`` executes inside the block."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
