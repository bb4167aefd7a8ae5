"""Sweeps as Prefect flows: a parent that plans, fans chunks of trials out, tracks and reports.

:func:`sweep_flow` runs a :class:`~flows.sweepspec.SweepSpec`:

1. it writes ``spec.json`` and a running ``sweep.json`` in ``sweeps/<id>/`` (the store);
2. per walk-forward fold (or once, without walk-forward) it searches the training window:
   grid and random trials come from :mod:`flows.trials`; Optuna's come from its sampler in
   batches (ask a batch, evaluate it as chunks, tell), its study kept in the platform's
   database so it survives a restart;
3. trials go out in **chunks** (:class:`ChunkSpec`), by the spec's executor:

   - ``local``: in the flow's own process (one worker), or in ``workers`` processes forked
     from it once it is warm (:mod:`flows.sweeplocal`);
   - ``pool``: each chunk a flow run of the chunk deployment (:func:`sweep_chunk_flow`,
     ``run_deployment`` on the work pool), so any worker polling the pool takes one; inside,
     the chunk's trials are mapped over tasks;
   - ``dask``: chunk tasks on prefect-dask's ``DaskTaskRunner`` (a running scheduler at
     ``dask_address``, or a ``LocalCluster`` of ``workers`` processes);

   each chunk appends its trials to its own ``trials/<part>.jsonl``; the parent follows those
   files for progress and the best-so-far, and a resumed sweep skips every trial found there;
4. with walk-forward, the chosen params run on the fold's test window; the out-of-sample
   segments are stitched into ``oos_equity.parquet``;
5. it computes the deflated Sharpe ratio and the PBO (:mod:`flows.overfitting`), keeps the
   equity curves of the top K trials, logs the sweep to MLflow (a parent run, a nested child
   run per trial, written in batches by a background thread) and finishes ``sweep.json``.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.context import get_run_context
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, ConfigDict

from dsl.ir import OPTUNA_PRUNERS, OPTUNA_SAMPLERS, PRUNE_STEPS_DEFAULT
from flows.mlflow_batch import FinishedRun, log_finished_runs
from flows.overfitting import (
    DSR_THRESHOLD,
    ReturnMoments,
    deflated_sharpe,
    expected_max_sharpe,
    overfit_report,
)
from flows.settings import CoreSettings, current_settings
from flows.sweeplocal import ForkedWorkers, inherited_spec
from flows.sweepspec import (
    BestTrial,
    FoldRow,
    Overfit,
    PaceMark,
    SweepRecord,
    SweepSpec,
    TrialRow,
    read_sweep_record,
    sweep_dir,
    write_json_atomic,
)
from flows.sweeptrial import (
    SweepPlanError,
    TrialEvaluator,
    evaluator_for,
    objective_of,
    objective_text,
    overrides_of,
    warm_compiled_kernels,
)
from flows.trials import DEFAULT_RANDOM_TRIALS, trials_of

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CHUNK_FLOW_NAME",
    "SWEEP_FLOW_NAME",
    "ChunkSpec",
    "run_chunk",
    "sweep_chunk_flow",
    "sweep_flow",
]

SWEEP_FLOW_NAME = "alphaforge-sweep"
CHUNK_FLOW_NAME = "alphaforge-sweep-chunk"
CHUNK_DEPLOYMENT = f"{CHUNK_FLOW_NAME}/sweep"
CHUNKS_PER_WORKER = 4  # a chunk's size: the trials over workers × this (a slow chunk evens out)
MAX_CHUNK = 500
#: ``local`` with N > 1 workers: smaller chunks, kept two deep on each forked worker, so no
#: worker idles at the end.
LOCAL_CHUNKS_PER_WORKER = 8
OPTUNA_BATCH_PER_WORKER = 8
MLFLOW_BATCH = 200
POLL_S = 0.25
Window = tuple[str, str]
Stage = tuple[str, Window | None]  # a pruning stage's (until, window)


class ChunkSpec(BaseModel):
    """A chunk of one sweep's trials: ``trials`` as (trial number, overrides) pairs, evaluated
    on the fold's window (``until`` cuts the data, ``window`` is what the backtest trades; both
    ISO timestamps, None without walk-forward). ``part`` names its trials file. ``stage``: an
    Optuna pruning stage (see :meth:`_Sweep._staged`): the rows go to ``stages/<part>.jsonl``,
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
    at the end (:func:`_keep_top`), milliseconds each, where every chunk writing its own best
    K curves cost seconds."""
    import pandas as pd

    t0 = time.perf_counter()
    settings = current_settings().with_store(chunk.spec.run.store_url)
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


def _write_equity(path: Path, equity: pd.Series) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    equity.rename("equity").to_frame().to_parquet(tmp)
    os.replace(tmp, path)


def warm_up(spec: SweepSpec) -> dict[str, Any]:
    """Make this process ready for the sweep's chunks: its evaluator (the data loaded) and the
    compiled backtest kernel. A source the evaluator cannot lay out (no timestamps) is left to
    the first trial, which reports it."""
    from flows.pipeline import import_extra_node_modules

    t0 = time.perf_counter()
    import_extra_node_modules()
    settings = current_settings().with_store(spec.run.store_url)
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
    t0 = time.perf_counter()
    slices = _split(chunk.trials, max(1, min(4, len(chunk.trials) // 25)))
    parts = [
        chunk.model_copy(update={"trials": s, "part": f"{chunk.part}-{i}"})
        for i, s in enumerate(slices)
    ]
    results = sweep_trials_task.map(parts).result()
    return {
        "part": chunk.part,
        "rows": sum(r["rows"] for r in results),
        "failed": sum(r["failed"] for r in results),
        "seconds": round(time.perf_counter() - t0, 4),
        "pid": os.getpid(),
    }


def _split(items: Sequence[Any], n: int) -> list[list[Any]]:
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
            for i, part in enumerate(_split(trials, math.ceil(len(trials) / size)))
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
            self._optuna(fold, until, window, tag)
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

    def _optuna(self, fold: int | None, until: str | None, window: Window | None, tag: str) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        options = self.sweep.options
        total = int(options.get("trials", DEFAULT_RANDOM_TRIALS))  # type: ignore[arg-type]
        seed = int(options.get("seed", 0))  # type: ignore[arg-type]
        timeout = options.get("timeout")
        steps = int(options.get("prune_steps", PRUNE_STEPS_DEFAULT))  # type: ignore[arg-type]
        pruner = _pruner(str(options.get("pruner", "none")), steps)
        stages = self._stages(until, window, steps) if pruner is not None else []
        study = optuna.create_study(
            study_name=f"{self.spec.sweep_id}" + ("" if fold is None else f"-fold{fold}"),
            storage=self._optuna_storage(),
            sampler=_sampler(str(options.get("sampler", "tpe")), seed),
            pruner=pruner,
            direction=self.objective.direction,
            load_if_exists=True,
        )
        distributions = {f"{p.node}.{p.param}": _distribution(p.space) for p in self.sweep.params}
        rows = {r.trial: r for r in self.follower.of_fold(fold)}
        _settle_interrupted(study, rows)
        started = time.monotonic()
        batch = max(1, self.spec.workers * OPTUNA_BATCH_PER_WORKER)
        while not self.stop.is_set():
            written = {r.trial for r in self.follower.of_fold(fold)}
            counted = [  # a FAIL without a row was interrupted (its chunk died): asked again
                t
                for t in study.trials
                if t.state.is_finished()
                and "af_trial" in t.user_attrs
                and (t.state != optuna.trial.TrialState.FAIL or t.number in written)
            ]
            left = total - len(counted)
            if left <= 0:
                break
            if timeout is not None and time.monotonic() - started > float(timeout):  # type: ignore[arg-type]
                self.record.notes.append(
                    f"Optuna stopped at its timeout of {timeout} s after {len(counted)} trial(s)"
                )
                break
            asked = []
            for _ in range(min(batch, left)):
                trial = study.ask(distributions)
                number = trial.number
                trial.set_user_attr("af_trial", number)
                asked.append((number, trial))
            btag = f"{tag}-b{asked[0][0]:05d}"
            if stages:
                asked = self._staged(asked, stages, fold, btag)
            todo = [(n, overrides_of(t.params)) for n, t in asked]
            self.run_trials(todo, fold, until, window, btag)
            found = {r.trial: r for r in self.follower.of_fold(fold)}
            for number, trial in asked:
                row = found.get(number)
                if row is None or row.objective is None:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(trial, row.objective)
            if any(found.get(n) is None for n, _ in asked):
                break  # chunks that did not finish: stop here, `resume` continues

    def _stages(self, until: str | None, window: Window | None, steps: int) -> list[Stage]:
        """The (until, window) of pruning stages 1 … ``steps`` − 1: growing prefixes of the
        search window (the fold's training window; without walk-forward, all the data); stage
        ``steps`` is the window itself. Empty (no pruning, with a note) when the data has no
        timestamps to cut it by."""
        import pandas as pd

        if window is not None:
            begin, end = pd.Timestamp(window[0]), pd.Timestamp(window[1])
        else:
            try:
                index = self.evaluator.index()
            except SweepPlanError as exc:
                self.record.notes.append(f"Optuna pruner not used: {exc}")
                return []
            begin, end = index[0], index[-1] + (index[-1] - index[0]) / max(1, len(index) - 1)
        out: list[Stage] = []
        for k in range(1, steps):
            cut = str(begin + (end - begin) * k / steps)
            out.append((cut, (str(begin), cut) if window is not None else None))
        return out

    def _staged(
        self, asked: list[tuple[int, Any]], stages: list[Stage], fold: int | None, btag: str
    ) -> list[tuple[int, Any]]:
        """Evaluate a batch's trials on the pruning stages, each stage only on the trials
        still alive: report each trial's objective on the stage's prefix as its intermediate
        value, ask the pruner, and write a ``pruned`` row and tell Optuna ``PRUNED`` for each
        trial it stops. Returns the survivors (they run on the whole window as usual). A
        trial with no value on a stage (it failed there, or the metric is null on a short
        prefix) is not reported for that stage and stays alive."""
        import optuna

        alive = dict(asked)
        seconds: dict[int, float] = {}
        pruned: list[tuple[Any, TrialRow]] = []
        for k, (s_until, s_window) in enumerate(stages, start=1):
            if not alive or self.stop.is_set():
                break
            part = f"{btag}-s{k}"
            todo = [(n, overrides_of(t.params)) for n, t in alive.items()]
            self.run_trials(todo, fold, s_until, s_window, part, stage=k)
            found = _stage_rows(self.directory / "stages", part)
            for number, trial in list(alive.items()):
                row = found.get(number)
                if row is None or row.objective is None:
                    continue
                seconds[number] = seconds.get(number, 0.0) + row.seconds
                trial.report(row.objective, k)
                if trial.should_prune():
                    del alive[number]
                    pruned.append(
                        (
                            trial,
                            TrialRow(
                                trial=number,
                                fold=fold,
                                params=dict(trial.params),
                                status="pruned",
                                seconds=round(seconds[number], 6),
                                pruned_stage=k,
                                stage_objective=row.objective,
                            ),
                        )
                    )
        if pruned:
            # the parent's own trials file: a row first, then the tell (a crash in between is
            # settled on resume from the row)
            path = self.directory / "trials" / f"{btag}-pruned.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as fh:
                for _, row in pruned:
                    fh.write(row.model_dump_json(exclude_none=True) + "\n")
            for trial, _ in pruned:
                trial.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            self.refresh()
        return [(n, t) for n, t in asked if n in alive]

    def _optuna_storage(self) -> str:
        """The spec's storage URL; ``env:NAME`` names the variable of this process that holds
        it (the web app's PostgreSQL URL carries a password, which must not travel in flow-run
        parameters); else SQLite in the store."""
        ref = self.spec.optuna_storage
        if ref and ref.startswith("env:"):
            found = os.environ.get(ref[4:])
            if not found:
                raise SweepPlanError(
                    f"Optuna's study storage is in the environment variable {ref[4:]}, which "
                    "this worker does not have: start the worker with it set (`alphaforge "
                    "serve` sets it for its own worker)"
                )
            return found
        if ref:
            return ref
        path = self.settings.store_root / "sweeps" / "optuna.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"

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


def _sampler(name: str, seed: int) -> Any:
    import optuna

    samplers = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, constant_liar=True),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "qmc": lambda: optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False),
    }
    assert tuple(samplers) == OPTUNA_SAMPLERS
    if name not in samplers:
        raise SweepPlanError(
            f"unknown Optuna sampler {name!r}: use one of {', '.join(sorted(samplers))}"
        )
    return samplers[name]()


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


def _pruner(name: str, steps: int) -> Any:
    """The Optuna pruner ``name`` (one of :data:`~dsl.ir.OPTUNA_PRUNERS`) over ``steps``
    stages; None for ``none`` (no staging, no extra cost)."""
    import optuna

    pruners = {
        "none": lambda: None,
        # stop a trial whose value on a stage is worse than the median of the completed
        # trials' values on that stage (after 5 completed trials)
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0),
        # keep the better half of the trials that reached stage 1, 2, 4, 8
        "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(
            min_resource=1, reduction_factor=2
        ),
        # brackets of successive halving (reduction factor 3) over stages 1 … steps
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=steps),
    }
    assert tuple(pruners) == OPTUNA_PRUNERS
    if name not in pruners:
        raise SweepPlanError(f"unknown Optuna pruner {name!r}: use one of {', '.join(pruners)}")
    return pruners[name]()


def _stage_rows(folder: Path, part: str) -> dict[int, TrialRow]:
    """The rows of one pruning stage (every chunk file of ``part``), by trial number."""
    out: dict[int, TrialRow] = {}
    for path in sorted(folder.glob(f"{part}-*.jsonl")):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                row = TrialRow.model_validate_json(line)
                out[row.trial] = row
    return out


def _distribution(space: Any) -> Any:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    kind = space.kind
    if kind == "values":
        return CategoricalDistribution(list(space.values))
    if kind == "int":
        return IntDistribution(space.low, space.high, step=space.step, log=space.log)
    step = space.step if not space.log else None
    return FloatDistribution(space.low, space.high, step=step, log=space.log)


def _settle_interrupted(study: Any, rows: Mapping[int, TrialRow]) -> None:
    """After a crash: tell the study the trials it asked for whose rows were written (their
    chunk finished them, or the parent pruned them) and fail the others (they are asked
    again; a trial stopped between pruning stages is among them)."""
    import optuna

    for frozen in study.trials:
        if frozen.state != optuna.trial.TrialState.RUNNING:
            continue
        row = rows.get(frozen.number)
        with contextlib.suppress(Exception):
            if row is not None and row.status == "pruned":
                study.tell(frozen.number, state=optuna.trial.TrialState.PRUNED)
            elif row is not None and row.objective is not None:
                study.tell(frozen.number, row.objective)
            else:
                study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)


# ---- walk-forward ------------------------------------------------------------------------------


def _walk_forward(sweep: _Sweep) -> None:
    """One search per fold on its training window; the chosen params on its test window."""
    import pandas as pd

    from flows.walkforward import efficiency, folds

    wf = sweep.ir.walkforward
    assert wf is not None
    index = sweep.evaluator.index()
    try:
        layout = folds(index, wf, wf.embargo)
    except ValueError as exc:
        raise SweepPlanError(str(exc)) from None
    per_fold = sweep.planned_per_fold()
    sweep.record.n_trials = per_fold * len(layout)
    sweep.record.folds = []
    segments: list[pd.DataFrame] = []
    level = 1.0
    for fold in layout:
        if sweep.stop.is_set():
            break
        train = (str(fold.train_begin), str(fold.train_end))
        rows = sweep.search(fold.index, str(fold.train_end), train)
        best = sweep.best_of(rows)
        stats = sweep.overfit(rows)
        entry = FoldRow(
            index=fold.index,
            train_begin=str(fold.train_begin),
            train_end=str(fold.train_end),
            test_begin=str(fold.test_begin),
            test_end=str(fold.test_end),
            train_bars=fold.train_bars,
            test_bars=fold.test_bars,
            partial=fold.partial,
            n_trials=len(rows),
            deflated_sharpe=stats.deflated_sharpe,
            pbo=stats.pbo,
        )
        if best is not None:
            test = (fold.test_begin, fold.test_end)
            oos = sweep.evaluator.run(
                best.trial,
                overrides_of(best.params),
                fold=fold.index,
                until=fold.test_end,
                window=test,
            )
            entry = entry.model_copy(
                update={
                    "best_trial": best.trial,
                    "best_params": best.params,
                    "is_metrics": best.metrics,
                    "is_objective": best.objective,
                    "oos_metrics": oos.row.metrics,
                    "oos_objective": oos.row.objective,
                }
            )
            if oos.equity is not None and len(oos.equity):
                curve = oos.equity / float(oos.equity.iloc[0]) * level
                level = float(curve.iloc[-1])
                segments.append(pd.DataFrame({"equity": curve, "fold": fold.index}))
        sweep.record.folds.append(entry)
        sweep.logger.info(
            f"[sweep] fold {fold.index}: best {best.params if best else None}, in sample "
            f"{entry.is_objective}, out of sample {entry.oos_objective}"
        )
        sweep.save()
    if segments:
        stitched = pd.concat(segments)
        stitched.index.name = "ts"
        stitched.to_parquet(sweep.directory / "oos_equity.parquet")
    pairs = [(f.is_objective, f.oos_objective) for f in sweep.record.folds]
    sweep.record.walkforward_efficiency, sweep.record.walkforward_efficiency_note = (
        efficiency(pairs, sweep.objective.direction)
        if pairs
        else (None, "no fold finished (the sweep stopped before the first fold's test)")
    )
    if sweep.record.folds:
        last = sweep.record.folds[-1]
        rows = sweep.follower.of_fold(last.index)
        sweep.record.overfit = sweep.overfit(rows)
        best = sweep.best_of(rows)
        sweep.record.best = (
            BestTrial(
                trial=best.trial, params=best.params, metrics=best.metrics, objective=best.objective
            )
            if best
            else None
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
    settings = current_settings().with_store(spec.run.store_url)
    directory = sweep_dir(settings.store_root, spec.sweep_id)
    record = read_sweep_record(directory)
    if record is None:
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
                    client.set_flow_run_state(UUID(flow_run_id), Cancelling(), force=True)


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

    import_extra_node_modules()
    settings = current_settings().with_store(spec.run.store_url)
    flow_run = getattr(get_run_context(), "flow_run", None)
    t0 = time.perf_counter()
    directory = sweep_dir(settings.store_root, spec.sweep_id)
    directory.mkdir(parents=True, exist_ok=True)
    write_json_atomic(directory / "spec.json", spec.to_json())
    try:
        sweep = _Sweep(spec, settings, str(flow_run.id) if flow_run else None)
    except SweepPlanError as exc:
        return _fail_early(spec, directory, str(exc))
    sweep.save()
    sweep.prestart()  # the local executor's workers fork before MLflow's threads start here
    # MLflow opens the parent run in a thread while the first trials run
    opening = _TrackerOpening(sweep) if spec.run.track else None
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
        _walk_forward(sweep)
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


# ---- MLflow ----------------------------------------------------------------------------------


class _TrackerOpening:
    """:meth:`_SweepTracker.start` in a thread of its own (the parent run, then the child-run
    writer), so the trials need not wait for MLflow."""

    def __init__(self, sweep: _Sweep) -> None:
        self._sweep = sweep
        self._tracker: _SweepTracker | None = None
        self._thread = threading.Thread(target=self._open, name="sweep-mlflow-open", daemon=True)
        self._thread.start()

    def _open(self) -> None:
        self._tracker = _SweepTracker.start(self._sweep)

    def tracker(self) -> _SweepTracker | None:
        """The tracker once the parent run is open (None when MLflow could not be reached);
        the time waited for it is ``timings['mlflow_open_wait_s']``."""
        t0 = time.perf_counter()
        self._thread.join()
        self._sweep.record.timings["mlflow_open_wait_s"] = round(time.perf_counter() - t0, 4)
        return self._tracker


class _SweepTracker:
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
    def start(cls, sweep: _Sweep) -> _SweepTracker | None:
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
    from flows.tracking import MlflowTracker, mlflow_client

    settings = sweep.settings
    record = sweep.record
    found = None if record.mlflow_run_id else _orphan_parent(sweep)
    if found is not None:  # killed before the run id reached sweep.json: adopt that run
        record.mlflow_run_id, record.mlflow_experiment_id = found
    if record.mlflow_run_id and record.mlflow_experiment_id:  # resumed: the same parent run
        client = mlflow_client(settings.mlflow_uri)
        client.update_run(record.mlflow_run_id, status="RUNNING")
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
    embedded = not settings.mlflow_tracking_uri
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
        artifact_root=settings.mlflow_artifacts_uri if embedded else None,
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
    directory = sweep_dir(settings.with_store(run.store_url).store_root, spec.sweep_id)
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
