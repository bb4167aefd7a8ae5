"""Concurrency limits for sandbox executions (test runs and look-ahead checks).

Each execution of user code the API asks a worker for takes a slot: at most
``sandbox_per_user`` at once per user and ``sandbox_total`` at once in all. A request that finds
no free slot waits in a short queue (at most ``sandbox_queue`` requests in all, at most
``sandbox_per_user`` of them one user's) for up to ``sandbox_queue_wait_s``; when the queue is
full, or the wait runs out, it gets a 429 :class:`SandboxBusy` with ``Retry-After`` and a
sentence saying which limit was hit. Waiting is FIFO among the requests that could run.

Admission (:meth:`SandboxLimits.admit`) never blocks, so the event loop can decide before it
hands the waiting to a thread; :meth:`Ticket.wait` blocks the calling thread only. In memory,
per API process, like the log-in throttle.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from api.errors import TooManyRequests

__all__ = ["SandboxBusy", "SandboxLimits", "Ticket"]

T = TypeVar("T")


class SandboxBusy(TooManyRequests):
    """No sandbox slot for this request now: too many executions running and waiting."""


@dataclass(eq=False)
class Ticket:
    """One admitted request: running (holds a slot) or waiting in the queue for one."""

    limits: SandboxLimits
    user_id: int
    running: bool = False
    released: bool = field(default=False)

    def wait(self) -> None:
        """Block until this ticket holds a slot; :class:`SandboxBusy` when the queue wait runs
        out (the ticket is then released)."""
        self.limits._wait(self)

    def release(self) -> None:
        """Give the slot (or the place in the queue) back; idempotent."""
        self.limits._release(self)


class SandboxLimits:
    """Per-user and global slots for sandbox executions, with a bounded FIFO queue."""

    def __init__(
        self, per_user: int, total: int, queue: int, queue_wait_s: float, retry_after_s: int = 10
    ) -> None:
        self.per_user = per_user
        self.total = total
        self.queue = queue
        self.queue_wait_s = queue_wait_s
        self.retry_after_s = retry_after_s
        self._cond = threading.Condition()
        self._running: dict[int, int] = {}
        self._waiting: list[Ticket] = []
        # Every admitted ticket (running or queued) has a thread here, never a backlog: the
        # sandbox work of :meth:`run` never takes the threads other requests are served by.
        self._threads = ThreadPoolExecutor(
            max_workers=total + queue, thread_name_prefix="sandbox-slot"
        )

    def close(self) -> None:
        """Stop taking work (running executions finish in their threads)."""
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def run(self, user_id: int, fn: Callable[[], T]) -> T:
        """``fn()`` in a slot of ``user_id``, in this limiter's own threads: 429 at once when
        there is no room (not even in the queue), else waits without blocking the event loop.
        The slot is held until ``fn`` returns, even when the awaiting request goes away."""
        ticket = self.admit(user_id)
        try:
            future = self._threads.submit(self._in_slot, ticket, fn)
        except RuntimeError:  # shut down
            ticket.release()
            raise
        return await asyncio.wrap_future(future)

    @staticmethod
    def _in_slot(ticket: Ticket, fn: Callable[[], T]) -> T:
        try:
            ticket.wait()
            return fn()
        finally:
            ticket.release()

    @property
    def running(self) -> int:
        """Executions holding a slot now."""
        with self._cond:
            return sum(self._running.values())

    @property
    def waiting(self) -> int:
        """Requests in the queue now."""
        with self._cond:
            return len(self._waiting)

    def _can_run(self, user_id: int) -> bool:
        return (
            self._running.get(user_id, 0) < self.per_user
            and sum(self._running.values()) < self.total
        )

    def _take(self, ticket: Ticket) -> None:
        self._running[ticket.user_id] = self._running.get(ticket.user_id, 0) + 1
        ticket.running = True

    def admit(self, user_id: int) -> Ticket:
        """A ticket that runs now or waits in the queue; :class:`SandboxBusy` when the queue
        has no room for it. Never blocks."""
        with self._cond:
            ticket = Ticket(self, user_id)
            if self._first_runnable() is None and self._can_run(user_id):
                self._take(ticket)  # nobody who could run is waiting ahead
                return ticket
            mine = sum(1 for t in self._waiting if t.user_id == user_id)
            running = self._running.get(user_id, 0)
            at_limit = running >= self.per_user
            if mine >= self.per_user or (at_limit and len(self._waiting) >= self.queue):
                raise self._busy(
                    f"you already have {running} test run(s) or look-ahead check(s) running and "
                    f"{mine} waiting, the most one user may have"
                )
            if len(self._waiting) >= self.queue:
                raise self._busy(
                    f"all {self.total} sandbox slots are in use and {len(self._waiting)} "
                    "request(s) are already waiting"
                )
            self._waiting.append(ticket)
            return ticket

    def _busy(self, why: str) -> SandboxBusy:
        return SandboxBusy(
            f"The sandboxes are busy: {why}. Wait for a test run to finish and try again in "
            f"{self.retry_after_s} s.",
            self.retry_after_s,
        )

    def _first_runnable(self) -> Ticket | None:
        return next((t for t in self._waiting if self._can_run(t.user_id)), None)

    def _wait(self, ticket: Ticket) -> None:
        deadline = time.monotonic() + self.queue_wait_s
        with self._cond:
            while not ticket.running:
                if ticket.released:
                    raise self._busy("the request was withdrawn")
                if self._first_runnable() is ticket:
                    self._waiting.remove(ticket)
                    self._take(ticket)
                    self._cond.notify_all()  # the next waiter may run too
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    self._waiting.remove(ticket)
                    ticket.released = True
                    self._cond.notify_all()
                    raise self._busy(
                        f"this request waited {math.ceil(self.queue_wait_s)} s in the queue "
                        "and no slot became free"
                    )
                self._cond.wait(left)

    def _release(self, ticket: Ticket) -> None:
        with self._cond:
            if ticket.released:
                return
            ticket.released = True
            if ticket.running:
                left = self._running[ticket.user_id] - 1
                if left:
                    self._running[ticket.user_id] = left
                else:
                    del self._running[ticket.user_id]
                ticket.running = False
            elif ticket in self._waiting:
                self._waiting.remove(ticket)
            self._cond.notify_all()

    @contextmanager
    def slot(self, user_id: int) -> Iterator[None]:
        """Hold a slot for the block (admit, wait in this thread, release)."""
        ticket = self.admit(user_id)
        try:
            ticket.wait()
            yield
        finally:
            ticket.release()
