"""The Kubernetes executor: one sandbox pod per execution, watched until it ends.

For each execution it creates a pod (:func:`runners.k8s.pod.pod_manifest`: gVisor, no network,
no token, non-root, read-only root, the execution's memory/CPU, ``/job`` and ``/out`` from the
shared claim), compares the API's copy with what it sent (an admission webhook may change a
pod: any difference in what makes it a sandbox deletes it, ``SANDBOX_VIOLATION``), waits for
its container to start (``start_timeout_s``: scheduling and pulling), then watches it as
:class:`~runners.docker.engine.DockerExecutor` watches a container: the wall
time from the container's start (then delete: ``TIMEOUT``; the pod's own
``activeDeadlineSeconds`` is the backstop should this process die), the log as it streams
(past the cap: ``OUTPUT_LIMIT``), the output directory's size and entries (``OUTPUT_LIMIT``), and
after the end the container's ``OOMKilled`` (``MEMORY_LIMIT``). The pod is deleted on every path;
``cancel(run_id)`` deletes every pod labelled with the run.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import defaultdict
from typing import Any

from runners.docker.engine import entry_command, out_dir_size
from runners.docker.images import SandboxImages
from runners.jobs import SandboxFailure
from runners.k8s.api import KubeApi, KubeApiError, KubernetesSettings
from runners.k8s.pod import (
    CONTAINER,
    RUN_LABEL,
    SANDBOX_LABELS,
    claim_subpath,
    label_value,
    pod_manifest,
    pod_violations,
)
from runners.outputs import MAX_OUTPUT_ENTRIES
from runners.sandboxed import DONE_MARKER, ExecOutcome, ExecSpec, split_done

__all__ = ["KubernetesExecutor", "delete_run_pods"]

# Reasons a container waits that no amount of waiting fixes.
_STUCK = {
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
}
# How long a deleted pod may take to go (its containers stopped) before we stop waiting.
_GONE_WAIT_S = 15.0


def _container_state(pod: dict[str, Any]) -> dict[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            return dict(status)
    return {}


class KubernetesExecutor:
    """Runs sandbox entrypoints in fresh gVisor pods through the Kubernetes API."""

    name = "kubernetes"

    def __init__(
        self,
        api: KubeApi | None = None,
        images: SandboxImages | None = None,
        settings: KubernetesSettings | None = None,
    ) -> None:
        self.settings = settings or (api.settings if api is not None else KubernetesSettings())
        self.api = api or KubeApi(self.settings)
        self.images = images or SandboxImages()
        self._lock = threading.Lock()
        self._active: dict[str, set[str]] = defaultdict(set)
        self._cancelled: set[str] = set()

    def preamble(self, spec: ExecSpec) -> list[str]:
        """What the sandbox is, logged before the node's own lines."""
        lim = spec.limits
        return [
            f"sandbox: kubernetes pod (gVisor) {self.images.for_language(spec.language)} in "
            f"namespace {self.api.namespace}, memory {lim.memory_mb} MiB, cpus {lim.cpus:g}, "
            f"wall {lim.wall_s:g} s, no network"
        ]

    def manifest(self, spec: ExecSpec, name: str) -> dict[str, Any]:
        """The pod for ``spec`` (raises ``JobDirOutsideClaim`` for a job off the claim)."""
        s = self.settings
        return pod_manifest(
            name=name,
            image=self.images.for_language(spec.language),
            command=entry_command(spec.language, spec.limits.memory_mb),
            limits=spec.limits,
            run_id=spec.run_id,
            node_id=spec.node_id,
            claim=s.claim,
            job_subpath=claim_subpath(spec.job_dir, s.claim_mount, s.claim),
            out_subpath=claim_subpath(spec.out_dir, s.claim_mount, s.claim),
            deadline_s=spec.limits.wall_s + s.grace_s,
        )

    def execute(self, spec: ExecSpec) -> ExecOutcome:
        """Run in a fresh pod; the pod is deleted whatever happens."""
        t0 = time.perf_counter()
        if spec.run_id in self._cancelled:
            return ExecOutcome(exit_code=None, killed="CANCELLED")
        name = f"af-sandbox-{uuid.uuid4().hex[:16]}"
        manifest = self.manifest(spec, name)
        with self._lock:
            self._active[spec.run_id].add(name)
        try:
            violations = pod_violations(self.api.create_pod(manifest), manifest)
            if violations:  # the finally deletes it
                raise SandboxFailure(
                    "SANDBOX_VIOLATION",
                    f"node {spec.node_id!r}: the sandbox pod {name} differs from the sandbox "
                    f"policy as created, deleted: {'; '.join(violations)}",
                )
            outcome, pod = self._watch(name, spec)
        finally:
            with self._lock:
                self._active[spec.run_id].discard(name)
            self._delete(name)
        image = self.images.for_language(spec.language)
        outcome.usage.update(
            wall_s=round(time.perf_counter() - t0, 6),
            sandboxed=True,
            pooled=False,
            image=image,
            image_digest=str(_container_state(pod).get("imageID") or image),
            pod=name,
            namespace=self.api.namespace,
        )
        return outcome

    def _watch(self, name: str, spec: ExecSpec) -> tuple[ExecOutcome, dict[str, Any]]:
        s, lim = self.settings, spec.limits
        outcome = ExecOutcome(exit_code=None)
        log = _LogReader(self.api, name, lim.log_bytes, outcome)
        start_by = time.monotonic() + s.start_timeout_s
        deadline: float | None = None
        last: dict[str, Any] = {}
        while True:
            pod = self.api.get_pod(name)
            if pod is None:  # deleted by someone else: a cancel from another process
                outcome.killed = outcome.killed or "CANCELLED"
                break
            last = pod
            status, state = pod.get("status") or {}, _container_state(pod).get("state") or {}
            if deadline is None and ("running" in state or "terminated" in state):
                deadline = time.monotonic() + lim.wall_s  # the wall time counts from here
                log.start()
            if "terminated" in state or status.get("phase") in ("Succeeded", "Failed"):
                self._ended(pod, state, outcome)
                break
            hit = self._limit_hit(spec, outcome, deadline)
            if hit is None and deadline is None:
                self._check_start(name, state, start_by)
            if hit:
                outcome.killed = outcome.killed or hit
                self._delete(name, wait=True)
                break
            if log.done.is_set():  # woken by the completion line once; now the pod's status
                time.sleep(s.poll_s)
            else:
                log.done.wait(s.poll_s)
        outcome.lines, code = split_done(log.finish())
        if outcome.exit_code is None and not outcome.killed:
            outcome.exit_code = code
        return outcome, last

    def _ended(self, pod: dict[str, Any], state: dict[str, Any], outcome: ExecOutcome) -> None:
        ended = state.get("terminated") or {}
        outcome.exit_code = ended.get("exitCode")
        outcome.oom_killed = ended.get("reason") == "OOMKilled"
        if (pod.get("status") or {}).get("reason") == "DeadlineExceeded":
            outcome.killed = outcome.killed or "TIMEOUT"  # activeDeadlineSeconds
        if outcome.killed or outcome.oom_killed:
            return
        if not ended:  # failed with no container run: evicted, its node lost...
            status = pod.get("status") or {}
            raise SandboxFailure(
                "SANDBOX_UNAVAILABLE",
                f"sandbox pod {pod.get('metadata', {}).get('name')} ended "
                f"{status.get('phase')} before its container ran: {status.get('reason')}: "
                f"{str(status.get('message') or '')[:300]}",
            )
        if (pod.get("metadata") or {}).get("deletionTimestamp") or outcome.exit_code == 137:
            # deleted by someone else (another process's cancel, an operator) as it ended; or
            # SIGKILLed from outside (PID 1 cannot be killed from inside its namespace)
            outcome.killed = "CANCELLED"

    def _check_start(self, name: str, state: dict[str, Any], start_by: float) -> None:
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in _STUCK:
            raise SandboxFailure(
                "SANDBOX_UNAVAILABLE",
                f"sandbox pod {name} cannot start: {waiting.get('reason')}: "
                f"{str(waiting.get('message') or '')[:300]}",
            )
        if time.monotonic() > start_by:
            raise SandboxFailure(
                "SANDBOX_UNAVAILABLE",
                f"sandbox pod {name} did not start within {self.settings.start_timeout_s:g} s "
                f"({waiting.get('reason') or 'pending'}; ALPHAFORGE_SANDBOX_K8S_START_TIMEOUT_S)",
            )

    def _limit_hit(
        self, spec: ExecSpec, outcome: ExecOutcome, deadline: float | None
    ) -> str | None:
        if outcome.killed:
            return outcome.killed
        if spec.run_id in self._cancelled:
            return "CANCELLED"
        if deadline is not None and time.monotonic() > deadline:
            return "TIMEOUT"
        size, entries = out_dir_size(spec.out_dir)
        if size > spec.limits.output_bytes or entries > 4 * MAX_OUTPUT_ENTRIES:
            return "OUTPUT_LIMIT"
        return None

    def _delete(self, name: str, *, wait: bool = False) -> None:
        # an API error here: the pod's activeDeadlineSeconds still ends it
        with contextlib.suppress(KubeApiError):
            gone = not self.api.delete_pod(name)
            until = time.monotonic() + _GONE_WAIT_S
            while wait and not gone and time.monotonic() < until:
                gone = self.api.get_pod(name) is None
                time.sleep(self.settings.poll_s)

    def cancel(self, run_id: str) -> int:
        """Delete every sandbox pod of ``run_id`` (this process's and any labelled one)."""
        with self._lock:
            self._cancelled.add(run_id)
            names = set(self._active.get(run_id, ()))
        selector = ",".join(
            f"{k}={v}" for k, v in {**SANDBOX_LABELS, RUN_LABEL: label_value(run_id)}.items()
        )
        with contextlib.suppress(KubeApiError):
            for pod in self.api.list_pods(selector):
                meta = pod.get("metadata") or {}
                if (meta.get("annotations") or {}).get(RUN_LABEL) == run_id:
                    names.add(str(meta.get("name")))
        for name in names:
            self._delete(name)
        return len(names)

    def close(self) -> None:
        """Close the API connections."""
        self.api.close()


