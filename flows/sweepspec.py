"""What a sweep is asked to do and what it stores: :class:`SweepSpec` in, a sweep directory out.

A sweep runs the trials of a pipeline's ``sweep`` block (and, with a ``walkforward`` line, one
search per fold). Everything it decides its results by travels in one frozen :class:`SweepSpec`
(a Prefect flow parameter; the web app and the CLI build it alike). What it produces lives in the
store, in ``sweeps/<sweep id>/``:

- ``spec.json`` — the :class:`SweepSpec` (the IR, the sweep block, the datasets' references):
  what ``resume`` and "open a trial as a run" start from;
- ``sweep.json`` — the :class:`SweepRecord`: status, progress, the best trial, the overfitting
  statistics, the walk-forward folds; rewritten as the sweep goes (atomically);
- ``trials/<part>.jsonl`` — one :class:`TrialRow` per finished trial, one file per chunk (so
  chunks on different machines never write the same file); ``resume`` reads them to skip
  finished trials;
- ``stages/<part>.jsonl`` — an Optuna sweep with a pruner: each trial's evaluations on the
  prefixes of the window (its intermediate values), never read as trials;
- ``trials/<part>.blocks.npy`` — each trial's per-block return sums (the PBO's input), in the
  same order as its jsonl;
- ``equity/trial-<n>.parquet`` — the equity curves of the top K trials (``top_k``); any other
  trial is recomputed when opened (a trial is deterministic: a run spec with overrides);
- ``oos_equity.parquet`` — walk-forward: the out-of-sample segments stitched into one curve.

No Prefect here: the API reads these files with :func:`read_sweep_record` /
:func:`read_trials` without importing the flows that write them.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flows.spec import RunSpec

__all__ = [
    "SWEEPS_DIR",
    "FoldRow",
    "SweepRecord",
    "SweepSpec",
    "SweepStatus",
    "TrialRow",
    "finite_json",
    "process_dir",
    "read_sweep_record",
    "read_sweep_spec",
    "read_trials",
    "sweep_dir",
    "write_json_atomic",
]

SWEEPS_DIR = "sweeps"
SweepStatus = Literal["pending", "running", "completed", "failed", "cancelled"]
Executor = Literal["local", "pool", "dask"]


class SweepSpec(BaseModel):
    """One sweep, fully described.

    - ``sweep_id``: the sweep's id (its directory under ``sweeps/``).
    - ``run``: the base run spec: the IR (with its ``sweep`` block and optional
      ``walkforward``), the store, data references, seed. A trial is ``run`` with overrides.
    - ``executor``: where trials run — ``local`` (a process pool in the sweep's own process
      tree), ``pool`` (chunks as flow runs of the chunk deployment on the work pool: any
      worker takes one), ``dask`` (the chunks' trials on a Dask cluster through prefect-dask).
    - ``workers``: how many processes / workers / Dask workers to spread over.
    - ``chunk_size``: trials per chunk (None: from the trial count and ``workers``).
    - ``top_k``: how many best trials keep their equity curve.
    - ``dask_address``: a running Dask scheduler (None: a ``LocalCluster`` of ``workers``).
    - ``resume``: finish a sweep that stopped: trials already in ``trials/`` are not rerun.
    - ``optuna_storage``: the Optuna study's storage URL (an SQLAlchemy URL: the web app's
      PostgreSQL, or an SQLite file for the CLI); None: ``<store>/sweeps/optuna.db``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    sweep_id: str
    run: RunSpec
    executor: Executor = "local"
    workers: int = Field(default=2, ge=1, le=256)
    chunk_size: int | None = Field(default=None, ge=1, le=100_000)
    top_k: int = Field(default=10, ge=0, le=1000)
    dask_address: str | None = None
    resume: bool = False
    optuna_storage: str | None = None
    submitted_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The spec as JSON-ready data."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: str | bytes | dict[str, Any]) -> SweepSpec:
        """A spec from its JSON (text or parsed)."""
        if isinstance(data, str | bytes):
            return cls.model_validate_json(data)
        return cls.model_validate(data)


