"""A grid market maker as a custom tick strategy (docs/tick-backtest.md, "Custom strategies").

The same logic as the built-in ``grid_mm`` of ``tick_backtest``, written in plain Python
against the tick strategy interface: every step it reads the book and its working orders from
``state``, cancels the quotes no longer on the grid and submits the missing ones. Run by
``tick_strategy_backtest`` in the sandbox; with the same params it gets the built-in grid's
fills exactly (tests/nodes/test_tick_strategy.py).
"""

import math

from alphaforge_tick import TickStrategy, cancel, submit


class TickGrid(TickStrategy):
    """``levels`` post-only quotes a side, ``spacing`` ticks apart, the first
    ``half_spread_ticks`` from a reservation price that moves ``skew_ticks`` against each
    ``qty`` of inventory; a side stops quoting at ``max_position``."""

    CONFIG_SCHEMA = {
        "type": "object",
        "properties": {
            "levels": {"type": "integer", "minimum": 1, "default": 1},
            "spacing": {"type": "integer", "minimum": 1, "default": 1},
            "half_spread_ticks": {"type": "number", "minimum": 0, "default": 1.0},
            "qty": {"type": "number", "exclusiveMinimum": 0, "default": 1.0},
            "max_position": {"type": "number", "exclusiveMinimum": 0, "default": 10.0},
            "skew_ticks": {"type": "number", "minimum": 0, "default": 0.0},
        },
    }

    def on_start(self, ctx):
        self.tick = ctx.tick_size
        ctx.log(f"grid: {self.config['levels']} level(s) a side on tick {ctx.tick_size:g}")

    def on_step(self, state):
        c, tick = self.config, self.tick
        if state["best_bid"] is None or state["best_ask"] is None:
            return []
        bid_t, ask_t = round(state["best_bid"] / tick), round(state["best_ask"] / tick)
        if bid_t >= ask_t:
            return []
        pos = state["position"]
        reservation = (bid_t + ask_t) / 2.0 - c["skew_ticks"] * pos / c["qty"]
        top_bid = min(math.floor(reservation - c["half_spread_ticks"]), bid_t)
        top_ask = max(math.ceil(reservation + c["half_spread_ticks"]), ask_t)
        want_bid = pos < c["max_position"] - 1e-12
        want_ask = pos > -c["max_position"] + 1e-12
        levels, spacing = c["levels"], c["spacing"]
        intents, quoted = [], set()
        for order in state["orders"]:
            t, buy = round(order["price"] / tick), order["side"] == "buy"
            quoted.add((buy, t))
            if order["pending"]:
                continue  # a request is on its way: wait for the answer
            if buy:
                depth = top_bid - t
                off = depth < 0 or depth % spacing or depth >= levels * spacing
                if off or not want_bid:
                    intents.append(cancel(order["id"]))
            else:
                depth = t - top_ask
                off = depth < 0 or depth % spacing or depth >= levels * spacing
                if off or not want_ask:
                    intents.append(cancel(order["id"]))
        for i in range(levels):
            bid, ask = top_bid - i * spacing, top_ask + i * spacing
            if want_bid and (True, bid) not in quoted:
                intents.append(submit("buy", bid * tick, c["qty"], "GTX"))
            if want_ask and (False, ask) not in quoted:
                intents.append(submit("sell", ask * tick, c["qty"], "GTX"))
        return intents