def delete_run_pods(run_id: str) -> int:
    """Delete ``run_id``'s sandbox pods from any process (a cancelled flow run's hook); 0 when
    the API cannot be reached (their ``activeDeadlineSeconds`` still ends them)."""
    try:
        executor = KubernetesExecutor()
    except KubeApiError:
        return 0
    try:
        return executor.cancel(run_id)
    finally:
        executor.close()


class _LogReader:
    """Follows the container's log in a thread: counts bytes against the cap (over it: the
    outcome is ``OUTPUT_LIMIT``) and notices the entrypoint's completion line."""

    def __init__(self, api: KubeApi, name: str, cap: int, outcome: ExecOutcome) -> None:
        self.api, self.name, self.cap, self.outcome = api, name, cap, outcome
        self.chunks: list[bytes] = []
        self.done = threading.Event()
        self.failed = False
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._follow, daemon=True)
        self.thread.start()

    def _follow(self) -> None:
        total, tail = 0, b""
        try:
            with self.api.follow_log(self.name, CONTAINER, self.cap + 1) as stream:
                for chunk in stream:
                    total += len(chunk)
                    if total > self.cap:
                        self.outcome.killed = self.outcome.killed or "OUTPUT_LIMIT"
                        self.done.set()
                        return
                    self.chunks.append(chunk)
                    tail = (tail + chunk)[-256:]
                    if DONE_MARKER in tail:
                        self.done.set()  # the watch polls the pod at once
        except Exception:  # a dropped stream: finish() reads the log in one request instead
            self.failed = True

    def finish(self) -> list[str]:
        """The log's lines (the thread joined; re-read in one request if the stream broke)."""
        if self.thread is not None:
            self.thread.join(timeout=5)
        if (self.thread is None or self.failed) and not self.outcome.killed:
            with contextlib.suppress(KubeApiError):
                self.chunks = [self.api.read_log(self.name, CONTAINER, self.cap)]
        return b"".join(self.chunks).decode("utf-8", "replace").splitlines()
