"""``serve``'s supervisor: a child that exits is started again, with back-off.

A worker that dies (killed, out of memory, a crash in a dependency) would leave every later run
``pending`` until someone restarts the whole server. :class:`Supervisor` watches the children
``serve`` started (Prefect server, worker, MLflow UI) from a daemon thread: when one exits while
it was not being stopped, what its process group left behind is ended (a dead worker's flow-run
processes) and it is started again — at once the first time, then after 1, 2, 4 … 60 s while it
keeps exiting; a child that stayed up for :data:`STABLE_S` is restarted at once again. Each exit
and restart is said in one line (``serve``'s terminal), with the child's log to look at.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from deployments.stack import Child

__all__ = ["MAX_BACKOFF_S", "STABLE_S", "Supervisor"]

MAX_BACKOFF_S = 60.0
STABLE_S = 120.0  # up this long: its next exit is restarted without waiting


@dataclass
class _Watch:
    child: Child
    started: float = field(default_factory=time.monotonic)
    failures: int = 0  # exits in a row without a stable stretch
    due: float | None = None  # when a pending restart happens


class Supervisor:
    """Restarts the children that exit (see the module doc); :meth:`start` it, :meth:`stop`
    it before stopping the children."""

    def __init__(
        self,
        children: Sequence[Child],
        *,
        say: Callable[[str], None] = print,
        interval_s: float = 1.0,
    ) -> None:
        self._watches = [_Watch(c) for c in children]
        self._say = say
        self._interval_s = interval_s
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Watch in a daemon thread."""
        self._thread = threading.Thread(target=self._loop, name="supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (before the children are stopped: no restart races the stop)."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._halt.wait(self._interval_s):
            self.check()

    def check(self, now: float | None = None) -> None:
        """One look at every child: note the exits, do the restarts that are due."""
        for w in self._watches:
            if self._halt.is_set():
                return
            now = time.monotonic() if now is None else now
            child = w.child
            if child.stopping or child.alive():
                continue
            if w.due is None:
                code = child.proc.returncode
                if now - w.started >= STABLE_S:
                    w.failures = 0
                delay = 0.0 if w.failures == 0 else min(MAX_BACKOFF_S, 2.0 ** (w.failures - 1))
                w.failures += 1
                w.due = now + delay
                self._say(
                    f"{child.name} exited (code {code}); restarting in {delay:.0f} s "
                    f"(log: {child.log})"
                )
            if now >= w.due:
                try:
                    child.restart()
                except Exception as exc:  # try again after the next back-off
                    self._say(f"{child.name} could not be restarted: {exc}")
                    w.due = None
                    continue
                w.due = None
                w.started = time.monotonic()
                pid, n = child.proc.pid, child.restarts
                self._say(f"{child.name} restarted (pid {pid}, restart {n})")
