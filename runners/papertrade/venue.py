"""Venues: where an active instance's orders go. The ``paper`` venue, and the interface.

:class:`PaperVenue` is one instance's simulated account, with the backtester's fill rules
(BACKTEST.md), so a strategy's paper results and its backtest agree:

- an order placed while handling the bar ``t`` (in ``on_tick``) fills on the next bar ``t+1``,
  before the strategy sees that bar: a market order at ``open[t+1] * (1 + slippage_bps / 1e4)``
  for a buy, ``* (1 - slippage_bps / 1e4)`` for a sell; a limit buy when ``low[t+1] <= limit``
  at ``min(open[t+1], limit)``, a limit sell when ``high[t+1] >= limit`` at
  ``max(open[t+1], limit)`` (no slippage on limits; a limit order rests until it fills or is
  cancelled);
- the fee is ``fee_bps / 1e4 * |qty * fill_price|``, taken from cash;
- cash never goes negative: a buy whose cost and fee exceed the cash is rejected with the
  reason; a sell of more than the position is rejected unless the account allows shorts.

The venue is pure bookkeeping: the engine persists what :meth:`PaperVenue.on_bar` and
:meth:`PaperVenue.place` return (orders, fills, positions, cash) and rebuilds a venue from the
stored book after a restart (:meth:`PaperVenue.restore`). Another venue (a real exchange) would
implement :class:`Venue` the same way; orders to real exchanges are not part of this product yet.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from runners.papertrade.bars import Bar

__all__ = ["Fill", "Order", "PaperVenue", "Position", "Venue", "VenueError"]


class VenueError(ValueError):
    """An order the venue refuses outright (bad side, quantity, type)."""


@dataclass
class Order:
    """An order on the venue; ``status``: open, filled, rejected, cancelled."""

    client_id: str
    symbol: str
    side: str
    qty: float
    type: str = "market"
    limit_price: float | None = None
    placed_bar_ts: str = ""
    status: str = "open"
    reason: str | None = None
    filled_bar_ts: str | None = None
    fill_price: float | None = None
    fee: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Position:
    """A symbol's signed quantity, average entry price, realized PnL and fees paid."""

    symbol: str
    qty: float = 0.0
    avg_price: float = 0.0
    realized_pnl: float = 0.0
    fees: float = 0.0
    last_price: float | None = None


@dataclass(frozen=True)
class Fill:
    """An order that filled (or was rejected) on a bar."""

    order: Order
    bar_ts: str


class Venue(Protocol):
    """What the engine needs of a venue, paper or real."""

    def on_bar(self, bar: Bar) -> list[Order]:
        """Fill what can fill on ``bar`` (before the strategy sees it); the orders that
        changed (filled or rejected)."""
        ...

    def place(self, intent: dict[str, Any], bar: Bar) -> Order: ...

    def cancel(self, client_id: str) -> Order | None: ...

    def account(self, bar: Bar) -> dict[str, Any]: ...


