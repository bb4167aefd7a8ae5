"""The Docker runner: user code only after the start-up self-test passed.

:class:`DockerRunner` wraps :class:`~runners.sandboxed.SandboxedRunner` over a
:class:`~runners.docker.engine.DockerExecutor`. Its first use sweeps leftovers, checks the images
and runs the self-test (once per process and image set, or reuses a recent pass of another
process: :mod:`runners.docker.selftest`); until that passed every node fails with
``SANDBOX_UNAVAILABLE`` and the reasons. :func:`user_code_runner` is how the rest of the platform
gets a runner for user code: Docker, or, only when Docker is unavailable and the operator set
``ALPHAFORGE_ALLOW_PROCESS_RUNNER=1``, the unsandboxed development runner; otherwise it refuses.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import docker
from docker.errors import DockerException

from dsl.ir import NodeIR
from runners.base import InputPaths, NodeResult, RunnerError
from runners.caps import operator_caps, sandbox_backend
from runners.custom import AdminCaps, Limits, ManifestCatalog
from runners.docker.engine import DockerExecutor, docker_client
from runners.docker.images import SandboxImages
from runners.docker.pool import WarmPool, process_pool, register_client
from runners.docker.selftest import (
    SelfTestReport,
    attestation_key,
    load_attestation,
    run_self_test,
    save_attestation,
    self_test_line,
)
from runners.docker.sweeper import ORPHAN_MIN_AGE_S, process_sweeper, sweep
from runners.process import process_runner, process_runner_enabled
from runners.sandboxed import SandboxedRunner

__all__ = ["DockerRunner", "SandboxUnavailable", "kubernetes_runner", "user_code_runner"]

_SELF_TESTS: dict[tuple[str, str], SelfTestReport] = {}
_SELF_TEST_LOCK = threading.Lock()


class SandboxUnavailable(RunnerError):
    """No sandbox can run user code here (no Docker engine, or the self-test failed)."""

    code = "AF750"


class DockerRunner:
    """Runs custom nodes in Docker sandboxes; refuses until the self-test has passed."""

    def __init__(
        self,
        catalog: ManifestCatalog,
        *,
        caps: AdminCaps | None = None,
        client: docker.DockerClient | None = None,
        images: SandboxImages | None = None,
        run_id: str | None = None,
        work_root: Path | None = None,
        pool_size: int | None = None,
    ) -> None:
        self.executor = DockerExecutor(client, images)
        self.sandboxed = SandboxedRunner(
            self.executor, catalog, caps=caps, run_id=run_id, work_root=work_root
        )
        env_pool = os.environ.get("ALPHAFORGE_SANDBOX_POOL", "0")
        self.pool_size = int(env_pool) if pool_size is None else pool_size

    @property
    def run_id(self) -> str:
        """The run this runner's containers are labelled with (what :meth:`cancel` takes)."""
        return self.sandboxed.run_id

    def image_digest(self, language: str) -> str:
        """The sandbox image digest for ``language``, for the run record."""
        return self.executor.image_digest(language)

    def ensure_ready(self) -> SelfTestReport:
        """Sweep leftovers and run the self-test once per process and image set."""
        return self._ready()[0]

    def _ready(self) -> tuple[SelfTestReport, bool]:
        """The self-test's report, and whether this call ran (or reused) it.

        A pass recorded under the work root by an earlier process (a previous CLI run, another
        flow run of this worker) is reused while it is younger than ``ATTESTATION_TTL_S`` and
        was made on the same engine, with the same images and the same policy code.
        """
        key = (self.image_digest("python"), self.image_digest("javascript"))
        with _SELF_TEST_LOCK:
            if key in _SELF_TESTS:
                return _SELF_TESTS[key], False
            client = self.executor.client
            sweep(client, orphan_min_age_s=ORPHAN_MIN_AGE_S)
            work_root = self.sandboxed.work_root
            attest = attestation_key(str(client.info().get("ID", "")), key)
            report = load_attestation(work_root, attest)
            if report is None:
                report = run_self_test(self.executor)
                save_attestation(work_root, attest, report)
            _SELF_TESTS[key] = report
            return report, True

    def run(self, node_ir: NodeIR, input_paths: InputPaths, *, output_dir: Path) -> NodeResult:
        """Run one custom node in a fresh container (never raises for the node's errors)."""
        try:
            report, ran = self._ready()
        except (DockerException, RunnerError) as exc:
            return _unavailable(node_ir.id, f"the Docker sandbox is not usable: {exc}")
        if not report.passed:
            reasons = "; ".join(report.failures)
            return _unavailable(node_ir.id, f"the sandbox self-test failed: {reasons}")
        register_client(self.executor.client)  # at exit, this process's containers go
        process_sweeper(self.executor.client)  # deadlines enforced on a timer from now on
        if self.pool_size > 0 and self.executor.pool is None:
            self.start_pool()
        result = self.sandboxed.run(node_ir, input_paths, output_dir=output_dir)
        if ran:
            # the first node of a worker process waits for the canaries: say where the time went
            result.logs.insert(0, f"[{node_ir.id}] {self_test_line(report)}")
        return result

    def start_pool(self) -> WarmPool:
        """Use this process's warm pool (``pool_size`` containers per image, default limits),
        started if needed: every runner of a process shares one (:func:`process_pool`)."""
        limits = Limits.default(self.sandboxed.caps)
        root = self.sandboxed.work_root / "pool"
        pool = process_pool(self.executor, limits, size=max(1, self.pool_size), root=root)
        self.executor.pool = pool
        return pool

    def close(self) -> None:
        """Stop using the pool (a run ended). The pool is the process's: it stays warm for the
        next runner and is removed at exit (``close_process_pool`` removes it sooner)."""
        self.executor.pool = None

    def cancel(self, run_id: str | None = None) -> int:
        """Kill the containers of ``run_id`` (default: this runner's run); returns how many."""
        return self.executor.cancel(run_id or self.run_id)


