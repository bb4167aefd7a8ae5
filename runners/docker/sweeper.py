"""Removing sandbox containers nobody will collect: stale ones and those of dead workers.

Every sandbox container carries labels: ``alphaforge.sandbox=1``, ``run_id``, ``node_id``,
``created_at``, ``deadline`` (creation + wall time + grace) and ``owner`` (``host:pid`` of the
worker). :func:`sweep` removes a container when its deadline has passed (whatever its state),
or when its owner is a process on this host that no longer exists (the worker died mid-run).
A live worker's container whose removal failed goes at its deadline. Workers sweep at start-up
and then periodically (:class:`Sweeper`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time

import docker
from docker.errors import APIError, NotFound

__all__ = ["Sweeper", "sweep"]


def _owner_gone(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's worker: only its deadline can retire it here
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def sweep(client: docker.DockerClient, *, now: float | None = None) -> list[str]:
    """Remove leftover sandbox containers; returns the ids removed."""
    now = time.time() if now is None else now
    removed: list[str] = []
    # the low-level list: no per-container inspect racing with a worker's own removals
    for c in client.api.containers(all=True, filters={"label": "alphaforge.sandbox=1"}):
        labels = c.get("Labels") or {}
        try:
            deadline = float(labels.get("alphaforge.deadline", "0"))
        except ValueError:
            deadline = 0.0
        # A live worker's containers (running or just exited, about to be inspected) are left
        # alone until their deadline: the worker removes them itself.
        stale = deadline < now
        orphaned = _owner_gone(labels.get("alphaforge.owner", ""))
        if stale or orphaned:
            with contextlib.suppress(NotFound, APIError):
                client.api.remove_container(c["Id"], force=True)
                removed.append(c["Id"])
    return removed


class Sweeper:
    """A daemon thread that sweeps every ``interval_s`` seconds until :meth:`stop`."""

    def __init__(self, client: docker.DockerClient, interval_s: float = 60.0) -> None:
        self.client = client
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="sandbox-sweeper")

    def start(self) -> Sweeper:
        """Start sweeping in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the current sweep."""
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            with contextlib.suppress(Exception):  # an engine hiccup must not kill the worker
                sweep(self.client)
