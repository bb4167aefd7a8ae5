"""A strategy module backtested: recorded bars through ``on_tick`` with the paper venue's fills.

:func:`backtest_strategy` runs the same per-bar step as the engine
(:func:`runners.papertrade.step.step`) over a frame of bars, in active mode from the first bar,
in one sandbox (the host the caller gives: the Docker sandbox in production). A strategy's
backtest and its paper run on the same bars therefore place the same orders and fill them at
the same prices; the engine's tests check it bar by bar.
The results have the bar backtester's shapes (BACKTEST.md):

- ``equity``: per bar (ts index) ``equity`` (cash + position at the close), ``cash``,
  ``position``, ``drawdown`` (equity / running peak − 1), ``returns``;
- ``orders``: one row per fill (``ts`` the fill bar, ``side``, ``units``, ``price``, ``fee``,
  ``client_id``, ``placed``), and the rejected ones with their reason in ``rejections``;
- ``trades``: round trips (a trade opens when the position leaves 0 and closes when it comes
  back to 0; a flip closes one and opens the next at the same fill), with ``pnl`` after fees
  and ``return`` on the entry notional;
- ``metrics``: :func:`nodes.builtin.metrics.compute_metrics` on those, as the backtest node's.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from nodes.builtin.metrics import compute_metrics
from runners.papertrade.replay import ReplaySource
from runners.papertrade.step import step
from runners.papertrade.venue import Order, PaperVenue
from runners.strategyhost import StrategyHost

__all__ = ["StrategyBacktest", "backtest_strategy", "round_trips"]


@dataclass
class StrategyBacktest:
    """The results of :func:`backtest_strategy` (see the module doc)."""

    equity: pd.DataFrame
    orders: pd.DataFrame
    trades: pd.DataFrame
    metrics: dict[str, Any]
    rejections: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)


def backtest_strategy(
    host: StrategyHost,
    bars: pd.DataFrame,
    *,
    config: dict[str, Any],
    symbol: str = "ASSET",
    interval: str = "1d",
    cash: float = 100_000.0,
    fee_bps: float = 0.0,
    slippage_bps: float = 0.0,
    allow_short: bool = False,
    identity: dict[str, Any] | None = None,
) -> StrategyBacktest:
    """Run ``host``'s strategy over ``bars`` (see the module doc); stops the host at the end."""
    venue = PaperVenue(cash, fee_bps=fee_bps, slippage_bps=slippage_bps, allow_short=allow_short)
    source = ReplaySource(bars, interval=interval, speed=0, symbol=symbol)
    ident = identity or {"id": "backtest", "strategy": "?", "version": 0, "account": "backtest",
                         "market": symbol}  # fmt: skip
    rows: list[tuple[pd.Timestamp, float, float, float]] = []
    fills: list[Order] = []
    rejected: list[dict[str, Any]] = []
    events: list[tuple[str, str]] = []
    try:
        events.extend(("log", line) for line in host.start(ident, config, "active"))
        for bar in source.bars(_never()):
            write = step(venue, host, bar, "active")
            for order in write.orders:
                if order.status == "filled":
                    fills.append(order)
                elif order.status == "rejected":
                    rejected.append(order.to_json())
            stamp = bar.ts.isoformat()
            for kind, message, data in write.events:
                events.append((kind, f"{stamp} {message}"))
                if kind == "error" and data and data.get("traceback"):
                    events.append(("traceback", str(data["traceback"])))
            pos = venue.position(bar.symbol).qty
            rows.append((bar.ts, venue.equity(), venue.cash, pos))
    finally:
        host.stop()
    equity = pd.DataFrame(rows, columns=["ts", "equity", "cash", "position"]).set_index("ts")
    equity["drawdown"] = equity["equity"] / equity["equity"].cummax() - 1.0
    equity["returns"] = equity["equity"].pct_change().fillna(0.0)
    orders = _orders_frame(fills)
    trades = round_trips(fills)
    metrics = compute_metrics(equity, trades, orders=orders if len(orders) else None)
    return StrategyBacktest(equity, orders, trades, metrics, rejected, events)


def _never() -> threading.Event:
    return threading.Event()  # a backtest stops at its last bar


def _orders_frame(fills: list[Order]) -> pd.DataFrame:
    cols = ["ts", "side", "units", "price", "fee", "client_id", "placed"]
    if not fills:
        return pd.DataFrame(columns=cols)
    return pd.DataFrame(
        [
            (
                pd.Timestamp(o.filled_bar_ts),
                o.side,
                o.qty,
                o.fill_price,
                o.fee,
                o.client_id,
                pd.Timestamp(o.placed_bar_ts),
            )
            for o in fills
        ],
        columns=cols,
    )


def round_trips(fills: list[Order]) -> pd.DataFrame:
    """Round trips from fills in order (see the module doc)."""
    cols = ["entry_ts", "exit_ts", "side", "units", "entry_price", "exit_price", "fees", "pnl",
            "return", "is_open"]  # fmt: skip
    trades: list[dict[str, Any]] = []
    pos = 0.0
    cur: dict[str, Any] | None = None
    for o in fills:
        signed = o.qty if o.side == "buy" else -o.qty
        price, fee = float(o.fill_price or 0.0), float(o.fee or 0.0)
        remaining = signed
        while abs(remaining) > 1e-12:
            if cur is None:
                cur = {"entry_ts": o.filled_bar_ts, "side": "long" if remaining > 0 else "short",
                       "units": 0.0, "cost": 0.0, "flow": 0.0, "fees": 0.0}  # fmt: skip
            opening = pos == 0 or (pos > 0) == (remaining > 0)
            part = remaining if opening else -pos if abs(remaining) >= abs(pos) else remaining
            share = abs(part) / abs(signed)
            cur["fees"] += fee * share
            cur["flow"] -= part * price
            if opening:
                cur["units"] += abs(part)
                cur["cost"] += abs(part) * price
            pos += part
            remaining -= part
            if abs(pos) < 1e-12:
                pos = 0.0
                entry = cur["cost"] / cur["units"] if cur["units"] else float("nan")
                pnl = cur["flow"] - cur["fees"]
                exit_ts = pd.Timestamp(o.filled_bar_ts)
                trades.append({
                    "entry_ts": pd.Timestamp(cur["entry_ts"]), "exit_ts": exit_ts,
                    "side": cur["side"], "units": cur["units"], "entry_price": entry,
                    "exit_price": price, "fees": cur["fees"], "pnl": pnl,
                    "return": pnl / cur["cost"] if cur["cost"] else float("nan"), "is_open": False,
                })  # fmt: skip
                cur = None
    if cur is not None:
        entry = cur["cost"] / cur["units"] if cur["units"] else float("nan")
        trades.append({
            "entry_ts": pd.Timestamp(cur["entry_ts"]), "exit_ts": pd.NaT, "side": cur["side"],
            "units": cur["units"], "entry_price": entry, "exit_price": np.nan,
            "fees": cur["fees"], "pnl": np.nan, "return": np.nan, "is_open": True,
        })  # fmt: skip
    return pd.DataFrame(trades, columns=cols)
