"""The Docker executor: one fresh container per execution, watched until it ends.

For each execution it creates a container with :func:`runners.docker.policy.create_kwargs`,
reads the settings back and refuses to start it if any differs from the policy, starts it, and
watches it: the wall time (then kill: ``TIMEOUT``), stdout/stderr bytes as they stream (over the
cap: kill, ``OUTPUT_LIMIT``), the output directory's size and entries (``OUTPUT_LIMIT``), the pids
cgroup's failed forks (``PIDS_LIMIT``) and, after exit, ``OOMKilled`` (``MEMORY_LIMIT``).
``cancel(run_id)`` kills every container of that run. Containers are removed afterwards (in the
background, to keep latency down); the sweeper removes anything a dead worker left.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
from docker.errors import DockerException, NotFound

from runners.docker.images import SandboxImages, image_digest
from runners.docker.policy import ContainerPlan, create_kwargs, policy_violations
from runners.jobs import SandboxFailure
from runners.outputs import MAX_OUTPUT_ENTRIES
from runners.sandboxed import DONE_MARKER, ExecOutcome, ExecSpec, split_done

if TYPE_CHECKING:
    from runners.docker.pool import WarmPool

__all__ = [
    "DockerExecutor",
    "boot_id",
    "claim_name",
    "claimed_deadline",
    "docker_client",
    "entry_command",
    "out_dir_size",
    "owner_label",
    "ownership_labels",
    "pid_namespace",
    "run_container_ids",
]

POLL_S = 0.02
# After the completion line: how long to watch the container's cgroup empty (its processes
# exiting: ~10-40 ms for a Python process with pandas loaded) before killing it instead.
EXIT_WATCH_S = 0.15
EXIT_POLL_S = 0.001
# How long past its wall time (or, idle in the pool, its idle limit) a container may exist before
# any sweeper removes it whatever its owner's state. Its executor kills it at the wall time and
# removes it right after; the grace only covers an engine slow to do that.
STALE_GRACE_S = float(os.environ.get("ALPHAFORGE_SANDBOX_GRACE_S", "30"))
# The serving instance (``alphaforge serve``) whose worker this process runs under, if any: set by
# ``serve`` for its worker, labelled on every container so its stop removes them all.
SERVER_ENV = "ALPHAFORGE_SANDBOX_SERVER"


def docker_client(timeout: int = 60) -> docker.DockerClient:
    """A client for the local engine, API version negotiated (the SDK's default is too new)."""
    return docker.from_env(version="auto", timeout=timeout)


def owner_label() -> str:
    """``host:pid`` of this worker: the sweeper removes containers whose owner is gone."""
    return f"{socket.gethostname()}:{os.getpid()}"


def boot_id() -> str:
    """This host's boot id (a pid of a previous boot says nothing about a process now)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return ""


def pid_namespace() -> str:
    """This process's pid namespace (``pid:[4026531836]``), or "" where /proc says nothing.
    A container on the host's network has the host's name and boot id but its own pids: a pid
    means something only to a process of the same namespace."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def ownership_labels() -> dict[str, str]:
    """The labels that say whose a container is: ``owner`` (``host:pid``), ``boot``, ``pidns``
    (the pid namespace its pids mean something in) and, under ``alphaforge serve``, ``server``
    (the serving process's ``host:pid``)."""
    labels = {
        "alphaforge.owner": owner_label(),
        "alphaforge.boot": boot_id(),
        "alphaforge.pidns": pid_namespace(),
    }
    server = os.environ.get(SERVER_ENV, "")
    if server:
        labels["alphaforge.server"] = server
    return labels


# A pooled container is started before its run is known, so its labels cannot name the run (labels
# are fixed at create). Taking it renames it ``af-run.<run>.<node>.<random>`` instead: any process
# finds a run's containers by label (fresh ones) or by that name (pooled ones).
_CLAIM_PREFIX = "af-run."
_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def claim_name(run_id: str, node_id: str, deadline: float) -> str:
    """The name a pooled container gets when it is taken for ``run_id``'s node ``node_id``:
    ``af-run.<run>.<node>.<deadline>-<random>``, the execution's deadline (epoch seconds) that
    its labels (fixed when the pool created it) cannot carry, for the sweepers."""
    run, node = _NAME_UNSAFE.sub("_", run_id), _NAME_UNSAFE.sub("_", node_id)
    return f"{_CLAIM_PREFIX}{run}.{node}.{deadline:.0f}-{uuid.uuid4().hex[:8]}"


def claimed_deadline(names: list[str] | tuple[str, ...]) -> float | None:
    """The execution deadline a claimed pooled container's name carries (None: not claimed)."""
    for name in names:
        if name.lstrip("/").startswith(_CLAIM_PREFIX):
            last = name.rsplit(".", 1)[-1]
            stamp = last.split("-", 1)[0]
            if stamp.isdigit():
                return float(stamp)
    return None


def run_container_ids(
    client: docker.DockerClient, run_id: str, *, include_stopped: bool = False
) -> set[str]:
    """Ids of ``run_id``'s sandbox containers: labelled with it, or pooled and claimed for it."""
    ids = {
        c["Id"]
        for c in client.api.containers(
            all=include_stopped, filters={"label": f"alphaforge.run_id={run_id}"}
        )
    }
    run = _NAME_UNSAFE.sub("_", run_id)
    prefix = f"/{_CLAIM_PREFIX}{run}."
    # the engine's name filter is a substring/regexp match: check the exact prefix here
    for c in client.api.containers(all=include_stopped, filters={"name": f"{_CLAIM_PREFIX}{run}."}):
        if any(name.startswith(prefix) for name in c.get("Names") or ()):
            ids.add(c["Id"])
    return ids


def entry_command(language: str, memory_mb: int, *, wait: bool = False) -> list[str]:
    """The sandbox image's entrypoint command for ``language`` (``wait``: a pooled agent that
    blocks until its job is handed over); the same in a container and in a pod."""
    args = ["--wait", "/job", "/out"] if wait else ["/job", "/out"]
    if language == "javascript":
        heap = max(16, memory_mb * 3 // 4)
        entry = "/opt/alphaforge/node_entry.js"
        return ["/usr/local/bin/node", f"--max-old-space-size={heap}", entry, *args]
    return ["/usr/local/bin/python3", "-I", "-B", "-OO", "/opt/alphaforge/python_entry.py", *args]


def _cgroup_file(container_id: str, controller: str, name: str) -> Path | None:
    for path in (
        f"/sys/fs/cgroup/{controller}/docker/{container_id}/{name}",
        f"/sys/fs/cgroup/{controller}/system.slice/docker-{container_id}.scope/{name}",
        f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/{name}",
        f"/sys/fs/cgroup/docker/{container_id}/{name}",
    ):
        if os.path.exists(path):
            return Path(path)
    return None


def _pids_failures(path: Path | None) -> int:
    if path is None:
        return 0
    try:
        text = path.read_text()
    except OSError:
        return 0
    return sum(int(line.split()[1]) for line in text.splitlines() if line.startswith("max "))


def _emptied(procs: Path | None, within: float) -> bool:
    """True once the cgroup's ``cgroup.procs`` lists no process (all of them have exited)."""
    if procs is None:
        return False
    deadline = time.monotonic() + within
    while True:
        try:
            if not procs.read_bytes().strip():
                return True
        except FileNotFoundError:  # the engine removed the cgroup: nothing is left in it
            return True
        except OSError:
            return False
        if time.monotonic() > deadline:
            return False
        time.sleep(EXIT_POLL_S)


def out_dir_size(out_dir: Path) -> tuple[int, int]:
    """The bytes and entries under ``out_dir`` (what the output cap is checked against)."""
    total = entries = 0
    for root, dirs, files in os.walk(out_dir):
        entries += len(dirs) + len(files)
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_size
    return total, entries


class DockerExecutor:
    """Runs sandbox entrypoints in fresh, policy-checked containers."""

    name = "docker"

    def __init__(
        self, client: docker.DockerClient | None = None, images: SandboxImages | None = None
    ) -> None:
        self.client = client or docker_client()
        self.images = images or SandboxImages()
        self.pool: WarmPool | None = None
        self._lock = threading.Lock()
        self._active: dict[str, set[str]] = defaultdict(set)
        self._cancelled: set[str] = set()
        self._digests: dict[str, str] = {}

    # -- what a run record needs ----------------------------------------------------------

    def image_digest(self, language: str) -> str:
        """The digest of the image that runs ``language`` (cached per image name)."""
        name = self.images.for_language(language)
        if name not in self._digests:
            self._digests[name] = image_digest(self.client, name)
        return self._digests[name]

    def preamble(self, spec: ExecSpec) -> list[str]:
        """What the sandbox is, logged before the node's own lines."""
        lim = spec.limits
        return [
            f"sandbox: docker {self.images.for_language(spec.language)} "
            f"({self.image_digest(spec.language)}), memory {lim.memory_mb} MiB, "
            f"cpus {lim.cpus:g}, pids {lim.pids}, wall {lim.wall_s:g} s, no network"
        ]

    def command(self, spec: ExecSpec, *, wait: bool = False) -> list[str]:
        """The entrypoint command for the execution's language (``wait``: a pooled agent)."""
        return entry_command(spec.language, spec.limits.memory_mb, wait=wait)

    def plan(self, spec: ExecSpec) -> ContainerPlan:
        """The container plan (image, command, mounts, limits, labels) for one execution."""
        now = time.time()
        labels = {
            "alphaforge.sandbox": "1",
            "alphaforge.run_id": spec.run_id,
            "alphaforge.node_id": spec.node_id,
            "alphaforge.created_at": f"{now:.0f}",
            "alphaforge.deadline": f"{now + spec.limits.wall_s + STALE_GRACE_S:.0f}",
            **ownership_labels(),
        }
        return ContainerPlan(
            image=self.images.for_language(spec.language),
            command=self.command(spec),
            job_dir=str(spec.job_dir),
            out_dir=str(spec.out_dir),
            limits=spec.limits,
            labels=labels,
        )

    # -- running ----------------------------------------------------------------------------

    def create_checked(self, plan: ContainerPlan, node_id: str) -> Any:
        """Create a container for ``plan`` and read it back; removed and refused on any drift."""
        container = self.client.containers.create(**create_kwargs(plan))
        violations = policy_violations(container.attrs, plan.limits)
        if violations:
            self._remove(container.id)
            raise SandboxFailure(
                "SANDBOX_VIOLATION",
                f"node {node_id!r}: the container differs from the sandbox policy, "
                f"not started: {'; '.join(violations)}",
            )
        return container

    def execute(self, spec: ExecSpec) -> ExecOutcome:
        """Run in a pooled (pre-started, single-use) or fresh container; always removes it."""
        t0 = time.perf_counter()
        if spec.run_id in self._cancelled:
            return ExecOutcome(exit_code=None, killed="CANCELLED")
        entry = self.pool.take(spec) if self.pool is not None else None
        if entry is not None:
            container, cleanup = entry.container, entry.cleanup
            # in the background (~10 ms of engine work): this process's cancel finds it
            # through ``_active`` meanwhile, other processes by the name once it is set
            threading.Thread(target=self._claim, args=(container, spec), daemon=True).start()
        else:
            try:
                container, cleanup = self.create_checked(self.plan(spec), spec.node_id), None
            except BaseException:
                if self.pool is not None:
                    self.pool.refill(spec)
                raise
        with self._lock:
            self._active[spec.run_id].add(container.id)
        try:
            if entry is not None:
                outcome = self._watch(container, spec, entry.stream, entry.out_dir, entry.go)
                entry.collect_into(spec.out_dir)  # the container has exited: nothing writes
                outcome.out_dir = spec.out_dir
            else:
                outcome = self._watch(container, spec, None, spec.out_dir, None)
        finally:
            with self._lock:
                self._active[spec.run_id].discard(container.id)
            threading.Thread(target=self._remove, args=(container.id, cleanup), daemon=True).start()
            if self.pool is not None:
                self.pool.refill(spec)  # after the execution: no competing for the CPU
        outcome.usage.update(
            wall_s=round(time.perf_counter() - t0, 6),
            sandboxed=True,
            pooled=entry is not None,
            image=self.images.for_language(spec.language),
            image_digest=self.image_digest(spec.language),
            container_id=container.id[:12],
        )
        return outcome

    def _watch(
        self,
        container: Any,
        spec: ExecSpec,
        stream: Any,
        out_dir: Path,
        go: Callable[[ExecSpec], None] | None,
    ) -> ExecOutcome:
        lim = spec.limits
        outcome = ExecOutcome(exit_code=None, out_dir=out_dir)
        done = threading.Event()
        chunks: list[bytes] = []
        if stream is None:
            # Attach before start (as `docker run` does) so no output is missed or raced.
            stream = container.attach(stdout=True, stderr=True, stream=True, logs=True)
        reported: list[int] = []
        reader = threading.Thread(
            target=self._read_logs,
            args=(stream, lim.log_bytes, chunks, outcome, reported, done),
            daemon=True,
        )
        reader.start()
        if go is None:
            container.start()
        else:
            go(spec)  # a pooled container: hand it the job
        pids_file = _cgroup_file(container.id, "pids", "pids.events")
        waiter = threading.Thread(target=self._wait, args=(container, done), daemon=True)
        waiter.start()
        deadline = time.monotonic() + lim.wall_s
        while not done.wait(POLL_S):
            reason = self._limit_hit(spec, outcome, deadline, out_dir)
            if _pids_failures(pids_file):
                outcome.pids_limit_hit = True
            if reason:
                outcome.killed = outcome.killed or reason
                self._kill(container.id)
                done.wait(10)
                break
        if _pids_failures(pids_file):
            outcome.pids_limit_hit = True
        if reported and not outcome.killed:
            # The entrypoint said it finished. The line is untrusted (user code can print it),
            # so the outputs are only read once no process of the container is left: its
            # cgroup empties as the entrypoint exits (watched here, sooner than the engine
            # reports the exit), or it is killed (kill returns once the engine saw it stop).
            # Every entrypoint writes its logs and the completion line on one stream, in order,
            # so the log is complete up to that line without waiting for the stream to close.
            procs = _cgroup_file(container.id, "pids", "cgroup.procs")
            if not _emptied(procs, EXIT_WATCH_S):
                self._kill(container.id)
            if _pids_failures(pids_file):
                outcome.pids_limit_hit = True
            lines = b"".join(chunks).decode("utf-8", "replace").splitlines()
            outcome.lines, outcome.exit_code = split_done(lines)
            return outcome
        reader.join(timeout=5)
        outcome.lines, _ = split_done(b"".join(chunks).decode("utf-8", "replace").splitlines())
        state = self._state(container.id)
        outcome.exit_code = state.get("ExitCode")
        outcome.oom_killed = bool(state.get("OOMKilled"))
        if not state and not outcome.killed:
            # removed under us before it said it was done: only a cancel (kill_run_containers
            # kills then removes) or an operator removes a running sandbox
            outcome.killed = "CANCELLED"
        if outcome.exit_code == 137 and not outcome.oom_killed and not outcome.killed:
            # SIGKILL from outside (PID 1 cannot be killed from inside its namespace): another
            # process's cancel(run_id), or an operator.
            outcome.killed = "CANCELLED"
        return outcome

    def _limit_hit(
        self, spec: ExecSpec, outcome: ExecOutcome, deadline: float, out_dir: Path
    ) -> str | None:
        if outcome.killed:
            return outcome.killed
        if spec.run_id in self._cancelled:
            return "CANCELLED"
        if time.monotonic() > deadline:
            return "TIMEOUT"
        size, entries = out_dir_size(out_dir)
        if size > spec.limits.output_bytes or entries > 4 * MAX_OUTPUT_ENTRIES:
            return "OUTPUT_LIMIT"
        return None

    def _read_logs(
        self,
        stream: Any,
        cap: int,
        chunks: list[bytes],
        out: ExecOutcome,
        reported: list[int],
        done: threading.Event,
    ) -> None:
        total = 0
        tail = b""
        with contextlib.suppress(DockerException, OSError):
            for chunk in stream:
                total += len(chunk)
                if total > cap:
                    # The watch loop sees this within POLL_S and kills the container. Not from
                    # here: this thread must keep draining (and dropping) until EOF, because an
                    # attach nobody reads blocks the engine's stream copy, and with it the
                    # kill, which then waits out the client's timeout.
                    out.killed = out.killed or "OUTPUT_LIMIT"
                    continue
                chunks.append(chunk)
                tail = (tail + chunk)[-256:]
                last = tail.rstrip().split(b" ")[-1]
                if not reported and DONE_MARKER in tail and last.lstrip(b"-").isdigit():
                    reported.append(1)
                    done.set()  # keep reading: stderr may still be in flight

    def _claim(self, container: Any, spec: ExecSpec) -> None:
        deadline = time.time() + spec.limits.wall_s + STALE_GRACE_S
        with contextlib.suppress(DockerException):
            container.rename(claim_name(spec.run_id, spec.node_id, deadline))

    def _wait(self, container: Any, done: threading.Event) -> None:
        with contextlib.suppress(DockerException, OSError):
            container.wait()
        done.set()

    def _state(self, container_id: str) -> dict[str, Any]:
        try:
            return dict(self.client.api.inspect_container(container_id)["State"])
        except NotFound:
            return {}

    def _kill(self, container_id: str) -> None:
        # already gone or stopped: nothing to kill; an engine timeout: removal forces it later
        with contextlib.suppress(DockerException, OSError):
            self.client.api.kill(container_id)

    def _remove(self, container_id: str, cleanup: Callable[[], None] | None = None) -> None:
        # if this fails (engine busy, timeout), the sweeper removes it later
        with contextlib.suppress(DockerException, OSError):
            self.client.api.remove_container(container_id, force=True)
        if cleanup is not None:
            cleanup()

    # -- cancellation -------------------------------------------------------------------------

    def cancel(self, run_id: str) -> int:
        """Kill every container of ``run_id`` (this worker's and any labelled one); count them."""
        with self._lock:
            self._cancelled.add(run_id)
            ids = set(self._active.get(run_id, ()))
        # the low-level list: no per-container inspect racing with removals
        ids |= run_container_ids(self.client, run_id)
        for cid in ids:
            self._kill(cid)
        return len(ids)
