"""Writes ``binance_klines_1m.jsonl``: a recording of Binance's combined kline stream.

The machines this project is built on have no internet, so the recording could not be taken
from Binance. This script makes one with the documented shape instead: one JSON message a line,
exactly as the combined stream sends them (``{"stream": "btcusdt@kline_1m", "data": {"e":
"kline", "E": ..., "s": "BTCUSDT", "k": {"t", "T", "s", "i", "f", "L", "o", "c", "h", "l", "v",
"n", "x", "q", "V", "Q", "B"}}}``; prices and quantities as strings with 8 decimals), for
BTCUSDT and ETHUSDT, 1-minute klines from 2024-06-03 00:00 UTC for ``MINUTES`` minutes. Each
kline gets one to three updates while it forms (``x`` false, event times inside its minute,
running high/low/close/volume), then its final update (``x`` true, a last batch of trades, so
its values differ from the last open update) a few milliseconds after its close time. The
messages of both symbols are interleaved in event-time order.

Prices are a seeded random walk (``random.Random(SEED)``) on each symbol's tick, so running
this again writes the same file::

    python tests/live/data/make_binance_klines.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 14
MINUTES = 90
START_MS = 1_717_372_800_000  # 2024-06-03 00:00:00 UTC
MINUTE_MS = 60_000
#: symbol -> (first price, tick size, quantity step, typical quantity of a trade)
SYMBOLS = {"BTCUSDT": (67_512.30, 0.01, 0.00001, 0.05), "ETHUSDT": (3_811.42, 0.01, 0.0001, 0.8)}
OUT = Path(__file__).with_name("binance_klines_1m.jsonl")


def _fmt(x: float) -> str:
    return f"{x:.8f}"


class _Kline:
    """A forming kline of one symbol: trades move it, :meth:`message` snapshots it."""

    def __init__(self, symbol: str, t: int, open_: float, first_trade: int) -> None:
        self.symbol, self.t = symbol, t
        self.o = self.h = self.low = self.c = open_
        self.v = self.q = self.taker_v = self.taker_q = 0.0
        self.first, self.last, self.n = first_trade, first_trade - 1, 0

    def trade(self, rng: random.Random, tick: float, step: float, size: float) -> None:
        moved = round(self.c + rng.gauss(0, 8) * tick * (self.c / 3000), 2)
        qty = max(step, round(rng.expovariate(1 / size) / step) * step)
        self.c = round(moved, 2)
        self.h, self.low = max(self.h, self.c), min(self.low, self.c)
        self.v = round(self.v + qty, 8)
        self.q = round(self.q + qty * self.c, 8)
        if rng.random() < 0.55:
            self.taker_v = round(self.taker_v + qty, 8)
            self.taker_q = round(self.taker_q + qty * self.c, 8)
        self.last += 1
        self.n += 1

    def message(self, event_ms: int, closed: bool) -> dict[str, object]:
        k = {
            "t": self.t,
            "T": self.t + MINUTE_MS - 1,
            "s": self.symbol,
            "i": "1m",
            "f": self.first,
            "L": self.last,
            "o": _fmt(self.o),
            "c": _fmt(self.c),
            "h": _fmt(self.h),
            "l": _fmt(self.low),
            "v": _fmt(self.v),
            "n": self.n,
            "x": closed,
            "q": _fmt(self.q),
            "V": _fmt(self.taker_v),
            "Q": _fmt(self.taker_q),
            "B": "0",
        }
        data = {"e": "kline", "E": event_ms, "s": self.symbol, "k": k}
        return {"stream": f"{self.symbol.lower()}@kline_1m", "data": data}


def messages(seed: int = SEED, minutes: int = MINUTES) -> list[dict[str, object]]:
    """Every message of the recording, in event-time order."""
    rng = random.Random(seed)
    out: list[tuple[int, str, dict[str, object]]] = []
    price = {s: p for s, (p, _, _, _) in SYMBOLS.items()}
    trade_id = {s: 1_000_000 * (i + 1) for i, s in enumerate(SYMBOLS)}
    for minute in range(minutes):
        t = START_MS + minute * MINUTE_MS
        for symbol, (_, tick, step, size) in SYMBOLS.items():
            kline = _Kline(symbol, t, price[symbol], trade_id[symbol])
            offsets = sorted(rng.sample(range(1_000, 59_000), rng.randint(1, 3)))
            for offset in offsets:
                for _ in range(rng.randint(1, 6)):
                    kline.trade(rng, tick, step, size)
                out.append((t + offset, symbol, kline.message(t + offset, closed=False)))
            for _ in range(rng.randint(1, 4)):
                kline.trade(rng, tick, step, size)
            closed_at = t + MINUTE_MS - 1 + rng.randint(1, 400)
            out.append((closed_at, symbol, kline.message(closed_at, closed=True)))
            price[symbol] = kline.c
            trade_id[symbol] = kline.last + 1
    out.sort(key=lambda m: (m[0], m[1]))
    return [m for _, _, m in out]


def main() -> None:
    lines = [json.dumps(m, separators=(",", ":")) for m in messages()]
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} messages to {OUT}")


if __name__ == "__main__":
    main()
