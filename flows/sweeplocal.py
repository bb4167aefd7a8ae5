"""The ``local`` sweep executor on N > 1 workers: processes forked from the flow's own process.

The flow's process warms up first (imports done, the data loaded, the compiled backtest kernel
in memory; :func:`~flows.sweepchunk.warm_up`), then forks N workers. A forked worker is ready in
milliseconds and shares the data's pages with its parent, where a fresh interpreter (Prefect's
process-pool task runner) spends seconds importing, loading the data and the kernel again — on
a 2-core machine that start cost more than a second worker saved. The parent keeps every worker
:data:`QUEUE_DEPTH` chunks deep and follows the trials files meanwhile; the MLflow thread writes
the child runs beside them.

Forking a process that runs threads (Prefect's API client and log shipping) is safe here because
the workers run trial code only — numpy, pandas, the compiled kernel, file writes — never
Prefect, MLflow or a network client, whose locks and event loops a child inherits in an unknown
state; they leave with ``os._exit`` (multiprocessing's way), running no exit hooks. A chunk
travels as its fields without the spec: each worker inherited the spec when it was forked.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from flows.sweepspec import SweepSpec

__all__ = ["QUEUE_DEPTH", "ForkedWorkers", "WorkerLost"]

QUEUE_DEPTH = 2  # chunks sent ahead to each worker, so none idles while the parent is busy
_SPEC: SweepSpec | None = None  # the spec, as the forked workers inherit it


class WorkerLost(RuntimeError):
    """A forked worker ended while it held chunks (killed, out of memory)."""


@dataclass
class _Worker:
    process: Any
    conn: Connection
    held: list[str] = field(default_factory=list)  # the parts sent and not answered yet


def _serve(conn: Connection, run: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """A worker's loop: a chunk's fields in, its summary (or its error) out; None ends it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when a sweep stops
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        try:
            conn.send(("ok", run(message)))
        except Exception as exc:  # reported by the parent as the chunk's failure
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class ForkedWorkers:
    """``n`` processes forked from this one, evaluating chunks with ``run`` (a module-level
    function taking a chunk's fields and the spec they belong to)."""

    def __init__(
        self, n: int, spec: SweepSpec, run: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> None:
        global _SPEC
        _SPEC = spec
        context = multiprocessing.get_context("fork")
        self.workers: list[_Worker] = []
        for i in range(n):
            parent, child = context.Pipe()
            process = context.Process(
                target=_serve, args=(child, run), name=f"sweep-worker-{i}", daemon=True
            )
            process.start()
            child.close()
            self.workers.append(_Worker(process, parent))
        self.lost: list[str] = []  # why workers were lost, one sentence each

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self.workers]

    def free(self) -> _Worker | None:
        """The live worker holding the fewest chunks, if it holds fewer than :data:`QUEUE_DEPTH`."""
        live = [w for w in self.workers if w.process.is_alive()]
        if not live:
            return None
        worker = min(live, key=lambda w: len(w.held))
        return worker if len(worker.held) < QUEUE_DEPTH else None

    def send(self, worker: _Worker, part: str, fields: dict[str, Any]) -> None:
        worker.conn.send(fields)
        worker.held.append(part)

    def collect(self) -> list[tuple[str, str, Any]]:
        """The answers ready now, as (part, "ok" or "error", summary or message); a worker that
        ended holding chunks is dropped, its chunks answered as errors."""
        answers: list[tuple[str, str, Any]] = []
        for worker in list(self.workers):
            while worker.held and worker.conn.poll():
                try:
                    status, payload = worker.conn.recv()
                except (EOFError, OSError):
                    break
                answers.append((worker.held.pop(0), status, payload))
            if worker.held and not worker.process.is_alive() and not worker.conn.poll():
                why = _exit_reason(worker.process.exitcode)
                message = f"the worker process {worker.process.pid} {why}"
                self.lost.append(message)
                answers += [(part, "error", message) for part in worker.held]
                worker.held.clear()
                self.workers.remove(worker)
        return answers

    @property
    def busy(self) -> bool:
        return any(w.held for w in self.workers)

    def close(self, grace_s: float = 5.0) -> None:
        """Ask every worker to end; any still running after ``grace_s`` is killed."""
        for worker in self.workers:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        deadline = time.monotonic() + grace_s
        for worker in self.workers:
            if worker.held:  # a cancelled sweep: its chunk is not waited for
                worker.process.kill()
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(1.0)
            worker.conn.close()
        self.workers.clear()


def inherited_spec() -> SweepSpec:
    """The spec the forked workers inherited from the flow's process."""
    assert _SPEC is not None, "not a forked sweep worker"
    return _SPEC


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed ({signal.Signals(-code).name})"
    return f"exited (code {code})" if code is not None else "stopped answering"
