"""A sweep's chunks: the side of a sweep that evaluates trials, wherever it runs.

A chunk (:class:`ChunkSpec`) is a slice of one sweep's trials on one window. :func:`run_chunk`
evaluates it in the calling process and appends each trial's row to ``trials/<part>.jsonl``
(``stages/`` for an Optuna pruning stage); the executors call it from a forked worker of the
``local`` executor (:func:`run_forked_chunk`, after :func:`warm_up`), a Dask task
(:func:`sweep_chunk_task`) or a flow run of the chunk deployment on the work pool
(:func:`sweep_chunk_flow`, deployed as ``alphaforge-sweep-chunk/sweep``: :data:`CHUNK_DEPLOYMENT`).
The parent flow (:mod:`flows.sweep`) follows those files with a :class:`TrialFollower`.

A chunk flow run ends within seconds of a cancel: the worker's SIGTERM unwinds the flow body and
the process ends :data:`~flows.pipeline.TERM_GRACE_S` later (the trial running in the task
thread would otherwise keep it alive until the worker's SIGKILL, 30 s on); and the process
watches its own flow run (:class:`CancelWatch`, every :data:`CANCEL_POLL_S`), so a Cancelling
the worker never acted on (its event lost or late on a loaded server) still ends it: Cancelled,
:data:`CANCEL_GRACE_S` after it was first seen.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, ConfigDict

from flows.liveness import mark_process
from flows.settings import current_settings
from flows.startguard import stop_if_cancelled_before_start
from flows.sweeplocal import inherited_spec
from flows.sweepspec import SweepSpec, TrialRow, process_dir, sweep_dir
from flows.sweeptrial import SweepPlanError, evaluator_for, warm_compiled_kernels

__all__ = [
    "CHUNK_DEPLOYMENT",
    "CHUNK_FLOW_NAME",
    "CancelWatch",
    "ChunkSpec",
    "TrialFollower",
    "Window",
    "run_chunk",
    "run_forked_chunk",
    "split_evenly",
    "sweep_chunk_flow",
    "sweep_chunk_task",
    "warm_up",
]

CANCEL_POLL_S = 2.0  # how often a chunk's flow-run process reads its own state
CANCEL_GRACE_S = 5.0  # how long it leaves a seen Cancelling to the worker (the proper path)
CHUNK_FLOW_NAME = "alphaforge-sweep-chunk"
CHUNK_DEPLOYMENT = f"{CHUNK_FLOW_NAME}/sweep"
Window = tuple[str, str]


class ChunkSpec(BaseModel):
    """A chunk of one sweep's trials: ``trials`` as (trial number, overrides) pairs, evaluated
    on the fold's window (``until`` cuts the data, ``window`` is what the backtest trades; both
    ISO timestamps, None without walk-forward). ``part`` names its trials file. ``stage``: an
    Optuna pruning stage (see :mod:`flows.sweepoptuna`): the rows go to ``stages/<part>.jsonl``,
    not to ``trials/``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spec: SweepSpec
    part: str
    fold: int | None = None
    until: str | None = None
    window: Window | None = None
    trials: list[tuple[int, dict[str, dict[str, Any]]]]
    stage: int | None = None


# ---- a chunk ---------------------------------------------------------------------------------


def run_chunk(chunk: ChunkSpec) -> dict[str, Any]:
    """Evaluate the chunk's trials in this process, appending each row to
    ``trials/<part>.jsonl`` as it finishes. Returns a small summary (rows, failed, seconds,
    pid). No equity curve is written here: the parent evaluates the sweep's top K trials again
    at the end (:func:`flows.sweep._keep_top`), milliseconds each, where every chunk writing
    its own best K curves cost seconds."""
    import pandas as pd

    t0 = time.perf_counter()
    settings = current_settings().with_store(chunk.spec.run.store_url, chunk.spec.run.tracking_uri)
    directory = sweep_dir(settings.store_root, chunk.spec.sweep_id)
    evaluator = evaluator_for(chunk.spec, settings)
    until = pd.Timestamp(chunk.until) if chunk.until else None
    window = (
        (pd.Timestamp(chunk.window[0]), pd.Timestamp(chunk.window[1])) if chunk.window else None
    )
    failed = 0
    path = directory / ("trials" if chunk.stage is None else "stages") / f"{chunk.part}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        for number, overrides in chunk.trials:
            outcome = evaluator.run(number, overrides, fold=chunk.fold, until=until, window=window)
            fh.write(outcome.row.model_dump_json(exclude_none=True) + "\n")
            fh.flush()
            failed += outcome.row.status == "failed"
    return {
        "part": chunk.part,
        "rows": len(chunk.trials),
        "failed": failed,
        "seconds": round(time.perf_counter() - t0, 4),
        "pid": os.getpid(),
    }


