"""Pipeline runs: one row per run, mirroring its Prefect flow run and its run record.

The row is what lists and summaries read (indexed, no Prefect call); the status sync
(:mod:`api.services.prefect_sync`) keeps ``status``, ``node_states``, ``metrics`` and ``error``
in step with the flow run's state and the run directory's ``run.json``.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import Column, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from api.models.common import as_utc, timestamp_field


class RunStatus(StrEnum):
    """Where a run is; the last three are final."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        """Whether the run has ended."""
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


ACTIVE_STATUSES = (RunStatus.PENDING.value, RunStatus.RUNNING.value)
Trigger = Literal["manual", "schedule"]
NodeState = Literal["pending", "running", "completed", "cached", "failed", "cancelled"]


class Run(SQLModel, table=True):
    """A stored run. ``run_key`` names its directory (``<data_dir>/runs/<run_key>``)."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_pipeline_id_id", "pipeline_id", "id"),
        Index("ix_runs_owner_id_id", "owner_id", "id"),
        UniqueConstraint("started_by_id", "idempotency_key", name="uq_runs_idempotency"),
    )

    id: int | None = Field(default=None, primary_key=True)
    pipeline_id: int = Field(sa_column=Column(Integer, ForeignKey("pipelines.id"), nullable=False))
    version: int
    owner_id: int = Field(sa_column=Column(Integer, ForeignKey("users.id"), nullable=False))
    started_by_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("users.id"), nullable=True)
    )
    schedule_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("schedules.id", ondelete="SET NULL"), nullable=True),
    )
    trigger: str = Field(default="manual", max_length=16)
    status: str = Field(
        default=RunStatus.PENDING.value, sa_column=Column(String(16), nullable=False, index=True)
    )
    run_key: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    prefect_flow_run_id: str | None = Field(
        default=None, sa_column=Column(String(36), nullable=True, unique=True)
    )
    ir_hash: str = Field(max_length=64)
    idempotency_key: str | None = Field(default=None, max_length=128)
    error: str | None = Field(default=None, sa_type=Text)
    node_states_json: str = Field(default="{}", sa_type=Text)
    metrics_json: str | None = Field(default=None, sa_type=Text)
    mlflow_run_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = timestamp_field()
    started_at: datetime | None = timestamp_field(nullable=True)
    finished_at: datetime | None = timestamp_field(nullable=True)
    cancel_requested_at: datetime | None = timestamp_field(nullable=True)
    # a sweep's trial opened as a run: which sweep, trial and walk-forward fold
    sweep_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("sweeps.id", ondelete="SET NULL"), nullable=True),
    )
    sweep_trial: int | None = None
    sweep_fold: int | None = None


class RunCreate(BaseModel):
    """``POST /api/pipelines/{id}/runs``: which version (default: the latest)."""

    version: int | None = None


class MetricsPreview(BaseModel):
    """The headline numbers of a finished run (None where the pipeline has no such metric)."""

    sharpe: float | None = None
    total_return: float | None = None
    max_drawdown: float | None = None
    num_trades: int | None = None


class RunSummary(BaseModel):
    """A run in a list."""

    id: int
    pipeline_id: int
    version: int
    status: RunStatus
    trigger: Trigger
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    metrics: MetricsPreview | None
    pipeline_name: str | None = Field(None, description="The pipeline's name (an identifier).")
    pipeline_title: str | None = Field(None, description="The pipeline's title, if it has one.")

    @classmethod
    def of(
        cls, run: Run, pipeline_name: str | None = None, pipeline_title: str | None = None
    ) -> RunSummary:
        """The summary of a stored run (with its pipeline's name and title when given)."""
        return cls(
            id=run.id or 0,
            pipeline_id=run.pipeline_id,
            pipeline_name=pipeline_name,
            pipeline_title=pipeline_title,
            version=run.version,
            status=RunStatus(run.status),
            trigger=run.trigger,  # type: ignore[arg-type]
            created_at=as_utc(run.created_at),
            started_at=as_utc(run.started_at) if run.started_at else None,
            finished_at=as_utc(run.finished_at) if run.finished_at else None,
            metrics=(
                MetricsPreview.model_validate(json.loads(run.metrics_json))
                if run.metrics_json
                else None
            ),
        )


