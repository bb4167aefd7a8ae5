"""A warm pool: pre-started, single-use sandbox containers, so an execution skips start-up.

A pooled container is created with exactly the policy and default limits of a fresh one (and
read back the same way), then started with the entrypoint in ``--wait`` mode: the runtime loads
(pandas, wasmtime or Node) and blocks reading the FIFO ``/job/go``. To run a node the executor
moves the prepared job files into the container's (read-only to it) job directory, writes
``go`` into the FIFO and watches it as usual; its outputs are moved back for validation.

"Reset between executions" is done by never reusing a container: after one execution it is
removed and a replacement is started in the background once the execution has ended. That
costs the same engine work as a fresh container but off the critical path, and leaves nothing
(files, processes, memory) of one user's run for the next. Executions with non-default limits
use a fresh container.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runners.custom import Limits
from runners.docker.engine import STALE_GRACE_S, DockerExecutor, owner_label
from runners.docker.policy import ContainerPlan
from runners.jobs import SandboxFailure
from runners.sandboxed import ExecSpec

__all__ = ["PoolEntry", "WarmPool"]

_GROUPS = ("python", "javascript")  # python and wasm share the Python image


def _group(spec: ExecSpec) -> str:
    return "javascript" if spec.language == "javascript" else "python"


@dataclass
class PoolEntry:
    """One started container waiting for its job."""

    container: Any
    stream: Any
    slot: Path
    created: float

    @property
    def job_dir(self) -> Path:
        return self.slot / "job"

    @property
    def out_dir(self) -> Path:
        return self.slot / "out"

    @property
    def ready(self) -> bool:
        """True once the entrypoint has loaded its runtime and waits for ``go``."""
        return (self.out_dir / ".ready").exists()

    def go(self, spec: ExecSpec) -> None:
        """Move the prepared job in and release the waiting entrypoint."""
        with contextlib.suppress(FileNotFoundError):
            (self.out_dir / ".ready").unlink()
        for item in spec.job_dir.iterdir():
            os.rename(item, self.job_dir / item.name)
        deadline = time.monotonic() + 15
        while True:
            try:
                fd = os.open(self.job_dir / "go", os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError:  # ENXIO: the entrypoint is still loading
                if time.monotonic() > deadline:
                    raise SandboxFailure(
                        "SANDBOX_UNAVAILABLE", "a pooled container never became ready"
                    ) from None
                time.sleep(0.002)
        try:
            os.write(fd, b"go")
        finally:
            os.close(fd)

    def collect_into(self, out_dir: Path) -> None:
        """Move what the container left in its output dir to ``out_dir`` (links not followed)."""
        for item in self.out_dir.iterdir():
            os.rename(item, out_dir / item.name)

    def cleanup(self) -> None:
        """Remove the slot (and the pool's directory once it is empty)."""
        shutil.rmtree(self.slot, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.slot.parent.rmdir()


class WarmPool:
    """``size`` ready containers per image, for executions whose limits equal ``limits``."""

    def __init__(
        self,
        executor: DockerExecutor,
        limits: Limits,
        *,
        size: int = 2,
        root: Path | None = None,
        max_idle_s: float = 600.0,
    ) -> None:
        self.executor = executor
        self.limits = limits
        self.size = size
        self.root = Path(root or Path(tempfile.gettempdir()) / "alphaforge-pool")
        self.max_idle_s = max_idle_s
        self._ready: dict[str, list[PoolEntry]] = {g: [] for g in _GROUPS}
        self._lock = threading.Lock()
        self._closed = False
        self._fillers: list[threading.Thread] = []

    def start(self) -> WarmPool:
        """Fill the pool in the background; returns self."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        for group in _GROUPS:
            for _ in range(self.size):
                self._refill_later(group)
        return self

    def _refill_later(self, group: str) -> None:
        thread = threading.Thread(target=self._add, args=(group,), daemon=True)
        with self._lock:
            self._fillers = [t for t in self._fillers if t.is_alive()] + [thread]
        thread.start()

    def _add(self, group: str) -> None:
        with contextlib.suppress(Exception):  # an engine hiccup: the next take refills
            entry = self._new_entry(group)
            with self._lock:
                if not self._closed:
                    self._ready[group].append(entry)
                    return
            self._discard(entry)

    def _new_entry(self, group: str) -> PoolEntry:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        slot = Path(tempfile.mkdtemp(prefix="slot-", dir=self.root))
        (slot / "job").mkdir(mode=0o755)
        (slot / "out").mkdir()
        (slot / "out").chmod(0o777)
        os.mkfifo(slot / "job" / "go", 0o644)
        (slot / "job").chmod(0o755)
        (slot / "job" / "go").chmod(0o644)
        spec = ExecSpec("pool", "pool", group, slot / "job", slot / "out", self.limits)
        now = time.time()
        plan = ContainerPlan(
            image=self.executor.images.for_language(group),
            command=self.executor.command(spec, wait=True),
            job_dir=str(slot / "job"),
            out_dir=str(slot / "out"),
            limits=self.limits,
            labels={
                "alphaforge.sandbox": "1",
                "alphaforge.pool": "1",
                "alphaforge.run_id": f"pool-{uuid.uuid4().hex[:8]}",
                "alphaforge.node_id": "pool",
                "alphaforge.created_at": f"{now:.0f}",
                "alphaforge.deadline": f"{now + self.max_idle_s + STALE_GRACE_S:.0f}",
                "alphaforge.owner": owner_label(),
            },
        )
        container = self.executor.create_checked(plan, "pool")
        stream = container.attach(stdout=True, stderr=True, stream=True, logs=True)
        container.start()
        return PoolEntry(container, stream, slot, time.monotonic())

    def take(self, spec: ExecSpec) -> PoolEntry | None:
        """A ready container for ``spec``, or None: go fresh. Call :meth:`refill` after."""
        if spec.limits != self.limits:
            return None
        entry = None
        with self._lock:
            waiting = self._ready[_group(spec)]
            for old in [e for e in waiting if time.monotonic() - e.created > self.max_idle_s]:
                waiting.remove(old)
                threading.Thread(target=self._discard, args=(old,), daemon=True).start()
            if waiting:  # a ready one if any, else the oldest (still skips creating one)
                entry = next((e for e in waiting if e.ready), waiting[0])
                waiting.remove(entry)
        return entry

    def refill(self, spec: ExecSpec) -> None:
        """Start a replacement for the container an execution like ``spec`` took (or would
        have): called when that execution ends, so that starting the replacement (engine
        work and a runtime loading: ~0.3 s of CPU) does not compete with the execution."""
        if spec.limits == self.limits and not self._closed:
            self._refill_later(_group(spec))

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Block until every group holds ``size`` entries (benchmarks, tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                counts = [sum(e.ready for e in v) for v in self._ready.values()]
            if all(c >= self.size for c in counts):
                return True
            time.sleep(0.02)
        return False

    def _discard(self, entry: PoolEntry) -> None:
        with contextlib.suppress(Exception):
            entry.container.remove(force=True)
        entry.cleanup()

    def close(self) -> None:
        """Remove every waiting container; no refills after this."""
        with self._lock:
            self._closed = True
            entries = [e for group in self._ready.values() for e in group]
            for group in self._ready.values():
                group.clear()
        for entry in entries:
            self._discard(entry)
        for thread in list(self._fillers):  # refills in flight discard their container
            thread.join(timeout=60)
        with contextlib.suppress(OSError):
            self.root.rmdir()  # empty unless an execution is still collecting
