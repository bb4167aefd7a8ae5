"""Helpers for the end-to-end tests: read back what Prefect and MLflow recorded."""

from __future__ import annotations

import time
from typing import Any


def task_runs(flow_run_id: str, expected: int, timeout_s: float = 30.0) -> list[Any]:
    """The task runs of a flow run, from the Prefect API in force.

    Prefect 3 records client-side task runs from events, asynchronously: poll until
    ``expected`` task runs are there, all in a final state and named (a run is named after its
    node id by a later event: until then it has the task's default name, ``node:<type>-<hex>``,
    and node ids never hold a ':'), or the time is up.
    """
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            settled = all(
                r.state and not r.state.is_running() and not r.name.startswith("node:")
                for r in runs
            )
            if (len(runs) >= expected and settled) or time.monotonic() > deadline:
                return runs
            time.sleep(0.25)


def flow_run(flow_run_id: str) -> Any:
    """The flow run as the Prefect API has it."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


def mlflow_run(tracking_uri: str, run_id: str) -> tuple[Any, list[str]]:
    """The MLflow run and the names of its artifacts."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(run_id)
    return run, sorted(a.path for a in client.list_artifacts(run_id))


def check_mlflow_record(tracking_uri: str, result: Any, ir: Any) -> Any:
    """Assert the MLflow run holds the pipeline's params, metrics, tags and artifacts."""
    run, artifacts = mlflow_run(tracking_uri, result.mlflow_run_id)
    data = run.data
    assert run.info.status == ("FINISHED" if result.status == "completed" else "FAILED")
    for node in ir.nodes:
        for name, value in node.params.items():
            expected = value if isinstance(value, str) else __import__("json").dumps(value)
            assert data.params[f"{node.id}.{name}"] == expected
    numeric = {
        k: v
        for k, v in result.metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    assert numeric, "the run has numeric metrics"
    for key, value in numeric.items():
        assert data.metrics[key] == float(value)
    assert not {k for k, v in result.metrics.items() if v is None} & set(data.metrics)
    assert data.tags["alphaforge.run_id"] == result.run_id
    assert data.tags["alphaforge.ir_hash"] == ir.content_hash()
    assert data.tags["prefect.flow_run_id"] == result.flow_run_id
    assert {"ir.json", "metrics.json", "equity.parquet", "trades.csv"} <= set(artifacts)
    exp = (
        __import__("mlflow")
        .MlflowClient(tracking_uri=tracking_uri)
        .get_experiment(run.info.experiment_id)
    )
    assert exp.name == ir.name
    return run


def run_ir(
    settings: Any, ir: Any, base_dir: Any, *, on_event: Any = None, **spec_fields: Any
) -> Any:
    """Run ``ir`` through :func:`flows.run.run_pipeline` with a spec built from
    ``spec_fields`` (``use_cache``, ``track``, ``datasets``, ``confine_paths``, ...)."""
    from pathlib import Path

    from flows.run import run_pipeline
    from flows.spec import RunSpec

    datasets = {k: str(v) for k, v in (spec_fields.pop("datasets", None) or {}).items()}
    spec = RunSpec(
        ir=ir,
        base_dir=str(Path(base_dir).resolve()),
        datasets=datasets,
        trigger="test",
        **spec_fields,
    )
    return run_pipeline(spec, settings=settings, on_event=on_event)