class RunSandbox(BaseModel):
    """How the run's custom nodes ran: the runner and each language's image digest."""

    runner: Literal["docker", "process"]
    images: dict[str, str]


class SweepOrigin(BaseModel):
    """The sweep trial a run was opened from (the sweep page's heatmap, scatter or table)."""

    sweep_id: int
    trial: int
    fold: int | None = Field(None, description="The walk-forward fold (0-based), if any.")


class ModelEpoch(BaseModel):
    """One training epoch: the mean training loss and the validation loss (None without a
    validation split)."""

    epoch: int
    train_loss: float | None
    val_loss: float | None


class RunModel(BaseModel):
    """A model the run trained: its training curve and summary, its file, its registry entry."""

    key: str = Field(description="The step id (``step.port`` for a second model output).")
    node: str
    type: str = Field(description="The node type that trained it (``train_torch``).")
    kind: str | None = Field(None, description="The model file's kind (``torch_classifier``).")
    bytes: int = Field(description="The model file's size.")
    sha256: str
    history: list[ModelEpoch]
    summary: dict[str, Any] = Field(
        default_factory=dict,
        description="Architecture, window, best and last epoch, best validation loss, params.",
    )
    registered_name: str | None = None
    registered_version: int | None = None
    alias: str | None = None
    registry_url: str | None = Field(
        None, description="The version's page in the MLflow UI (None when it is not running)."
    )
    download_url: str = Field(description="The model file (``.afmodel``) of this run.")


class RunData(BaseModel):
    """What one data step of the run read: a catalog dataset at its exact version, or a file
    (by the sha256 of its bytes)."""

    node: str
    type: str
    dataset: str | None = Field(None, description="The dataset's name (catalog and uploads).")
    version: str | None = Field(None, description="The catalog version's full hash.")
    sha256: str | None = Field(None, description="A file's or an upload's sha256.")
    symbols: list[str] | None = Field(None, description="The symbols the step asked for.")


class RunPublic(RunSummary):
    """A run with its node states, error, links and sandbox; ``sweep``: the sweep trial it was
    opened from."""

    node_states: dict[str, NodeState]
    error: str | None
    run_name: str | None = Field(
        None, description="The run's name in Prefect and MLflow: ``<title slug>/<run id>``."
    )
    mlflow_run_id: str | None
    mlflow_url: str | None
    prefect_flow_run_id: str | None
    prefect_url: str | None
    ir_hash: str
    sandbox: RunSandbox | None = None
    sweep: SweepOrigin | None = None
    models: list[RunModel] = Field(
        default_factory=list, description="The models the run trained (once it completed)."
    )
    data: list[RunData] = Field(
        default_factory=list,
        description="The data each data step read (once the run ended): re-running the run's "
        "IR reads the same versions.",
    )


class LogLine(BaseModel):
    """One line of a run's log (continuation lines of a traceback are part of its message)."""

    seq: int
    ts: datetime | None
    node_id: str | None
    level: str
    message: str


class EquityPoint(BaseModel):
    """One point of the equity curve (drawdown as a negative fraction of the peak)."""

    ts: datetime
    equity: float
    drawdown: float


class RunResults(BaseModel):
    """A finished run's metrics, equity curve (at most 5,000 points, shape kept) and trades
    (the first 10,000; ``trades_total`` counts all of them, the trades.csv export has them)."""

    metrics: dict[str, Any]
    equity: list[EquityPoint]
    trades: list[dict[str, Any]]
    trades_total: int = Field(
        0, ge=0, description="Trades the run made; more than len(trades) when the list is cut."
    )


class PriceBar(BaseModel):
    """One candle of the traded data (several bars merged when the run has more than fit)."""

    ts: datetime
    open: float
    high: float
    low: float
    close: float


