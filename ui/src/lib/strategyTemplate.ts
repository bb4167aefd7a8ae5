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

/** A config value as an `.af` literal, or null when the language has none for it (an object). */
export function dslLiteral(value: unknown): string | null {
  if (value === null || value === undefined) return 'none';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : null;
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) {
    const items = value.map(dslLiteral);
    return items.every((i) => i !== null) ? `[${items.join(', ')}]` : null;
  }
  return null;
}

/**
 * A pipeline that backtests strategy `name` at `version` on the sample data with `config`
 * (docs/live.md, "Backtesting the same code"): each config key is a keyword argument of the
 * `strategy_backtest` step; a value the language cannot write (an object) is left to the
 * module's default, and the source says so.
 */
export function strategyBacktestSource(pipeline: string, name: string, version: number, config: Record<string, unknown>): string {
  const args = [`strategy=${JSON.stringify(`${name}@${version}`)}`];
  const skipped: string[] = [];
  for (const [key, value] of Object.entries(config)) {
    const literal = dslLiteral(value);
    if (literal === null) skipped.push(key);
    else args.push(`${key}=${literal}`);
  }
  args.push('fee_bps=5', 'slippage_bps=2');
  const note = skipped.length ? `# not written here (objects): ${skipped.join(', ')}: the module's defaults apply\n` : '';
  const head = 'result = strategy_backtest(';
  const lines: string[] = [];
  let line = `${head}data`;
  for (const arg of args) {
    if (line.length + arg.length + 2 > 96) {
      lines.push(`${line},`);
      line = ' '.repeat(head.length) + arg;
    } else line += `, ${arg}`;
  }
  lines.push(`${line})`);
  const first = Object.keys(config)[0] ?? 'key';
  return `# ${name} v${version}, backtested on the sample data with the live paper venue's fills.
# The arguments after strategy= are the module's config (its CONFIG_SCHEMA keys); a sweep
# block can vary them: sweep grid { result.${first} = [...] objective maximize result.sharpe }
pipeline ${pipeline} ${JSON.stringify(`${name} v${version} backtest`)}

data   = csv_ohlcv(path="data/sample_ohlcv.csv")
${note}${lines.join('\n')}
`;
}

