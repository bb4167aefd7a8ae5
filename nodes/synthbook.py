"""A seeded synthetic L2 order book, as tick events (:mod:`nodes.ticks`) for examples and tests.

The model (documented in ``docs/ticks.md``):

- **Mid price**: a geometric random walk, ``mid *= exp(volatility * sqrt(dt) * z)`` at every
  event (``dt`` in seconds since the previous event, ``z`` standard normal), kept in ticks.
- **Book**: the best bid may sit at most at ``ceil(mid) - 1`` ticks and the best ask at least one
  tick above it, so the book never crosses. Each side holds levels within ``depth`` ticks of its
  best allowed price; a level leaving that window (the mid moved) is removed (a quantity-0 depth
  event), and a side left empty gets one new level at its best allowed price.
- **Arrivals**: events arrive as a Poisson process of rate ``limit_rate + cancel_rate +
  trade_rate`` per second; each is a limit order (a random side; ``k`` ticks from the best
  allowed price with ``k`` geometric, p = 0.4, capped at ``depth - 1``; 1-20 lots added), a
  cancel (a random existing level of a random side loses 1..all its lots) or a market order (a
  random side takes 1-10 lots from the opposite best level, at most what it holds: a trade event
  flagged with the taker's side, then that level's new quantity).
- **Start**: an initial snapshot at ``start_ns`` (a clear and ``depth`` levels a side, 5-50 lots
  each), as hftbacktest's converters write one.
- **Feed latency**: ``local_ts = exch_ts + latency_ns + jitter`` (jitter exponential with mean
  ``jitter_ns``), never earlier than the previous row's ``local_ts`` (a feed delivers in order).

Same params and seed → the same events, bit for bit (numpy's PCG64 generator; no wall clock).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from nodes import ticks
from nodes.lazy import lazy_module
from nodes.tickevents import EventBuilder

if TYPE_CHECKING:
    import numpy as np

    from nodes.ticks import TickArray
else:
    np = lazy_module("numpy", globals(), "np")

__all__ = ["DEFAULT_START_NS", "BookSpec", "generate"]

DEFAULT_START_NS = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z
_BATCH = 4096  # random draws made at a time


@dataclass(frozen=True)
class BookSpec:
    """The generator's parameters (units: seconds, ticks, lots, nanoseconds; rates per second)."""

    seed: int = 0
    symbol: str = "SYN"
    start_ns: int = DEFAULT_START_NS
    duration_s: float = 60.0
    mid: float = 100.0
    tick_size: float = 0.01
    lot_size: float = 0.1
    depth: int = 10
    limit_rate: float = 40.0
    cancel_rate: float = 30.0
    trade_rate: float = 5.0
    volatility: float = 2e-4
    latency_ns: int = 1_000_000
    jitter_ns: int = 200_000

    def check(self) -> None:
        """Raise ``ValueError`` naming the first parameter out of range."""
        positive = ("duration_s", "mid", "tick_size", "lot_size", "depth")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("limit_rate", "cancel_rate", "trade_rate", "volatility"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.limit_rate + self.cancel_rate + self.trade_rate <= 0:
            raise ValueError("at least one of limit_rate, cancel_rate, trade_rate must be > 0")
        if self.latency_ns < 0 or self.jitter_ns < 0:
            raise ValueError("latency_ns and jitter_ns must be >= 0")
        if self.mid / self.tick_size < 2 * self.depth + 2:
            raise ValueError(
                f"mid {self.mid} is too few ticks of {self.tick_size} for depth {self.depth}"
            )


def _decimals(step: float) -> int:
    exponent = Decimal(repr(step)).normalize().as_tuple().exponent
    return max(0, -int(exponent)) if isinstance(exponent, int) else 0


class _Draws:
    """Random numbers drawn in batches (the same sequence as one at a time, far faster)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self._i = _BATCH
        self._refill()

    def _refill(self) -> None:
        rng = self.rng
        self.gap = rng.standard_exponential(_BATCH).tolist()
        self.z = rng.standard_normal(_BATCH).tolist()
        self.u = rng.random((_BATCH, 4)).tolist()
        self.jitter = rng.standard_exponential(_BATCH).tolist()
        self._i = 0

    def next(self) -> tuple[float, float, list[float], float]:
        if self._i == _BATCH:
            self._refill()
        i = self._i
        self._i += 1
        return self.gap[i], self.z[i], self.u[i], self.jitter[i]


class _Book:
    """Levels in ticks -> lots, emitting a depth event per change."""

    def __init__(self, spec: BookSpec, out: EventBuilder) -> None:
        self.spec, self.out = spec, out
        self.px_dp, self.qty_dp = _decimals(spec.tick_size), _decimals(spec.lot_size)
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.exch_ts = self.local_ts = 0

    def px(self, tick: int) -> float:
        return round(tick * self.spec.tick_size, self.px_dp)

    def qty(self, lots: int) -> float:
        return round(lots * self.spec.lot_size, self.qty_dp)

    def set(self, bid: bool, tick: int, lots: int) -> None:
        side = self.bids if bid else self.asks
        if lots > 0:
            side[tick] = lots
        else:
            side.pop(tick, None)
        flag = ticks.BUY_EVENT if bid else ticks.SELL_EVENT
        self.out.add(
            ticks.DEPTH_EVENT | flag, self.exch_ts, self.local_ts, self.px(tick), self.qty(lots)
        )

    def follow(self, best_bid: int, depth: int, new_lots: int) -> None:
        """Drop levels outside each side's window; refill a side left empty."""
        best_ask = best_bid + 1
        for tick in sorted(t for t in self.bids if t > best_bid or t <= best_bid - depth):
            self.set(True, tick, 0)
        for tick in sorted(t for t in self.asks if t < best_ask or t >= best_ask + depth):
            self.set(False, tick, 0)
        if not self.bids:
            self.set(True, best_bid, new_lots)
        if not self.asks:
            self.set(False, best_ask, new_lots)


def generate(spec: BookSpec) -> TickArray:
    """The events of ``spec``'s synthetic book, in replay order, with its symbol and sizes."""
    spec.check()
    out = EventBuilder()
    book = _Book(spec, out)
    draws = _Draws(spec.seed)
    rates = (spec.limit_rate, spec.cancel_rate, spec.trade_rate)
    total = sum(rates)
    p_limit, p_cancel = rates[0] / total, (rates[0] + rates[1]) / total
    depth = spec.depth
    mid = spec.mid / spec.tick_size  # in ticks
    end_ns = spec.start_ns + int(spec.duration_s * 1e9)

    t = spec.start_ns
    best_bid = math.ceil(mid) - 1
    init = draws.rng.integers(5, 51, size=2 * depth).tolist()
    bids = [(book.px(best_bid - k), book.qty(init[k])) for k in range(depth)]
    asks = [(book.px(best_bid + 1 + k), book.qty(init[depth + k])) for k in range(depth)]
    local = t + spec.latency_ns
    out.snapshot(t, local, bids, asks)
    book.bids = {best_bid - k: init[k] for k in range(depth)}
    book.asks = {best_bid + 1 + k: init[depth + k] for k in range(depth)}
    book.local_ts = local

    while True:
        gap, z, u, jitter = draws.next()
        dt = gap / total
        t += max(1, int(dt * 1e9))
        if t > end_ns:
            break
        mid *= math.exp(spec.volatility * math.sqrt(dt) * z)
        best_bid = math.ceil(mid) - 1
        book.exch_ts = t
        book.local_ts = max(book.local_ts, t + spec.latency_ns + int(jitter * spec.jitter_ns))
        book.follow(best_bid, depth, 1 + int(u[3] * 20))
        bid = u[1] < 0.5
        if u[0] < p_limit:
            k = min(depth - 1, int(math.log(1.0 - u[2]) / math.log(0.6)))  # geometric, p = 0.4
            tick = best_bid - k if bid else best_bid + 1 + k
            side = book.bids if bid else book.asks
            book.set(bid, tick, side.get(tick, 0) + 1 + int(u[3] * 20))
        elif u[0] < p_cancel:
            side = book.bids if bid else book.asks
            levels = sorted(side)
            tick = levels[int(u[2] * len(levels))]
            book.set(bid, tick, side[tick] - (1 + int(u[3] * side[tick])))
        else:
            # a market order: a buyer (bid) takes from the best ask, a seller from the best bid
            side = book.asks if bid else book.bids
            tick = min(side) if bid else max(side)
            lots = min(side[tick], 1 + int(u[2] * 10))
            flag = ticks.BUY_EVENT if bid else ticks.SELL_EVENT
            out.add(ticks.TRADE_EVENT | flag, t, book.local_ts, book.px(tick), book.qty(lots))
            book.set(not bid, tick, side[tick] - lots)
        book.follow(best_bid, depth, 1 + int(u[3] * 20))

    return ticks.tick_array(
        out.build(), symbol=spec.symbol, tick_size=spec.tick_size, lot_size=spec.lot_size
    )
