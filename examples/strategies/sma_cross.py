"""SMA crossover: long when the fast simple moving average is above the slow one, flat below.

A complete strategy module for Alpha Forge's strategy engine (docs/strategies.md): the config
form comes from CONFIG_SCHEMA, the state from init(), orders from on_tick(), the runtime UI from
render(). It trades only through self.context, so in observe mode it runs the same logic and its
orders are recorded as refused instead of placed.
"""

from alphaforge_strategy import ModeError, Strategy, line_chart, metric, table


class SmaCross(Strategy):
    """Buy `qty` when the fast SMA crosses above the slow one; sell the position when it
    crosses below."""

    CONFIG_SCHEMA = {
        "type": "object",
        "properties": {
            "fast": {"type": "integer", "minimum": 1, "default": 5, "title": "Fast window"},
            "slow": {"type": "integer", "minimum": 2, "default": 20, "title": "Slow window"},
            "qty": {"type": "number", "exclusiveMinimum": 0, "default": 0.01, "title": "Quantity"},
        },
        "required": ["fast", "slow", "qty"],
    }

    def init(self):
        if self.config["fast"] >= self.config["slow"]:
            raise ValueError("fast must be shorter than slow")
        return {"closes": [], "fast": [], "slow": [], "trades": [], "above": None}

    def on_tick(self, tick):
        s, cfg = self.state, self.config
        s["closes"].append(tick["close"])
        del s["closes"][: -cfg["slow"]]  # only the slow window is needed
        if len(s["closes"]) < cfg["slow"]:
            return  # warming up
        fast = sum(s["closes"][-cfg["fast"] :]) / cfg["fast"]
        slow = sum(s["closes"]) / cfg["slow"]
        s["fast"].append([tick["ts"], fast])
        s["slow"].append([tick["ts"], slow])
        del s["fast"][:-500], s["slow"][:-500]
        above = fast > slow
        crossed = s["above"] is not None and above != s["above"]
        s["above"] = above
        if not crossed:
            return
        position = self.context.get_position()
        side = "buy" if above else "sell"
        qty = cfg["qty"] if above else position
        if qty <= 0:
            return
        try:
            order_id = self.context.place_order(side, qty)
            outcome = f"placed {order_id}"
        except ModeError:
            outcome = "observed"  # observe mode: recorded as refused, never placed
        s["trades"].append([tick["ts"], side, qty, tick["price"], outcome])
        self.context.log(f"{side} {qty} at {tick['price']} ({outcome})")

    def render(self):
        s = self.state
        last_fast = s["fast"][-1][1] if s["fast"] else None
        last_slow = s["slow"][-1][1] if s["slow"] else None
        return {
            "widgets": [
                metric("Fast SMA", last_fast),
                metric("Slow SMA", last_slow),
                metric("Trades", len(s["trades"])),
                line_chart("Fast SMA", s["fast"]),
                line_chart("Slow SMA", s["slow"]),
                table(["ts", "side", "qty", "price", "outcome"], s["trades"][-20:], label="Trades"),
            ]
        }
