"""The development ``process`` runner: user code in a local subprocess, WITHOUT a sandbox.

For machines without Docker. It is off unless the operator sets
``ALPHAFORGE_ALLOW_PROCESS_RUNNER=1``, and every execution's log says, on its first line, that
the code ran without a sandbox. It still applies what a process can: rlimits (data size, CPU
time, file size, open files, no core dumps), a new session killed as a group at the wall time,
capped stdout/stderr, an environment allow-list, and the same host-side output validation as the
Docker runner. It does not stop network access, reading the filesystem or the host's processes.

:class:`StrategyProcess` is the same for a strategy module (runners/strategyhost.py's
``ProcessStrategyHost``): its entrypoint as a long-lived subprocess with the same rlimits (but
CPU time: it lives for hours; a tick's timeout stops a loop), in a session killed as a group.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from nodes.errors import AlphaForgeError
from runners.custom import AdminCaps, Limits, ManifestCatalog
from runners.sandbox import ENTRY_DIR
from runners.sandboxed import ExecOutcome, ExecSpec, SandboxedRunner, split_done

__all__ = [
    "ALLOW_ENV",
    "ProcessExecutor",
    "ProcessRunnerDisabled",
    "StrategyProcess",
    "process_runner",
]

ALLOW_ENV = "ALPHAFORGE_ALLOW_PROCESS_RUNNER"
WARNING = (
    "WARNING: ran WITHOUT a sandbox (development process runner, enabled by "
    f"{ALLOW_ENV}=1): no network, filesystem or identity isolation"
)
ENV_ALLOW_LIST = ("PATH", "LANG", "LC_ALL", "TZ")


class ProcessRunnerDisabled(AlphaForgeError):
    """The process runner was asked for, but the operator has not enabled it."""

    code = "AF740"


def process_runner_enabled() -> bool:
    """True when the operator opted in to running user code without a sandbox."""
    return os.environ.get(ALLOW_ENV) == "1"


class ProcessExecutor:
    """Runs the sandbox entrypoints as local subprocesses with rlimits."""

    name = "process"

    def __init__(self, node_binary: str | None = None) -> None:
        if not process_runner_enabled():
            raise ProcessRunnerDisabled(
                f"the process runner runs user code without a sandbox; set {ALLOW_ENV}=1 to "
                "allow it on a development machine"
            )
        self.node_binary = node_binary or shutil.which("node") or "node"

    def preamble(self, spec: ExecSpec) -> list[str]:
        """The unsandboxed warning, first in every execution's log."""
        return [WARNING]

    def _command(self, spec: ExecSpec) -> list[str]:
        job, out = str(spec.job_dir), str(spec.out_dir)
        if spec.language == "javascript":
            heap = max(16, spec.limits.memory_mb * 3 // 4)
            entry = str(ENTRY_DIR / "node_entry.js")
            return [self.node_binary, f"--max-old-space-size={heap}", entry, job, out]
        return [sys.executable, "-I", "-B", str(ENTRY_DIR / "python_entry.py"), job, out]

    def execute(self, spec: ExecSpec) -> ExecOutcome:
        """Run the entrypoint; kill its process group on the wall time or too much output."""
        limits = spec.limits
        env = {k: os.environ[k] for k in ENV_ALLOW_LIST if k in os.environ}
        env["HOME"] = str(spec.out_dir.parent)

        def set_limits() -> None:
            cpu = int(limits.wall_s) + 1
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits.output_bytes, limits.output_bytes))
            resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if spec.language != "javascript":  # V8 reserves address space up front
                mem = limits.memory_mb << 20
                resource.setrlimit(resource.RLIMIT_DATA, (mem, mem))

        t0 = time.perf_counter()
        proc = subprocess.Popen(
            self._command(spec),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=spec.out_dir.parent,
            env=env,
            start_new_session=True,
            preexec_fn=set_limits,
        )
        outcome = ExecOutcome(exit_code=None)
        reader = threading.Thread(
            target=_read_capped, args=(proc, proc.stdout, limits.log_bytes, outcome), daemon=True
        )
        reader.start()
        try:
            proc.wait(timeout=limits.wall_s)
        except subprocess.TimeoutExpired:
            outcome.killed = outcome.killed or "TIMEOUT"
            _kill_group(proc)
        _kill_group(proc)  # whatever it left behind in its session
        reader.join(timeout=5)
        outcome.exit_code = proc.returncode
        outcome.usage = {"wall_s": round(time.perf_counter() - t0, 6), "sandboxed": False}
        return outcome


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _read_capped(
    proc: subprocess.Popen[bytes], stream: IO[bytes] | None, cap: int, outcome: ExecOutcome
) -> None:
    assert stream is not None
    total = 0
    buf = b""
    while chunk := stream.read1(65536):  # type: ignore[attr-defined]
        total += len(chunk)
        if total > cap:
            outcome.killed = "OUTPUT_LIMIT"
            _kill_group(proc)
            break
        buf += chunk
    outcome.lines, _ = split_done(buf.decode("utf-8", "replace").splitlines())


