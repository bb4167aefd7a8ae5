"""The params of ``tick_backtest``: the venue (tick and lot size, latency, queue, fees,
exchange model), the recording, and the built-in strategies' settings (docs/tick-backtest.md)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from nodes.builtin.metrics import AnnualisationParams

__all__ = ["QUEUE_MODELS", "TickBacktestParams", "TickVenueParams"]

#: queue model name -> the BacktestAsset method that sets it (the power ones take ``queue_power``)
QUEUE_MODELS: dict[str, str] = {
    "risk_averse": "risk_adverse_queue_model",
    "power_prob": "power_prob_queue_model",
    "power_prob2": "power_prob_queue_model2",
    "power_prob3": "power_prob_queue_model3",
    "log_prob": "log_prob_queue_model",
    "log_prob2": "log_prob_queue_model2",
}
QueueModel = Literal[
    "risk_averse", "power_prob", "power_prob2", "power_prob3", "log_prob", "log_prob2"
]


class TickVenueParams(AnnualisationParams):
    """The simulated venue and the recording of a tick backtest (shared by ``tick_backtest``
    and ``tick_strategy_backtest``).

    Times are in milliseconds (intervals) or nanoseconds (latencies, as hftbacktest and the
    data count them). Fees are in basis points of the traded value; a negative maker fee is a
    rebate. Without ``ppy`` or ``calendar`` the metrics annualise as a 24x7 market.
    """

    tick_size: float | None = Field(
        None, gt=0, description="Price increment of the instrument (default: the data's hint)."
    )
    lot_size: float | None = Field(
        None, gt=0, description="Quantity increment of the instrument (default: the data's)."
    )
    cash: float = Field(100_000.0, gt=0, description="Starting cash.")
    latency: Literal["constant", "recorded"] = Field(
        "constant",
        description="Order latency: constant (entry_latency_ns / response_latency_ns) or "
        "interpolated from recorded order latencies (the order_latency input).",
    )
    entry_latency_ns: int = Field(
        1_000_000, ge=0, le=60_000_000_000, description="Order entry latency (constant model)."
    )
    response_latency_ns: int = Field(
        1_000_000, ge=0, le=60_000_000_000, description="Order response latency (constant)."
    )
    order_latency_file: str | None = Field(
        None,
        description="Recorded order latencies for latency='recorded' when no order_latency "
        "input is bound: a CSV with req_ts, exch_ts, resp_ts (ns) or hftbacktest's latency .npz.",
    )
    latency_offset_ns: int = Field(
        0,
        ge=-60_000_000_000,
        le=60_000_000_000,
        description="Added to every recorded order latency (recorded model).",
    )
    queue_model: QueueModel = Field(
        "risk_averse",
        description="Queue position model: risk_averse (the queue ahead only advances on "
        "trades at the price), power_prob / power_prob2 / power_prob3 (a cancel is ahead of "
        "you with a probability set by queue_power), log_prob / log_prob2.",
    )
    queue_power: float = Field(
        3.0, gt=0, le=100, description="The n of the power_prob queue models."
    )
    maker_fee_bps: float = Field(
        0.0, ge=-100, le=1_000, description="Fee on maker fills in bps of value (< 0: rebate)."
    )
    taker_fee_bps: float = Field(
        0.0, ge=-100, le=1_000, description="Fee on taker fills in bps of value."
    )
    exchange: Literal["no_partial_fill", "partial_fill"] = Field(
        "no_partial_fill", description="Exchange model: orders fill whole, or partially."
    )
    record_interval_ms: float = Field(
        100.0, gt=0, le=86_400_000, description="Equity is recorded this often (exchange time)."
    )

    @model_validator(mode="after")
    def _whole_ns(self) -> TickVenueParams:
        if not _is_multiple(self.record_interval_ms * 1e6, 1.0):
            raise ValueError("record_interval_ms must be a whole number of nanoseconds")
        return self

    @property
    def record_ns(self) -> int:
        """The record interval in nanoseconds."""
        return round(self.record_interval_ms * 1e6)


class TickBacktestParams(TickVenueParams):
    """The venue plus the built-in strategies' settings (see :class:`TickVenueParams`)."""

    strategy: Literal["grid_mm", "imbalance_taker"] = Field(
        "grid_mm", description="Built-in strategy: a grid market maker or an imbalance taker."
    )
    update_interval_ms: float = Field(
        100.0, gt=0, le=86_400_000, description="The strategy acts this often."
    )
    order_qty: float = Field(1.0, gt=0, description="Quantity of each order (a lot multiple).")
    max_position: float = Field(
        10.0, gt=0, description="Largest position either way; a side stops quoting there."
    )
    grid_levels: int = Field(5, ge=1, le=100, description="grid_mm: quotes on each side.")
    grid_spacing_ticks: int = Field(
        1, ge=1, le=100_000, description="grid_mm: ticks between two quotes of a side."
    )
    half_spread_ticks: float = Field(
        1.0,
        ge=0,
        le=100_000,
        description="grid_mm: ticks from the reservation price to the "
        "first quote (never inside the best bid / ask: quotes are post-only).",
    )
    skew_ticks: float = Field(
        0.0,
        ge=0,
        le=100_000,
        description="grid_mm: ticks the reservation price moves against "
        "each order_qty of inventory.",
    )
    imbalance_threshold: float = Field(
        0.5, gt=0, lt=1, description="imbalance_taker: |imbalance| beyond which it trades."
    )
    imbalance_levels: int = Field(
        1, ge=1, le=1_000, description="imbalance_taker: ticks a side summed for imbalance."
    )
    max_queue_ahead: float = Field(
        10.0,
        ge=0,
        description="imbalance_taker: join the best price when at most this much "
        "is queued there, else take the opposite best with an IOC order.",
    )
    patience_ms: float = Field(
        500.0,
        ge=0,
        le=86_400_000,
        description="imbalance_taker: how long a resting order may wait with queue still "
        "ahead of it before it is replaced by a taker order.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> TickBacktestParams:
        for name in ("order_qty", "max_position"):
            value = getattr(self, name)
            if self.lot_size is not None and not _is_multiple(value, self.lot_size):
                raise ValueError(
                    f"{name}={value:g} is not a multiple of lot_size={self.lot_size:g}"
                )
        if self.max_position < self.order_qty:
            raise ValueError(
                f"max_position={self.max_position:g} is below order_qty={self.order_qty:g}"
            )
        for name in ("record_interval_ms", "update_interval_ms"):
            if not _is_multiple(getattr(self, name) * 1e6, 1.0):
                raise ValueError(f"{name} must be a whole number of nanoseconds")
        return self

    @property
    def update_ns(self) -> int:
        """The strategy's interval in nanoseconds."""
        return round(self.update_interval_ms * 1e6)


def _is_multiple(value: float, unit: float) -> bool:
    ratio = value / unit
    return math.isclose(ratio, round(ratio), rel_tol=1e-9, abs_tol=1e-9)
