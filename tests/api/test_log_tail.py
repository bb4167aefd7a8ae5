"""The incremental run-log reader: only new bytes are parsed, and it agrees with a whole-file
parse however the writes are split."""

from __future__ import annotations

from pathlib import Path

from api.services import run_files
from api.services.run_files import LogTail, parse_log_text

LOG = (
    "2026-11-21 10:00:00,001 INFO    [flow] run r1: pipeline 'p', 3 nodes\n"
    "2026-11-21 10:00:00,120 INFO    [data] loaded 900 bars — ümlaut €\n"
    "2026-11-21 10:00:00,300 ERROR   [sig] Traceback (most recent call last):\n"
    '  File "x.py", line 1, in run\n'
    "ValueError: bad\n"
    "2026-11-21 10:00:00,400 INFO    [flow] run r1 failed"
)


def _write_in_pieces(path: Path, text: str, cuts: list[int]) -> list[list[str]]:
    """Append ``text`` in byte pieces, reading after each; returns what each read gave."""
    data = text.encode()
    tail = LogTail(path)
    seen: list[list[str]] = []
    start = 0
    for cut in [*cuts, len(data)]:
        with path.open("ab") as fh:
            fh.write(data[start:cut])
        start = cut
        seen.append([f"{line.seq}|{line.node_id}|{line.message}" for line in tail.read()])
    seen.append([f"{line.seq}|{line.node_id}|{line.message}" for line in tail.read(final=True)])
    assert tail.drained
    return seen


def test_incremental_reads_give_the_whole_parse_whatever_the_splits(tmp_path: Path) -> None:
    whole = parse_log_text(LOG + "\n")
    expected = [f"{line.seq}|{line.node_id}|{line.message}" for line in whole]
    # an old run's traceback (runs now keep it in operator-details.log) is not shown either
    assert len(expected) == 4 and expected[2].startswith("3|sig|")
    assert "operator-details.log" in expected[2] and "File" not in expected[2]
    euro = LOG.encode().index("€".encode())
    for i, cuts in enumerate([[], [10, 80], [euro + 1], list(range(7, len(LOG.encode()), 13))]):
        path = tmp_path / f"run{i}.log"
        got = [x for batch in _write_in_pieces(path, LOG, cuts) for x in batch]
        assert got == expected, cuts


def test_a_record_is_held_until_its_continuation_is_over(tmp_path: Path) -> None:
    path = tmp_path / "run.log"
    path.write_text(LOG.split("  File")[0])  # up to the traceback's first line
    tail = LogTail(path)
    first = tail.read()
    assert [line.node_id for line in first] == [None, "data"]  # 'sig' may still continue
    assert tail.pending_node == "sig" and not tail.drained
    with path.open("a") as fh:
        fh.write(LOG[len(path.read_text()) :] + "\n")
    rest = tail.read(final=True)
    # the record was held until its traceback ended: all of it (the exception line that came
    # in the second write too) is left out as one block
    assert [line.seq for line in rest] == [3, 4] and "operator-details.log" in rest[0].message
    assert "ValueError" not in rest[0].message and "File" not in rest[0].message
    assert tail.read(final=True) == [] and tail.offset == path.stat().st_size


def test_logged_nodes_reads_each_byte_once(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "run.log").write_text(LOG.split("2026-11-21 10:00:00,300")[0])
    assert run_files.logged_nodes(run_dir) == {"data"}
    reads: list[int] = []
    original = LogTail.read

    def counting(self: LogTail, *, final: bool = False) -> list:  # type: ignore[type-arg]
        before = self.offset
        out = original(self, final=final)
        reads.append(self.offset - before)
        return out

    monkeypatch.setattr(LogTail, "read", counting)
    with (run_dir / "run.log").open("a") as fh:
        fh.write("2026-11-21 10:00:00,300 INFO    [sig] computed\n")
    assert run_files.logged_nodes(run_dir) == {"data", "sig"}
    assert run_files.logged_nodes(run_dir) == {"data", "sig"}
    added = len(b"2026-11-21 10:00:00,300 INFO    [sig] computed\n")
    assert reads == [added, 0]  # the second tick parsed nothing
    run_files.forget_log(run_dir)
    assert run_dir / "run.log" not in run_files._LOGGED
