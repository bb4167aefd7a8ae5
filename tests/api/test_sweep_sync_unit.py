"""The sweep status mirror without a database or a server: which end wins, the record's or
Prefect's; the progress the header shows is the table's."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

from prefect.client.schemas.objects import FlowRun
from prefect.states import Cancelled, Completed, Crashed, Running
from pydantic import SecretStr

from api.models.sweep import Sweep
from api.services.sweep_files import trials_page
from api.services.sweep_sync import apply
from api.services.sweeps import public
from api.settings import ApiSettings
from flows.sweepspec import TrialRow, read_sweep_record, sweep_dir
from tests.api.sweep_dirs import grid, trial_rows, write_sweep

KEY = "20261205-120000-000-u00001"


def _settings(tmp_path: Path) -> ApiSettings:
    return ApiSettings(
        data_dir=tmp_path / "data", secret_key=SecretStr("k" * 40), ui_dist_dir=tmp_path / "x"
    )


def _sweep(flow_run_id: str, status: str = "running", age_s: float = 5) -> Sweep:
    return Sweep(sweep_key=KEY, pipeline_id=1, version=1, owner_id=1, status=status,
                 ir_hash="0" * 64, prefect_flow_run_id=flow_run_id,
                 created_at=datetime.now(UTC) - timedelta(seconds=age_s))  # fmt: skip


def _flow_run(state: object) -> FlowRun:
    return FlowRun(id=uuid4(), flow_id=uuid4(), state=state)  # type: ignore[arg-type]


def test_the_records_end_wins_when_it_is_this_attempts(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    fr = _flow_run(Completed())
    write_sweep(settings.store_root, KEY, status="completed", flow_run_id=str(fr.id))
    sweep = _sweep(str(fr.id))
    assert apply(sweep, fr, settings, datetime.now(UTC))
    assert sweep.status == "completed" and sweep.error is None and sweep.done == 15


def test_a_crash_prefect_saw_ends_a_running_record(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    fr = _flow_run(Crashed(message="the worker's machine restarted"))
    write_sweep(settings.store_root, KEY, status="running", done=5, flow_run_id=str(fr.id))
    sweep = _sweep(str(fr.id))
    apply(sweep, fr, settings, datetime.now(UTC))
    assert sweep.status == "failed" and "the worker's machine restarted" in (sweep.error or "")
    record = read_sweep_record(sweep_dir(settings.store_root, KEY))
    assert record is not None and record.status == "failed" and record.done == 5


def test_a_cancelled_flow_run_ends_the_record_cancelled(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    fr = _flow_run(Cancelled())
    write_sweep(settings.store_root, KEY, status="running", done=2, flow_run_id=str(fr.id))
    sweep = _sweep(str(fr.id))
    apply(sweep, fr, settings, datetime.now(UTC))
    assert sweep.status == "cancelled"
    assert read_sweep_record(sweep_dir(settings.store_root, KEY)).status == "cancelled"  # type: ignore[union-attr]


def test_a_resumed_sweep_is_not_ended_by_its_previous_attempts_record(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    write_sweep(settings.store_root, KEY, status="cancelled", done=4, flow_run_id=str(uuid4()))
    fresh = _flow_run(Running())
    sweep = _sweep(str(fresh.id), status="pending", age_s=0)
    apply(sweep, fresh, settings, datetime.now(UTC))
    assert sweep.status == "running" and sweep.done == 4
    # a record without a flow run id: judged by when it ended
    write_sweep(settings.store_root, KEY, status="cancelled", done=4)
    path = sweep_dir(settings.store_root, KEY) / "sweep.json"
    record = read_sweep_record(path.parent)
    assert record is not None
    stale = record.model_copy(update={"ended_at": time.time() - 60})
    path.write_text(stale.model_dump_json())
    sweep = _sweep(str(fresh.id), status="pending", age_s=0)
    apply(sweep, fresh, settings, datetime.now(UTC))
    assert sweep.status == "running"


def test_a_cancel_the_flow_recorded_as_a_failure_reads_cancelled(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    fr = _flow_run(Cancelled())
    write_sweep(settings.store_root, KEY, status="failed", done=3, flow_run_id=str(fr.id))
    sweep = _sweep(str(fr.id))
    sweep.cancel_requested_at = datetime.now(UTC)
    apply(sweep, fr, settings, datetime.now(UTC))
    assert sweep.status == "cancelled"
    assert read_sweep_record(sweep_dir(settings.store_root, KEY)).status == "cancelled"  # type: ignore[union-attr]


def _append_trial(folder: Path, row: TrialRow) -> None:
    """A chunk writes a trial the parent flow has not folded into ``sweep.json`` yet."""
    with (folder / "trials" / "part-0000.jsonl").open("a") as fh:
        fh.write(row.model_dump_json() + "\n")


def test_the_header_counts_the_trials_the_table_shows(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    fr = _flow_run(Running())
    folder = write_sweep(settings.store_root, KEY, status="running", done=5, flow_run_id=str(fr.id))
    _append_trial(folder, TrialRow(trial=5, params=grid()[5], status="failed", error="no bars"))
    sweep = _sweep(str(fr.id))
    apply(sweep, fr, settings, datetime.now(UTC))
    table = trials_page(folder, read_sweep_record(folder))
    assert read_sweep_record(folder).done == 5  # type: ignore[union-attr]  # the flow lags
    assert sweep.done == table.total == 6 and sweep.failed == 2
    page = public(settings, sweep)
    assert (page.done, page.failed) == (6, 2)
    assert page.record is not None and page.record.done == 6


def test_a_trial_written_twice_counts_once_in_header_and_table(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    fr = _flow_run(Running())
    folder = write_sweep(settings.store_root, KEY, status="running", done=5, flow_run_id=str(fr.id))
    _append_trial(folder, trial_rows(5)[4])  # a retried chunk wrote trial 4 again
    sweep = _sweep(str(fr.id))
    apply(sweep, fr, settings, datetime.now(UTC))
    table = trials_page(folder, read_sweep_record(folder), limit=100)
    assert sweep.done == table.total == len(table.items) == 5
    assert public(settings, sweep).done == 5
