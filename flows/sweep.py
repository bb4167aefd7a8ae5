"""Sweeps as Prefect flows: a parent that plans, fans chunks of trials out, tracks and reports.

:func:`sweep_flow` runs a :class:`~flows.sweepspec.SweepSpec`:

1. it writes ``spec.json`` and a running ``sweep.json`` in ``sweeps/<id>/`` (the store);
2. per walk-forward fold (or once, without walk-forward) it searches the training window:
   grid and random trials come from :mod:`flows.trials`; Optuna's come from its sampler in
   batches (ask a batch, evaluate it as chunks, tell), its study kept in the platform's
   database so it survives a restart;
3. trials go out in **chunks** (:class:`ChunkSpec`), by the spec's executor:

   - ``local``: chunk tasks on a Prefect ``ProcessPoolTaskRunner`` of ``workers`` processes
     (one process: in the flow's own process);
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

from flows.mlflow_batch import FinishedRun, log_finished_runs
from flows.overfitting import DSR_THRESHOLD, ReturnMoments, overfit_report
from flows.settings import CoreSettings, current_settings
from flows.sweepspec import (
    BestTrial,
    FoldRow,
    Overfit,
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
OPTUNA_BATCH_PER_WORKER = 8
MLFLOW_BATCH = 200
POLL_S = 0.25
Window = tuple[str, str]


class ChunkSpec(BaseModel):
    """A chunk of one sweep's trials: ``trials`` as (trial number, overrides) pairs, evaluated
    on the fold's window (``until`` cuts the data, ``window`` is what the backtest trades; both
    ISO timestamps, None without walk-forward). ``part`` names its trials file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spec: SweepSpec
    part: str
    fold: int | None = None
    until: str | None = None
    window: Window | None = None
    trials: list[tuple[int, dict[str, dict[str, Any]]]]
    keep_equity: int = 0


# ---- a chunk ---------------------------------------------------------------------------------


def run_chunk(chunk: ChunkSpec) -> dict[str, Any]:
    """Evaluate the chunk's trials in this process, appending each row to
    ``trials/<part>.jsonl`` as it finishes; the chunk's best ``keep_equity`` curves go to
    ``equity/``. Returns a small summary (rows, failed, seconds, pid)."""
    import pandas as pd

    t0 = time.perf_counter()
    settings = current_settings().with_store(chunk.spec.run.store_url)
    directory = sweep_dir(settings.store_root, chunk.spec.sweep_id)
    evaluator = evaluator_for(chunk.spec, settings)
    until = pd.Timestamp(chunk.until) if chunk.until else None
    window = (
        (pd.Timestamp(chunk.window[0]), pd.Timestamp(chunk.window[1])) if chunk.window else None
    )
    sign = 1.0 if evaluator.objective.direction == "maximize" else -1.0
    kept: list[tuple[float, int, pd.Series]] = []
    failed = 0
    path = directory / "trials" / f"{chunk.part}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        for number, overrides in chunk.trials:
            outcome = evaluator.run(number, overrides, fold=chunk.fold, until=until, window=window)
            fh.write(outcome.row.model_dump_json(exclude_none=True) + "\n")
            fh.flush()
            failed += outcome.row.status == "failed"
            if (
                chunk.keep_equity
                and outcome.equity is not None
                and outcome.row.objective is not None
            ):
                kept.append((sign * outcome.row.objective, number, outcome.equity))
                kept.sort(key=lambda x: -x[0])
                del kept[chunk.keep_equity :]
    for _, number, equity in kept:
        _write_equity(directory / "equity" / f"trial-{number}.parquet", equity)
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


@task(name="sweep-chunk", persist_result=False)
def sweep_chunk_task(chunk: ChunkSpec) -> dict[str, Any]:
    """A chunk as one task (the ``local`` and ``dask`` executors)."""
    return run_chunk(chunk)


@task(name="sweep-trials", persist_result=False)
def sweep_trials_task(chunk: ChunkSpec) -> dict[str, Any]:
    """Part of a chunk flow's trials (mapped inside :func:`sweep_chunk_flow`)."""
    return run_chunk(chunk)