def warm_up(spec: SweepSpec) -> dict[str, Any]:
    """Make this process ready for the sweep's chunks: its evaluator (the data loaded) and the
    compiled backtest kernel. A source the evaluator cannot lay out (no timestamps) is left to
    the first trial, which reports it."""
    from flows.pipeline import import_extra_node_modules

    t0 = time.perf_counter()
    import_extra_node_modules()
    settings = current_settings().with_store(spec.run.store_url, spec.run.tracking_uri)
    evaluator = evaluator_for(spec, settings)
    with contextlib.suppress(SweepPlanError):
        evaluator.index()
    warm_compiled_kernels()
    return {"seconds": round(time.perf_counter() - t0, 4), "pid": os.getpid()}


@task(name="sweep-chunk", persist_result=False)
def sweep_chunk_task(chunk: ChunkSpec) -> dict[str, Any]:
    """A chunk as one task (the ``dask`` executor)."""
    from flows.pipeline import import_extra_node_modules

    import_extra_node_modules()  # a Dask process: the operator's extra node types
    return run_chunk(chunk)


def run_forked_chunk(fields: dict[str, Any]) -> dict[str, Any]:
    """A chunk sent to a forked worker of the ``local`` executor: its fields, and the spec the
    worker inherited from the flow's process."""
    return run_chunk(ChunkSpec(spec=inherited_spec(), **fields))


@task(name="sweep-trials", persist_result=False)
def sweep_trials_task(chunk: ChunkSpec) -> dict[str, Any]:
    """Part of a chunk flow's trials (mapped inside :func:`sweep_chunk_flow`)."""
    return run_chunk(chunk)


