"""The tick strategy SDK: what a custom tick strategy imports (``from alphaforge_tick import ...``).

A tick strategy module defines exactly one :class:`TickStrategy` subclass. The host
(``tick_strategy_backtest``, docs/tick-backtest.md) simulates the venue in hftbacktest and, every
``step_ms`` of simulated time, calls ``on_step(state)`` here, in the sandbox; what it returns are
the orders to send and cancel (:func:`submit`, :func:`cancel`), which reach the simulated
exchange after the order latency, like any other order.

- ``CONFIG_SCHEMA``: a literal JSON Schema object; its top-level ``default`` values fill the
  config, which is ``self.config``.
- ``on_start(ctx)``: once, before the first step; ``ctx`` has ``tick_size``, ``lot_size``,
  ``step_ms``, ``depth_levels``, ``config`` and ``log(message)``.
- ``on_step(state) -> list``: ``state`` is a plain dict (see docs/tick-backtest.md): ``ts``
  (ns, the local clock), ``step``, ``best_bid`` / ``best_ask`` (None while a side is empty),
  ``bid_qty`` / ``ask_qty``, ``bids`` / ``asks`` (``[price, qty]`` for ``depth_levels`` ticks
  from the best), ``position``, ``balance``, ``fee``, ``orders`` (the working ones: ``id``,
  ``side``, ``price``, ``qty``, ``filled``, ``status``, ``pending``, ``queue_ahead_at_submit``,
  ``level_qty``), ``fills`` (since the last step: ``order_id``, ``side``, ``price``, ``qty``,
  ``ts``, ``maker``) and ``next_order_id`` (the id the next submitted order gets).

Standalone: runs inside the sandbox (tick_strategy_entry.py) and imports nothing from Alpha
Forge.
"""

import math

__all__ = ["TickStrategy", "cancel", "submit"]

SIDES = ("buy", "sell")
TIFS = ("GTC", "GTX", "IOC", "FOK")


class TickStrategy:
    """Base of a custom tick strategy (override :meth:`on_step`, optionally :meth:`on_start`)."""

    CONFIG_SCHEMA: "dict" = {}  # noqa: RUF012 (a literal the platform reads; see docs)

    def __init__(self, config):
        self.config = config

    def on_start(self, ctx):
        """Called once before the first step."""

    def on_step(self, state):
        """The intents for this step (a list of :func:`submit` / :func:`cancel` results)."""
        return []


def submit(side, price, qty, tif="GTX"):
    """A limit order: ``side`` "buy" or "sell", ``price`` on the tick grid, ``qty`` a lot
    multiple, ``tif`` GTC, GTX (post-only), IOC or FOK. The host checks it again."""
    if side not in SIDES:
        raise ValueError(f"submit: side must be 'buy' or 'sell', got {side!r}")
    if tif not in TIFS:
        raise ValueError(f"submit: tif must be one of {', '.join(TIFS)}, got {tif!r}")
    price, qty = float(price), float(qty)
    if not (math.isfinite(price) and math.isfinite(qty)):
        raise ValueError(f"submit: price and qty must be finite, got {price!r}, {qty!r}")
    return {"op": "submit", "side": side, "price": price, "qty": qty, "tif": tif}


def cancel(order_id):
    """Cancel a working order by its id (an order already finished is left alone)."""
    return {"op": "cancel", "order_id": int(order_id)}


class StartContext:
    """What ``on_start`` gets: the instrument, the step, the config and a log."""

    def __init__(self, meta, config, log):
        self.tick_size = float(meta.get("tick_size") or 0.0)
        self.lot_size = float(meta.get("lot_size") or 0.0)
        self.step_ms = float(meta.get("step_ms") or 0.0)
        self.depth_levels = int(meta.get("depth_levels") or 0)
        self.config = config
        self._log = log

    def log(self, message):
        """One line in the node's log."""
        self._log(str(message))
