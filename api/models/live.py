"""The live side over HTTP: strategy modules, instances, their events, orders and widgets.

The tables are the live side's own (``live/tables.py``); these are the request and response
shapes of ``/api/strategies`` and ``/api/instances`` (api/routes/live.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.models.common import NO_NUL_PATTERN

Mode = Literal["off", "observe", "active"]


class StrategyIn(BaseModel):
    """``POST /api/strategies``: a new module, or a new version of the caller's module of that
    name when the code changed."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=256 * 1024, pattern=NO_NUL_PATTERN)
    message: str = Field(default="", max_length=500)


class StrategyVersionIn(BaseModel):
    """``POST /api/strategies/{id}/versions``."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=256 * 1024, pattern=NO_NUL_PATTERN)
    message: str = Field(default="", max_length=500)


class StrategyVersionPublic(BaseModel):
    """One saved version: the code, its hash and the ``CONFIG_SCHEMA`` read from it."""

    version: int
    code: str
    code_hash: str
    config_schema: dict[str, Any]
    message: str
    created_at: datetime


class StrategySummary(BaseModel):
    """A strategy module in a list."""

    id: int
    name: str
    owner: str
    latest_version: int
    instances: int
    updated_at: datetime
    can_edit: bool


class StrategyPublic(StrategySummary):
    """A strategy module with its latest version and the list of its versions."""

    latest: StrategyVersionPublic
    versions: list[int]


class InstanceCreate(BaseModel):
    """``POST /api/instances``: the identity (fixed for good), the config and the mode.

    ``feed``: ``{"kind": "replay", "dataset": "name"}`` (one of the caller's datasets) or
    ``{"kind": "replay", "path": "<file under the engine's data folder>"}``, with
    ``interval``, ``speed``, ``start``, ``warmup``; or ``{"kind": "binance", "interval": "1m"}``
    (Binance spot's public klines of ``market``) or ``{"kind": "binance_futures", "interval":
    "1m"}`` (Binance USD-M futures: a perpetual such as ``BTCUSDT`` or a delivery contract such
    as ``BTCUSDT_261225``), with ``warmup``. A Binance feed's ``interval`` is one of the market's
    kline intervals (futures have no ``1s``) and ``market`` a symbol of it.
    """

    model_config = ConfigDict(extra="forbid")

    strategy_id: int
    version: int | None = None
    account: str = Field(default="paper", min_length=1, max_length=64)
    market: str = Field(min_length=1, max_length=32)
    feed: dict[str, Any]
    config: dict[str, Any] = Field(default_factory=dict)
    mode: Mode = "off"
    initial_cash: float = Field(default=100_000.0, gt=0, le=1e15)
    fee_bps: float = Field(default=0.0, ge=0, le=10_000)
    slippage_bps: float = Field(default=0.0, ge=0, le=10_000)


class InstancePatch(BaseModel):
    """``PATCH /api/instances/{id}``: a new config, mode or strategy version (any of them)."""

    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any] | None = None
    mode: Mode | None = None
    version: int | None = None


class PositionPublic(BaseModel):
    symbol: str
    qty: float
    avg_price: float
    realized_pnl: float
    fees: float
    last_price: float | None


class InstancePublic(BaseModel):
    """An instance: identity, desired state, the engine's view of it, and its account."""

    id: str
    owner: str
    strategy_id: int
    strategy: str
    strategy_version: int
    latest_version: int
    account: str
    market: str
    feed: dict[str, Any]
    initial_cash: float
    fee_bps: float
    slippage_bps: float
    mode: Mode
    config: dict[str, Any]
    config_version: int
    config_schema: dict[str, Any]
    status: str
    status_reason: str | None
    status_at: datetime | None
    engine: str | None
    restarts: int
    last_bar_ts: datetime | None
    bars_seen: int
    cash: float
    equity: float
    pnl: float
    positions: list[PositionPublic]
    created_at: datetime
    updated_at: datetime
    can_edit: bool


class InstanceEventPublic(BaseModel):
    id: int
    at: datetime
    bar_ts: datetime | None
    kind: str
    message: str
    data: dict[str, Any] | None


class InstanceOrderPublic(BaseModel):
    client_id: str
    symbol: str
    side: str
    qty: float
    type: str
    limit_price: float | None
    status: str
    reason: str | None
    placed_bar_ts: datetime
    filled_bar_ts: datetime | None
    fill_price: float | None
    fee: float | None


class InstanceChangePublic(BaseModel):
    kind: str
    config_version: int
    config: dict[str, Any]
    mode: str
    user: str | None
    created_at: datetime


class WidgetsPublic(BaseModel):
    """What ``render()`` returned when last asked (widgets are rendered on demand only: this
    request asks the engine for a fresh rendering, which the next poll returns)."""

    widgets: list[dict[str, Any]]
    error: str | None
    rendered_at: datetime | None
    requested_at: datetime | None


class StreamSinkHealth(BaseModel):
    """One sink of a stream pipeline, as its worker last reported it."""

    model_config = ConfigDict(extra="allow")


class StreamPublic(BaseModel):
    """A stream pipeline's last health snapshot (``alphaforge stream`` writes it every second
    under the data dir's ``stream/<pipeline>/status.json``). ``reporting`` is False when a
    pipeline that says it runs has not written for :data:`api.services.live.STALE_S` seconds
    (its process is gone)."""

    pipeline: str
    state: str
    reporting: bool
    source: str | None
    interval: str | None
    bars: int
    events: int
    duplicates: int
    last_bar: str | None
    started_at: str | None
    ended_at: str | None
    written_at: str | None
    failure: str | None
    errors: list[Any]
    gaps: list[Any]
    sinks: dict[str, dict[str, Any]]
    last_events: list[dict[str, Any]]


# -- deployed stream pipelines (/api/streams) -------------------------------------------------

StreamDesired = Literal["running", "stopped"]


class StreamCreate(BaseModel):
    """``POST /api/streams``: deploy ``.af`` text, or the latest version of a saved pipeline
    (``pipeline_id``), with a ``stream { ... }`` block. ``name`` defaults to the pipeline's
    name; ``start`` asks the engine to run it at once."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(
        default=None, min_length=1, max_length=256 * 1024, pattern=NO_NUL_PATTERN
    )
    pipeline_id: int | None = None
    name: str | None = Field(default=None, min_length=1, max_length=64)
    start: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> StreamCreate:
        if (self.text is None) == (self.pipeline_id is None):
            raise ValueError("give either text or pipeline_id")
        return self


class StreamTextIn(BaseModel):
    """``PUT /api/streams/{id}/text``: a new text (the engine reloads a running deployment)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=256 * 1024, pattern=NO_NUL_PATTERN)


class StreamDeploymentPublic(StreamPublic):
    """A stream pipeline in the dashboard: a deployment the engine runs (``deployed``; its
    wish, status, lease holder and last health snapshot from the database), or one run from
    a terminal with ``alphaforge stream`` (``id`` null: read-only, its snapshot from its
    ``status.json``). ``status``: starting, warming, running, failed (``status_reason``),
    stopped, ended; the health fields (``state``, ``bars``, ``last_events``, ``sinks`` ...)
    are the pipeline's own."""

    id: str | None
    name: str
    deployed: bool
    owner: str | None
    desired: StreamDesired | None
    status: str
    status_reason: str | None
    status_at: datetime | None
    engine: str | None
    lease_until: datetime | None
    restarts: int
    last_error: str | None
    text_version: int | None
    ir_hash: str | None
    pipeline_id: int | None
    created_at: datetime | None
    updated_at: datetime | None
    can_edit: bool


class StreamTextPublic(BaseModel):
    """One text a deployment had."""

    version: int
    ir_hash: str
    user: str | None
    created_at: datetime


class StreamDeploymentDetail(StreamDeploymentPublic):
    """A deployment with its current text and the list of its texts (newest first)."""

    text: str
    texts: list[StreamTextPublic]
