"""Is a run's process still alive? The marker a flow-run process leaves in its run directory.

A flow-run process writes ``process.json`` into its run directory before the graph starts
(:func:`mark_process`): the host name, the machine's boot id, the pid and the process's start
time in clock ticks since boot (field 22 of ``/proc/<pid>/stat``). The pair (pid, start time)
names one process for the life of a boot: a pid that the kernel gave to another process since
has another start time. The marker also names the process's pid namespace
(``/proc/self/ns/pid``): a flow run in a container (a Docker work pool, even on the host's
network, with the host's name and boot id) has pids of its own namespace, which mean nothing
here, so it counts as another host's. On the same host, :func:`process_gone` then answers
exactly whether the run's process is gone, and why in a sentence — which is how a run whose
``serve`` or worker was stopped or killed mid-run is told from a run that is merely slow.
Another host's process cannot be looked at from here; the API falls back to Prefect's flow-run
heartbeats for those (:mod:`api.services.run_liveness`).

No Prefect, no database: the CLI, the flows and the API read the same small file.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PROCESS_FILE", "ProcessMark", "mark_process", "process_gone", "read_mark", "runs_here"]

PROCESS_FILE = "process.json"
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class ProcessMark:
    """Which process runs (or ran) a run: host, boot, pid and its start time in ticks."""

    host: str
    boot_id: str | None
    pid: int
    start_ticks: int | None
    # the pid namespace (``pid:[4026531836]``); None in markers written before it was recorded
    pid_ns: str | None = None


def _boot_id() -> str | None:
    try:
        return _BOOT_ID.read_text().strip() or None
    except OSError:
        return None


def _pid_ns() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _same_machine(mark: ProcessMark) -> bool:
    """Whether ``mark``'s pid means a process this process can look at: the same host name
    and (when both are known) the same pid namespace."""
    if mark.host != socket.gethostname():
        return False
    here = _pid_ns()
    return mark.pid_ns is None or here is None or mark.pid_ns == here


def _start_ticks(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks after boot; None when it is gone (a
    zombie, dead but not yet reaped by its parent, is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command (field 2) is in parentheses and may hold spaces: split after the last ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    try:
        return int(fields[19])  # field 22 overall; the fields after ')' start at field 3
    except (IndexError, ValueError):
        return None


def mark_process(run_dir: Path, pid: int | None = None) -> ProcessMark:
    """Write ``process.json`` for the current process (or ``pid``) into ``run_dir``."""
    pid = pid or os.getpid()
    mark = ProcessMark(socket.gethostname(), _boot_id(), pid, _start_ticks(pid), _pid_ns())
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".{PROCESS_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps(mark.__dict__))
    tmp.replace(run_dir / PROCESS_FILE)
    return mark


def read_mark(run_dir: Path) -> ProcessMark | None:
    """The marker of ``run_dir``; None when it has none (or it cannot be read)."""
    try:
        raw = json.loads((run_dir / PROCESS_FILE).read_text())
        return ProcessMark(
            host=str(raw["host"]),
            boot_id=raw.get("boot_id"),
            pid=int(raw["pid"]),
            start_ticks=raw.get("start_ticks"),
            pid_ns=raw.get("pid_ns"),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def runs_here(run_dir: Path) -> bool:
    """Whether the run's marker names a process of this host and pid namespace (so it can be
    checked here; a container's is not, even on the host's network)."""
    mark = read_mark(run_dir)
    return mark is not None and _same_machine(mark)


def process_gone(run_dir: Path) -> str | None:
    """Why the run's process is gone, as a sentence; None when it is alive, when the run has no
    marker, or when it ran on another host or in a container (this process cannot tell)."""
    mark = read_mark(run_dir)
    if mark is None or not _same_machine(mark):
        return None
    boot = _boot_id()
    if mark.boot_id and boot and mark.boot_id != boot:
        return f"the machine {mark.host} restarted while the run was running"
    ticks = _start_ticks(mark.pid)
    if ticks is not None and (mark.start_ticks is None or ticks == mark.start_ticks):
        return None
    return (
        f"its process on {mark.host} stopped before the run finished (the server or its "
        "worker was stopped or killed while the run was running)"
    )
