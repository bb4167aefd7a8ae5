"""Strategy sandbox containers: the sandbox policy's container, with stdin, living as long as its
strategy instance (issue 14; the protocol and the host are runners/strategyhost.py).

:func:`create_strategy_container` creates the container from exactly
:func:`~runners.docker.policy.create_kwargs` (network none, read-only root, non-root, every
capability dropped, the memory / CPU / pids limits) with two changes: ``stdin_open`` (with
``StdinOnce``: when the host's attach closes, the entrypoint reads the end of its input and
exits), and ``/out`` mounted read-only (a strategy has no outputs: its only writable place is
the small ``/tmp`` tmpfs, so nothing it writes needs watching). It reads the settings back and
refuses (removes it, ``SandboxFailure("SANDBOX_VIOLATION")``) on any difference.

Lifetime, for the sweeper (runners/docker/sweeper.py): the usual ownership labels (``owner``
``host:pid``, ``boot``, ``server``) make an engine that dies leave nothing behind (the sweeper
removes an owner-gone container; the process's atexit removes what it owns). A long-lived
container must not retire at a wall-time deadline, so its ``deadline`` label is a distant
ceiling, and the deadline that counts is a **lease** in its name,
``af-run.<run>.strategy.<deadline>-<random>`` (the claimed pooled containers' form, which the
sweeper already reads: it takes the earlier of label and name). :class:`Lease` renews it (a
rename) every quarter of ``lease_s`` while the host lives, so a container whose owner cannot be
judged from here (another machine's process, a pid reused) still goes within one lease.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import docker
from docker.errors import DockerException, ImageNotFound, NotFound
from docker.types import Mount
from docker.utils.socket import frames_iter

from runners.base import RunnerError
from runners.custom import Limits
from runners.docker.engine import claim_name, docker_client, ownership_labels
from runners.docker.images import SandboxImages
from runners.docker.policy import ContainerPlan, create_kwargs, policy_violations
from runners.docker.pool import register_client
from runners.docker.sweeper import process_sweeper
from runners.jobs import SandboxFailure

__all__ = [
    "LEASE_S",
    "Attached",
    "Lease",
    "StrategyContainer",
    "create_strategy_container",
    "exit_reason",
    "strategy_plan",
    "strategy_run_id",
]

log = logging.getLogger(__name__)

LEASE_S = float(os.environ.get("ALPHAFORGE_STRATEGY_LEASE_S", "300"))
# the label's deadline: only a ceiling (the lease in the name is what retires the container)
_LABEL_CEILING_S = 10 * 365 * 86400.0
ENTRY = "/opt/alphaforge/strategy_entry.py"
#: custom tick strategies' entrypoint (runners/tickstrategy.py)
TICK_ENTRY = "/opt/alphaforge/tick_strategy_entry.py"


def strategy_run_id(instance_id: str) -> str:
    """The ``alphaforge.run_id`` label of an instance's containers (what ``cancel`` takes)."""
    return f"strategy-{instance_id}"


def strategy_plan(
    image: str, job_dir: str, out_dir: str, limits: Limits, instance_id: str, entry: str = ENTRY
) -> ContainerPlan:
    """The container plan of one strategy instance's sandbox (``entry``: the entrypoint)."""
    now = time.time()
    labels = {
        "alphaforge.sandbox": "1",
        "alphaforge.run_id": strategy_run_id(instance_id),
        "alphaforge.node_id": "strategy",
        "alphaforge.strategy": instance_id,
        "alphaforge.created_at": f"{now:.0f}",
        "alphaforge.deadline": f"{now + _LABEL_CEILING_S:.0f}",
        **ownership_labels(),
    }
    command = ["/usr/local/bin/python3", "-I", "-B", entry, "/job"]
    return ContainerPlan(image, command, job_dir, out_dir, limits, labels)


def _lease_name(plan: ContainerPlan, lease_s: float) -> str:
    return claim_name(plan.labels["alphaforge.run_id"], "strategy", time.time() + lease_s)


