"""Experiment tracking behind a small interface, with MLflow as the implementation.

One tracker run per pipeline run: experiment = pipeline name, params flattened ``step.param``,
the primary metrics (None skipped), tags and the result files as artifacts. MLflow is imported
only when a tracker is opened (it takes seconds) and every call goes through an explicit
``MlflowClient`` — no global active run, unlike Qlib's global recorder.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from dsl.ir import PipelineIR
from nodes.errors import AlphaForgeError

__all__ = [
    "KILLED_REASON_TAG",
    "MlflowTracker",
    "Tracker",
    "TrackingError",
    "flatten_params",
    "import_shared_dependencies",
    "mlflow_client",
    "prewarm_mlflow",
    "sqlite_path",
]

#: why a run's MLflow run was ended KILLED from outside its process (the API's status sync,
#: :mod:`api.services.run_tracking_close`); a resumed sweep removes it as it reopens its run
KILLED_REASON_TAG = "alphaforge.killed_reason"
_BATCH = 100  # MLflow's per-request limit for params and tags
_METRICS_BATCH = 1000  # ... for metrics
_ENTITIES = 1000  # ... for params + metrics + tags in one request


class TrackingError(AlphaForgeError):
    """The tracking backend refused or failed."""

    code = "AF720"


class Tracker(Protocol):
    """What the flows need from an experiment tracker."""

    run_id: str

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record the run's parameters (values stringified)."""
        ...

    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Record numeric metrics; None and non-numbers are skipped."""
        ...

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Attach tags to the run."""
        ...

    def log_all(
        self, params: Mapping[str, Any], metrics: Mapping[str, Any], tags: Mapping[str, str]
    ) -> None:
        """Params, metrics and tags together (one round trip where the backend allows)."""
        ...

    def log_artifact(self, path: Path) -> None:
        """Upload a file as an artifact of the run."""
        ...

    def end(self, status: str) -> None:
        """Close the run: ``completed`` or ``failed``."""
        ...


def flatten_params(ir: PipelineIR) -> dict[str, str]:
    """``step.param`` -> value as text (JSON for non-strings), for every node of the IR."""
    out: dict[str, str] = {}
    for node in ir.nodes:
        for name, value in node.params.items():
            out[f"{node.id}.{name}"] = value if isinstance(value, str) else json.dumps(value)
    return out


def import_shared_dependencies() -> None:
    """Finish, in this thread, imports MLflow shares with Prefect before MLflow loads in another.

    Two threads importing the same package with circular imports (SQLAlchemy's ORM) can see a
    partially initialised module; the ephemeral Prefect server's start imports its server app.
    """
    import fastapi.openapi.models  # noqa: F401  (MLflow and Prefect's client both import it)
    import sqlalchemy.orm  # noqa: F401

    if not os.environ.get("PREFECT_API_URL"):
        import prefect.server.api.server  # noqa: F401


def mlflow_client(tracking_uri: str) -> Any:
    """An ``MlflowClient`` for ``tracking_uri`` whose store exists whole.

    MLflow creates an embedded SQLite store in place, table by table and migration by
    migration (seconds); a process killed meanwhile leaves a file every later open fails on
    (``table _alembic_tmp_experiments already exists``). A missing store is therefore built in
    a file of its own beside it and linked into place only when complete; of two processes
    doing it at once, the first link wins and the other's copy is dropped.
    """
    from mlflow import MlflowClient

    path = sqlite_path(tracking_uri)
    if path is not None and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        building = path.with_name(f".{path.name}.building-{os.getpid()}-{threading.get_ident()}")
        _drop_dead_builds(path)
        try:
            MlflowClient(tracking_uri=f"sqlite:///{building}").search_experiments(max_results=1)
            with contextlib.suppress(FileExistsError):
                os.link(building, path)
        finally:
            building.unlink(missing_ok=True)
    return MlflowClient(tracking_uri=tracking_uri)


