"""What to run and what happened: :class:`RunSpec` in, :class:`RunRecord` out.

Every layer that starts a run — the CLI, the API, schedules, deployments, tests, later sweeps —
builds one frozen :class:`RunSpec` and hands it on whole; nothing travels as loose arguments.
The flow runs it and returns a :class:`RunRecord`, whose JSON is the run directory's
``run.json``. A sweep trial is the same spec with ``overrides`` (:meth:`RunSpec.with_overrides`).

Both round-trip through JSON (a Prefect flow parameter, a deployment's default parameters,
``run.json``); records written by earlier versions (fewer fields) still read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dsl.ir import PipelineIR

__all__ = [
    "RECORD_FILE",
    "NodeRecord",
    "RunRecord",
    "RunSpec",
    "RunStatus",
    "SpecError",
    "Trigger",
    "read_run_record",
]

RECORD_FILE = "run.json"
SPEC_VERSION = 1

RunStatus = Literal["running", "completed", "failed", "cancelled"]
NodeState = Literal["pending", "running", "completed", "cached", "failed", "skipped", "cancelled"]
Trigger = Literal["cli", "web", "schedule", "test", "api", "sweep"]
# Which user-code runner a spec may ask for; "auto" is the operator's default (Docker, or the
# process runner only where the operator enabled it). A spec can never enable the process
# runner on its own: "process" where the operator did not allow it fails the node.
RunnerChoice = Literal["auto", "docker", "process"]


class SpecError(ValueError):
    """A run spec that cannot be run as written (an override of an unknown node, say)."""


class RunSpec(BaseModel):
    """One run, fully described: the IR and everything else that decides its result.

    - ``ir``: the compiled pipeline (node types, versions, params, custom nodes' code hashes).
    - ``overrides``: node id -> param -> value applied over the IR's params (a sweep trial).
    - ``store_url``: the shared store the run reads and writes (run directory, artifacts,
      custom-node code; see :mod:`flows.settings`); None: the executing process's own.
    - ``tracking_uri``: the MLflow tracking store and model registry the run logs to and
      ``predict(registered=...)`` reads (the web app's configured one, so that its models page
      and the runs agree); None: the executing process's own.
    - ``base_dir`` / ``datasets`` / ``confine_paths``: how data references resolve (relative
      paths from ``base_dir``; dataset names to stored Parquet; reads kept inside ``base_dir``).
      Each is a ``store:<path>`` reference (web and scheduled runs: what any worker resolves
      against the store) or a local path (a run the CLI executes in its own process).
    - ``catalog_url`` / ``catalog_namespace``: the dataset catalog ``dataset`` steps read
      (None: the executing process's configured one) and the namespace whose names a step
      without a version in the IR resolves (None: ``local``, the CLI's); ``catalog_follow``:
      step id -> ``namespace/name`` of floating ``dataset("x")`` steps the run moves to x's
      latest version when it starts (scheduled runs, whose spec is made with the schedule).
    - ``seed``: the run's seed for nodes that draw random numbers (None: each node's own).
    - ``runners``: user-code runtime -> runner choice (see ``RunnerChoice``).
    - ``use_cache`` / ``track``: read the artifact cache; log to MLflow.
    - ``run_id``: None for a run whose id comes from its flow run (scheduled runs).
    - ``trigger`` / ``submitted_at``: who started it and when (epoch seconds), for the record.
    - ``rerun_of``: the run this one re-executes from its stored definition (``alphaforge
      rerun``), for the record.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    spec_version: int = SPEC_VERSION
    run_id: str | None = None
    ir: PipelineIR
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    store_url: str | None = None
    tracking_uri: str | None = None
    base_dir: str | None = None
    datasets: dict[str, str] = Field(default_factory=dict)
    confine_paths: bool = False
    catalog_url: str | None = None
    catalog_namespace: str | None = None
    catalog_follow: dict[str, str] = Field(default_factory=dict)
    seed: int | None = None
    runners: dict[str, RunnerChoice] = Field(default_factory=dict)
    use_cache: bool = True
    track: bool = True
    trigger: Trigger = "cli"
    submitted_at: float | None = None
    rerun_of: str | None = None

    @field_validator("spec_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != SPEC_VERSION:
            raise ValueError(f"run spec version {value} is not supported (this is {SPEC_VERSION})")
        return value

    @model_validator(mode="after")
    def _overrides_name_nodes(self) -> RunSpec:
        known = {n.id: n for n in self.ir.nodes}
        for node_id, params in self.overrides.items():
            if node_id not in known:
                raise ValueError(
                    f"override of unknown node {node_id!r} (nodes: {', '.join(sorted(known))})"
                )
            if not params:
                raise ValueError(f"override of node {node_id!r} sets no param")
        runtimes = {n.runtime for n in self.ir.nodes}
        for runtime in self.runners:
            if runtime == "builtin":
                raise ValueError("built-in nodes always run in-process: no runner choice")
            if runtime not in runtimes:
                raise ValueError(f"runner choice for {runtime!r}: no node of that runtime")
        return self

    # -- what runs -----------------------------------------------------------------------

    def effective_ir(self) -> PipelineIR:
        """The IR with ``overrides`` applied (the IR itself when there are none)."""
        if not self.overrides:
            return self.ir
        nodes = []
        for node in self.ir.nodes:
            extra = self.overrides.get(node.id)
            nodes.append(
                node if not extra else node.model_copy(update={"params": {**node.params, **extra}})
            )
        return self.ir.model_copy(update={"nodes": tuple(nodes)})

    def with_overrides(self, overrides: Mapping[str, Mapping[str, Any]], **changes: Any) -> RunSpec:
        """A copy with more param overrides (merged per node) and any other field changed;
        validated like a new spec."""
        merged = {k: dict(v) for k, v in self.overrides.items()}
        for node_id, params in overrides.items():
            merged.setdefault(node_id, {}).update(params)
        data = self.model_dump() | changes | {"overrides": merged}
        return RunSpec.model_validate(data)

    def runner_for(self, runtime: str) -> RunnerChoice:
        """The runner choice for a user-code runtime (``auto`` unless the spec says)."""
        return self.runners.get(runtime, "auto")

    @property
    def node_versions(self) -> dict[str, str]:
        """Node id -> ``type@version`` (custom nodes: ``+code_hash[:12]``)."""
        out: dict[str, str] = {}
        for n in self.ir.nodes:
            suffix = f"+{n.code_hash[:12]}" if n.code_hash else ""
            out[n.id] = f"{n.type}@{n.version}{suffix}"
        return out

    def ir_hash(self) -> str:
        """The content hash of the IR that actually runs (overrides included)."""
        return self.effective_ir().content_hash()

    # -- JSON ----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """JSON-compatible data (a Prefect flow parameter)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any]) -> RunSpec:
        """Parse a spec from JSON text or data (raises :class:`SpecError` on bad input)."""
        try:
            if isinstance(data, str | bytes):
                return cls.model_validate_json(data)
            return cls.model_validate(dict(data))
        except ValueError as exc:
            raise SpecError(f"invalid run spec: {exc}") from exc

    def summary(self) -> dict[str, Any]:
        """The spec without its IR (the record keeps the IR in ``ir.json``)."""
        return self.model_dump(mode="json", exclude={"ir"}) | {
            "ir_hash": self.ir_hash(),
            "node_versions": self.node_versions,
        }


class NodeRecord(BaseModel):
    """What happened to one node."""

    model_config = ConfigDict(extra="ignore")

    type: str
    version: str
    state: NodeState
    key: str | None = None
    code_fingerprint: str | None = None
    cacheable: bool = True
    usage: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    error_kind: str | None = None


class RunRecord(BaseModel):
    """What happened in one run: ``run.json``.

    Written twice by the flow: when the run starts (``status`` running, every node pending) and
    when it ends. ``spec`` is the spec without its IR (see :meth:`RunSpec.summary`);
    ``ir.json`` beside it holds the IR that ran (overrides applied).
    """

    model_config = ConfigDict(extra="ignore")

    run_id: str
    pipeline: str
    title: str | None = None
    ir_hash: str | None = None
    source_hash: str | None = None
    status: RunStatus = "running"
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    flow_run_id: str | None = None
    base_dir: str | None = None
    spec: dict[str, Any] | None = None
    node_states: dict[str, str] = Field(default_factory=dict)
    nodes: dict[str, NodeRecord] = Field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = Field(default_factory=dict)
    primary_metrics_node: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    result_fingerprint: str | None = None
    sandbox: dict[str, Any] | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    package_versions: dict[str, str | None] = Field(default_factory=dict)
    mlflow_run_id: str | None = None
    mlflow_experiment_id: str | None = None
    mlflow_tracking_uri: str | None = None
    tracking_error: str | None = None
    # step (or step.port) -> the model it trained: file, per-epoch losses, registry version
    # (flows.models)
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # -- the run definition (docs/reproducibility.md); absent from records before issue 16 ----
    # the run this one re-executed (alphaforge rerun)
    rerun_of: str | None = None
    # the installed distributions: {hash, python, implementation, platform, packages}
    package_lock: dict[str, Any] | None = None
    # the spec's seed and every node's seed params: {"spec": n, "nodes": {id: {param: n}}}
    seeds: dict[str, Any] = Field(default_factory=dict)
    # node id -> code hash of each custom node (its manifest is in <store>/custom-nodes)
    custom_nodes: dict[str, str] = Field(default_factory=dict)
    # node id -> port -> sha256 of the canonical orders / trades / equity it produced
    fingerprints: dict[str, dict[str, str]] = Field(default_factory=dict)

    @property
    def run_dir(self) -> Path | None:
        """The run directory, when the spec named its store (every run started here does)."""
        store = (self.spec or {}).get("store_url")
        if not store or "://" in str(store).removeprefix("file://"):
            return None
        return Path(str(store).removeprefix("file://")) / "runs" / self.run_id

    @property
    def ended(self) -> bool:
        """True once the run has a final status."""
        return self.status != "running"

    def to_json(self) -> dict[str, Any]:
        """JSON-compatible data (``run.json``'s content)."""
        return self.model_dump(mode="json")

    def write(self, run_dir: Path) -> None:
        """Write ``run.json`` atomically (readers never see half a file)."""
        from flows.record import write_json

        write_json(Path(run_dir) / RECORD_FILE, self.to_json())

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any]) -> RunRecord:
        """Parse a record (raises pydantic's ValidationError on bad input)."""
        if isinstance(data, str | bytes):
            return cls.model_validate(json.loads(data))
        return cls.model_validate(dict(data))


def read_run_record(run_dir: Path) -> RunRecord | None:
    """The run's record, or None while there is none (or it cannot be read as one)."""
    try:
        text = (Path(run_dir) / RECORD_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return RunRecord.from_json(text)
    except ValueError:
        return None