def create_strategy_container(
    client: docker.DockerClient, plan: ContainerPlan, lease_s: float
) -> Any:
    """Create (not start) the policy-checked container with stdin open; its name carries the
    first lease. Raises SandboxFailure("SANDBOX_VIOLATION") on any drift from the policy."""
    kwargs = create_kwargs(plan)
    kwargs["stdin_open"] = True
    kwargs["mounts"] = [
        Mount(target="/job", source=plan.job_dir, type="bind", read_only=True),
        Mount(target="/out", source=plan.out_dir, type="bind", read_only=True),
    ]
    kwargs["name"] = _lease_name(plan, lease_s)
    container = client.containers.create(**kwargs)
    violations = policy_violations(container.attrs, plan.limits)
    config = container.attrs.get("Config") or {}
    if not (config.get("OpenStdin") and config.get("StdinOnce")) or config.get("Tty"):
        violations.append("stdin is not open once without a TTY")
    if violations:
        with contextlib.suppress(DockerException):
            client.api.remove_container(container.id, force=True)
        raise SandboxFailure(
            "SANDBOX_VIOLATION",
            "the strategy's container differs from the sandbox policy, not started: "
            + "; ".join(violations),
        )
    return container


class Attached:
    """The container's stdin, stdout and stderr over one attach connection (docker-py's socket,
    demultiplexed with its ``frames_iter``): the engine the container was checked on, no
    extra process per instance. Attach before start so no output is missed."""

    def __init__(self, client: docker.DockerClient, container_id: str) -> None:
        params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        self._sock = client.api.attach_socket(container_id, params=params)
        self._raw = getattr(self._sock, "_sock", self._sock)
        # the client's read timeout would end an idle attach: block (a thread reads it)
        for s in (self._sock, self._raw):
            with contextlib.suppress(AttributeError, OSError):
                s.settimeout(None)

    def send(self, data: bytes) -> None:
        """Write to the container's stdin (OSError when the connection is gone)."""
        self._raw.sendall(data)

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """``(stream, bytes)``: 1 stdout, 2 stderr, until the container's streams end."""
        with contextlib.suppress(OSError, ValueError):
            yield from frames_iter(self._sock, False)

    def close(self) -> None:
        """Close stdin (the entrypoint sees its input end) and the connection."""
        with contextlib.suppress(OSError):
            self._raw.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            self._sock.close()
        with contextlib.suppress(OSError):
            self._raw.close()


