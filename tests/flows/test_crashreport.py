"""The crash report's record update (flows/crashreport.py; the flow itself runs on a real stack
in tests/deployments/test_automations.py): only a record still saying ``running`` is ended."""

from __future__ import annotations

from pathlib import Path

from flows.crashreport import end_crashed_record
from flows.record import write_json
from flows.spec import RunRecord, read_run_record


def _record(run_dir: Path, status: str) -> None:
    run_dir.mkdir(parents=True)
    record = RunRecord(run_id=run_dir.name, pipeline="p", status=status, node_states={"a": "done"})  # type: ignore[arg-type]
    write_json(run_dir / "run.json", record.to_json())


def test_a_running_record_ends_failed_with_the_reason(tmp_path: Path) -> None:
    _record(tmp_path / "r1", "running")
    assert end_crashed_record(tmp_path / "r1", "crashed: exit code -9")
    ended = read_run_record(tmp_path / "r1")
    assert ended is not None and ended.status == "failed"
    assert ended.error == "crashed: exit code -9" and ended.finished_at
    assert ended.node_states == {"a": "done"}  # the rest of the record is kept


def test_a_finished_or_missing_record_is_left_alone(tmp_path: Path) -> None:
    _record(tmp_path / "r2", "completed")
    before = (tmp_path / "r2" / "run.json").read_text()
    assert not end_crashed_record(tmp_path / "r2", "crashed: late")
    assert (tmp_path / "r2" / "run.json").read_text() == before
    assert not end_crashed_record(tmp_path / "missing", "crashed: no record")
    assert not (tmp_path / "missing").exists()
