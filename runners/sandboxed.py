"""The runner for user code, shared by the Docker sandbox and the development process runner.

For one node: find the manifest its ``code_hash`` pins, clamp its resource requests to the admin
caps, check its params, write the job directory (:mod:`runners.jobs`), hand the execution to an
:class:`Executor` (a container, or a local process), classify what happened into a named failure
(``TIMEOUT``, ``MEMORY_LIMIT``, ``PIDS_LIMIT``, ``OUTPUT_LIMIT``, ``SANDBOX_VIOLATION``,
``CANCELLED``, ``USER_ERROR``, ``INVALID_OUTPUT``) and validate the outputs on the host
(:mod:`runners.outputs`) before they become artifacts. Every log line is tagged with the node id.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dsl.ir import NodeIR
from nodes.errors import AlphaForgeError
from runners.base import InputPaths, NodeResult
from runners.caps import operator_caps
from runners.custom import AdminCaps, CustomNodeManifest, Limits, ManifestCatalog, resolve_params
from runners.jobs import SandboxFailure, prepare_job
from runners.outputs import collect_outputs
from runners.workroot import sandbox_work_root

__all__ = ["ExecOutcome", "ExecSpec", "Executor", "SandboxedRunner", "classify"]

EXIT_USER, EXIT_OUTPUT, EXIT_FUEL, EXIT_MEMORY, EXIT_OUTPUT_LIMIT = 1, 2, 3, 4, 5
# The entrypoints' last stdout line, "@@alphaforge-done@@ <exit code>" (see split_done).
DONE_MARKER = b"@@alphaforge-done@@"
# what the entrypoints prefix their own messages with (the last one says why a node failed)
ENTRY_PREFIX = "alphaforge-sandbox: "


def split_done(lines: list[str]) -> tuple[list[str], int | None]:
    """Remove the entrypoint's completion line; returns (lines, its exit code or None).

    The line is as untrusted as an exit code (user code could print it): it only lets a runner
    stop waiting sooner; it never vouches for the outputs, which are validated regardless.
    """
    marker = DONE_MARKER.decode()
    code: int | None = None
    kept: list[str] = []
    for line in lines:
        if line.startswith(marker):
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("-").isdigit():
                code = int(parts[1])
            continue
        kept.append(line)
    while kept and kept[-1] == "" and code is not None:
        kept.pop()
    return kept, code


@dataclass(frozen=True)
class ExecSpec:
    """One execution: whose, which runtime, where its job and output dirs are, its limits."""

    run_id: str
    node_id: str
    language: str
    job_dir: Path
    out_dir: Path
    limits: Limits


@dataclass
class ExecOutcome:
    """What an executor observed. ``killed`` names why it stopped the code (or None)."""

    exit_code: int | None
    lines: list[str] = field(default_factory=list)
    killed: str | None = None
    oom_killed: bool = False
    pids_limit_hit: bool = False
    usage: dict[str, Any] = field(default_factory=dict)
    out_dir: Path | None = None  # where the outputs are, if not the spec's (a pooled container)


class Executor(Protocol):
    """Runs the sandbox entrypoint for one job and watches its limits."""

    name: str

    def preamble(self, spec: ExecSpec) -> list[str]:
        """Lines to log before the execution (what isolation it gets)."""
        ...

    def execute(self, spec: ExecSpec) -> ExecOutcome:
        """Run to completion or kill; never raises for the code's own behaviour."""
        ...


def classify(outcome: ExecOutcome, limits: Limits, node_id: str) -> SandboxFailure | None:
    """The named failure an outcome amounts to, or None when the code succeeded."""
    nid = repr(node_id)
    if outcome.killed == "TIMEOUT":
        return SandboxFailure("TIMEOUT", f"node {nid} ran past its {limits.wall_s:g} s wall time")
    if outcome.killed == "OUTPUT_LIMIT":
        return SandboxFailure(
            "OUTPUT_LIMIT",
            f"node {nid} exceeded its output cap (logs {limits.log_bytes} bytes, files "
            f"{limits.output_bytes} bytes) and was killed",
        )
    if outcome.killed == "CANCELLED":
        return SandboxFailure("CANCELLED", f"node {nid} was cancelled")
    if outcome.killed is not None:
        return SandboxFailure(outcome.killed, f"node {nid} was stopped: {outcome.killed}")
    if outcome.exit_code == 0:
        return None
    tail = "\n".join(outcome.lines[-40:])
    memory_hit = (
        outcome.oom_killed
        or outcome.exit_code == EXIT_MEMORY
        or "heap out of memory" in tail
        or "MemoryError" in tail
    )
    if "File too large" in tail or "EFBIG" in tail:  # RLIMIT_FSIZE: the output file cap
        return SandboxFailure(
            "OUTPUT_LIMIT", f"node {nid} wrote a file over the cap of {limits.output_bytes} bytes"
        )
    if outcome.exit_code == EXIT_OUTPUT_LIMIT:  # the entrypoint's own check (a model file)
        return SandboxFailure(
            "OUTPUT_LIMIT", f"node {nid} exceeded its output cap: {error_summary(outcome.lines)}"
        )
    if outcome.pids_limit_hit:  # first: a fork bomb often runs out of memory too
        return SandboxFailure(
            "PIDS_LIMIT", f"node {nid} hit the limit of {limits.pids} processes/threads"
        )
    if memory_hit:
        return SandboxFailure(
            "MEMORY_LIMIT", f"node {nid} exceeded its memory limit of {limits.memory_mb} MiB"
        )
    if outcome.exit_code == EXIT_FUEL:
        return SandboxFailure("TIMEOUT", f"node {nid} ran out of wasm fuel ({limits.wasm_fuel})")
    kind = "INVALID_OUTPUT" if outcome.exit_code == EXIT_OUTPUT else "USER_ERROR"
    summary = error_summary(outcome.lines)
    return SandboxFailure(kind, f"node {nid} failed (exit {outcome.exit_code}): {summary}")