@flow(
    name=CHUNK_FLOW_NAME,
    persist_result=False,
    validate_parameters=True,
    task_runner=ThreadPoolTaskRunner(max_workers=2),  # type: ignore[arg-type]
)
def sweep_chunk_flow(chunk: ChunkSpec) -> dict[str, Any]:
    """A chunk as a flow run of the chunk deployment (the ``pool`` executor): its trials are
    mapped over tasks in slices that share this process's memory of upstream nodes."""
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
        self.stop = threading.Event()

    # -- the record ---------------------------------------------------------------------

    def save(self, force: bool = True) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < 0.5:
            return
        self._last_write = now
        write_json_atomic(self.directory / "sweep.json", self.record.model_dump(mode="json"))

    def refresh(self) -> None:
        """Fold the newly written trials into the record (progress, best so far)."""
        for row in self.follower.poll():
            self.record.done += 1
            self.record.failed += row.status == "failed"
            if row.objective is None or row.fold != self._fold:
                continue
            best = self.record.best
            if best is None or self.sign * row.objective > self.sign * (best.objective or 0.0):
                self.record.best = BestTrial(
                    trial=row.trial, params=row.params, metrics=row.metrics, objective=row.objective
                )
        self.save(force=False)

    # -- dispatching chunks -------------------------------------------------------------

    def chunk_size(self, n: int) -> int:
        if self.spec.chunk_size:
            return self.spec.chunk_size
        return max(1, min(MAX_CHUNK, math.ceil(n / (self.spec.workers * CHUNKS_PER_WORKER))))

    def run_trials(
        self,
        trials: list[tuple[int, dict[str, dict[str, Any]]]],
        fold: int | None,
        until: str | None,
        window: Window | None,
        tag: str,
    ) -> None:
        """Evaluate ``trials`` as chunks on the spec's executor and wait for all of them."""
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
                keep_equity=self.spec.top_k,
            )
            for i, part in enumerate(_split(trials, math.ceil(len(trials) / size)))
        ]
        self.record.chunks += len(chunks)
        self.record.chunk_size = size
        self.logger.info(
            f"[sweep] {len(trials)} trial(s) in {len(chunks)} chunk(s) of ≤{size} on the "
            f"{self.spec.executor} executor ({self.spec.workers} worker(s))"
        )
        if self.spec.executor == "pool":
            self._run_on_pool(chunks)
        elif self.spec.executor == "dask":
            with _api_url_for_children():
                self._run_on_dask(chunks)
        else:
            with _api_url_for_children():
                self._run_locally(chunks)
        self.refresh()

    def _wait(self, futures: list[Any]) -> list[Any]:
        while not all(f.state.is_final() for f in futures):
            self.refresh()
            time.sleep(POLL_S)
        return [f.result() for f in futures]

    def _run_locally(self, chunks: list[ChunkSpec]) -> None:
        if self.spec.workers == 1:
            for chunk in chunks:
                run_chunk(chunk)
                self.refresh()
            return
        from prefect.task_runners import ProcessPoolTaskRunner

        with ProcessPoolTaskRunner(max_workers=self.spec.workers) as runner:
            futures = [runner.submit(sweep_chunk_task, {"chunk": c}) for c in chunks]
            self._wait(futures)

    def _run_on_dask(self, chunks: list[ChunkSpec]) -> None:
        from prefect_dask import DaskTaskRunner

        if self.spec.dask_address:
            runner = DaskTaskRunner(address=self.spec.dask_address)
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
        with runner:
            futures = [runner.submit(sweep_chunk_task, {"chunk": c}) for c in chunks]
            self._wait(futures)

    def _run_on_pool(self, chunks: list[ChunkSpec]) -> None:
        from prefect.client.orchestration import get_client
        from prefect.deployments import run_deployment

        ids = []
        for chunk in chunks:
            flow_run: Any = run_deployment(
                CHUNK_DEPLOYMENT,
                parameters={"chunk": chunk.model_dump(mode="json")},
                timeout=0,
                as_subflow=True,
            )
            ids.append(flow_run.id)
            self.record.chunk_flow_run_ids.append(str(flow_run.id))
        self.save()
        with get_client(sync_client=True) as client:
            pending = set(ids)
            states: dict[Any, Any] = {}
            while pending:
                self.refresh()
                for flow_run_id in list(pending):
                    state = client.read_flow_run(flow_run_id).state
                    if state is not None and state.is_final():
                        states[flow_run_id] = state
                        pending.discard(flow_run_id)
                if pending:
                    time.sleep(POLL_S * 2)
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
        study = optuna.create_study(
            study_name=f"{self.spec.sweep_id}" + ("" if fold is None else f"-fold{fold}"),
            storage=self._optuna_storage(),
            sampler=_sampler(str(options.get("sampler", "tpe")), seed),
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
            todo = [(n, overrides_of(t.params)) for n, t in asked]
            self.run_trials(todo, fold, until, window, f"{tag}-b{asked[0][0]:05d}")
            found = {r.trial: r for r in self.follower.of_fold(fold)}
            for number, trial in asked:
                row = found.get(number)
                if row is None or row.objective is None:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(trial, row.objective)
            if any(found.get(n) is None for n, _ in asked):
                break  # chunks that did not finish: stop here, `resume` continues

    def _optuna_storage(self) -> str:
        if self.spec.optuna_storage:
            return self.spec.optuna_storage
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
        scored = [r for r in rows if r.objective is not None]
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
    if name not in samplers:
        raise SweepPlanError(
            f"unknown Optuna sampler {name!r}: use one of {', '.join(sorted(samplers))}"
        )
    return samplers[name]()


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
    chunk finished them) and fail the others (they are asked again)."""
    import optuna

    for frozen in study.trials:
        if frozen.state != optuna.trial.TrialState.RUNNING:
            continue
        row = rows.get(frozen.number)
        with contextlib.suppress(Exception):
            if row is not None and row.objective is not None:
                study.tell(frozen.number, row.objective)
            else:
                study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)


# ---- walk-forward ------------------------------------------------------------------------------


def _walk_forward(sweep: _Sweep) -> None:
    """One search per fold on its training window; the chosen params on its test window."""
    import pandas as pd

    from flows.walkforward import folds

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
    scored = [f for f in sweep.record.folds if f.is_objective is not None]
    if scored and all(f.oos_objective is not None for f in scored):
        is_mean = sum(f.is_objective or 0.0 for f in scored) / len(scored)
        oos_mean = sum(f.oos_objective or 0.0 for f in scored) / len(scored)
        if is_mean:
            sweep.record.walkforward_efficiency = round(oos_mean / is_mean, 6)
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
    tracker = _SweepTracker.start(sweep) if spec.run.track else None
    try:
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
    except SweepPlanError as exc:
        sweep.record.status = "failed"
        sweep.record.error = str(exc)
    except BaseException as exc:
        sweep.record.status = "failed"
        sweep.record.error = f"the sweep stopped: {type(exc).__name__}: {exc}"
        sweep.record.ended_at = time.time()
        sweep.save()
        if tracker is not None:
            tracker.finish(failed=True)
        raise
    sweep.record.timings["search_s"] = round(time.perf_counter() - t0, 4)
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
    """Keep the equity curves of the top K trials of the reported search only."""
    folder = sweep.directory / "equity"
    fold = sweep.record.folds[-1].index if sweep.record.folds else None
    rows = [r for r in sweep.follower.of_fold(fold) if r.objective is not None]
    rows.sort(key=lambda r: (-sweep.sign * (r.objective or 0.0), r.trial))
    keep = {r.trial for r in rows[: sweep.spec.top_k]}
    if folder.is_dir():
        for path in folder.glob("trial-*.parquet"):
            number = int(path.stem.removeprefix("trial-"))
            if number not in keep:
                path.unlink(missing_ok=True)
    sweep.record.top_trials = sorted(n for n in keep if (folder / f"trial-{n}.parquet").exists())


# ---- MLflow ----------------------------------------------------------------------------------


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
        try:
            tracker, logged = _open_parent(sweep)
        except Exception as exc:
            sweep.record.notes.append(f"MLflow: the sweep is not tracked ({exc})")
            return None
        sweep.record.mlflow_run_id = tracker.run_id
        sweep.record.mlflow_experiment_id = tracker.experiment_id
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
        return FinishedRun(
            name=name,
            tags=tags,
            params={k: str(v) for k, v in row.params.items()},
            metrics={k: v for k, v in row.metrics.items() if v is not None},
            status="FINISHED" if row.status == "completed" else "FAILED",
        )

    def finish(self, *, failed: bool) -> None:
        t0 = time.perf_counter()
        self._done.set()
        self._thread.join()
        record = self.sweep.record
        try:
            metrics: dict[str, Any] = {"n_trials": record.done, "failed_trials": record.failed}
            if record.best is not None:
                metrics.update({f"best.{k}": v for k, v in record.best.metrics.items()})
            if record.overfit is not None:
                metrics["deflated_sharpe"] = record.overfit.deflated_sharpe
                metrics["pbo"] = record.overfit.pbo
            if record.walkforward_efficiency is not None:
                metrics["walkforward_efficiency"] = record.walkforward_efficiency
            params = {
                f"best.{k}": v for k, v in (record.best.params if record.best else {}).items()
            }
            self.tracker.log_all(params=params, metrics=metrics, tags={})
            self.tracker.log_artifact(self.sweep.directory / "spec.json")
            self.tracker.end("failed" if failed else "completed")
        except Exception as exc:
            self.error = self.error or f"{type(exc).__name__}: {exc}"
        if self.error:
            record.notes.append(f"MLflow: some of the sweep was not logged ({self.error})")
        record.timings["tracking_finish_s"] = round(time.perf_counter() - t0, 4)
        record.timings["mlflow_children_s"] = round(self.busy_s, 4)


def _open_parent(sweep: _Sweep) -> tuple[Any, set[tuple[int | None, int]]]:
    from flows.tracking import MlflowTracker, flatten_params

    settings = sweep.settings
    record = sweep.record
    if record.mlflow_run_id and record.mlflow_experiment_id:  # resumed: the same parent run
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=settings.mlflow_uri)
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
    params = {
        "sweep.method": record.method,
        "sweep.objective": record.objective,
        "sweep.params": ", ".join(record.params),
        "sweep.executor": record.executor,
        "sweep.workers": record.workers,
        **{f"sweep.option.{k}": v for k, v in sweep.sweep.options.items()},
        **flatten_params(sweep.ir),
    }
    tracker.log_all(params=params, metrics={}, tags={})
    return tracker, set()


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
