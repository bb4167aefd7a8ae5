"""Per-node progress events, delivered to whoever started the run in this process.

The CLI passes an ``on_event`` callback to :func:`flows.run.run_pipeline`; tasks publish events
by run id. Callbacks cannot travel through Prefect's (JSON) flow parameters, so the subscription
is a small process-local table keyed by run id, added and removed around one run. Events from a
flow run executing elsewhere (a worker) simply have no subscriber here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

__all__ = ["EventCallback", "NodeEvent", "publish", "subscribe"]

EventKind = Literal["started", "completed", "cached", "failed", "skipped"]


@dataclass(frozen=True)
class NodeEvent:
    """A node changed state: ``started``, ``completed``, ``cached``, ``failed`` or ``skipped``."""

    run_id: str
    node_id: str
    node_type: str
    state: EventKind
    duration_s: float | None = None
    error: str | None = None


EventCallback = Callable[[NodeEvent], None]

_lock = threading.Lock()
_subscribers: dict[str, EventCallback] = {}


@contextmanager
def subscribe(run_id: str, callback: EventCallback | None) -> Iterator[None]:
    """Deliver ``run_id``'s events to ``callback`` inside the ``with`` block."""
    if callback is None:
        yield
        return
    with _lock:
        _subscribers[run_id] = callback
    try:
        yield
    finally:
        with _lock:
            _subscribers.pop(run_id, None)


def publish(event: NodeEvent) -> None:
    """Hand ``event`` to its run's subscriber, if any (callbacks are serialised by a lock)."""
    with _lock:
        callback = _subscribers.get(event.run_id)
        if callback is not None:
            callback(event)
