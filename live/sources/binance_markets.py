"""The Binance markets the kline source reads: where each serves public klines, and its limits.

Two markets, each a frozen :class:`Market` (endpoints and documented limits checked against
Binance's API documentation, December 2026):

- ``spot`` (:data:`SPOT`): stream ``wss://stream.binance.com:9443``, REST
  ``https://api.binance.com`` (``GET /api/v3/klines``, at most 1000 klines a request, weight 2;
  ``GET /api/v3/time``), 1024 streams a connection, intervals from ``1s``.
- ``usdm`` (:data:`USDM`), USDⓈ-M futures: stream ``wss://fstream.binance.com/market`` (since
  Binance split the futures WebSocket by traffic category, klines are "market" data: the
  legacy root URL, retired on 2026-04-23, connects but delivers no kline), REST
  ``https://fapi.binance.com`` (``GET /fapi/v1/klines``: the same row layout as spot, at most
  1500 klines a request, weight by ``limit``: 1 below 100, 2 below 500, 5 up to 1000, 10 above;
  ``GET /fapi/v1/time``), 200 streams a connection, no ``1s`` interval. Symbols are perpetuals
  (``BTCUSDT``) or delivery contracts (``BTCUSDT_261225``).

The combined stream's messages (``{"stream", "data": {"e": "kline", "k": {...}}}``) and the
kline arrays are the same in both markets, so one source serves both.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["MARKETS", "SPOT", "SPOT_INTERVALS", "USDM", "Market"]

#: Binance spot's kline intervals with a fixed length (``1M``, the calendar month, has none).
SPOT_INTERVALS = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h",
                  "1d", "3d", "1w")  # fmt: skip


@dataclass(frozen=True)
class Market:
    """One Binance market's public kline endpoints and limits."""

    name: str
    title: str
    ws_url: str
    rest_url: str
    klines_path: str
    time_path: str
    #: The most klines one klines request returns.
    max_limit: int
    #: The most streams one WebSocket connection may subscribe to.
    max_streams: int
    intervals: tuple[str, ...]
    symbol_pattern: str
    symbol_example: str

    def check_interval(self, interval: str) -> None:
        """Refuse an interval this market has no fixed-length klines of (``ValueError``)."""
        if interval in self.intervals:
            return
        month = " (1M, the calendar month, is not: its bars differ in length)"
        other = " (1s klines exist on spot only)" if interval == "1s" else ""
        raise ValueError(
            f"{interval!r} is not a {self.title} kline interval this source supports; use one "
            f"of {', '.join(self.intervals)}{month if interval == '1M' else other}"
        )

    def check_symbols(self, symbols: Sequence[str] | str) -> tuple[str, ...]:
        """The symbols upper-cased and checked: well formed, each once, not too many."""
        if isinstance(symbols, str):
            symbols = [symbols]
        if not symbols:
            raise ValueError(
                f"a {self.title} source needs at least one symbol (e.g. {self.symbol_example})"
            )
        pattern = re.compile(self.symbol_pattern)
        out: list[str] = []
        for raw in symbols:
            symbol = str(raw).strip().upper()
            if not pattern.match(symbol):
                raise ValueError(
                    f"{raw!r} is not a {self.title} symbol: letters and digits without a "
                    f"separator ({self.symbol_example}, not BTC/USDT)"
                )
            if symbol in out:
                raise ValueError(f"symbol {symbol} is listed twice")
            out.append(symbol)
        if len(out) > self.max_streams:
            raise ValueError(
                f"{self.title} serves at most {self.max_streams} streams on one connection, "
                f"not {len(out)}"
            )
        return tuple(out)


SPOT = Market(
    name="spot",
    title="Binance spot",
    ws_url="wss://stream.binance.com:9443",
    rest_url="https://api.binance.com",
    klines_path="/api/v3/klines",
    time_path="/api/v3/time",
    max_limit=1000,
    max_streams=1024,
    intervals=SPOT_INTERVALS,
    symbol_pattern=r"^[A-Z0-9]{2,30}$",
    symbol_example="BTCUSDT",
)

USDM = Market(
    name="usdm",
    title="Binance USD-M futures",
    ws_url="wss://fstream.binance.com/market",
    rest_url="https://fapi.binance.com",
    klines_path="/fapi/v1/klines",
    time_path="/fapi/v1/time",
    max_limit=1500,
    max_streams=200,
    intervals=SPOT_INTERVALS[1:],
    symbol_pattern=r"^[A-Z0-9]{2,30}(_[0-9]{6})?$",
    symbol_example="BTCUSDT or BTCUSDT_261225",
)

#: The markets by name (``BinanceKlineSource(market=...)``).
MARKETS: dict[str, Market] = {m.name: m for m in (SPOT, USDM)}