@dataclass
class PaperVenue:
    """One instance's paper account (see the module doc)."""

    cash: float
    fee_bps: float = 0.0
    slippage_bps: float = 0.0
    allow_short: bool = False
    orders: dict[str, Order] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)

    @classmethod
    def restore(
        cls,
        cash: float,
        orders: list[Order],
        positions: list[Position],
        *,
        fee_bps: float = 0.0,
        slippage_bps: float = 0.0,
        allow_short: bool = False,
    ) -> PaperVenue:
        """A venue from a stored book: only open orders matter for what comes next."""
        return cls(
            cash=cash,
            fee_bps=fee_bps,
            slippage_bps=slippage_bps,
            allow_short=allow_short,
            orders={o.client_id: o for o in orders if o.status == "open"},
            positions={p.symbol: p for p in positions},
        )

    # -- orders --------------------------------------------------------------------------

    def place(self, intent: dict[str, Any], bar: Bar) -> Order:
        """Queue an order from a strategy's intent; raises VenueError on a malformed one."""
        side = str(intent.get("side", "")).lower()
        if side not in ("buy", "sell"):
            raise VenueError(f"order side must be buy or sell, not {intent.get('side')!r}")
        qty = _number(intent.get("qty"), "qty")
        if qty <= 0:
            raise VenueError(f"order qty must be positive, not {qty:g}")
        kind = str(intent.get("type") or "market").lower()
        if kind not in ("market", "limit"):
            raise VenueError(f"order type must be market or limit, not {intent.get('type')!r}")
        limit = None
        if kind == "limit":
            limit = _number(intent.get("limit_price"), "limit_price")
            if limit <= 0:
                raise VenueError(f"a limit price must be positive, not {limit:g}")
        client_id = str(intent.get("client_id") or "")
        if not client_id or len(client_id) > 64:
            raise VenueError("an order needs a client_id of 1 to 64 characters")
        if client_id in self.orders:
            raise VenueError(f"order {client_id!r} exists already")
        order = Order(
            client_id=client_id,
            symbol=str(intent.get("symbol") or bar.symbol),
            side=side,
            qty=qty,
            type=kind,
            limit_price=limit,
            placed_bar_ts=bar.ts.isoformat(),
        )
        if order.symbol != bar.symbol:
            raise VenueError(
                f"this instance trades {bar.symbol}; an order for {order.symbol} cannot be placed"
            )
        self.orders[client_id] = order
        return order

    def cancel(self, client_id: str) -> Order | None:
        """Cancel an open order (None when there is no such open order)."""
        order = self.orders.get(client_id)
        if order is None or order.status != "open":
            return None
        order.status = "cancelled"
        del self.orders[client_id]
        return order

    def open_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if o.status == "open"]

    # -- a new bar -------------------------------------------------------------------------

    def on_bar(self, bar: Bar) -> list[Order]:
        """Fill (or reject) the open orders that can fill on ``bar``, in the order they were
        placed; marks positions to the bar's close. Returns the orders that changed."""
        changed: list[Order] = []
        for order in list(self.orders.values()):
            if order.symbol != bar.symbol or order.placed_bar_ts >= bar.ts.isoformat():
                continue
            price = self._fill_price(order, bar)
            if price is None:
                continue  # a resting limit order
            self._fill(order, price, bar)
            del self.orders[order.client_id]
            changed.append(order)
        self.position(bar.symbol).last_price = bar.close
        return changed

    def _fill_price(self, order: Order, bar: Bar) -> float | None:
        slip = self.slippage_bps / 1e4
        if order.type == "market":
            return bar.open * (1 + slip) if order.side == "buy" else bar.open * (1 - slip)
        assert order.limit_price is not None
        if order.side == "buy":
            return min(bar.open, order.limit_price) if bar.low <= order.limit_price else None
        return max(bar.open, order.limit_price) if bar.high >= order.limit_price else None

    def _fill(self, order: Order, price: float, bar: Bar) -> None:
        pos = self.position(order.symbol)
        signed = order.qty if order.side == "buy" else -order.qty
        fee = self.fee_bps / 1e4 * abs(order.qty * price)
        if order.side == "buy" and order.qty * price + fee > self.cash + 1e-9:
            order.status = "rejected"
            order.reason = (
                f"insufficient cash: buying {order.qty:g} {order.symbol} at {price:.6g} costs "
                f"{order.qty * price + fee:.2f} with fees, the account has {self.cash:.2f}"
            )
            return
        if order.side == "sell" and not self.allow_short and order.qty > pos.qty + 1e-12:
            order.status = "rejected"
            order.reason = (
                f"no shorting on this account: selling {order.qty:g} {order.symbol} with a "
                f"position of {pos.qty:g}"
            )
            return
        self.cash -= signed * price + fee
        _apply(pos, signed, price)
        pos.fees += fee
        order.status, order.fill_price, order.fee = "filled", price, fee
        order.filled_bar_ts = bar.ts.isoformat()

    # -- the account ------------------------------------------------------------------------

    def position(self, symbol: str) -> Position:
        return self.positions.setdefault(symbol, Position(symbol))

    def equity(self) -> float:
        """Cash plus every position at its last price."""
        return self.cash + sum(
            p.qty * (p.last_price if p.last_price is not None else p.avg_price)
            for p in self.positions.values()
        )

    def account(self, bar: Bar) -> dict[str, Any]:
        """What the strategy's context answers from on ``bar`` (the SDK reads ``cash``,
        ``positions``, ``prices`` and ``open_orders``; ``position`` and ``price`` are the
        bar's symbol's, for convenience)."""
        pos = self.position(bar.symbol)
        prices = {s: p.last_price for s, p in self.positions.items() if p.last_price is not None}
        prices[bar.symbol] = bar.close
        return {
            "symbol": bar.symbol,
            "price": bar.close,
            "prices": prices,
            "cash": self.cash,
            "equity": self.equity(),
            "position": pos.qty,
            "avg_price": pos.avg_price,
            "positions": {s: p.qty for s, p in self.positions.items() if p.qty},
            "open_orders": [o.to_json() for o in self.open_orders()],
        }


def _apply(pos: Position, signed: float, price: float) -> None:
    """Add ``signed`` units at ``price`` to ``pos``: realizes PnL on the part that reduces it."""
    if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
        total = pos.qty + signed
        pos.avg_price = (pos.avg_price * pos.qty + price * signed) / total if total else 0.0
        pos.qty = total
        return
    closing = min(abs(signed), abs(pos.qty))
    direction = 1.0 if pos.qty > 0 else -1.0
    pos.realized_pnl += closing * (price - pos.avg_price) * direction
    rest = signed + closing * direction  # what is left after closing (opens the other side)
    pos.qty += signed
    if abs(pos.qty) < 1e-12:
        pos.qty, pos.avg_price = 0.0, 0.0
    elif rest != 0 and (pos.qty > 0) != (direction > 0):
        pos.avg_price = price  # flipped: the new side's entry is this fill


def _number(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise VenueError(f"order {name} must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise VenueError(f"order {name} must be finite, not {value!r}")
    return number
