"""What a runner is: execute one node of the IR, from input files to output files.

A runner never raises for a node's own failure: it returns a :class:`NodeResult` with
``status="failed"``, the user-facing message in ``error`` (an ``AlphaForgeError`` message, never a
bare traceback) and the traceback kept in ``logs``. The flow layer decides what a failure means
for the rest of the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from dsl.ir import NodeIR
from nodes.errors import AlphaForgeError

__all__ = ["InputPaths", "NodeResult", "NodeStatus", "Runner", "RunnerError"]

NodeStatus = Literal["completed", "cached", "failed"]

# Input port name -> artifact path (a list of paths for a variadic port).
InputPaths = Mapping[str, str | Sequence[str]]


class RunnerError(AlphaForgeError):
    """A runner could not execute a node (a missing input file, an output of the wrong type)."""

    code = "AF700"


@dataclass
class NodeResult:
    """The outcome of one node: where its outputs are, what it logged, what it cost.

    ``usage`` holds measurements such as ``wall_s`` and ``cpu_s``. ``error_kind`` is a stable
    name for the failure (the error class, or a ``DataError``'s kind) for UIs to group by.
    """

    status: NodeStatus
    output_paths: dict[str, str] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    error_kind: str | None = None

    @property
    def ok(self) -> bool:
        """True unless the node failed."""
        return self.status != "failed"

    def to_json(self) -> dict[str, Any]:
        """A JSON-compatible dict (the inverse of :meth:`from_json`)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NodeResult:
        """Rebuild a result written by :meth:`to_json`."""
        return cls(**dict(data))


class Runner(Protocol):
    """Executes one node: reads ``input_paths``, writes its outputs under ``output_dir``."""

    def run(self, node_ir: NodeIR, input_paths: InputPaths, *, output_dir: Path) -> NodeResult:
        """Run ``node_ir`` and report what happened (never raises for the node's own errors)."""
        ...
