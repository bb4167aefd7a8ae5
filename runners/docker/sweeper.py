"""Removing sandbox containers nobody will collect, on a timer: overdue ones and orphans.

Every sandbox container carries labels: ``alphaforge.sandbox=1``, ``run_id``, ``node_id``,
``created_at``, ``deadline`` (creation + wall time, or a pooled one's idle limit, + grace),
``owner`` (``host:pid`` of the process that created it), ``boot`` (the host's boot id),
``pidns`` (its pid namespace) and, under ``alphaforge serve``, ``server`` (the serving
process's ``host:pid``). A pooled container taken
for an execution is renamed ``af-run.<run>.<node>.<deadline>-<random>``: its labels were fixed
before its execution was known, the name carries that execution's deadline.

:func:`sweep` removes a container when its deadline (the earlier of label and name) has passed,
whatever its state, or when its owner (or its server) is gone: a process on this host that no
longer exists, or one of a previous boot. Pids are looked at only when the container's creator
shares the sweeper's pid namespace: a sweeper in a flow-run container on the host's network
(a Docker work pool) has the host's name and boot id but sees none of the host's processes.
:func:`remove_owned` removes every container of an owner or a server (a graceful stop).
:class:`Sweeper` sweeps on a timer (``ALPHAFORGE_SANDBOX_SWEEP_S``, default 5 s): one per
process that runs sandboxes (:func:`process_sweeper`), and one in ``alphaforge serve`` beside
its worker (:class:`ServerSandboxes`), so nothing outlives its deadline by more than the
interval, whether or not another run happens.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable

import docker
from docker.errors import APIError, NotFound

from runners.docker.engine import (
    SERVER_ENV,
    boot_id,
    claimed_deadline,
    owner_label,
    pid_namespace,
)

__all__ = [
    "ORPHAN_MIN_AGE_S",
    "ServerSandboxes",
    "Sweeper",
    "process_sweeper",
    "remove_owned",
    "sweep",
    "sweep_interval_s",
]

log = logging.getLogger(__name__)

SWEEP_ENV = "ALPHAFORGE_SANDBOX_SWEEP_S"


def sweep_interval_s() -> float:
    """Seconds between sweeps (``ALPHAFORGE_SANDBOX_SWEEP_S``, default 5, at least 0.5)."""
    try:
        return max(0.5, float(os.environ.get(SWEEP_ENV, "5")))
    except ValueError:
        return 5.0


def _process_gone(owner: str, boot: str) -> bool:
    """True when ``owner`` (``host:pid``) is a process of this host that no longer exists."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's process: only its deadline can retire it here
    if boot and boot != boot_id():
        return True  # created before this host's last boot: that pid is not the process now
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _deadline(labels: dict[str, str], names: list[str]) -> float:
    try:
        deadline = float(labels.get("alphaforge.deadline", "0"))
    except ValueError:
        deadline = 0.0
    claimed = claimed_deadline(names)
    return deadline if claimed is None else min(deadline, claimed)


ORPHAN_MIN_AGE_S = 15.0


def sweep(
    client: docker.DockerClient, *, now: float | None = None, orphan_min_age_s: float = 0.0
) -> list[str]:
    """Remove overdue and orphaned sandbox containers; returns the ids removed. An orphan
    younger than ``orphan_min_age_s`` (by its ``created_at`` label) is left for a later sweep:
    the timers pass :data:`ORPHAN_MIN_AGE_S`, so no sweeper removes a container between its
    creation and its start (a start-up sweep passes 0)."""
    now = time.time() if now is None else now
    own_ns = pid_namespace()
    removed: list[str] = []
    # the low-level list: no per-container inspect racing with a worker's own removals
    for c in client.api.containers(all=True, filters={"label": "alphaforge.sandbox=1"}):
        labels = c.get("Labels") or {}
        boot = labels.get("alphaforge.boot", "")
        # A live owner's containers (running, or just exited and about to be inspected) are
        # left alone until their deadline: the owner removes them itself.
        stale = _deadline(labels, list(c.get("Names") or ())) < now
        # pids of another namespace say nothing here (no label: made before the label was)
        ours = labels.get("alphaforge.pidns", own_ns) == own_ns
        orphaned = ours and _process_gone(labels.get("alphaforge.owner", ""), boot)
        server = labels.get("alphaforge.server", "")
        orphaned = orphaned or (ours and bool(server) and _process_gone(server, boot))
        if orphaned and not stale and orphan_min_age_s > 0:
            try:
                age = now - float(labels.get("alphaforge.created_at", "0"))
            except ValueError:
                age = float("inf")
            orphaned = age >= orphan_min_age_s
        if stale or orphaned:
            with contextlib.suppress(NotFound, APIError):
                client.api.remove_container(c["Id"], force=True)
                removed.append(c["Id"])
    return removed


