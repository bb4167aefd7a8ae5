"""``tick_backtest``: a built-in strategy on order-book events in hftbacktest, with its latency,
queue-position and fee models; outputs in the bar backtester's shapes (docs/tick-backtest.md)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from nodes.base import Node, Port, PortType, register
from nodes.builtin.metrics import METRIC_KEYS, TEXT_METRIC_KEYS, log_metric_notes
from nodes.builtin.tickparams import TickBacktestParams, TickVenueParams
from nodes.errors import DataError, NodeError

if TYPE_CHECKING:
    import numpy as np

P = TypeVar("P", bound=TickVenueParams)

__all__ = [
    "EQUITY_COLUMNS",
    "FILL_COLUMNS",
    "TICK_INPUTS",
    "TICK_OUTPUTS",
    "TickBacktest",
    "run_tick_backtest",
]

# the tables' columns (here, not in _tickoutputs: the registry must not import pandas)
EQUITY_COLUMNS = (
    "equity",
    "cash",
    "position",
    "drawdown",
    "returns",
    "mid",
    "inventory",
    "best_bid",
    "best_ask",
)
FILL_COLUMNS = (
    "ts",
    "side",
    "units",
    "price",
    "fee",
    "order_id",
    "liquidity",
    "submit_ts",
    "queue_time_ms",
    "seen_ts",
)
TRADE_COLUMNS = (
    "entry_ts",
    "exit_ts",
    "side",
    "units",
    "entry_price",
    "exit_price",
    "fees",
    "pnl",
    "return",
    "fills",
    "is_open",
)
ORDER_LOG_COLUMNS = (
    "order_id",
    "submit_ts",
    "side",
    "price",
    "qty",
    "time_in_force",
    "status",
    "filled_qty",
    "first_fill_ts",
    "last_fill_ts",
    "cancel_ts",
    "queue_ahead",
)
FILL_METRIC_KEYS = (
    "events",
    "orders_submitted",
    "orders_filled",
    "orders_cancelled",
    "fill_ratio",
    "fills",
    "maker_fills",
    "taker_fills",
    "maker_fees",
    "taker_fees",
    "traded_units",
    "traded_value",
    "queue_time_mean_ms",
    "queue_time_median_ms",
    "max_abs_inventory",
    "final_position",
)


#: the ports of both tick backtest nodes (built-in and custom strategies)
TICK_INPUTS = (
    Port("ticks", PortType.TICKS, "one asset's order-book events"),
    Port(
        "order_latency",
        PortType.FRAME,
        "recorded order latencies (req_ts, exch_ts, resp_ts in ns) for latency='recorded'",
        optional=True,
    ),
)
TICK_OUTPUTS = (
    Port("equity", PortType.EQUITY, "equity, position and mid per record", columns=EQUITY_COLUMNS),
    Port("trades", PortType.TRADES, "round-trip trades", columns=TRADE_COLUMNS),
    Port("metrics", PortType.METRICS, "performance metrics and fill statistics"),
    Port("orders", PortType.ORDERS, "fills, one row each", columns=FILL_COLUMNS),
    Port(
        "order_log",
        PortType.FRAME,
        "orders, one row each with status",
        columns=ORDER_LOG_COLUMNS,
    ),
)


def resolve_instrument(params: P, ticks: Any) -> P:
    """``params`` with tick and lot size filled from the data's hints where not given; a
    NodeError when neither says, or when the quantities are not lot multiples."""
    from nodes.ticks import tick_meta

    meta = tick_meta(ticks)
    tick = params.tick_size if params.tick_size is not None else meta.tick_size
    lot = params.lot_size if params.lot_size is not None else meta.lot_size
    for name, value in (("tick_size", tick), ("lot_size", lot)):
        if value is None:
            raise NodeError(
                f"tick_backtest: give {name}=...: the tick data does not say its {name}"
            )
    try:
        return type(params).model_validate(
            params.model_dump() | {"tick_size": tick, "lot_size": lot}
        )
    except ValueError as exc:
        raise NodeError(f"tick_backtest: {exc}") from exc


def run_tick_backtest(
    ticks: np.ndarray,
    params: TickBacktestParams,
    order_latency: Any | None = None,
    *,
    tables: bool = True,
) -> dict[str, Any]:
    """Simulate ``params.strategy`` on one asset's events and shape the outputs (the pure core
    of the node: no pipeline, no context)."""
    from nodes.builtin._tickcore import simulate
    from nodes.builtin._tickoutputs import shape

    params = resolve_instrument(params, ticks)
    return shape(simulate(ticks, params, order_latency), params, tables=tables)


@register
class TickBacktest(Node):
    """Tick-level backtest of a built-in strategy on one asset's order-book events, simulated
    by hftbacktest (order latency, queue position, maker/taker fees, partial fills).

    Strategies (numba-compiled, acting every ``update_interval_ms`` of exchange time):

    - ``grid_mm``: a grid market maker: ``grid_levels`` post-only quotes a side,
      ``grid_spacing_ticks`` apart, the first ``half_spread_ticks`` from a reservation price
      (the mid moved ``skew_ticks`` against each ``order_qty`` of inventory), never inside the
      best bid / ask; a side stops quoting at ``max_position``.
    - ``imbalance_taker``: the top-of-book imbalance over ``imbalance_levels`` ticks beyond
      ``imbalance_threshold`` sets a target of ± ``max_position``; it joins the best price
      post-only when at most ``max_queue_ahead`` is queued there (else it takes), and replaces
      a resting order still behind others after ``patience_ms`` (or no longer at the best
      price) by an IOC order.

    Outputs: ``equity`` (every ``record_interval_ms``: equity = cash + position × mid, cash,
    position, drawdown, returns, mid, inventory = position × mid, best bid / ask), ``orders``
    (one row per **fill**: ts at the exchange, side, units, price, fee, order id, maker or
    taker, submit ts, queue time), ``trades`` (round trips), ``metrics`` (as the backtest's,
    plus fill statistics: fill ratio, queue time, maker / taker fills and fees, max
    |inventory|), ``order_log`` (one row per **order** with its final status).
    Tick and lot size default to the data's hints. Details: docs/tick-backtest.md.
    """

    name = "tick_backtest"
    category = "backtest"
    summary = "Tick-level backtest (hftbacktest) of a market-making or taker strategy"
    inputs = TICK_INPUTS
    outputs = TICK_OUTPUTS
    params_model = TickBacktestParams
    metric_keys = METRIC_KEYS + FILL_METRIC_KEYS
    text_metric_keys = TEXT_METRIC_KEYS

    def run(self, inputs: Mapping[str, Any], params: TickBacktestParams) -> dict[str, Any]:
        """Simulate and report (ppy, warnings and notes go to the node's log)."""
        wanted = self.ctx.outputs
        tables = wanted is None or not wanted.isdisjoint({"trades", "orders", "order_log"})
        latency = inputs.get("order_latency")
        if params.order_latency_file is not None:
            if latency is not None:
                raise NodeError(
                    "tick_backtest: give the order_latency input or order_latency_file, not both"
                )
            latency = read_latency_file(self._latency_path(params), params.order_latency_file)
        out = run_tick_backtest(inputs["ticks"], params, latency, tables=tables)
        metrics = out["metrics"]
        self.ctx.log(
            f"{metrics['events']:,} events, {metrics['orders_submitted']:,} orders, "
            f"{metrics['fills']:,} fills ({metrics['maker_fills']:,} maker)"
        )
        log_metric_notes(self.ctx.log, metrics)
        return out

    def fingerprint(self, params: TickBacktestParams) -> str | None:
        """sha256 of the order latency file's bytes, when one is read (else None)."""
        from nodes.data import file_sha256

        if params.order_latency_file is None:
            return None
        return file_sha256(self._latency_path(params))

    def _latency_path(self, params: TickBacktestParams) -> Path:
        assert params.order_latency_file is not None
        path = self.ctx.resolve_path(params.order_latency_file)
        if not path.is_file():
            raise DataError(
                "FILE_NOT_FOUND",
                self.ctx.missing_file(params.order_latency_file),
                source=params.order_latency_file,
            )
        return path


def read_latency_file(path: Path, name: str) -> Any:
    """Recorded order latencies from a CSV (columns req_ts, exch_ts, resp_ts) or an .npz of
    hftbacktest's latency rows (its first array); checked by ``as_order_latency``."""
    import numpy as np
    import pandas as pd

    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            return archive[archive.files[0]]
    try:
        return pd.read_csv(path, usecols=["req_ts", "exch_ts", "resp_ts"])
    except ValueError as exc:
        raise DataError(
            "MISSING_COLUMNS", f"{exc} (need req_ts, exch_ts, resp_ts)", source=name
        ) from exc