def process_runner(
    catalog: ManifestCatalog, *, caps: AdminCaps | None = None, run_id: str | None = None
) -> SandboxedRunner:
    """A runner over :class:`ProcessExecutor` (raises ProcessRunnerDisabled unless enabled)."""
    return SandboxedRunner(ProcessExecutor(), catalog, caps=caps, run_id=run_id)


class StrategyProcess:
    """A strategy's entrypoint (runners/sandbox/strategy_entry.py) as a local subprocess, WITHOUT
    a sandbox: the process host's box (runners/strategyhost.py ``Box``). Refuses unless the
    operator enabled the process runner."""

    def __init__(self, limits: Limits, entry: str = "strategy_entry.py") -> None:
        if not process_runner_enabled():
            raise ProcessRunnerDisabled(
                "the process strategy host runs user code without a sandbox; set "
                f"{ALLOW_ENV}=1 to allow it on a development machine"
            )
        self.limits = limits
        self.entry = entry  # a file of runners/sandbox
        self.proc: subprocess.Popen[bytes] | None = None
        self._slot: Path | None = None
        self._readers: list[threading.Thread] = []
        self._sink: Any = None

    def launch(self, code: str, slot: Path, sink: Any) -> None:
        """Start the entrypoint on ``code`` (written into ``slot``); stdout to ``sink.out``,
        stderr to ``sink.err``."""
        self._sink = sink
        self._slot = slot
        (self._slot / "strategy.py").write_text(code, encoding="utf-8")
        env = {k: os.environ[k] for k in ENV_ALLOW_LIST if k in os.environ}
        env["HOME"] = str(self._slot)
        mem, fsize = self.limits.memory_mb << 20, self.limits.output_bytes

        def set_limits() -> None:
            resource.setrlimit(resource.RLIMIT_DATA, (mem, mem))
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
            resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-B", str(ENTRY_DIR / self.entry), str(self._slot)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self._slot,
            env=env,
            start_new_session=True,
            preexec_fn=set_limits,
        )
        pumps = ((self.proc.stdout, sink.out, sink.eof), (self.proc.stderr, sink.err, None))
        for stream, to, at_end in pumps:
            thread = threading.Thread(target=_pump, args=(stream, to, at_end), daemon=True)
            thread.start()
            self._readers.append(thread)

    def send(self, data: bytes) -> None:
        """Write to the entrypoint's stdin (OSError once it is gone)."""
        if self.proc is None or self.proc.stdin is None:
            raise OSError("the strategy process is not started")
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def kill(self) -> None:
        """SIGKILL the process's whole session."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def exit_reason(self) -> str:
        """Why it ended: out of memory (MemoryError, exit 4), a signal, or its exit code."""
        if self.proc is None:
            return "the strategy's process was never started"
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return "the strategy's process stopped answering"
        for thread in self._readers:
            thread.join(timeout=5)
        tail = self._sink.stderr_tail
        if code == 4:
            mb = self.limits.memory_mb
            return f"out of memory: MemoryError at the process's memory limit of {mb} MiB"
        if code < 0:
            return f"the strategy's process was killed by signal {-code}"
        said = f": {tail.strip().splitlines()[-1][:300]}" if tail.strip() else ""
        return f"the strategy's process exited with code {code}{said}"

    def remove(self) -> None:
        """End the process (it was told to stop: a moment to exit, then SIGKILL to its session)
        and remove its directory."""
        if self.proc is not None:
            if self.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self.proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=2)
            self.kill()  # whatever it left behind in its session
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        if self._slot is not None:
            shutil.rmtree(self._slot, ignore_errors=True)


def _pump(
    stream: IO[bytes] | None, sink: Callable[[bytes], None], at_end: Callable[[], None] | None
) -> None:
    """Copy a pipe into ``sink`` until it ends, then call ``at_end``."""
    assert stream is not None
    with contextlib.suppress(OSError, ValueError):
        while chunk := stream.read1(65536):  # type: ignore[attr-defined]
            sink(chunk)
    if at_end is not None:
        at_end()
