"""The supervisor (deployments.supervise) on real child processes: an exited child is
restarted at once, then with back-off while it keeps exiting; its leftovers are killed first;
a stopped child is never brought back."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from deployments.stack import Child
from deployments.supervise import Supervisor
from tests.deployments.fixtures import pid_alive, wait_for

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
# a leader that starts a grandchild in its own group and then sleeps: killing the leader alone
# leaves the grandchild behind, as a SIGKILLed worker leaves its flow-run processes
PARENT = [
    sys.executable,
    "-c",
    "import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', "
    "'import time; time.sleep(120)']); print(p.pid, flush=True); time.sleep(120)",
]


def test_a_killed_child_is_restarted_and_its_leftovers_are_killed(tmp_path: Path) -> None:
    child = Child("parent", PARENT, dict(os.environ), tmp_path / "parent.log")
    said: list[str] = []
    sup = Supervisor([child], say=said.append, interval_s=0.1)
    try:
        grandchild = int(wait_for(lambda: child.log.read_text().strip(), 20, 0.1, "the pid"))
        first = child.proc.pid
        os.kill(first, signal.SIGKILL)
        child.proc.wait(timeout=10)
        assert pid_alive(grandchild)  # left behind in the dead leader's group
        sup.start()
        wait_for(lambda: child.restarts == 1 and child.alive(), 20, 0.1, "the restart")
        assert child.proc.pid != first
        wait_for(lambda: not pid_alive(grandchild), 20, 0.1, "the leftover to be killed")
        assert said[0] == f"parent exited (code -9); restarting in 0 s (log: {child.log})"
        assert said[1] == f"parent restarted (pid {child.proc.pid}, restart 1)"
    finally:
        sup.stop()
        child.stop(grace_s=5)
    assert not child.alive()


def test_a_child_that_keeps_exiting_is_restarted_with_back_off(tmp_path: Path) -> None:
    child = Child(
        "flaky",
        [sys.executable, "-c", "raise SystemExit(3)"],
        dict(os.environ),
        tmp_path / "flaky.log",
    )
    said: list[str] = []
    sup = Supervisor([child], say=said.append)
    child.proc.wait(timeout=10)
    t = time.monotonic()  # the restarts below stamp real time: stay near it
    sup.check(now=t)  # first exit: at once
    assert child.restarts == 1
    child.proc.wait(timeout=10)
    for delay in (1, 2, 4, 8):
        sup.check(now=t)  # noted, not yet due
        assert said[-1] == f"flaky exited (code 3); restarting in {delay} s (log: {child.log})"
        restarts = child.restarts
        sup.check(now=t + delay - 0.01)
        assert child.restarts == restarts
        t += delay
        sup.check(now=t)
        assert child.restarts == restarts + 1
        child.proc.wait(timeout=10)
    assert child.restarts == 5


def test_a_stopped_child_is_not_restarted(tmp_path: Path) -> None:
    child = Child("sleeper", SLEEPER, dict(os.environ), tmp_path / "sleeper.log")
    sup = Supervisor([child], say=lambda _: None, interval_s=0.05)
    sup.start()
    child.stop(grace_s=5)
    try:
        for _ in range(10):
            sup.check()
        assert child.restarts == 0 and not child.alive()
    finally:
        sup.stop()


def test_a_restarted_fork_server_leaves_its_running_forks_alone(tmp_path: Path) -> None:
    class ForkServer(Child):
        restart_ends_leftovers = False  # as WarmProcesses: its forks are runs in progress

    child = ForkServer("forks", PARENT, dict(os.environ), tmp_path / "forks.log")
    try:
        grandchild = int(wait_for(lambda: child.log.read_text().strip(), 20, 0.1, "the pid"))
        os.kill(child.proc.pid, signal.SIGKILL)
        child.proc.wait(timeout=10)
        Supervisor([child], say=lambda _: None).check()
        assert child.restarts == 1 and child.alive()
        assert pid_alive(grandchild)  # the run it was carrying goes on
    finally:
        child.stop(grace_s=5)
        with contextlib.suppress(ProcessLookupError):
            os.kill(grandchild, signal.SIGKILL)