class TrialRow(BaseModel):
    """One finished trial (a line of ``trials/*.jsonl``).

    ``params`` are the swept values keyed ``"node.param"``; ``metrics`` the objective node's
    numeric metrics (``None`` where the metric is null); ``objective`` the objective's value
    (``None`` when the trial failed or the metric is null). ``fold`` is the walk-forward fold
    whose training window the trial was searched on (None without walk-forward). ``moments`` and
    ``blocks`` feed the deflated Sharpe ratio and the PBO; an API leaves them out.

    ``status`` is ``pruned`` for an Optuna trial its pruner stopped early (``pruner=...``): it
    was evaluated only on prefixes of the window, so it has no ``objective``, ``metrics``,
    ``moments`` or ``blocks`` (it is never the best and stays out of the Sharpe variance and
    the PBO; it counts as a trial tried in the deflated Sharpe ratio's N). ``pruned_stage`` is
    the stage it was stopped at (of the block's ``prune_steps``) and ``stage_objective`` the
    objective on that stage's prefix.
    """

    model_config = ConfigDict(extra="ignore")

    trial: int
    fold: int | None = None
    params: dict[str, Any]
    metrics: dict[str, float | None] = Field(default_factory=dict)
    objective: float | None = None
    status: Literal["completed", "failed", "pruned"] = "completed"
    error: str | None = None
    seconds: float = 0.0
    # what the overfitting statistics need of the trial's per-bar returns (not for display):
    # [n, mean, std, skew, kurtosis] and the CSCV block sums [[count, Σr, Σr²], ...]
    moments: list[float] | None = None
    blocks: list[list[float]] | None = None
    pruned_stage: int | None = None
    stage_objective: float | None = None


class FoldRow(BaseModel):
    """One walk-forward fold: its windows, the params its search chose, and how they did in
    sample (the training window) and out of sample (the test window that follows)."""

    index: int
    train_begin: str
    train_end: str
    test_begin: str
    test_end: str
    train_bars: int
    test_bars: int
    partial: bool = False
    n_trials: int = 0
    best_trial: int | None = None
    best_params: dict[str, Any] = Field(default_factory=dict)
    is_metrics: dict[str, float | None] = Field(default_factory=dict)
    oos_metrics: dict[str, float | None] = Field(default_factory=dict)
    is_objective: float | None = None
    oos_objective: float | None = None
    deflated_sharpe: float | None = None
    pbo: float | None = None


class Overfit(BaseModel):
    """The honest statistics beside the best result (see :mod:`flows.overfitting`)."""

    n_trials: int
    deflated_sharpe: float | None = None
    pbo: float | None = None
    pbo_blocks: int | None = None
    best_sharpe_per_bar: float | None = None
    expected_max_sharpe_per_bar: float | None = None
    sharpe_variance: float | None = None
    explanation: str = ""
    warning: str | None = None  # set when the best DSR is below 0.95
    notes: list[str] = Field(default_factory=list)


class BestTrial(BaseModel):
    """The winning trial."""

    trial: int
    params: dict[str, Any]
    metrics: dict[str, float | None] = Field(default_factory=dict)
    objective: float | None = None


class PaceMark(BaseModel):
    """When the flow first saw a trial of this (re)start finish, and the trials done then: the
    ETA's pace counts from here, so the start-up (imports, compiling, MLflow) does not
    stretch the first estimates."""

    at: float
    done: int


