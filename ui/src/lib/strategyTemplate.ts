/**
 * What "New strategy" starts from: a complete SMA crossover module written against the strategy
 * SDK (`alphaforge_strategy`, runners/sandbox; seed 001 §7): a `CONFIG_SCHEMA` the config forms
 * are generated from, `init()` for the runtime state, `on_tick()` trading only through
 * `self.context`, and `render()` returning one widget of each kind the dashboard draws.
 */

export const TEMPLATE_NAME = 'sma_cross';

export const STRATEGY_TEMPLATE = `"""SMA crossover: buy when the fast moving average crosses above the slow one, sell the
position when it crosses below. The same logic runs in observe and active mode: only the
context decides whether an order is placed (observe records it as not placed)."""

from alphaforge_strategy import ModeError, Strategy, line_chart, log_widget, metric, table


class SmaCross(Strategy):
    CONFIG_SCHEMA = {
        "type": "object",
        "properties": {
            "fast": {
                "type": "integer",
                "minimum": 1,
                "maximum": 200,
                "default": 5,
                "title": "Fast window",
                "description": "Bars in the fast moving average",
            },
            "slow": {
                "type": "integer",
                "minimum": 2,
                "maximum": 500,
                "default": 20,
                "title": "Slow window",
                "description": "Bars in the slow moving average (longer than the fast one)",
            },
            "qty": {
                "type": "number",
                "exclusiveMinimum": 0,
                "default": 10,
                "title": "Quantity",
                "description": "Units bought on each upward cross",
            },
        },
        "required": ["fast", "slow", "qty"],
        "additionalProperties": False,
    }

    def init(self):
        if self.config["fast"] >= self.config["slow"]:
            raise ValueError("fast must be shorter than slow")
        return {"closes": [], "ticks": 0, "above": None, "orders": [], "notes": []}

    def on_tick(self, tick):
        s, cfg = self.state, self.config
        s["ticks"] += 1
        s["closes"].append([tick["ts"], tick["close"]])
        del s["closes"][:-200]  # the chart shows the last 200 closes
        closes = [c for _, c in s["closes"]]
        if len(closes) < cfg["slow"]:
            return  # warming up
        fast = sum(closes[-cfg["fast"]:]) / cfg["fast"]
        slow = sum(closes[-cfg["slow"]:]) / cfg["slow"]
        above = fast > slow
        crossed = s["above"] is not None and above != s["above"]
        s["above"] = above
        if not crossed:
            return
        position = self.context.get_position()
        side, qty = ("buy", cfg["qty"]) if above else ("sell", position)
        if qty <= 0:
            return  # nothing to sell
        try:
            self.context.place_order(side, qty)
            outcome = "placed"
        except ModeError:
            outcome = "observed"  # observe mode: recorded, not placed
        s["orders"].append([tick["ts"], side, qty, round(tick["close"], 4), outcome])
        del s["orders"][:-50]
        when = str(tick["ts"])[:19].replace("T", " ").removesuffix(" 00:00:00")
        s["notes"].append(f"{when}: {side} {qty:g} at {tick['close']:.2f} ({outcome})")
        del s["notes"][:-20]
        self.context.log(f"{side} {qty:g} at {tick['close']:.2f} ({outcome})")

    def render(self):
        s = self.state
        last = s["closes"][-1][1] if s["closes"] else None
        return {
            "widgets": [
                metric("Ticks (with warm-up)", s["ticks"]),
                metric("Last close", last),
                line_chart("Recent closes", s["closes"]),
                table(["time", "side", "qty", "price", "outcome"], s["orders"][::-1], label="Orders"),
                log_widget(s["notes"][::-1], label="Decisions"),
            ]
        }
`;
