"""Event arrays for the tick backtest's tests: hand-made books and a small seeded random book.

Built here with plain numpy in hftbacktest's event layout (the tests own their data; the
catalog's generator is tested on its own)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from hftbacktest import (
    BUY_EVENT,
    DEPTH_EVENT,
    EXCH_EVENT,
    LOCAL_EVENT,
    SELL_EVENT,
    TRADE_EVENT,
    event_dtype,
)

T0 = 1_700_000_000_000_000_000  # 2023-11-14 22:13:20 UTC, in ns
MS = 1_000_000
BID, ASK = DEPTH_EVENT | BUY_EVENT, DEPTH_EVENT | SELL_EVENT
BUY_TRADE, SELL_TRADE = TRADE_EVENT | BUY_EVENT, TRADE_EVENT | SELL_EVENT


def events(rows: Iterable[tuple[int, int, float, float]], feed_latency: int = 0) -> np.ndarray:
    """Rows of (kind, exchange ts offset in ns from T0, price, qty), seen locally
    ``feed_latency`` ns later."""
    rows = list(rows)
    out = np.zeros(len(rows), event_dtype)
    for i, (kind, ts, px, qty) in enumerate(rows):
        out[i]["ev"] = kind | EXCH_EVENT | LOCAL_EVENT
        out[i]["exch_ts"] = T0 + ts
        out[i]["local_ts"] = T0 + ts + feed_latency
        out[i]["px"] = px
        out[i]["qty"] = qty
    return out


def random_book(
    seconds: float = 60.0, seed: int = 7, tick: float = 0.1, step_ms: int = 5
) -> np.ndarray:
    """A seeded random-walk book: every ``step_ms`` the mid may move a tick, the five levels
    a side are re-quoted with random sizes, and a trade may hit the bid or lift the ask."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[int, int, float, float]] = []
    mid_ticks = 1000
    for i in range(int(seconds * 1000 / step_ms)):
        ts = i * step_ms * MS
        mid_ticks += int(rng.choice((-1, 0, 0, 0, 1)))
        for lvl in range(5):
            rows.append(
                (BID, ts, round((mid_ticks - 1 - lvl) * tick, 10), float(rng.integers(1, 20)))
            )
            rows.append(
                (ASK, ts, round((mid_ticks + 1 + lvl) * tick, 10), float(rng.integers(1, 20)))
            )
        rows.append((BID, ts, round((mid_ticks - 6) * tick, 10), 0.0))  # levels left behind
        rows.append((ASK, ts, round((mid_ticks + 6) * tick, 10), 0.0))
        u = rng.random()
        if u < 0.3:
            rows.append(
                (SELL_TRADE, ts + 1, round((mid_ticks - 1) * tick, 10), float(rng.integers(1, 30)))
            )
        elif u < 0.6:
            rows.append(
                (BUY_TRADE, ts + 1, round((mid_ticks + 1) * tick, 10), float(rng.integers(1, 30)))
            )
    return events(rows, feed_latency=200_000)
