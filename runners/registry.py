"""Runners by runtime: which runner executes a node, and the code that computes it there.

A node's IR names its ``runtime`` (``builtin``, or a custom node's language). Each runtime the
platform knows is declared in ``nodes.base`` (the compiler checks names against that list); the
runner for it is registered here, on the machine that runs the flow, with:

- ``make(ctx, node)``: the runner for one node of a run (a :class:`RunnerContext` carries the
  run's id, its data folder, datasets and custom-node store);
- ``code_fingerprint(node)``: a hash of the code that will compute the node on this runtime,
  here — the node type's modules (``Node.code_fingerprint``) or the custom node's code hash,
  plus the runtime's own code (the in-process runner, or the sandbox's host-side job and output
  modules and in-container entrypoints). It goes into the artifact key.

``builtin`` runs in-process; ``python``, ``javascript`` and ``wasm`` run in the sandbox (Docker,
or the development process runner); a tick-level or remote runtime is one more
:func:`register_runner` call. A runtime without a runner in this process fails its nodes with a
message naming the runtime and the registered ones.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dsl.ir import NodeIR
from nodes import codehash
from nodes.base import BUILTIN_RUNTIME, DatasetSource, registry, runtime
from runners.base import Runner, RunnerError

__all__ = [
    "RunnerContext",
    "RunnerEntry",
    "code_fingerprint",
    "register_runner",
    "runner_entry",
    "runner_for",
    "runtimes_with_runners",
]

HERE = Path(__file__).resolve().parent
SANDBOX_DIR = HERE / "sandbox"


@dataclass(frozen=True)
class RunnerContext:
    """What a runner factory may know about the run a node belongs to."""

    run_id: str
    base_dir: Path
    datasets: Mapping[str, Path] = field(default_factory=dict)
    confine_paths: bool = False
    custom_nodes_dir: Path | None = None
    # the run spec's choice for user code: auto | docker | process (flows.spec.RunnerChoice)
    runner_choice: str = "auto"
    # the run's MLflow tracking / model registry store (predict's registered models)
    mlflow_uri: str | None = None
    # the run's dataset catalog (dataset steps' versions), opened by the flow
    catalog: DatasetSource | None = None


RunnerFactory = Callable[[RunnerContext, NodeIR], Runner]
CodeFingerprint = Callable[[NodeIR], str]


@dataclass(frozen=True)
class RunnerEntry:
    """A registered runtime's runner: ``sandboxed`` says it runs untrusted user code."""

    runtime: str
    make: RunnerFactory
    code_fingerprint: CodeFingerprint
    sandboxed: bool = False
    summary: str = ""


_RUNNERS: dict[str, RunnerEntry] = {}
_LOCK = threading.Lock()


def register_runner(
    runtime_name: str,
    make: RunnerFactory,
    code_fingerprint: CodeFingerprint,
    *,
    sandboxed: bool = False,
    summary: str = "",
    replace: bool = False,
) -> RunnerEntry:
    """Register the runner of a declared runtime (``nodes.base.register_runtime``)."""
    runtime(runtime_name)  # raises UnknownRuntimeError for an undeclared name
    entry = RunnerEntry(runtime_name, make, code_fingerprint, sandboxed, summary)
    with _LOCK:
        if runtime_name in _RUNNERS and not replace:
            raise RunnerError(f"a runner for runtime {runtime_name!r} is already registered")
        _RUNNERS[runtime_name] = entry
    return entry


def runtimes_with_runners() -> list[str]:
    """The runtimes this process can run, in registration order."""
    with _LOCK:
        return list(_RUNNERS)


def runner_entry(runtime_name: str) -> RunnerEntry:
    """The registered entry for ``runtime_name``; :class:`RunnerError` if there is none."""
    with _LOCK:
        entry = _RUNNERS.get(runtime_name)
    if entry is None:
        known = ", ".join(runtimes_with_runners())
        raise RunnerError(
            f"no runner for runtime {runtime_name!r} in this process (registered: {known})"
        )
    return entry


def runner_for(ctx: RunnerContext, node: NodeIR) -> Runner:
    """The runner that executes ``node`` in this run."""
    return runner_entry(node.runtime).make(ctx, node)


def code_fingerprint(node: NodeIR) -> str:
    """sha256 of the code that computes ``node`` here (see the module doc); raises when it
    cannot be taken (an unknown node type, a custom node without a code hash)."""
    return runner_entry(node.runtime).code_fingerprint(node)


