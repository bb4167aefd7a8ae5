"""The run-process marker (flows.liveness): an alive process, a dead one, a reused pid, a
zombie, another host, another boot — each told apart, with the reason in a sentence."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from flows.liveness import PROCESS_FILE, mark_process, process_gone, read_mark, runs_here


def test_the_marker_names_this_process_and_it_is_alive(tmp_path: Path) -> None:
    mark = mark_process(tmp_path / "run")
    assert read_mark(tmp_path / "run") == mark
    assert mark.host == socket.gethostname() and mark.start_ticks and mark.start_ticks > 0
    assert runs_here(tmp_path / "run")
    assert process_gone(tmp_path / "run") is None


def test_a_process_that_exited_is_gone_with_the_reason(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        mark_process(tmp_path, proc.pid)
        assert process_gone(tmp_path) is None
    finally:
        proc.kill()
        proc.wait()
    reason = process_gone(tmp_path)
    assert reason is not None
    assert reason.startswith(f"its process on {socket.gethostname()} stopped before the run")


def test_a_zombie_is_gone(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    mark_process(tmp_path, proc.pid)  # may already be a zombie: then start_ticks is None
    deadline_state = ""
    for _ in range(100):  # not reaped: the child stays a zombie until wait()
        deadline_state = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if deadline_state == "Z":
            break
        subprocess.run(["sleep", "0.05"], check=True)
    assert deadline_state == "Z"
    assert process_gone(tmp_path) is not None
    proc.wait()


def test_a_reused_pid_is_not_the_run_process(tmp_path: Path) -> None:
    mark = mark_process(tmp_path)  # this very process, but recorded with another start time
    raw = json.loads((tmp_path / PROCESS_FILE).read_text())
    raw["start_ticks"] = mark.start_ticks - 1  # type: ignore[operator]
    (tmp_path / PROCESS_FILE).write_text(json.dumps(raw))
    assert process_gone(tmp_path) is not None


def test_another_host_cannot_be_told_and_another_boot_is_a_restart(tmp_path: Path) -> None:
    mark_process(tmp_path)
    raw = json.loads((tmp_path / PROCESS_FILE).read_text())
    (tmp_path / PROCESS_FILE).write_text(json.dumps(raw | {"host": "elsewhere"}))
    assert not runs_here(tmp_path) and process_gone(tmp_path) is None
    (tmp_path / PROCESS_FILE).write_text(json.dumps(raw | {"boot_id": "an-earlier-boot"}))
    assert process_gone(tmp_path) == (
        f"the machine {socket.gethostname()} restarted while the run was running"
    )


def test_no_marker_or_a_broken_one_decides_nothing(tmp_path: Path) -> None:
    assert read_mark(tmp_path) is None and process_gone(tmp_path) is None
    (tmp_path / PROCESS_FILE).write_text("{not json")
    assert read_mark(tmp_path) is None and process_gone(tmp_path) is None
    assert not runs_here(tmp_path)


def test_a_process_in_another_pid_namespace_is_not_looked_up_here(tmp_path: Path) -> None:
    """A container's flow run (a Docker work pool on the host's network: the host's name and
    boot id) marks a pid of its own namespace: here that pid is another process or none, so
    the marker must not be checked here (the API then goes by heartbeats)."""
    code = (
        "import sys, time; from pathlib import Path; from flows.liveness import mark_process; "
        "mark_process(Path(sys.argv[1])); time.sleep(0.2)"
    )
    proc = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", code, str(tmp_path)],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    mark = read_mark(tmp_path)
    assert mark is not None and mark.host == socket.gethostname()
    assert mark.pid <= 3  # the first processes of the new namespace
    here = mark_process(tmp_path / "here")
    assert mark.pid_ns and here.pid_ns and mark.pid_ns != here.pid_ns
    # gone by now, and its pid names some process of this namespace: neither is evidence
    assert not runs_here(tmp_path)
    assert process_gone(tmp_path) is None
    # a marker written before namespaces were recorded is still checked here as before
    raw = json.loads((tmp_path / PROCESS_FILE).read_text())
    raw.pop("pid_ns")
    (tmp_path / PROCESS_FILE).write_text(json.dumps(raw))
    assert runs_here(tmp_path)
