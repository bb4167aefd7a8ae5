"""A sweep in MLflow: a parent run for the sweep and a nested child run per trial.

:class:`TrackerOpening` opens the parent run in a thread of its own while the first trials run
(a resumed sweep reopens its own parent run, or adopts one whose id never reached
``sweep.json``); the :class:`SweepTracker` it yields writes the finished trials as child runs in
batches from a background thread, and at the end logs the best result and the statistics on the
parent run. Tracking never loses a sweep: when MLflow cannot be reached, the record says so in
a note.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any

from flows.mlflow_batch import FinishedRun, log_finished_runs
from flows.sweepspec import TrialRow

if TYPE_CHECKING:
    from flows.sweep import _Sweep

__all__ = ["MLFLOW_BATCH", "SweepTracker", "TrackerOpening"]

MLFLOW_BATCH = 200


class TrackerOpening:
    """:meth:`SweepTracker.start` in a thread of its own (the parent run, then the child-run
    writer), so the trials need not wait for MLflow."""

    def __init__(self, sweep: _Sweep) -> None:
        self._sweep = sweep
        self._tracker: SweepTracker | None = None
        self._thread = threading.Thread(target=self._open, name="sweep-mlflow-open", daemon=True)
        self._thread.start()

    def _open(self) -> None:
        self._tracker = SweepTracker.start(self._sweep)

    def tracker(self) -> SweepTracker | None:
        """The tracker once the parent run is open (None when MLflow could not be reached);
        the time waited for it is ``timings['mlflow_open_wait_s']``."""
        t0 = time.perf_counter()
        self._thread.join()
        self._sweep.record.timings["mlflow_open_wait_s"] = round(time.perf_counter() - t0, 4)
        return self._tracker


class SweepTracker:
    """The sweep in MLflow: a parent run (the sweep's definition, the best result, the
    statistics) and a nested child run per trial, written by a background thread in batches
    while the trials run, so MLflow never holds the trials up."""

    def __init__(self, sweep: _Sweep, tracker: Any, logged: set[tuple[int | None, int]]) -> None:
        self.sweep = sweep
        self.tracker = tracker
        self.client = tracker.client
        self.logged = logged
        self._thread = threading.Thread(target=self._loop, name="sweep-mlflow", daemon=True)
        self._done = threading.Event()
        self.error: str | None = None
        self.busy_s = 0.0  # time spent writing child runs (the benchmark's MLflow share)
        self._thread.start()

    @classmethod
    def start(cls, sweep: _Sweep) -> SweepTracker | None:
        """The parent run (a resumed sweep's own, reopened), or None with a note when MLflow
        cannot be reached (tracking never loses a sweep)."""
        t0 = time.perf_counter()
        try:
            tracker, logged = _open_parent(sweep)
        except Exception as exc:
            sweep.record.notes.append(f"MLflow: the sweep is not tracked ({exc})")
            return None
        sweep.record.mlflow_run_id = tracker.run_id
        sweep.record.mlflow_experiment_id = tracker.experiment_id
        sweep.record.timings["mlflow_open_s"] = round(time.perf_counter() - t0, 4)
        sweep.save()
        out = cls(sweep, tracker, logged)
        return out

    def _loop(self) -> None:
        while not self._done.wait(1.0):
            self._log_new()
        self._log_new()

    def _log_new(self) -> None:
        """The rows not logged yet, as child runs, :data:`MLFLOW_BATCH` in one transaction."""
        rows = [r for k, r in list(self.sweep.follower.rows.items()) if k not in self.logged]
        for start in range(0, len(rows), MLFLOW_BATCH):
            batch = rows[start : start + MLFLOW_BATCH]
            t0 = time.perf_counter()
            try:
                log_finished_runs(
                    self.client, self.tracker.experiment_id, [self._child(r) for r in batch]
                )
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                return
            finally:
                self.busy_s += time.perf_counter() - t0
            self.logged.update((row.fold, row.trial) for row in batch)

    def _child(self, row: TrialRow) -> FinishedRun:
        name = f"trial-{row.trial}" if row.fold is None else f"fold-{row.fold}-trial-{row.trial}"
        tags = {
            "mlflow.parentRunId": self.tracker.run_id,
            "alphaforge.sweep_id": self.sweep.spec.sweep_id,
            "alphaforge.trial": str(row.trial),
            "alphaforge.status": row.status,
        }
        if row.fold is not None:
            tags["alphaforge.fold"] = str(row.fold)
        metrics = {k: v for k, v in row.metrics.items() if v is not None}
        if row.status == "pruned":  # stopped early by design: KILLED, with where it stopped
            metrics["pruned_stage"] = float(row.pruned_stage or 0)
            if row.stage_objective is not None:
                metrics["stage_objective"] = row.stage_objective
        return FinishedRun(
            name=name,
            tags=tags,
            params={k: str(v) for k, v in row.params.items()},
            metrics=metrics,
            status={"completed": "FINISHED", "pruned": "KILLED"}.get(row.status, "FAILED"),
        )

    def finish(self, *, failed: bool) -> None:
        t0 = time.perf_counter()
        self._done.set()
        self._thread.join()
        record = self.sweep.record
        try:
            metrics: dict[str, Any] = {"n_trials": record.done, "failed_trials": record.failed}
            if record.pruned:
                metrics["pruned_trials"] = record.pruned
            if record.best is not None:
                metrics.update({f"best.{k}": v for k, v in record.best.metrics.items()})
            if record.overfit is not None:
                metrics["deflated_sharpe"] = record.overfit.deflated_sharpe
                metrics["pbo"] = record.overfit.pbo
            if record.walkforward_efficiency is not None:
                metrics["walkforward_efficiency"] = record.walkforward_efficiency
            # the best params as tags: a resumed sweep reopens its parent run, and MLflow refuses
            # to change a param's value, where the best may have changed
            tags = {
                f"best.{k}": str(v) for k, v in (record.best.params if record.best else {}).items()
            }
            if record.walkforward_efficiency_note:
                tags["walkforward_efficiency_note"] = record.walkforward_efficiency_note
            self.tracker.log_all(params={}, metrics=metrics, tags=tags)
            self.tracker.log_artifact(self.sweep.directory / "spec.json")
            self.tracker.end("failed" if failed else "completed")
        except Exception as exc:
            self.error = self.error or f"{type(exc).__name__}: {exc}"
        if self.error:
            record.notes.append(f"MLflow: some of the sweep was not logged ({self.error})")
        record.timings["tracking_finish_s"] = round(time.perf_counter() - t0, 4)
        record.timings["mlflow_children_s"] = round(self.busy_s, 4)


def _open_parent(sweep: _Sweep) -> tuple[Any, set[tuple[int | None, int]]]:
    from flows.tracking import KILLED_REASON_TAG, MlflowTracker, mlflow_client

    settings = sweep.settings
    record = sweep.record
    found = None if record.mlflow_run_id else _orphan_parent(sweep)
    if found is not None:  # killed before the run id reached sweep.json: adopt that run
        record.mlflow_run_id, record.mlflow_experiment_id = found
    if record.mlflow_run_id and record.mlflow_experiment_id:  # resumed: the same parent run
        client = mlflow_client(settings.mlflow_uri)
        client.update_run(record.mlflow_run_id, status="RUNNING")
        if KILLED_REASON_TAG in client.get_run(record.mlflow_run_id).data.tags:
            # the status sync ended it KILLED when the last attempt's process died: running again
            client.delete_tag(record.mlflow_run_id, KILLED_REASON_TAG)
        tracker = MlflowTracker(
            client, record.mlflow_run_id, record.mlflow_experiment_id, settings.mlflow_uri
        )
        logged: set[tuple[int | None, int]] = set()
        children = client.search_runs(
            [record.mlflow_experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{record.mlflow_run_id}'",
            max_results=50_000,
        )
        for child in children:
            fold = child.data.tags.get("alphaforge.fold")
            logged.add((int(fold) if fold else None, int(child.data.tags["alphaforge.trial"])))
        if found is not None and not client.get_run(record.mlflow_run_id).data.params:
            tracker.log_all(params=_parent_params(sweep), metrics={}, tags={})  # killed early
        return tracker, logged
    tracker = MlflowTracker.start(
        tracking_uri=settings.mlflow_uri,
        experiment=sweep.ir.name,
        run_name=f"sweep {sweep.ir.title or sweep.ir.name} ({sweep.spec.sweep_id})",
        tags={
            "alphaforge.sweep_id": sweep.spec.sweep_id,
            "alphaforge.ir_hash": record.ir_hash,
            "alphaforge.pipeline": sweep.ir.name,
            "alphaforge.kind": "sweep",
            "prefect.flow_run_id": record.flow_run_id or "",
            **_data_fingerprints(sweep),
        },
        artifact_root=settings.mlflow_artifact_root,
    )
    tracker.log_all(params=_parent_params(sweep), metrics={}, tags={})
    return tracker, set()


def _parent_params(sweep: _Sweep) -> dict[str, Any]:
    from flows.tracking import flatten_params

    record = sweep.record
    return {
        "sweep.method": record.method,
        "sweep.objective": record.objective,
        "sweep.params": ", ".join(record.params),
        "sweep.executor": record.executor,
        "sweep.workers": record.workers,
        **{f"sweep.option.{k}": v for k, v in sweep.sweep.options.items()},
        **flatten_params(sweep.ir),
    }


def _orphan_parent(sweep: _Sweep) -> tuple[str, str] | None:
    """A resumed sweep's parent run found by its ``alphaforge.sweep_id`` tag, for a sweep
    killed after MLflow created the run but before its id was saved (the parent opens in a
    thread beside the first trials); None for a fresh sweep or when there is none."""
    if not sweep.spec.resume:
        return None
    from flows.tracking import mlflow_client

    client = mlflow_client(sweep.settings.mlflow_uri)
    exp = client.get_experiment_by_name(sweep.ir.name)
    if exp is None:
        return None
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=(
            "tags.`alphaforge.kind` = 'sweep' and "
            f"tags.`alphaforge.sweep_id` = '{sweep.spec.sweep_id}'"
        ),
        order_by=["attributes.start_time ASC"],
        max_results=1,
    )
    return (runs[0].info.run_id, exp.experiment_id) if runs else None


def _data_fingerprints(sweep: _Sweep) -> dict[str, str]:
    """``alphaforge.data.<node>``: the sha256 of what each source node reads (a data file),
    so the parent run records which data the sweep's trials were measured on."""
    out: dict[str, str] = {}
    for node in sweep.ir.nodes:
        if node.dependencies():
            continue
        with contextlib.suppress(Exception):  # a node without a file: nothing to record
            fingerprint = sweep.evaluator.runner.fingerprint(node)
            if fingerprint:
                out[f"alphaforge.data.{node.id}"] = fingerprint
    return out