class Benchmark(BaseModel):
    """Buy and hold of the run's data with the same starting cash: one buy at the open of the
    second bar (as a signal of 1 on the first bar is executed), paying the run's fee and
    slippage once, never sold, marked at every close."""

    cash: float
    fee_bps: float
    slippage_bps: float
    note: str = Field(description="How the benchmark was computed, in a sentence.")
    equity: list[EquityPoint] = Field(description="At the same timestamps as the run's curve.")
    total_return: float | None
    cagr: float | None
    max_drawdown: float | None


class MonthlyReturns(BaseModel):
    """One year of the monthly returns table: ``months[0]`` is January; None where the equity
    curve has no bar in that month. ``total`` compounds the year's months."""

    year: int
    months: list[float | None] = Field(min_length=12, max_length=12)
    total: float | None


class RunAnalysis(BaseModel):
    """What the run page draws beside the equity curve, computed from the run's files. A
    ``*_note`` says why a part is missing (e.g. a pipeline without a backtest has no prices)."""

    prices: list[PriceBar]
    price_bars: int = Field(0, ge=0, description="Bars in the run's data.")
    bars_per_candle: int = Field(1, ge=1, description="Bars merged into one candle.")
    prices_note: str | None = None
    benchmark: Benchmark | None = None
    benchmark_note: str | None = None
    monthly: list[MonthlyReturns]
    monthly_note: str | None = None


class RunOutput(BaseModel):
    """One output port of a node that ran (its value is in the artifact store)."""

    node: str
    node_type: str
    port: str
    type: str = Field(description="The port's type (ohlcv, frame, equity, trades, ...).")
    primary: bool = Field(
        False, description="The node is the run's primary result (its metrics are the run's)."
    )
    summary: str | None = Field(
        None,
        description="One line about a value that is neither a table nor a series (ticks: its "
        "event count and time range); null for tables and series.",
    )


class OutputFrame(BaseModel):
    """A table or series a node produced, for a chart: column-major, at most ``max_rows`` rows.

    When the stored frame has more rows, runs of ``step`` consecutive rows are merged into one:
    numeric columns by their mean (NaN skipped), other columns by the run's last value, the
    index by the run's first value. NaN and infinities are null."""

    node: str
    port: str
    type: str
    index_name: str | None
    index: list[Any] = Field(description="ISO 8601 UTC timestamps for a time index.")
    columns: list[str]
    data: list[list[Any]] = Field(description="One list per column, ``len(index)`` values each.")
    rows: int = Field(ge=0, description="Rows of the stored frame.")
    step: int = Field(1, ge=1, description="Stored rows merged into each row sent.")


class TickFill(BaseModel):
    """One fill of a tick backtest, for a marker on the mid-price chart."""

    ts: str = Field(description="Exchange time of the fill, ISO 8601 UTC to the nanosecond.")
    time_ms: int = Field(description="The same time in milliseconds since the epoch.")
    side: Literal["buy", "sell"]
    price: float
    qty: float
    liquidity: Literal["maker", "taker"]
    fee: float | None = None


class TickChart(BaseModel):
    """A ``tick_backtest`` step's mid price, position and inventory over time, with its fills.

    The equity records (one every ``record_interval_ms``) are grouped into buckets of
    ``bucket_s`` whole seconds (``time``: each bucket's start, UTC seconds, strictly
    increasing; empty buckets left out) so that a chart on a seconds time axis draws them and
    nothing extreme is lost: the mid as open / high / low / close of the bucket, position and
    inventory (position × mid) as their minimum, maximum and last value."""

    node: str = Field(description="The tick_backtest step drawn.")
    records: int = Field(ge=0, description="Equity records of the step.")
    bucket_s: int = Field(ge=1, description="Seconds per point.")
    time: list[int]
    mid_open: list[float | None]
    mid_high: list[float | None]
    mid_low: list[float | None]
    mid_close: list[float | None]
    position_min: list[float | None]
    position_max: list[float | None]
    position_last: list[float | None]
    inventory_min: list[float | None]
    inventory_max: list[float | None]
    inventory_last: list[float | None]
    fills: list[TickFill] = Field(description="The first ``max_fills`` fills in time order.")
    fills_total: int = Field(ge=0, description="All fills of the step.")