class SweepRecord(BaseModel):
    """A sweep's state and results (``sweep.json``), rewritten as it goes.

    ``n_trials`` is how many trials the sweep will run in all (every fold's, for a walk-forward);
    ``done`` how many have finished (``failed`` of them failed, ``pruned`` of them were stopped
    early by an Optuna pruner). ``objective`` is written as in
    the block (``maximize result.sharpe``); ``params`` lists the swept ``node.param`` names.
    ``walkforward_efficiency`` is the mean out-of-sample objective over the mean in-sample one
    (minimised: in-sample over out-of-sample; :func:`flows.walkforward.efficiency`); when that
    ratio would mean nothing (a mean in-sample objective not above 0, a fold without an
    out-of-sample objective) it is None and ``walkforward_efficiency_note`` says why.
    ``timings`` holds seconds (``trials_s``, ``tracking_s``, ``prefect_s``, ``total_s``).
    """

    model_config = ConfigDict(extra="ignore")

    sweep_id: str
    pipeline: str
    title: str | None = None
    ir_hash: str
    method: Literal["grid", "random", "optuna"]
    objective: str
    direction: Literal["maximize", "minimize"] = "maximize"
    params: list[str] = Field(default_factory=list)
    status: SweepStatus = "pending"
    n_trials: int = 0
    done: int = 0
    failed: int = 0
    pruned: int = 0
    best: BestTrial | None = None
    overfit: Overfit | None = None
    folds: list[FoldRow] | None = None
    walkforward_efficiency: float | None = None
    walkforward_efficiency_note: str | None = None
    executor: Executor = "local"
    workers: int = 1
    chunk_size: int | None = None
    chunks: int = 0
    flow_run_id: str | None = None
    chunk_flow_run_ids: list[str] = Field(default_factory=list)
    chunk_pids: dict[str, int] = Field(default_factory=dict)  # chunks evaluated, by process id
    mlflow_run_id: str | None = None
    mlflow_experiment_id: str | None = None
    error: str | None = None
    notes: list[str] = Field(default_factory=list)
    started_at: float | None = None
    ended_at: float | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    pace: PaceMark | None = None
    top_trials: list[int] = Field(default_factory=list)  # those with a stored equity curve

    @property
    def ended(self) -> bool:
        """Whether the sweep has stopped (completed, failed or cancelled)."""
        return self.status in ("completed", "failed", "cancelled")


def finite_json(data: Any) -> Any:
    """``data`` made JSON-safe: NaN and infinities (a degenerate statistic) become null, in
    nested dicts and lists too."""
    if isinstance(data, float):
        return data if data == data and abs(data) != float("inf") else None
    if isinstance(data, dict):
        return {k: finite_json(v) for k, v in data.items()}
    if isinstance(data, list):
        return [finite_json(v) for v in data]
    return data


def sweep_dir(store_root: Path, sweep_id: str) -> Path:
    """The sweep's directory in the store."""
    if not sweep_id or "/" in sweep_id or sweep_id.startswith("."):
        raise ValueError(f"not a sweep id: {sweep_id!r}")
    return Path(store_root) / SWEEPS_DIR / sweep_id


def process_dir(directory: Path, flow_run_id: str) -> Path:
    """Where a sweep's flow run (its parent, or one of its chunks on the work pool) leaves its
    process marker (:mod:`flows.liveness`): one folder per flow run, so a resumed sweep's new
    process is never judged by the last attempt's dead one."""
    if not flow_run_id or "/" in flow_run_id or flow_run_id.startswith("."):
        raise ValueError(f"not a flow run id: {flow_run_id!r}")
    return directory / "processes" / flow_run_id


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` through a temporary file and a rename (readers never see half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str, allow_nan=False))
    os.replace(tmp, path)


def read_sweep_record(directory: Path) -> SweepRecord | None:
    """The sweep's ``sweep.json`` (None when it is not there yet)."""
    try:
        return SweepRecord.model_validate_json((Path(directory) / "sweep.json").read_text())
    except FileNotFoundError:
        return None


def read_sweep_spec(directory: Path) -> SweepSpec | None:
    """The sweep's ``spec.json`` (None when it is not there)."""
    try:
        return SweepSpec.from_json((Path(directory) / "spec.json").read_text())
    except FileNotFoundError:
        return None


def read_trials(directory: Path, fold: int | None = None) -> Iterator[TrialRow]:
    """Every finished trial (of one fold when ``fold`` is given), chunk file by chunk file. A
    half-written last line (a chunk killed mid-write) is skipped."""
    folder = Path(directory) / "trials"
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.jsonl")):
        with path.open() as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break  # a line cut short by a crash: the trial is rerun on resume
                try:
                    row = TrialRow.model_validate_json(line)
                except ValueError:
                    continue
                if fold is None or row.fold == fold:
                    yield row
