"""Sweeps as Prefect flows: a parent that plans, fans chunks of trials out, tracks and reports.

:func:`sweep_flow` runs a :class:`~flows.sweepspec.SweepSpec`:

1. it writes ``spec.json`` and a running ``sweep.json`` in ``sweeps/<id>/`` (the store);
2. per walk-forward fold (or once, without walk-forward) it searches the training window:
   grid and random trials come from :mod:`flows.trials`; Optuna's come from its sampler in
   batches (ask a batch, evaluate it as chunks, tell), its study kept in the platform's
   database so it survives a restart (:mod:`flows.sweepoptuna`);
3. trials go out in **chunks** (:class:`~flows.sweepchunk.ChunkSpec`), by the spec's executor:

   - ``local``: in the flow's own process (one worker), or in ``workers`` processes forked
     from it once it is warm (:mod:`flows.sweeplocal`);
   - ``pool``: each chunk a flow run of the chunk deployment
     (:func:`~flows.sweepchunk.sweep_chunk_flow`, ``run_deployment`` on the work pool), so any
     worker polling the pool takes one; inside, the chunk's trials are mapped over tasks;
   - ``dask``: chunk tasks on prefect-dask's ``DaskTaskRunner`` (a running scheduler at
     ``dask_address``, or a ``LocalCluster`` of ``workers`` processes);

   each chunk appends its trials to its own ``trials/<part>.jsonl`` (:mod:`flows.sweepchunk`);
   the parent follows those files for progress and the best-so-far, and a resumed sweep skips
   every trial found there;
4. with walk-forward, the chosen params run on the fold's test window; the out-of-sample
   segments are stitched into ``oos_equity.parquet`` (:mod:`flows.sweepwalk`);
5. it computes the deflated Sharpe ratio and the PBO (:mod:`flows.overfitting`), keeps the
   equity curves of the top K trials, logs the sweep to MLflow (a parent run, a nested child
   run per trial, written in batches by a background thread: :mod:`flows.sweeptrack`) and
   finishes ``sweep.json``.

This module owns the parent: its state (:class:`_Sweep`: the record, the dispatch of chunks to
the executors), the flow and its cancellation hook, the top-K curves, and :func:`run_sweep` (the
flow in this process, for the CLI and the tests). It re-exports the chunk side's names that the
CLI, the deployments and the tests import from here.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.context import get_run_context

from flows.liveness import mark_process
from flows.overfitting import (
    DSR_THRESHOLD,
    ReturnMoments,
    deflated_sharpe,
    expected_max_sharpe,
    overfit_report,
)
from flows.settings import CoreSettings, current_settings
from flows.startguard import stop_if_cancelled_before_start
from flows.sweepchunk import (
    CHUNK_DEPLOYMENT,
    CHUNK_FLOW_NAME,
    ChunkSpec,
    TrialFollower,
    Window,
    run_chunk,
    run_forked_chunk,
    split_evenly,
    sweep_chunk_flow,
    sweep_chunk_task,
    warm_up,
)
from flows.sweeplocal import ForkedWorkers
from flows.sweepoptuna import _settle_interrupted as _settle_interrupted  # re-exported
from flows.sweepoptuna import optuna_search
from flows.sweepspec import (
    BestTrial,
    Overfit,
    PaceMark,
    SweepRecord,
    SweepSpec,
    TrialRow,
    process_dir,
    read_sweep_record,
    sweep_dir,
    write_json_atomic,
)
from flows.sweeptrack import TrackerOpening
from flows.sweeptrial import (
    SweepPlanError,
    TrialEvaluator,
    evaluator_for,
    objective_of,
    objective_text,
    overrides_of,
    prepare_evaluator,
)
from flows.sweepwalk import walk_forward
from flows.trials import DEFAULT_RANDOM_TRIALS, trials_of

if TYPE_CHECKING:
    import pandas as pd

# The chunk side (flows.sweepchunk) is re-exported: the CLI, the deployments and the tests
# import it from here.
__all__ = [
    "CHUNK_DEPLOYMENT",
    "CHUNK_FLOW_NAME",
    "SWEEP_FLOW_NAME",
    "ChunkSpec",
    "run_chunk",
    "sweep_chunk_flow",
    "sweep_flow",
]

SWEEP_FLOW_NAME = "alphaforge-sweep"
CHUNKS_PER_WORKER = 4  # a chunk's size: the trials over workers × this (a slow chunk evens out)
MAX_CHUNK = 500
#: ``local`` with N > 1 workers: smaller chunks, kept two deep on each forked worker, so no
#: worker idles at the end.
LOCAL_CHUNKS_PER_WORKER = 8
POLL_S = 0.25


# ---- the parent ------------------------------------------------------------------------------


class _Sweep:
    """The parent flow's state: the record, the follower, the dispatcher, the tracker."""

    def __init__(self, spec: SweepSpec, settings: CoreSettings, flow_run_id: str | None) -> None:
        self.spec = spec
        self.settings = settings
        self.ir = spec.run.ir
        assert self.ir.sweep is not None
        self.sweep = self.ir.sweep
        self.directory = sweep_dir(settings.store_root, spec.sweep_id)
        self.objective = objective_of(self.ir)
        self.sign = 1.0 if self.objective.direction == "maximize" else -1.0
        self.follower = TrialFollower(self.directory)
        # rows a resumed sweep finds already written (the pace of the ETA starts after them)
        self._done_at_start = len(TrialFollower(self.directory).poll()) if spec.resume else 0
        self.logger = get_run_logger()
        previous = read_sweep_record(self.directory) if spec.resume else None
        self.record = SweepRecord(
            sweep_id=spec.sweep_id,
            pipeline=self.ir.name,
            title=self.ir.title,
            ir_hash=self.ir.content_hash(),
            method=self.sweep.method,
            objective=objective_text(self.objective),
            direction=self.objective.direction,
            params=[f"{p.node}.{p.param}" for p in self.sweep.params],
            status="running",
            executor=spec.executor,
            workers=spec.workers,
            flow_run_id=flow_run_id,
            mlflow_run_id=previous.mlflow_run_id if previous else None,
            mlflow_experiment_id=previous.mlflow_experiment_id if previous else None,
            started_at=previous.started_at if previous and previous.started_at else time.time(),
        )
        self.evaluator: TrialEvaluator = evaluator_for(spec, settings)
        self._last_write = 0.0
        self._save_lock = threading.Lock()
        self.stop = threading.Event()
        self._forks: ForkedWorkers | None = None  # the local executor's workers (prestart)
        self._runners = contextlib.ExitStack()
        self._runner: Any = None

    # -- the record ---------------------------------------------------------------------

    def save(self, force: bool = True) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < 0.5:
            return
        self._last_write = now
        # The MLflow opening thread saves too (the run id must be on disk before any trial
        # ends, so a killed sweep's resume finds its parent run); one writer at a time keeps
        # an older dump from landing after a newer one.
        with self._save_lock:
            data = self.record.model_dump(mode="json")
            write_json_atomic(self.directory / "sweep.json", data)

    def refresh(self) -> None:
        """Fold the newly written trials into the record (progress, best so far)."""
        for row in self.follower.poll():
            self.record.done += 1
            self.record.failed += row.status == "failed"
            self.record.pruned += row.status == "pruned"
            if row.status != "completed" or row.objective is None or row.fold != self._fold:
                continue
            best = self.record.best
            if best is None or self.sign * row.objective > self.sign * (best.objective or 0.0):
                self.record.best = BestTrial(
                    trial=row.trial, params=row.params, metrics=row.metrics, objective=row.objective
                )
        if self.record.pace is None and self.record.done > self._done_at_start:
            self.record.pace = PaceMark(at=time.time(), done=self.record.done)
        self.save(force=False)

    # -- dispatching chunks -------------------------------------------------------------

    def chunk_size(self, n: int) -> int:
        """The spec's, else the trials over workers × :data:`CHUNKS_PER_WORKER` (a slow chunk
        evens out) — on the ``pool`` executor over the workers alone: each chunk there is a new
        flow-run process that loads the data again (trials stream to the store as they
        finish, so a big chunk loses nothing when its worker dies). At most
        :data:`MAX_CHUNK`."""
        if self.spec.chunk_size:
            return self.spec.chunk_size
        per_worker = 1 if self.spec.executor == "pool" else CHUNKS_PER_WORKER
        if self.spec.executor == "local" and self.spec.workers > 1:
            per_worker = LOCAL_CHUNKS_PER_WORKER  # dealt out one by one as workers free up
        return max(1, min(MAX_CHUNK, math.ceil(n / (self.spec.workers * per_worker))))

    def run_trials(
        self,
        trials: list[tuple[int, dict[str, dict[str, Any]]]],
        fold: int | None,
        until: str | None,
        window: Window | None,
        tag: str,
        stage: int | None = None,
    ) -> None:
        """Evaluate ``trials`` as chunks on the spec's executor and wait for all of them
        (``stage``: as an Optuna pruning stage, whose rows are not trials)."""
        if not trials:
            return
        size = self.chunk_size(len(trials))
        chunks = [
            ChunkSpec(
                spec=self.spec,
                part=f"{tag}-c{i:04d}",
                fold=fold,
                until=until,
                window=window,
                trials=part,
                stage=stage,
            )
            for i, part in enumerate(split_evenly(trials, math.ceil(len(trials) / size)))
        ]
        self.record.chunks += len(chunks)
        self.record.chunk_size = size
        self.logger.info(
            f"[sweep] {'' if stage is None else f'stage {stage}: '}{len(trials)} trial(s) "
            f"in {len(chunks)} chunk(s) of ≤{size} on the "
            f"{self.spec.executor} executor ({self.spec.workers} worker(s))"
        )
        if self.spec.executor == "pool":
            self._run_on_pool(chunks)
        elif self.spec.executor == "dask":
            self._run_on_dask(chunks)
        else:
            self._run_locally(chunks)
        self.refresh()

    def _task_runner(self) -> Any:
        """The Dask executor's task runner, started on first use and kept for every later
        batch, fold and stage (starting a cluster costs seconds). Closed by :meth:`close`."""
        if self._runner is None:
            from prefect_dask import DaskTaskRunner

            self._runners.enter_context(_api_url_for_children())
            if self.spec.dask_address:
                runner: Any = DaskTaskRunner(address=self.spec.dask_address)
            else:
                runner = DaskTaskRunner(
                    cluster_class="distributed.LocalCluster",
                    cluster_kwargs={
                        "n_workers": self.spec.workers,
                        "threads_per_worker": 1,
                        "processes": True,
                        "dashboard_address": None,
                    },
                )
            self._runners.enter_context(_dask_worker_environ())
            self._runner = self._runners.enter_context(runner)
        return self._runner

    def close(self) -> None:
        """Stop the forked workers or the Dask cluster, if any were started."""
        self._runner = None
        self._runners.close()

    def _wait(self, futures: list[Any]) -> list[Any]:
        while not all(_finished(f) for f in futures):
            self.refresh()
            time.sleep(POLL_S)
        results = [f.result() for f in futures]
        for r in results:
            self._chunk_done(r)
        return results

    def _chunk_done(self, summary: Mapping[str, Any]) -> None:
        """Note a chunk's summary: the time its process spent in it adds to
        ``timings['chunks_s']``, the chunk to its process's count in ``chunk_pids``."""
        self.record.timings["chunks_s"] = round(
            self.record.timings.get("chunks_s", 0.0) + float(summary.get("seconds", 0.0)), 4
        )
        pid = str(summary.get("pid"))
        self.record.chunk_pids[pid] = self.record.chunk_pids.get(pid, 0) + 1
        self.logger.info(
            f"[sweep] chunk {summary.get('part')}: {summary.get('rows')} trial(s) in "
            f"{summary.get('seconds')} s (process {summary.get('pid')})"
        )

    def prestart(self) -> None:
        """With the ``local`` executor on N > 1 workers: warm this process up (the data, the
        compiled kernel; :func:`warm_up`) and fork the N workers from it, before any thread
        of MLflow's starts here (see :mod:`flows.sweeplocal`)."""
        if self.spec.executor != "local" or self.spec.workers < 2 or self._forks is not None:
            return
        t0 = time.perf_counter()
        warm_up(self.spec)
        self._forks = ForkedWorkers(self.spec.workers, self.spec, run_forked_chunk)
        self._runners.callback(self._forks.close)
        self.record.timings["warm_up_s"] = round(time.perf_counter() - t0, 4)
        self.logger.info(
            f"[sweep] {self.spec.workers} worker processes forked from this one "
            f"(pids {', '.join(map(str, self._forks.pids))})"
        )

    def _run_locally(self, chunks: list[ChunkSpec]) -> None:
        """The ``local`` executor: one worker evaluates the chunks in this process; N > 1
        evaluate them in the processes forked by :meth:`prestart`, each kept
        :data:`~flows.sweeplocal.QUEUE_DEPTH` chunks deep, while this one follows the trials
        (and MLflow writes them). A chunk whose worker was lost leaves its missing trials to
        ``resume``; with no worker left, the rest run here."""
        todo = list(chunks)
        self.prestart()
        forks = self._forks
        while todo or (forks is not None and forks.busy):
            if self.stop.is_set():
                break  # a chunk still on a worker is killed with it (close)
            worker = forks.free() if forks is not None else None
            while todo and worker is not None:
                chunk = todo.pop(0)
                forks.send(worker, chunk.part, chunk.model_dump(exclude={"spec"}))  # type: ignore[union-attr]
                worker = forks.free()  # type: ignore[union-attr]
            if todo and (forks is None or not forks.workers):
                self._chunk_done(run_chunk(todo.pop(0)))  # no forked worker: in this process
            elif forks is not None and forks.busy:
                time.sleep(POLL_S / 10)
            for part, status, payload in forks.collect() if forks is not None else []:
                if status == "ok":
                    self._chunk_done(payload)
                else:
                    self.logger.warning(f"[sweep] chunk {part} failed: {payload}")
                    self.record.notes.append(f"chunk {part}: {payload}")
            self.refresh()

    def _run_on_dask(self, chunks: list[ChunkSpec]) -> None:
        runner = self._task_runner()
        self._wait([runner.submit(sweep_chunk_task, {"chunk": c}) for c in chunks])

    def _run_on_pool(self, chunks: list[ChunkSpec]) -> None:
        """Each chunk a flow run of the chunk deployment, at most ``workers`` of them in
        flight: a process worker starts every flow run it finds at once, so a sweep that
        scheduled all its chunks would run them all side by side on the first worker to poll
        (each process loading the data, the trials sharing its cores) while the others
        idle."""
        from prefect.client.orchestration import get_client
        from prefect.deployments import run_deployment

        todo = list(chunks)
        states: dict[Any, Any] = {}
        pending: set[Any] = set()
        with get_client(sync_client=True) as client:
            while todo or pending:
                while todo and len(pending) < self.spec.workers and not self.stop.is_set():
                    chunk = todo.pop(0)
                    flow_run: Any = run_deployment(
                        CHUNK_DEPLOYMENT,
                        parameters={"chunk": chunk.model_dump(mode="json")},
                        timeout=0,
                        as_subflow=True,
                    )
                    pending.add(flow_run.id)
                    self.record.chunk_flow_run_ids.append(str(flow_run.id))
                    self.save()
                if self.stop.is_set():
                    todo.clear()
                self.refresh()
                for flow_run_id in list(pending):
                    state = client.read_flow_run(flow_run_id).state
                    if state is not None and state.is_final():
                        states[flow_run_id] = state
                        pending.discard(flow_run_id)
                if pending:
                    time.sleep(POLL_S)
        bad = [s for s in states.values() if not s.is_completed()]
        for flow_run_id, state in states.items():
            if not state.is_completed():  # a crash (its worker died) says why: keep it
                self.record.notes.append(
                    f"chunk flow run {flow_run_id} ended {state.name}: {state.message or '-'}"
                )
        if bad:
            self.logger.warning(
                f"[sweep] {len(bad)} chunk flow run(s) did not complete "
                f"({', '.join(sorted({s.name for s in bad}))}): their missing trials are "
                "reported below; `resume` runs them"
            )

    # -- a search over one window -------------------------------------------------------

    _fold: int | None = None

    def search(self, fold: int | None, until: str | None, window: Window | None) -> list[TrialRow]:
        """Every trial of the sweep on one window; returns the fold's rows."""
        self._fold = fold
        self.record.best = None
        self.refresh()
        tag = "all" if fold is None else f"f{fold:02d}"
        if self.sweep.method == "optuna":
            optuna_search(self, fold, until, window, tag)
        else:
            done = {r.trial for r in self.follower.of_fold(fold)}
            todo = [
                (i, trial)
                for i, trial in enumerate(trials_of(self.sweep))
                if i not in done and not self.stop.is_set()
            ]
            self.run_trials(todo, fold, until, window, f"{tag}-{_stamp()}")
        return self.follower.of_fold(fold)

    def planned_per_fold(self) -> int:
        if self.sweep.method == "grid":
            if self.sweep.grid_size is not None:
                return self.sweep.grid_size
            return sum(1 for _ in trials_of(self.sweep))
        trials = self.sweep.options.get("trials", DEFAULT_RANDOM_TRIALS)
        if self.sweep.method == "random":
            return len(list(trials_of(self.sweep)))
        return int(trials)  # type: ignore[arg-type]

    # -- statistics -----------------------------------------------------------------------

    def overfit(self, rows: list[TrialRow]) -> Overfit:
        import numpy as np

        done = [r for r in rows if r.status == "completed" and r.moments]
        moments = [
            ReturnMoments(int(m[0]), m[1], m[2], m[3], m[4]) for r in done if (m := r.moments)
        ]
        blocks = None
        shapes = {len(r.blocks) for r in done if r.blocks}
        if done and all(r.blocks for r in done) and len(shapes) == 1:
            blocks = np.array([r.blocks for r in done], dtype="float64")
        if not moments:
            return Overfit(
                n_trials=len(rows),
                explanation="Deflated Sharpe ratio: not available — no trial produced an "
                "equity curve",
            )
        report = overfit_report(moments, blocks)
        # Pruned trials were tried (and rejected), so they count in the deflated Sharpe
        # ratio's number of trials N: the conservative choice, as the search did look at them.
        # They have no full-window returns, so they stay out of the variance of the Sharpe
        # ratios and the PBO's matrix (a prefix's returns would not be comparable).
        n_pruned = sum(r.status == "pruned" for r in rows)
        if n_pruned and report.best is not None and report.best_sharpe is not None:
            report = _with_pruned(report, moments[report.best], n_pruned)
        warning = None
        if report.deflated_sharpe is not None and report.deflated_sharpe < DSR_THRESHOLD:
            warning = (
                f"The best trial's deflated Sharpe ratio is {report.deflated_sharpe:.2f}, below "
                f"{DSR_THRESHOLD}: after {report.n_trials} trials its result may well be luck."
            )
        return Overfit(
            n_trials=report.n_trials,
            deflated_sharpe=_round(report.deflated_sharpe),
            pbo=_round(report.pbo),
            pbo_blocks=report.pbo_blocks,
            best_sharpe_per_bar=_round(report.best_sharpe),
            expected_max_sharpe_per_bar=_round(report.expected_max_sharpe),
            sharpe_variance=_round(report.sharpe_variance, 12),
            explanation=report.explanation,
            warning=warning,
            notes=report.notes,
        )

    def best_of(self, rows: list[TrialRow]) -> TrialRow | None:
        scored = [r for r in rows if r.status == "completed" and r.objective is not None]
        if not scored:
            return None
        return max(scored, key=lambda r: (self.sign * (r.objective or 0.0), -r.trial))


