"""One bar through a strategy and its venue: the step the engine and the backtest share.

:func:`step` is the whole per-bar contract, so that a strategy's live (paper) run and its
backtest cannot drift apart: the venue fills the orders of earlier bars on this bar first
(before the strategy sees it: fills at ``t+1``'s open, BACKTEST.md), then ``on_tick`` runs with
the account as it is now, and each intent it returns becomes an order (active), a recorded intent
(any other mode: the mode is enforced here too, whatever the sandbox says) or a rejection (a
malformed order). What changed comes back as a :class:`BarWrite`.
"""

from __future__ import annotations

import threading
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runners.papertrade.bars import Bar
from runners.papertrade.venue import Order, PaperVenue, Position, VenueError
from runners.strategyhost import StrategyHost, TickReply

__all__ = ["BarWrite", "describe_intent", "step"]


@dataclass
class BarWrite:
    """What one processed bar changed."""

    bar_ts: datetime
    close: float = 0.0
    position: float = 0.0
    orders: list[Order] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    cash: float = 0.0
    equity: float = 0.0
    events: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)


def step(
    venue: PaperVenue,
    host: StrategyHost,
    bar: Bar,
    mode: str,
    call_lock: threading.Lock | None = None,
) -> BarWrite:
    """Fills, ``on_tick``, intents → orders or records (see the module doc)."""
    write = BarWrite(bar_ts=bar.ts.to_pydatetime(), close=bar.close)
    for order in venue.on_bar(bar):
        write.orders.append(order)
        write.events.append(_fill_event(order))
    with call_lock if call_lock is not None else nullcontext():
        reply = host.tick(bar.tick(), venue.account(bar))
    _intents(venue, reply, bar, mode, write)
    write.positions = list(venue.positions.values())
    write.cash, write.equity = venue.cash, venue.equity()
    write.position = venue.position(bar.symbol).qty
    return write


def _intents(venue: PaperVenue, reply: TickReply, bar: Bar, mode: str, write: BarWrite) -> None:
    events = write.events
    events.extend(("log", line, None) for line in reply.logs)
    for intent in reply.intents:
        what = describe_intent(intent)
        if intent.get("refused"):
            events.append(("intent", f"{what}: not placed ({intent['refused']})", intent))
            continue
        if mode != "active":
            # the sandbox's context should have refused it; the engine enforces the mode
            events.append(("intent", f"{what}: not placed (mode {mode})", intent))
            continue
        try:
            if intent.get("op") == "cancel":
                cancelled = venue.cancel(str(intent.get("client_id")))
                if cancelled is not None:
                    write.orders.append(cancelled)
                    events.append(("order", f"cancelled {cancelled.client_id}", None))
                else:
                    events.append(("rejected", f"{what}: no such open order", intent))
                continue
            order = venue.place(intent, bar)
        except VenueError as exc:
            events.append(("rejected", f"{what}: {exc}", intent))
            continue
        write.orders.append(order)
        events.append(("order", f"placed {what}", order.to_json()))
    if reply.mode_error:
        events.append(("refused", reply.mode_error, None))
    if reply.error:
        events.append(("error", reply.error, {"traceback": reply.traceback}))


def describe_intent(intent: dict[str, Any]) -> str:
    """An intent in a few words: ``buy 10 BTCUSDT market``."""
    if intent.get("op") == "cancel":
        return f"cancel {intent.get('client_id')}"
    kind = intent.get("type") or "market"
    limit = f" @ {intent.get('limit_price')}" if kind == "limit" else ""
    symbol = f" {intent['symbol']}" if intent.get("symbol") else ""
    return f"{intent.get('side')} {intent.get('qty')}{symbol} {kind}{limit}"


def _fill_event(order: Order) -> tuple[str, str, dict[str, Any]]:
    if order.status == "filled":
        return (
            "fill",
            f"{order.side} {order.qty:g} {order.symbol} filled at {order.fill_price:.6g} "
            f"(fee {order.fee:.2f})",
            order.to_json(),
        )
    return ("rejected", f"{order.side} {order.qty:g} {order.symbol}: {order.reason}",
            order.to_json())  # fmt: skip
