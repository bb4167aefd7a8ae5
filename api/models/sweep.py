"""Sweeps: one row per sweep started from the web app, mirroring its parent flow run and its
``sweep.json`` (:class:`flows.sweepspec.SweepRecord`).

The row is what lists read (no file, no Prefect call); the page reads the sweep directory
itself (progress, best trial, overfitting statistics, folds, trials) through
:mod:`api.services.sweeps`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import Column, Float, ForeignKey, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from api.models.common import timestamp_field
from flows.sweepspec import SweepRecord

SweepState = Literal["pending", "running", "completed", "failed", "cancelled"]
ACTIVE_SWEEP_STATUSES = ("pending", "running")


class Sweep(SQLModel, table=True):
    """A stored sweep. ``sweep_key`` names its directory (``<store>/sweeps/<sweep_key>``)."""

    __tablename__ = "sweeps"
    __table_args__ = (
        Index("ix_sweeps_pipeline_id_id", "pipeline_id", "id"),
        Index("ix_sweeps_owner_id_id", "owner_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    sweep_key: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    pipeline_id: int = Field(sa_column=Column(Integer, ForeignKey("pipelines.id"), nullable=False))
    version: int
    owner_id: int = Field(sa_column=Column(Integer, ForeignKey("users.id"), nullable=False))
    started_by_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("users.id"), nullable=True)
    )
    status: str = Field(default="pending", sa_column=Column(String(16), nullable=False, index=True))
    method: str = Field(default="grid", max_length=16)
    objective: str = Field(default="", max_length=256)
    walkforward: bool = False
    prefect_flow_run_id: str | None = Field(default=None, max_length=36)
    ir_hash: str = Field(max_length=64)
    n_trials: int = 0
    done: int = 0
    failed: int = 0
    best_objective: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    best_trial: int | None = None
    error: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = timestamp_field()
    finished_at: datetime | None = timestamp_field(nullable=True)
    cancel_requested_at: datetime | None = timestamp_field(nullable=True)


class SweepCreate(BaseModel):
    """``POST /api/pipelines/{id}/sweeps``: which version (default: the latest)."""

    version: int | None = None


class SweepSummary(BaseModel):
    """A sweep in a list."""

    id: int
    pipeline_id: int
    pipeline_name: str | None = None
    pipeline_title: str | None = None
    version: int
    status: SweepState
    method: str
    objective: str
    walkforward: bool
    n_trials: int
    done: int
    failed: int
    best_objective: float | None
    best_trial: int | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class SweepPublic(SweepSummary):
    """A sweep with its record (``sweep.json``: progress, best, overfitting statistics, folds,
    timings; None before the flow wrote it), the spec's summary and links."""

    sweep_key: str
    direction: Literal["maximize", "minimize"] = "maximize"
    params: list[str]
    record: SweepRecord | None
    executor: str
    workers: int
    eta_s: float | None = None
    elapsed_s: float | None = None
    prefect_flow_run_id: str | None
    prefect_url: str | None
    mlflow_url: str | None


class TrialItem(BaseModel):
    """One finished trial as the table shows it (a :class:`flows.sweepspec.TrialRow` without what
    only the statistics need)."""

    trial: int
    fold: int | None = None
    params: dict[str, Any]
    metrics: dict[str, float | None] = Field(default_factory=dict)
    objective: float | None = None
    status: Literal["completed", "failed", "pruned"] = "completed"
    error: str | None = None
    seconds: float = 0.0
    pruned_stage: int | None = None  # a pruned trial: the stage its pruner stopped it after
    stage_objective: float | None = None  # ... and its objective on that stage's data


class TrialPage(BaseModel):
    """A page of trials, sorted as asked; ``total`` counts every trial that matched."""

    items: list[TrialItem]
    total: int
    columns: list[str]


class HeatmapCell(BaseModel):
    """One (x, y) of the heatmap: the best trial there (by the objective) and its metric."""

    value: float | None
    trial: int | None
    fold: int | None = None


class Heatmap(BaseModel):
    """A grid over two swept params: ``cells[j][i]`` is (``x[i]``, ``y[j]``); null where no
    trial ran. ``min``/``max`` span the values (for the colour scale). ``x_binned``: ``x`` holds
    the middles of equal-width bins (a search with many distinct values), not the values."""

    x_param: str
    y_param: str
    x_binned: bool = False
    y_binned: bool = False
    metric: str
    x: list[Any]
    y: list[Any]
    cells: list[list[HeatmapCell]]
    min: float | None
    max: float | None


class OosPoint(BaseModel):
    """One point of the walk-forward out-of-sample curve."""

    ts: datetime
    equity: float
    fold: int | None = None


class OosEquity(BaseModel):
    """The stitched out-of-sample equity curve (at most 5,000 points, shape kept)."""

    points: list[OosPoint]
    note: str | None = None