def remove_owned(
    client: docker.DockerClient, *, owner: str | None = None, server: str | None = None
) -> list[str]:
    """Remove (killing if running) every sandbox container of ``owner`` or of ``server``."""
    removed: list[str] = []
    for key, value in (("owner", owner), ("server", server)):
        if not value:
            continue
        found = client.api.containers(
            all=True, filters={"label": ["alphaforge.sandbox=1", f"alphaforge.{key}={value}"]}
        )
        for c in found:
            with contextlib.suppress(NotFound, APIError):
                client.api.remove_container(c["Id"], force=True)
                removed.append(c["Id"])
    return removed


class Sweeper:
    """A daemon thread that sweeps every ``interval_s`` seconds until :meth:`stop`; ``also``
    runs on each tick too (a warm pool retiring idle containers)."""

    def __init__(self, client: docker.DockerClient, interval_s: float | None = None) -> None:
        self.client = client
        self.interval_s = sweep_interval_s() if interval_s is None else interval_s
        self.also: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="sandbox-sweeper")

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> Sweeper:
        """Start sweeping in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the current sweep."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            with contextlib.suppress(Exception):  # an engine hiccup must not kill the worker
                sweep(self.client, orphan_min_age_s=ORPHAN_MIN_AGE_S)
            for hook in list(self.also):
                with contextlib.suppress(Exception):
                    hook()


_PROCESS_SWEEPER: Sweeper | None = None
_PROCESS_LOCK = threading.Lock()


def process_sweeper(client: docker.DockerClient) -> Sweeper:
    """This process's sweeper, started on first use (the first sandbox execution or pool)."""
    global _PROCESS_SWEEPER
    with _PROCESS_LOCK:
        if _PROCESS_SWEEPER is None or not _PROCESS_SWEEPER.running:
            _PROCESS_SWEEPER = Sweeper(client).start()
        return _PROCESS_SWEEPER


class ServerSandboxes:
    """The sandbox side of a serving instance (``alphaforge serve``), on the machine where its
    worker runs the sandboxes: :meth:`start` labels the worker's containers with this server
    (through the environment the worker inherits), removes what dead owners left, and sweeps on
    a timer; :meth:`stop` (after the worker has stopped) removes every container of this server
    that is left. Without a Docker engine it does nothing (the worker refuses user code)."""

    def __init__(self, interval_s: float | None = None) -> None:
        self.server = owner_label()
        self.interval_s = interval_s
        self.client: docker.DockerClient | None = None
        self.sweeper: Sweeper | None = None

    def start(self) -> ServerSandboxes:
        """Set the server label for children, sweep leftovers, start the timer; returns self."""
        os.environ[SERVER_ENV] = self.server
        try:
            client = docker.from_env(version="auto", timeout=30)
            removed = sweep(client)
        except Exception as exc:  # no engine here (a connection error is not a DockerException)
            log.info("no Docker engine for the sandbox sweeper (%s)", exc)
            return self
        if removed:
            log.info("removed %d sandbox container(s) left by stopped processes", len(removed))
        self.client = client
        self.sweeper = Sweeper(client, self.interval_s).start()
        return self

    def stop(self) -> list[str]:
        """Stop sweeping and remove every container of this server; returns their ids."""
        if self.sweeper is not None:
            self.sweeper.stop()
        if self.client is None:
            return []
        try:
            return remove_owned(self.client, server=self.server) + sweep(self.client)
        except Exception:  # the engine went away: the next start sweeps what is left
            return []