@contextlib.contextmanager
def _api_url_for_children() -> Iterator[None]:
    """Child processes (the process pool's, a local Dask cluster's) report their task runs to
    this flow's Prefect API: with Prefect's ephemeral server, its address exists only in this
    process, so it is put in the environment they inherit (else each would start a server of
    its own on the same database)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    with get_client(sync_client=True) as client:
        url = str(client.api_url).rstrip("/")
    os.environ["PREFECT_API_URL"] = url
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield
    finally:
        os.environ.pop("PREFECT_API_URL", None)


@contextlib.contextmanager
def _dask_worker_environ() -> Iterator[None]:
    """A LocalCluster's workers without Dask's ``MALLOC_TRIM_THRESHOLD_=65536``: with it glibc
    hands every freed array back to the OS, and a trial's arrays (800 kB each on 100,000 bars)
    fault their pages in again on every allocation — trials ran 3–13× slower than in the
    parent. (A cluster at ``dask_address`` keeps its own environment: set it there.)"""
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        yield


def _finished(future: Any) -> bool:
    """Whether a task runner's future is done, without asking the API (a Prefect future's
    ``state`` is an HTTP request until its result is read)."""
    done = getattr(getattr(future, "wrapped_future", None), "done", None)
    return bool(done()) if callable(done) else bool(future.state.is_final())


def _stamp() -> str:
    return f"{int(time.time() * 1000) % 10**10:010d}"


def _round(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def _with_pruned(report: Any, best: ReturnMoments, n_pruned: int) -> Any:
    """``report`` with ``n_pruned`` more trials in its N (the DSR and SR₀ recomputed)."""
    import dataclasses

    n = report.n_trials + n_pruned
    variance = report.sharpe_variance or 0.0
    dsr = deflated_sharpe(report.best_sharpe, best.n, best.skew, best.kurtosis, n, variance)
    notes = [
        *report.notes,
        f"N counts {n_pruned} trial(s) stopped early by the Optuna pruner (not in the variance "
        "or the PBO)",
    ]
    return dataclasses.replace(
        report,
        n_trials=n,
        deflated_sharpe=dsr,
        expected_max_sharpe=expected_max_sharpe(n, variance),
        notes=notes,
    )


# ---- the flow --------------------------------------------------------------------------------


def _flow_run_name() -> str:
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    try:
        raw = (ctx.parameters or {}).get("spec") if ctx is not None else None
        spec = raw if isinstance(raw, SweepSpec) else SweepSpec.from_json(raw or {})
        return f"{spec.run.ir.name}/sweep-{spec.sweep_id}"
    except Exception:
        return "sweep"


def _on_cancellation(flow: Any, flow_run: Any, state: Any) -> None:
    """The sweep was cancelled: cancel its chunk flow runs and mark the record."""
    params = flow_run.parameters or {}
    try:
        spec = SweepSpec.from_json(params.get("spec") or {})
    except Exception:
        return
    settings = current_settings().with_store(spec.run.store_url, spec.run.tracking_uri)
    directory = sweep_dir(settings.store_root, spec.sweep_id)
    record = read_sweep_record(directory)
    if record is None:
        return
    if record.flow_run_id and record.flow_run_id != str(flow_run.id):
        # a resumed attempt owns the record now (this hook can run late, on a loaded worker,
        # after the resume started): its chunks and its status are not this attempt's to end
        return
    _cancel_chunks(record.chunk_flow_run_ids)
    record.status = "cancelled"
    record.ended_at = time.time()
    write_json_atomic(directory / "sweep.json", record.model_dump(mode="json"))


def _cancel_chunks(flow_run_ids: list[str]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    with contextlib.suppress(Exception), get_client(sync_client=True) as client:
        for flow_run_id in flow_run_ids:
            with contextlib.suppress(Exception):
                run = client.read_flow_run(UUID(flow_run_id))
                if run.state is not None and not run.state.is_final():
                    # not forced: one that ended since the read stays ended (the server
                    # refuses CANCELLING after a terminal state)
                    client.set_flow_run_state(UUID(flow_run_id), Cancelling())


@flow(
    name=SWEEP_FLOW_NAME,
    flow_run_name=_flow_run_name,
    persist_result=False,
    validate_parameters=True,
    on_cancellation=[_on_cancellation],
)
def sweep_flow(spec: SweepSpec) -> dict[str, Any]:
    """Run the sweep ``spec`` (see the module doc); returns its record's JSON. A sweep that
    cannot run (no sweep block, bad data, an unknown sampler) ends failed with a sentence."""
    from flows.pipeline import import_extra_node_modules

    stop_if_cancelled_before_start()
    import_extra_node_modules()
    settings = current_settings().with_store(spec.run.store_url, spec.run.tracking_uri)
    flow_run = getattr(get_run_context(), "flow_run", None)
    t0 = time.perf_counter()
    directory = sweep_dir(settings.store_root, spec.sweep_id)
    directory.mkdir(parents=True, exist_ok=True)
    if flow_run is not None:  # the API tells a sweep whose process died by it (flows.liveness)
        mark_process(process_dir(directory, str(flow_run.id)))
    write_json_atomic(directory / "spec.json", spec.to_json())
    try:
        sweep = _Sweep(spec, settings, str(flow_run.id) if flow_run else None)
    except SweepPlanError as exc:
        return _fail_early(spec, directory, str(exc))
    sweep.save()
    sweep.prestart()  # the local executor's workers fork before MLflow's threads start here
    # MLflow opens the parent run in a thread while the first trials run
    opening = TrackerOpening(sweep) if spec.run.track else None
    try:
        with contextlib.closing(sweep):
            _search(sweep)
    except SweepPlanError as exc:
        sweep.record.status = "failed"
        sweep.record.error = str(exc)
    except BaseException as exc:
        # SIGTERM from the worker (a cancel): the same end as the on-cancellation hook writes,
        # whichever of the two writes the record last
        terminated = type(exc).__name__ == "TerminationSignal"
        sweep.record.status = "cancelled" if terminated else "failed"
        sweep.record.error = (
            None if terminated else f"the sweep stopped: {type(exc).__name__}: {exc}"
        )
        sweep.record.ended_at = time.time()
        sweep.save()
        tracker = opening.tracker() if opening is not None else None
        if tracker is not None:
            tracker.finish(failed=True)
        raise
    sweep.record.timings["search_s"] = round(time.perf_counter() - t0, 4)
    tracker = opening.tracker() if opening is not None else None
    if tracker is not None:
        tracker.finish(failed=sweep.record.status != "completed")
    sweep.record.timings["total_s"] = round(time.perf_counter() - t0, 4)
    sweep.record.ended_at = time.time()
    sweep.save()
    sweep.logger.info(
        f"[sweep] {sweep.record.status}: {sweep.record.done} trial(s), best "
        f"{sweep.record.best.params if sweep.record.best else None}"
    )
    if sweep.record.status != "completed":
        from prefect.states import Failed

        return Failed(message=sweep.record.error or "sweep failed")  # type: ignore[return-value]
    return sweep.record.model_dump(mode="json")


def _search(sweep: _Sweep) -> None:
    """The sweep's trials (every fold's, with walk-forward), its best and its statistics."""
    if sweep.ir.walkforward is not None:
        walk_forward(sweep)
    else:
        sweep.record.n_trials = sweep.planned_per_fold()
        sweep.save()
        rows = sweep.search(None, None, None)
        best = sweep.best_of(rows)
        sweep.record.best = (
            BestTrial(
                trial=best.trial,
                params=best.params,
                metrics=best.metrics,
                objective=best.objective,
            )
            if best
            else None
        )
        sweep.record.overfit = sweep.overfit(rows)
    sweep.refresh()
    missing = sweep.record.n_trials - len(sweep.follower.rows)
    if missing > 0 and sweep.sweep.method != "optuna":
        sweep.record.status = "failed"
        sweep.record.error = (
            f"{missing} of {sweep.record.n_trials} trial(s) did not finish (a chunk failed or "
            "its worker stopped); `resume` runs only those"
        )
    else:
        sweep.record.status = "completed"
    _keep_top(sweep)


def _fail_early(spec: SweepSpec, directory: Path, message: str) -> Any:
    from prefect.states import Failed

    ir = spec.run.ir
    record = SweepRecord(
        sweep_id=spec.sweep_id,
        pipeline=ir.name,
        title=ir.title,
        ir_hash=ir.content_hash(),
        method=ir.sweep.method if ir.sweep else "grid",
        objective="",
        status="failed",
        error=message,
        started_at=time.time(),
        ended_at=time.time(),
    )
    write_json_atomic(directory / "sweep.json", record.model_dump(mode="json"))
    return Failed(message=message)


def _keep_top(sweep: _Sweep) -> None:
    """The equity curves of the top K trials of the reported search (the last fold's, with
    walk-forward), evaluated again here — the same params on the same data and window give the
    same curve — and no other."""
    folder = sweep.directory / "equity"
    last = sweep.record.folds[-1] if sweep.record.folds else None
    rows = [
        r
        for r in sweep.follower.of_fold(last.index if last else None)
        if r.objective is not None and r.status == "completed"
    ]
    rows.sort(key=lambda r: (-sweep.sign * (r.objective or 0.0), r.trial))
    top = rows[: sweep.spec.top_k]
    until = window = None
    if last is not None:
        import pandas as pd

        until = pd.Timestamp(last.train_end)
        window = (pd.Timestamp(last.train_begin), until)
    if folder.is_dir():
        keep = {f"trial-{r.trial}.parquet" for r in top}
        for path in folder.glob("trial-*.parquet"):
            if path.name not in keep:
                path.unlink(missing_ok=True)
    kept: list[int] = []
    for row in top:
        outcome = sweep.evaluator.run(
            row.trial, overrides_of(row.params), fold=row.fold, until=until, window=window
        )
        if outcome.equity is not None and outcome.row.objective == row.objective:
            _write_equity(folder / f"trial-{row.trial}.parquet", outcome.equity)
            kept.append(row.trial)
        elif outcome.equity is not None:  # never store a curve that is not the trial's
            sweep.record.notes.append(
                f"trial {row.trial} gave {outcome.row.objective} when evaluated again for its "
                f"equity curve, not {row.objective}: its curve is not kept"
            )
    sweep.record.top_trials = sorted(kept)


def _write_equity(path: Path, equity: pd.Series) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    equity.rename("equity").to_frame().to_parquet(tmp)
    os.replace(tmp, path)


# ---- in this process --------------------------------------------------------------------------


def top_equity(directory: Path, trial: int) -> pd.DataFrame | None:
    """A kept trial's equity curve (None when it was not kept: recompute it as a run)."""
    import pandas as pd

    path = directory / "equity" / f"trial-{trial}.parquet"
    return pd.read_parquet(path) if path.exists() else None