@flow(
    name=CHUNK_FLOW_NAME,
    persist_result=False,
    validate_parameters=True,
    # one slice at a time: the trials are pandas work under one GIL, and two threads made each
    # slower without making the chunk faster (more workers, not threads, add speed)
    task_runner=ThreadPoolTaskRunner(max_workers=1),  # type: ignore[arg-type]
)
def sweep_chunk_flow(chunk: ChunkSpec) -> dict[str, Any]:
    """A chunk as a flow run of the chunk deployment (the ``pool`` executor): its trials are
    mapped over tasks in slices that share this process's memory of upstream nodes."""
    from prefect.context import get_run_context
    from prefect.exceptions import TerminationSignal

    from flows.pipeline import _exit_after_grace, import_extra_node_modules

    stop_if_cancelled_before_start()
    _mark_chunk_process(chunk)
    import_extra_node_modules()  # the operator's extra node types, in this flow-run process too
    flow_run = getattr(get_run_context(), "flow_run", None)
    if flow_run is not None and os.environ.get("PREFECT__FLOW_RUN_ID") == str(flow_run.id):
        CancelWatch(str(flow_run.id)).start()  # a worker's flow-run process of its own
    t0 = time.perf_counter()
    slices = split_evenly(chunk.trials, max(1, min(4, len(chunk.trials) // 25)))
    parts = [
        chunk.model_copy(update={"trials": s, "part": f"{chunk.part}-{i}"})
        for i, s in enumerate(slices)
    ]
    try:
        results = sweep_trials_task.map(parts).result()
    except (TerminationSignal, KeyboardInterrupt):
        _exit_after_grace()  # the trial in the task thread must not hold the process
        raise
    return {
        "part": chunk.part,
        "rows": sum(r["rows"] for r in results),
        "failed": sum(r["failed"] for r in results),
        "seconds": round(time.perf_counter() - t0, 4),
        "pid": os.getpid(),
    }


def _mark_chunk_process(chunk: ChunkSpec) -> None:
    """Leave this flow-run process's marker in the sweep directory: the API's status sync then
    tells a chunk whose worker died from a slow one (and ends it Crashed, so the parent flow
    stops waiting for it: :mod:`api.services.sweep_sync`)."""
    from prefect.runtime import flow_run

    flow_run_id = flow_run.get_id()
    if not flow_run_id:
        return
    settings = current_settings().with_store(chunk.spec.run.store_url, chunk.spec.run.tracking_uri)
    mark_process(process_dir(sweep_dir(settings.store_root, chunk.spec.sweep_id), flow_run_id))


class CancelWatch(threading.Thread):
    """Ends this chunk flow-run process when its flow run is Cancelling and the worker did not
    end it within :data:`CANCEL_GRACE_S` (or is already Cancelled while it still runs): it
    records Cancelled, as Prefect's engine does when it owns the cancellation, and exits.

    The proper path is the worker's: its cancellation observer hears the flow run's Cancelling
    event, SIGTERMs this process and records Cancelled. The event can be lost or come late (a
    loaded server, an observer that registered the run after the event): this bounds it.
    """

    def __init__(self, flow_run_id: str) -> None:
        super().__init__(name="af-chunk-cancel-watch", daemon=True)
        self.flow_run_id = flow_run_id

    def run(self) -> None:
        from uuid import UUID

        from prefect.client.orchestration import get_client
        from prefect.states import Cancelled

        seen: float | None = None
        with get_client(sync_client=True) as client:
            while True:
                time.sleep(CANCEL_POLL_S)
                with contextlib.suppress(Exception):
                    state = client.read_flow_run(UUID(self.flow_run_id)).state
                    if state is None or not (state.is_cancelling() or state.is_cancelled()):
                        seen = None
                        continue
                    seen = seen if seen is not None else time.monotonic()
                    if state.is_cancelling() and time.monotonic() - seen < CANCEL_GRACE_S:
                        continue
                    if state.is_cancelling():
                        client.set_flow_run_state(
                            UUID(self.flow_run_id),
                            Cancelled(message="Cancelled: the chunk's process ended itself."),
                            force=True,
                        )
                    os._exit(0)


def split_evenly(items: Sequence[Any], n: int) -> list[list[Any]]:
    """``items`` in at most ``n`` consecutive lists of equal size (the last one shorter)."""
    size = math.ceil(len(items) / n) if items else 1
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


# ---- following the trials files ----------------------------------------------------------------


class TrialFollower:
    """Reads new rows from ``trials/*.jsonl`` as chunks append them (progress, best so far)."""

    def __init__(self, directory: Path) -> None:
        self.folder = directory / "trials"
        self._offsets: dict[Path, int] = {}
        self.rows: dict[tuple[int | None, int], TrialRow] = {}

    def poll(self) -> list[TrialRow]:
        """The rows written since the last poll."""
        new: list[TrialRow] = []
        if not self.folder.is_dir():
            return new
        for path in sorted(self.folder.glob("*.jsonl")):
            offset = self._offsets.get(path, 0)
            with path.open("rb") as fh:
                fh.seek(offset)
                data = fh.read()
            end = data.rfind(b"\n") + 1
            if not end:
                continue
            self._offsets[path] = offset + end
            for line in data[:end].splitlines():
                try:
                    row = TrialRow.model_validate_json(line)
                except ValueError:
                    continue
                key = (row.fold, row.trial)
                if key not in self.rows:
                    self.rows[key] = row
                    new.append(row)
        return new

    def of_fold(self, fold: int | None) -> list[TrialRow]:
        """The fold's rows, by trial number."""
        return sorted((r for r in self.rows.values() if r.fold == fold), key=lambda r: r.trial)