def _drop_dead_builds(path: Path) -> None:
    """Remove the half-built copies of processes that died building (their pid is gone)."""
    for stale in path.parent.glob(f".{path.name}.building-*"):
        try:
            pid = int(stale.name.rsplit(".building-", 1)[1].split("-", 1)[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            stale.unlink(missing_ok=True)
        except (ValueError, PermissionError):  # not ours to judge: leave it
            continue


def sqlite_path(tracking_uri: str) -> Path | None:
    """The file of a ``sqlite:///`` URI (None for other stores and in-memory SQLite)."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix) or tracking_uri == prefix + ":memory:":
        return None
    return Path(tracking_uri[len(prefix) :].split("?", 1)[0])


def prewarm_mlflow(tracking_uri: str) -> threading.Thread:
    """Import MLflow and open its store in a daemon thread, ahead of the run that tracks.

    Meant to overlap MLflow's slow start (import, SQLite table creation) with waiting for
    Prefect's server to start (I/O, not the GIL); call :func:`import_shared_dependencies`
    first. :meth:`MlflowTracker.start` for the same URI in this process waits for it, so the
    store is never initialised twice at once.
    """

    def _warm() -> None:
        # Only a head start: a failure here (say, an import race) is not the user's problem;
        # MlflowTracker.start does the same work again in its own thread and reports errors.
        with contextlib.suppress(Exception):
            mlflow_client(tracking_uri).search_experiments(max_results=1)

    thread = threading.Thread(target=_warm, name="mlflow-prewarm", daemon=True)
    with _warming_lock:
        _warming[tracking_uri] = thread
    thread.start()
    return thread


def _wait_for_prewarm(tracking_uri: str) -> None:
    with _warming_lock:
        thread = _warming.pop(tracking_uri, None)
    if thread is not None:
        thread.join()


# Prewarm threads by tracking URI (process-local; entries removed when waited for).
_warming: dict[str, threading.Thread] = {}
_warming_lock = threading.Lock()


def _params(params: Mapping[str, Any]) -> list[Any]:
    from mlflow.entities import Param

    return [Param(k, str(v)[:6000]) for k, v in sorted(params.items())]


def _metrics(metrics: Mapping[str, Any]) -> list[Any]:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [
        Metric(k, float(v), now, 0)
        for k, v in sorted(metrics.items())
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    ]


def _tags(tags: Mapping[str, str]) -> list[Any]:
    from mlflow.entities import RunTag

    return [RunTag(k, str(v)) for k, v in sorted(tags.items())]


class MlflowTracker:
    """A :class:`Tracker` writing to one MLflow run through an explicit client."""

    def __init__(self, client: Any, run_id: str, experiment_id: str, tracking_uri: str) -> None:
        self.client = client
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.tracking_uri = tracking_uri

    @classmethod
    def start(
        cls,
        *,
        tracking_uri: str,
        experiment: str,
        run_name: str,
        tags: Mapping[str, str],
        artifact_root: str | None = None,
    ) -> MlflowTracker:
        """Open a new run in ``experiment`` (created, with artifacts under ``artifact_root``)."""
        _wait_for_prewarm(tracking_uri)
        from mlflow.exceptions import MlflowException

        client = mlflow_client(tracking_uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            location = f"{artifact_root.rstrip('/')}/{experiment}" if artifact_root else None
            try:
                exp_id = client.create_experiment(experiment, artifact_location=location)
            except MlflowException:  # created concurrently by another run
                exp = client.get_experiment_by_name(experiment)
                if exp is None:
                    raise
                exp_id = exp.experiment_id
        else:
            exp_id = exp.experiment_id
        run = client.create_run(exp_id, tags=dict(tags), run_name=run_name)
        return cls(client, run.info.run_id, exp_id, tracking_uri)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record params, in batches of MLflow's request limit."""
        items = _params(params)
        for i in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + _BATCH])

    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Record finite numeric metrics (None, strings and NaN skipped)."""
        items = _metrics(metrics)
        for i in range(0, len(items), _METRICS_BATCH):
            self.client.log_batch(self.run_id, metrics=items[i : i + _METRICS_BATCH])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Attach tags."""
        items = _tags(tags)
        for i in range(0, len(items), _BATCH):
            self.client.log_batch(self.run_id, tags=items[i : i + _BATCH])

    def log_all(
        self, params: Mapping[str, Any], metrics: Mapping[str, Any], tags: Mapping[str, str]
    ) -> None:
        """Params, metrics and tags in one ``log_batch`` request (one store transaction) when
        they fit MLflow's limits, else in batches as :meth:`log_params` & co. do."""
        p, m, t = _params(params), _metrics(metrics), _tags(tags)
        if len(p) <= _BATCH and len(t) <= _BATCH and len(p) + len(m) + len(t) <= _ENTITIES:
            self.client.log_batch(self.run_id, metrics=m, params=p, tags=t)
            return
        self.log_params(params)
        self.log_metrics(metrics)
        self.set_tags(tags)

    def log_artifact(self, path: Path) -> None:
        """Upload one file to the run's artifact root."""
        self.client.log_artifact(self.run_id, str(path))

    def end(self, status: str) -> None:
        """Mark the run FINISHED (completed) or FAILED."""
        self.client.set_terminated(self.run_id, "FINISHED" if status == "completed" else "FAILED")
