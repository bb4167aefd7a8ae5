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

Ownership: a pooled container is idle in the pool, checked out to exactly one execution (which
removes it), or removed; nothing else. A process has at most one pool (:func:`process_pool`),
holding at most ``size`` idle-or-starting containers per image (a hard cap of ``size`` x 2,
however many executions ask for refills). Every container is labelled with its owner (this
process, its boot, its serving instance), its pool and a deadline (its idle limit + grace); the
process's sweeper (:func:`runners.docker.sweeper.process_sweeper`) retires idle ones past
``max_idle_s`` on its timer, and at exit (``atexit``) the process removes its pool and every
container it still owns (:func:`shutdown_process_sandboxes`).
"""

from __future__ import annotations

import atexit
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
from runners.docker.engine import STALE_GRACE_S, DockerExecutor, ownership_labels
from runners.docker.policy import ContainerPlan
from runners.jobs import SandboxFailure
from runners.sandboxed import ExecSpec

__all__ = [
    "PoolEntry",
    "WarmPool",
    "close_process_pool",
    "current_process_pool",
    "process_pool",
    "shutdown_process_sandboxes",
]

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
        self.pool_id = uuid.uuid4().hex[:12]
        self._ready: dict[str, list[PoolEntry]] = {g: [] for g in _GROUPS}
        self._starting: dict[str, int] = dict.fromkeys(_GROUPS, 0)
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

    @property
    def cap(self) -> int:
        """The most containers this pool holds at once (idle or starting), all images."""
        return self.size * len(_GROUPS)

    def held(self) -> int:
        """Containers idle in the pool or being started for it now."""
        with self._lock:
            return sum(len(v) for v in self._ready.values()) + sum(self._starting.values())

    def _refill_later(self, group: str) -> None:
        """Start one container for ``group`` in the background, unless the group is full
        (idle + starting = ``size``): the cap holds whoever asks."""
        with self._lock:
            if self._closed or len(self._ready[group]) + self._starting[group] >= self.size:
                return
            self._starting[group] += 1
            thread = threading.Thread(target=self._add, args=(group,), daemon=True)
            self._fillers = [t for t in self._fillers if t.is_alive()] + [thread]
        thread.start()

    def _add(self, group: str) -> None:
        entry = None
        try:
            entry = self._new_entry(group)
        except Exception:  # an engine hiccup: the next execution's refill retries
            pass
        finally:
            with self._lock:
                self._starting[group] -= 1
                if entry is not None and not self._closed:
                    self._ready[group].append(entry)
                    entry = None
        if entry is not None:
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
        if self._closed:
            shutil.rmtree(slot, ignore_errors=True)
            raise SandboxFailure("SANDBOX_UNAVAILABLE", "the warm pool is closed")
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
                "alphaforge.pool_id": self.pool_id,
                **ownership_labels(),
            },
        )
        try:
            container = self.executor.create_checked(plan, "pool")
        except BaseException:
            shutil.rmtree(slot, ignore_errors=True)
            raise
        entry = PoolEntry(container, None, slot, time.monotonic())
        try:
            entry.stream = container.attach(stdout=True, stderr=True, stream=True, logs=True)
            container.start()
        except BaseException:
            self._discard(entry)  # created but not started: not left behind
            raise
        return entry

    def take(self, spec: ExecSpec) -> PoolEntry | None:
        """A ready container for ``spec``, or None: go fresh. Call :meth:`refill` after."""
        if spec.limits != self.limits:
            return None
        entry = None
        self.retire_idle()
        with self._lock:
            waiting = self._ready[_group(spec)]
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

    def retire_idle(self) -> int:
        """Discard containers idle longer than ``max_idle_s`` and start replacements (the
        process sweeper calls this on its timer); returns how many."""
        with self._lock:
            old = [
                (g, e)
                for g, v in self._ready.items()
                for e in v
                if time.monotonic() - e.created > self.max_idle_s
            ]
            for group, entry in old:
                self._ready[group].remove(entry)
        for group, entry in old:
            threading.Thread(target=self._discard, args=(entry,), daemon=True).start()
            self._refill_later(group)
        return len(old)

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


# ---- one pool per process ------------------------------------------------------------------

_POOL: WarmPool | None = None
_POOL_LOCK = threading.Lock()
_CLIENTS: list[Any] = []  # engine clients of this process's executors, for the exit clean-up


def current_process_pool() -> WarmPool | None:
    """This process's pool, if one is open."""
    return _POOL


def process_pool(
    executor: DockerExecutor, limits: Limits, *, size: int, root: Path | None = None
) -> WarmPool:
    """This process's warm pool, started on first use. A process has one pool: asked for other
    limits, size or root (another caps setting, a test's own work root), the open one is
    closed and replaced, so the cap holds per process."""
    global _POOL
    from runners.docker.sweeper import process_sweeper

    root = Path(root or Path(tempfile.gettempdir()) / "alphaforge-pool")
    with _POOL_LOCK:
        pool = _POOL
        if pool is not None and (pool.limits, pool.size, pool.root) == (limits, size, root):
            return pool
        _POOL = None
    if pool is not None:
        pool.close()
    new = WarmPool(executor, limits, size=size, root=root)
    with _POOL_LOCK:
        if _POOL is not None:  # another thread opened one meanwhile: use it
            return _POOL
        _POOL = new.start()
    register_client(executor.client)
    sweeper = process_sweeper(executor.client)
    if _retire_current not in sweeper.also:
        sweeper.also.append(_retire_current)
    return new


def _retire_current() -> None:
    pool = _POOL
    if pool is not None:
        pool.retire_idle()


def close_process_pool() -> None:
    """Close this process's pool (its idle containers removed); the next use opens a new one."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.close()


def register_client(client: Any) -> None:
    """Remember an engine client of this process: at exit its containers are removed with it."""
    with _POOL_LOCK:
        if not any(c is client for c in _CLIENTS):
            _CLIENTS.append(client)


def shutdown_process_sandboxes() -> int:
    """A graceful stop of this process: close its pool, then remove every sandbox container it
    owns (idle, starting or still running an execution); returns how many were removed."""
    from runners.docker.engine import owner_label
    from runners.docker.sweeper import remove_owned

    close_process_pool()
    removed = 0
    for client in list(_CLIENTS):
        with contextlib.suppress(Exception):
            removed += len(remove_owned(client, owner=owner_label()))
            break  # one engine: one listing found them all
    return removed


atexit.register(shutdown_process_sandboxes)