def error_summary(lines: list[str]) -> str:
    """The node's error in one line: the entrypoint's last ``alphaforge-sandbox:`` line (the
    error with the line of the user's code it happened on), else the last line printed."""
    said = next((ln for ln in reversed(lines) if ln.startswith(ENTRY_PREFIX)), None)
    if said is not None:
        return said[len(ENTRY_PREFIX) :].strip()[:300]
    return next((ln for ln in reversed(lines) if ln.strip()), "")[-300:]


class SandboxedRunner:
    """Runs custom nodes through an :class:`Executor`; the :class:`runners.base.Runner` contract."""

    def __init__(
        self,
        executor: Executor,
        catalog: ManifestCatalog,
        *,
        caps: AdminCaps | None = None,
        work_root: Path | None = None,
        run_id: str | None = None,
    ) -> None:
        self.executor = executor
        self.catalog = catalog
        self.caps = caps or operator_caps()  # the operator's settings, checked
        self.work_root = Path(work_root or sandbox_work_root())
        self.run_id = run_id or uuid.uuid4().hex

    def run(self, node_ir: NodeIR, input_paths: InputPaths, *, output_dir: Path) -> NodeResult:
        """Run one custom node; failures come back as a failed :class:`NodeResult`."""
        t0 = time.perf_counter()
        logs: list[str] = []
        tag = f"[{node_ir.id}]"
        self.work_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        work = Path(tempfile.mkdtemp(prefix="exec-", dir=self.work_root))
        usage: dict[str, Any] = {"runner": self.executor.name}
        try:
            manifest = self.catalog.get(node_ir.code_hash, node_ir.id)
            if manifest.language != node_ir.runtime:
                raise SandboxFailure(
                    "SANDBOX_VIOLATION",
                    f"node {node_ir.id!r} is compiled as {node_ir.runtime} but its code is "
                    f"{manifest.language}",
                )
            limits = manifest.limits(self.caps)
            params = resolve_params(manifest, dict(node_ir.params))
            spec = self._spec(node_ir, manifest, limits, work)
            logs.extend(f"{tag} {line}" for line in self.executor.preamble(spec))
            logs.extend(f"{tag} {note}" for note in limits.notes)
            reference = prepare_job(node_ir, manifest, input_paths, params, limits, spec.job_dir)
            outcome = self.executor.execute(spec)
            usage.update(outcome.usage)
            logs.extend(f"{tag} {line}" for line in outcome.lines)
            failure = classify(outcome, limits, node_ir.id)
            if failure is not None:
                raise failure
            out_dir = outcome.out_dir or spec.out_dir
            paths = collect_outputs(
                out_dir, manifest, reference, limits.output_bytes, node_ir.id, output_dir
            )
        except AlphaForgeError as exc:
            kind = getattr(exc, "kind", type(exc).__name__)
            logs.append(f"{tag} failed: {kind}: {exc}")
            usage["wall_s"] = round(time.perf_counter() - t0, 6)
            return NodeResult(
                status="failed", logs=logs, usage=usage, error=str(exc), error_kind=kind
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
        usage["wall_s"] = round(time.perf_counter() - t0, 6)
        return NodeResult(status="completed", output_paths=paths, logs=logs, usage=usage)

    def cancel(self, run_id: str | None = None) -> int:
        """Stop ``run_id``'s executions (default: this runner's run) if the executor can;
        returns how many it stopped."""
        cancel = getattr(self.executor, "cancel", None)
        return int(cancel(run_id or self.run_id)) if cancel is not None else 0

    def close(self) -> None:
        """Release the executor's connections, if it holds any."""
        close = getattr(self.executor, "close", None)
        if close is not None:
            close()

    def _spec(
        self, node_ir: NodeIR, manifest: CustomNodeManifest, limits: Limits, work: Path
    ) -> ExecSpec:
        out = work / "out"
        out.mkdir()
        out.chmod(0o777)  # the sandbox user (not the worker's uid) writes here
        return ExecSpec(
            run_id=self.run_id,
            node_id=node_ir.id,
            language=manifest.language,
            job_dir=work / "job",
            out_dir=out,
            limits=limits,
        )