def _combine(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


# ---- builtin: in-process ---------------------------------------------------------------------

# The in-process runner's own code: reading inputs, selecting columns, checking and writing outputs.
_INPROCESS_MODULES = ("runners.inprocess",)
_RUNNER_PACKAGES = ("nodes", "runners")


#: built-in nodes that reach past ``runners.inprocess`` at run time (through the context):
#: what computes them there is part of their fingerprint, and of no other node's
NODE_RUNTIME_MODULES: dict[str, tuple[str, ...]] = {
    "strategy_backtest": ("runners.papertrade.service",),
    "tick_strategy_backtest": ("runners.papertrade.service", "runners.tickstrategy"),
}
#: ... and the sandbox entrypoints such a node's user code runs under
NODE_SANDBOX_FILES: dict[str, tuple[str, ...]] = {
    "strategy_backtest": ("strategy_entry.py", "alphaforge_strategy.py"),
    "tick_strategy_backtest": (
        "tick_strategy_entry.py",
        "alphaforge_tick.py",
        "strategy_entry.py",
        "alphaforge_strategy.py",
    ),
}


def _inprocess_code(node: NodeIR) -> str:
    node_type = registry().get(node.type)
    modules = (*_INPROCESS_MODULES, *NODE_RUNTIME_MODULES.get(node.type, ()))
    runtime_code = codehash.modules_fingerprint(
        m for name in modules for m in codehash.module_closure(name, _RUNNER_PACKAGES)
    )
    files = NODE_SANDBOX_FILES.get(node.type)
    if files:
        entry = codehash.files_fingerprint([SANDBOX_DIR / f for f in files], root=SANDBOX_DIR)
        runtime_code = _combine(runtime_code, entry)
    return _combine(BUILTIN_RUNTIME, node_type.code_fingerprint(), runtime_code)


def _make_inprocess(ctx: RunnerContext, node: NodeIR) -> Runner:
    from runners.inprocess import InProcessRunner

    return InProcessRunner(
        base_dir=ctx.base_dir,
        datasets=ctx.datasets,
        confine_paths=ctx.confine_paths,
        mlflow_uri=ctx.mlflow_uri,
        catalog=ctx.catalog,
    )


# ---- custom nodes: the sandbox, per language ------------------------------------------------

# Host side: the job directory, the output checks, the artifact files. In the container: the
# entrypoints the sandbox images are built from (and the process runner runs).
_SANDBOX_HOST_MODULES = ("runners.sandboxed", "runners.jobs", "runners.outputs")
_SANDBOX_FILES: dict[str, tuple[str, ...]] = {
    # alphaforge_ml.py writes a model output's file; its torchnets.py is a link to
    # nodes/builtin/_torchnets.py, which the host modules' closure covers already
    "python": ("python_entry.py", "arrow_ipc.py", "alphaforge_ml.py"),
    "wasm": ("python_entry.py", "wasm_entry.py"),
    "javascript": ("node_entry.js",),
}


def _sandbox_code(node: NodeIR) -> str:
    if not node.code_hash:
        raise RunnerError(f"node {node.id!r} ({node.runtime}) has no code hash")
    host = codehash.modules_fingerprint(
        m for name in _SANDBOX_HOST_MODULES for m in codehash.module_closure(name, _RUNNER_PACKAGES)
    )
    files = [SANDBOX_DIR / f for f in _SANDBOX_FILES.get(node.runtime, ())]
    entry = codehash.files_fingerprint(files, root=SANDBOX_DIR)
    return _combine(node.runtime, node.code_hash, host, entry)


def _make_sandboxed(ctx: RunnerContext, node: NodeIR) -> Runner:
    from runners.docker.runner import SandboxUnavailable
    from runners.userrunners import shared_user_runner

    if ctx.custom_nodes_dir is None:
        raise SandboxUnavailable(f"node {node.id!r}: a custom node needs the custom-nodes store")
    return shared_user_runner(ctx.run_id, ctx.custom_nodes_dir, ctx.runner_choice)


register_runner(
    BUILTIN_RUNTIME,
    _make_inprocess,
    _inprocess_code,
    summary="built-in nodes in the flow's process",
)
for _language in ("python", "javascript", "wasm"):
    register_runner(
        _language,
        _make_sandboxed,
        _sandbox_code,
        sandboxed=True,
        summary=f"{_language} custom nodes in the Docker sandbox (or the process runner)",
    )