def _unavailable(node_id: str, message: str) -> NodeResult:
    msg = f"node {node_id!r} not run: {message}"
    return NodeResult(
        status="failed", logs=[f"[{node_id}] {msg}"], error=msg, error_kind="SANDBOX_UNAVAILABLE"
    )


def user_code_runner(
    catalog: ManifestCatalog,
    *,
    caps: AdminCaps | None = None,
    run_id: str | None = None,
    allow_process: bool = True,
) -> DockerRunner | SandboxedRunner:
    """The runner for user code: Docker, or the process runner only if the operator opted in
    (and ``allow_process``: a run spec that asks for Docker never falls back); with
    ``ALPHAFORGE_SANDBOX_BACKEND=kubernetes``, sandbox pods (:func:`kubernetes_runner`).

    Raises :class:`SandboxUnavailable` when no engine answers and the process runner is off,
    and ``runners.caps.SandboxSettingsError`` when the operator's caps (``ALPHAFORGE_SANDBOX_*``)
    are outside the ceilings: checked first, so a misconfigured worker refuses user code at once.
    """
    caps = caps or operator_caps()
    if sandbox_backend() == "kubernetes":
        return kubernetes_runner(catalog, caps=caps, run_id=run_id)
    try:
        client = docker_client(timeout=10)
        client.ping()
    except DockerException as exc:
        if allow_process and process_runner_enabled():
            return process_runner(catalog, caps=caps, run_id=run_id)
        raise SandboxUnavailable(
            f"no Docker engine answers ({exc}); refusing to run user code without a sandbox. "
            "On a development machine an operator may set ALPHAFORGE_ALLOW_PROCESS_RUNNER=1."
        ) from None
    return DockerRunner(catalog, caps=caps, client=client, run_id=run_id)


def kubernetes_runner(
    catalog: ManifestCatalog, *, caps: AdminCaps | None = None, run_id: str | None = None
) -> SandboxedRunner:
    """User code in gVisor sandbox pods (:mod:`runners.k8s`); raises
    :class:`SandboxUnavailable` when the Kubernetes API cannot be reached or refuses to list
    this namespace's pods (the launcher's Role), or the work root is off the shared claim."""
    from runners.k8s import JobDirOutsideClaim, KubeApi, KubeApiError, KubernetesExecutor
    from runners.k8s.pod import claim_subpath
    from runners.workroot import sandbox_work_root

    try:
        api = KubeApi()
        claim_subpath(sandbox_work_root() / "x", api.settings.claim_mount, api.settings.claim)
        api.list_pods("alphaforge.io/role=sandbox")
    except (KubeApiError, JobDirOutsideClaim) as exc:
        raise SandboxUnavailable(f"the Kubernetes sandbox is not usable: {exc}") from None
    return SandboxedRunner(KubernetesExecutor(api), catalog, caps=caps, run_id=run_id)