class Lease:
    """Renews a strategy container's lease (its name) every ``lease_s / 4`` until stopped."""

    def __init__(
        self, client: docker.DockerClient, container: Any, plan: ContainerPlan, lease_s: float
    ) -> None:
        self.client = client
        self.container_id: str = container.id
        self.plan = plan
        self.lease_s = lease_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="strategy-lease")
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.lease_s / 4):
            try:
                name = _lease_name(self.plan, self.lease_s)
                self.client.api.rename(self.container_id, name)
            except NotFound:
                return
            except Exception as exc:  # an engine hiccup: the next renewal retries
                log.warning("could not renew the lease of %s: %s", self.container_id[:12], exc)

    def stop(self) -> None:
        """Stop renewing (a renewal under way finishes first)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=15)


def exit_reason(client: docker.DockerClient, container_id: str, memory_mb: int, tail: str) -> str:
    """Why the container's entrypoint ended: out of memory (naming the limit), killed, or its
    exit code with the last thing it wrote on stderr."""
    with contextlib.suppress(DockerException, OSError):
        client.api.wait(container_id, timeout=10)
    try:
        state = client.api.inspect_container(container_id)["State"]
    except NotFound:
        return "the sandbox container was removed from outside"
    except (DockerException, OSError) as exc:
        return f"the sandbox ended and the engine did not say how ({exc})"
    code = state.get("ExitCode")
    if state.get("OOMKilled"):
        return f"out of memory: the sandbox was killed at its memory limit of {memory_mb} MiB"
    if code == 4:
        return f"out of memory: MemoryError at the sandbox's memory limit of {memory_mb} MiB"
    if code == 137:
        return (
            f"the sandbox was killed (exit 137): out of memory at its {memory_mb} MiB limit, "
            "or stopped from outside"
        )
    said = f": {tail.strip().splitlines()[-1][:300]}" if tail.strip() else ""
    return f"the sandbox exited with code {code}{said}"


class Sink(Protocol):
    """Where a container's output goes (runners/strategyhost.py's reply reader)."""

    def out(self, data: bytes) -> None: ...

    def err(self, data: bytes) -> None: ...

    def eof(self) -> None: ...

    @property
    def stderr_tail(self) -> str: ...


def _self_test(client: docker.DockerClient) -> None:
    """User code only after the sandbox self-test passed (once per process and image set)."""
    from runners.custom import ManifestCatalog
    from runners.docker.runner import DockerRunner

    report = DockerRunner(ManifestCatalog([]), client=client).ensure_ready()
    if not report.passed:
        raise SandboxFailure(
            "SANDBOX_UNAVAILABLE", "the sandbox self-test failed: " + "; ".join(report.failures)
        )


class StrategyContainer:
    """One strategy instance's container: :meth:`launch` (self-test, job dir, create, attach,
    start, lease), :meth:`send`, :meth:`kill`, :meth:`exit_reason`, :meth:`remove`. Engine
    failures at launch are ``SandboxFailure`` with a sentence."""

    def __init__(
        self,
        client: docker.DockerClient | None,
        limits: Limits,
        instance_id: str,
        *,
        lease_s: float | None = None,
        entry: str = ENTRY,
    ) -> None:
        self.client = client
        self.limits = limits
        self.instance_id = instance_id
        self.entry = entry
        self.lease_s = lease_s or LEASE_S
        self.container_id: str | None = None
        self._slot: Path | None = None
        self._attached: Attached | None = None
        self._lease: Lease | None = None
        self._reader: threading.Thread | None = None
        self._sink: Sink | None = None

    def launch(self, code: str, slot: Path, sink: Sink) -> None:
        """Start the sandbox with ``code`` as /job/strategy.py (under ``slot``, a fresh
        directory); its output goes to ``sink``."""
        self._sink = sink
        self._slot = slot
        try:
            client = self.client = self.client or docker_client()
            _self_test(client)
            register_client(client)  # at exit, this process's containers go
            process_sweeper(client)  # dead owners' containers and expired leases, on a timer
            job, out = slot / "job", slot / "out"
            job.mkdir()
            out.mkdir()
            (job / "strategy.py").write_text(code, encoding="utf-8")
            for path in (slot, job, out):
                path.chmod(0o755)  # the sandbox user (not this process's uid) reads the code
            (job / "strategy.py").chmod(0o644)
            image = SandboxImages().python
            plan = strategy_plan(
                image, str(job), str(out), self.limits, self.instance_id, self.entry
            )
            container = create_strategy_container(client, plan, self.lease_s)
            self.container_id = container.id
            self._attached = Attached(client, container.id)
            self._reader = threading.Thread(
                target=_read, args=(self._attached, sink), daemon=True, name="strategy-reader"
            )
            self._reader.start()
            container.start()
            self._lease = Lease(client, container, plan, self.lease_s)
        except ImageNotFound:
            raise SandboxFailure(
                "SANDBOX_UNAVAILABLE",
                "the strategy sandbox image is missing; build it with "
                "infra/build_sandbox_images.sh",
            ) from None
        except DockerException as exc:
            raise SandboxFailure(
                "SANDBOX_UNAVAILABLE", f"the Docker sandbox failed: {exc}"
            ) from None
        except SandboxFailure:
            raise
        except RunnerError as exc:  # the self-test's: a missing image, the caps
            raise SandboxFailure("SANDBOX_UNAVAILABLE", str(exc)) from None

    def send(self, data: bytes) -> None:
        """Write to the entrypoint's stdin (OSError once the connection is gone)."""
        if self._attached is None:
            raise OSError("the strategy container is not attached")
        self._attached.send(data)

    def kill(self) -> None:
        """SIGKILL the container (its entrypoint's output then ends)."""
        if self.client is not None and self.container_id is not None:
            with contextlib.suppress(DockerException, OSError):
                self.client.api.kill(self.container_id)

    def exit_reason(self) -> str:
        """Why it ended (once its output ended), with the end of its stderr."""
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self.client is None or self.container_id is None or self._sink is None:
            return "the sandbox was never started"
        tail = self._sink.stderr_tail
        return exit_reason(self.client, self.container_id, self.limits.memory_mb, tail)

    def remove(self) -> None:
        """Remove the container (killing it) and its job directory."""
        if self._lease is not None:
            self._lease.stop()
        if self._attached is not None:
            self._attached.close()
        if self.client is not None and self.container_id is not None:
            # if this fails (the engine busy), the sweeper removes it once its owner or lease goes
            with contextlib.suppress(DockerException, OSError):
                self.client.api.remove_container(self.container_id, force=True)
        if self._slot is not None:
            shutil.rmtree(self._slot, ignore_errors=True)


def _read(attached: Attached, sink: Sink) -> None:
    try:
        for stream, data in attached.frames():
            if stream == 1:
                sink.out(data)
            else:
                sink.err(data)
    finally:
        sink.eof()
