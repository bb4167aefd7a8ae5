"""Run a compiled pipeline from Python: the entry point of the CLI (and of tests).

:func:`run_pipeline` applies the Prefect settings, calls the one pipeline flow in this process
(the Prefect server given by the settings, or the ephemeral one) and returns a
:class:`RunResult` read back from the run record, so what a caller sees is what was stored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsl.ir import PipelineIR
from flows.events import EventCallback, subscribe
from flows.record import new_run_id, read_record, update_record
from flows.settings import CoreSettings, get_settings
from flows.tracking import import_shared_dependencies, prewarm_mlflow

__all__ = ["RunResult", "run_pipeline"]


@dataclass
class RunResult:
    """What a finished run produced and where to find it."""

    run_id: str
    status: str
    run_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    flow_run_id: str | None = None
    node_states: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The result as JSON-compatible data (what ``alphaforge run --json`` prints)."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "run_dir": str(self.run_dir),
            "metrics": self.metrics,
            "mlflow_run_id": self.mlflow_run_id,
            "flow_run_id": self.flow_run_id,
            "node_states": self.node_states,
            "error": self.error,
        }


def run_pipeline(
    ir: PipelineIR,
    *,
    base_dir: Path,
    settings: CoreSettings | None = None,
    run_id: str | None = None,
    on_event: EventCallback | None = None,
    use_cache: bool = True,
    track: bool = True,
    datasets: dict[str, Path] | None = None,
    confine_paths: bool = False,
    timings: dict[str, float] | None = None,
    heartbeats: bool = False,
) -> RunResult:
    """Run ``ir`` as a Prefect flow run and wait for it; never raises for a failing node.

    ``base_dir`` resolves relative data paths; ``on_event`` receives per-node progress
    (:class:`flows.events.NodeEvent`); ``timings`` (e.g. the CLI's compile time) are added to
    the run record's timings. Flow-run heartbeats (Prefect's crash detection for runs on
    workers) are off by default here: the caller is waiting in this very process, and
    stopping the heartbeat thread costs up to a second per run.
    """
    settings = settings or get_settings()
    settings.apply_prefect_env()
    t0 = time.time()
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from flows.pipeline import pipeline_flow  # imports Prefect: only after apply_prefect_env

    if track:
        import_shared_dependencies()
        prewarm_mlflow(settings.mlflow_uri)  # overlaps MLflow's start with Prefect's

    run_id = run_id or new_run_id()
    run_dir = settings.runs_dir / run_id
    beat = {} if heartbeats else {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    with subscribe(run_id, on_event), temporary_settings(updates=beat):
        state = pipeline_flow(
            ir_json=ir.to_json(indent=None),
            run_id=run_id,
            base_dir=str(Path(base_dir).resolve()),
            data_dir=str(settings.root),
            datasets={k: str(v) for k, v in (datasets or {}).items()},
            confine_paths=confine_paths,
            use_cache=use_cache,
            track=track,
            submitted_at=t0,
            return_state=True,
        )
    if not (run_dir / "run.json").exists():  # the flow never got to run its body
        return RunResult(run_id, "failed", run_dir, error=f"flow run failed: {state.message}")
    record = read_record(run_dir)
    outer = {"total_s": round(time.time() - t0, 4), **(timings or {})}
    if "flow_body_s" in record.get("timings", {}) and "prefect_start_s" in record["timings"]:
        t = record["timings"]
        outer["prefect_finish_s"] = round(
            outer["total_s"] - t["prefect_start_s"] - t["flow_body_s"], 4
        )
    record = update_record(run_dir, timings=outer)
    return RunResult(
        run_id=run_id,
        status=record["status"],
        run_dir=run_dir,
        metrics=record.get("metrics") or {},
        mlflow_run_id=record.get("mlflow_run_id"),
        flow_run_id=record.get("flow_run_id"),
        node_states=record.get("node_states", {}),
        error=record.get("error"),
    )