def run_sweep(spec: SweepSpec, *, settings: CoreSettings | None = None) -> SweepRecord:
    """Run ``spec`` as a Prefect flow run in this process and wait for it (the CLI's and the
    tests' entry); returns the record it stored. Never raises for a failing sweep."""
    from flows.settings import get_settings, using_settings
    from flows.tracking import import_shared_dependencies, prewarm_mlflow

    settings = settings or get_settings()
    settings.apply_prefect_env()
    run = spec.run
    if not run.store_url:
        run = run.model_copy(update={"store_url": settings.store_location})
    spec = spec.model_copy(update={"run": run, "submitted_at": spec.submitted_at or time.time()})
    if run.track:
        import_shared_dependencies()
        prewarm_mlflow(settings.mlflow_uri)
    if spec.executor == "local" and run.ir.sweep is not None:
        # the trials run in this process (or in forks of it): load the data and the kernel
        # while Prefect creates and starts the flow run
        from flows.pipeline import import_extra_node_modules

        import_extra_node_modules()
        prepare_evaluator(spec, settings.with_store(run.store_url, run.tracking_uri))
    store_root = settings.with_store(run.store_url, run.tracking_uri).store_root
    directory = sweep_dir(store_root, spec.sweep_id)
    with using_settings(settings):
        state = sweep_flow(spec=spec, return_state=True)
    record = read_sweep_record(directory)
    if record is None:
        ir = run.ir
        return SweepRecord(
            sweep_id=spec.sweep_id,
            pipeline=ir.name,
            title=ir.title,
            ir_hash=ir.content_hash(),
            method=ir.sweep.method if ir.sweep else "grid",
            objective="",
            status="failed",
            error=f"flow run failed: {state.message}",
        )
    return record


def new_sweep_id() -> str:
    """A sweep id that sorts by start time: ``sw-`` + a run id."""
    from flows.record import new_run_id

    return "sw-" + new_run_id()
