"""Binance's public kline stream as a bar source: closed klines, reconnecting, gap-filled.

:class:`BinanceKlineSource` implements :class:`~runners.papertrade.bars.BarSource` on
Binance's public market data (no API keys), spot or USD-M futures (``market="spot"`` or
``"usdm"``: the endpoints and limits of :mod:`live.sources.binance_markets`). ``bars`` reads the
combined stream ``<ws_url>/stream?streams=btcusdt@kline_1m/ethusdt@kline_1m`` whose messages
are ``{"stream": "btcusdt@kline_1m", "data": {"e": "kline", "E": <event ms>, "s": "BTCUSDT",
"k": {"t": <open ms>, "T": <close ms>, "s": "BTCUSDT", "i": "1m", "o": "..", "h": "..",
"l": "..", "c": "..", "v": "..", "x": <closed?>, ...}}}`` (the same in both markets) and yields
a :class:`~runners.papertrade.bars.Bar`
(``ts`` = the open time ``t``, UTC) only for a closed kline (``x`` true); the updates of the
kline still forming are read and dropped.

The contract of ``bars``:

- **Reconnects.** A dropped connection, a close frame (Binance closes every connection after
  24 h), a failed handshake, a network error or a transient HTTP status (429, 418, 5xx) ends
  the session; the next attempt waits ``backoff_initial * backoff_factor**(n-1)`` seconds,
  at most ``backoff_max``, ``n`` counting the consecutive attempts that delivered nothing (a
  session that delivered a message resets it). ``max_failures`` such attempts in a row end
  ``bars`` with a :class:`~live.sources.errors.SourceError`; ``None`` retries for ever.
  Pings are answered by the ``websockets`` client, which also pings the server
  (``ping_interval``) and drops a connection whose pongs stop.
- **No gap.** Every session opens the WebSocket *first*, then (once a bar has been yielded, or
  from the first session when ``after`` is given) asks the REST API for the klines each symbol
  missed since the last one it yielded, up to the server's clock: a kline closing after the socket
  opened arrives on the socket, one that closed before is in the REST answer. The filled bars
  are yielded in (ts, symbol) order before the live ones. A closed kline arriving on an open
  stream further than one interval after the symbol's last bar is filled the same way.
- **No duplicate.** A bar is yielded only when its open time is after the last one yielded for
  its symbol (a kline re-sent after a reconnect, or already filled from REST, is counted in
  ``duplicates`` and dropped).
- **Stop.** ``stop`` is polled every quarter second while reading, during back-off and between
  REST pages; a connection attempt in progress can take up to ``open_timeout``.
- **Errors.** An error payload (``{"code": .., "msg": ..}`` or ``{"error": {..}}``), a message
  that is not a combined-stream kline message, a refused handshake (HTTP 4xx) or a REST error
  (``code``/``msg``) raise :class:`~live.sources.errors.SourceError` naming the URL and the
  symbols. Bad settings are ``ValueError`` at construction.

``history(end, count)`` is the warm-up from ``GET /api/v3/klines`` (futures:
``/fapi/v1/klines``; paged, ``page_limit`` per request, by default the market's most: 1000 on
spot, 1500 on futures; see :mod:`live.sources.binance_rest`). Counters for tests and the dashboard:
``connects``, ``reconnects``, ``failures``, ``gap_filled``, ``duplicates``, ``last_error``
(:meth:`BinanceKlineSource.stats`); reconnects and gap-fills are logged on
``live.sources.binance``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection, connect
from websockets.sync.connection import Connection
from websockets.uri import parse_uri

from live.sources.binance_markets import MARKETS, SPOT, SPOT_INTERVALS, Market
from live.sources.binance_rest import KlinesRest
from live.sources.errors import SourceError, SourceUnavailable
from runners.papertrade.bars import Bar, interval_seconds

__all__ = ["INTERVALS", "BinanceKlineSource", "backoff_delay"]

log = logging.getLogger("live.sources.binance")

#: Binance spot's kline intervals with a fixed length (futures: the same but ``1s``).
INTERVALS = SPOT_INTERVALS
#: Binance spot's limit of streams on one connection (futures: 200).
MAX_STREAMS = SPOT.max_streams
_POLL = 0.25
_TRANSIENT_STATUS = {418, 429, 500, 502, 503, 504}


def backoff_delay(failures: int, initial: float, factor: float, maximum: float) -> float:
    """Seconds to wait after ``failures`` consecutive failed attempts (1, 2, ...)."""
    return float(min(maximum, initial * factor ** max(0, failures - 1)))


@dataclass
class _State:
    """What one ``bars`` call has yielded: the last open time (ms) per symbol."""

    last: dict[str, int] = field(default_factory=dict)
    #: The first bar's open time: where a symbol without a bar yet has to start.
    origin: int | None = None
    delivered: bool = False


class BinanceKlineSource:
    """Closed klines of ``symbols`` at ``interval`` from Binance's public streams of
    ``market`` (``"spot"`` or ``"usdm"``); ``ws_url`` / ``rest_url`` default to the market's."""

    def __init__(
        self,
        symbols: Sequence[str],
        interval: str = "1m",
        *,
        market: str | Market = "spot",
        ws_url: str | None = None,
        rest_url: str | None = None,
        after: pd.Timestamp | str | None = None,
        backoff_initial: float = 1.0,
        backoff_factor: float = 2.0,
        backoff_max: float = 60.0,
        max_failures: int | None = None,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        close_timeout: float = 1.0,
        rest_timeout: float = 10.0,
        rest_retries: int = 2,
        page_limit: int | None = None,
    ) -> None:
        self.market = _market(market)
        self.symbols = self.market.check_symbols(symbols)
        self.market.check_interval(interval)
        if not (backoff_initial > 0 and backoff_factor >= 1 and backoff_max >= backoff_initial):
            raise ValueError(
                "reconnect back-off needs backoff_initial > 0, backoff_factor >= 1 and "
                f"backoff_max >= backoff_initial (got {backoff_initial}, {backoff_factor}, "
                f"{backoff_max})"
            )
        if max_failures is not None and max_failures < 1:
            raise ValueError(f"max_failures must be at least 1 or None, not {max_failures}")
        ws_url = self.market.ws_url if ws_url is None else ws_url
        rest_url = self.market.rest_url if rest_url is None else rest_url
        _check_url(ws_url, ("ws://", "wss://"), "ws_url")
        _check_url(rest_url, ("http://", "https://"), "rest_url")
        self.interval = interval
        self.interval_ms = interval_seconds(interval) * 1000
        streams = "/".join(f"{s.lower()}@kline_{interval}" for s in self.symbols)
        self.stream_url = f"{ws_url.rstrip('/')}/stream?streams={streams}"
        try:
            parse_uri(self.stream_url)
        except InvalidURI as exc:
            raise ValueError(f"ws_url {ws_url!r} is not a WebSocket URL: {exc}") from None
        self.after = None if after is None else _ms(after)
        self.backoff = (backoff_initial, backoff_factor, backoff_max)
        self.max_failures = max_failures
        self._ws_options: dict[str, Any] = {
            "open_timeout": open_timeout,
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "close_timeout": close_timeout,
        }
        self.rest = KlinesRest(rest_url, interval, self.interval_ms, market=self.market,
                               page_limit=page_limit, timeout=rest_timeout)  # fmt: skip
        self.rest_retries = rest_retries
        self.connects = 0
        self.reconnects = 0
        self.failures = 0
        self.gap_filled = 0
        self.duplicates = 0
        self.last_error: str | None = None

    def stats(self) -> dict[str, Any]:
        """The counters as plain JSON (for a dashboard)."""
        return {
            "connects": self.connects,
            "reconnects": self.reconnects,
            "failures": self.failures,
            "gap_filled": self.gap_filled,
            "duplicates": self.duplicates,
            "last_error": self.last_error,
        }

    # -- live bars -----------------------------------------------------------------------------

    def bars(self, stop: threading.Event) -> Iterator[Bar]:
        """Closed bars as they close, across reconnects, gapless, until ``stop`` is set."""
        state = _State()
        if self.after is not None:
            state.last = dict.fromkeys(self.symbols, self.after)
        consecutive = 0
        while not stop.is_set():
            state.delivered = False
            try:
                with self._connect() as ws:
                    self._opened()
                    yield from self._fill(state, stop)
                    yield from self._read(ws, state, stop)
                return
            except SourceUnavailable as exc:
                problem: Exception = exc
            except SourceError:
                raise
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status not in _TRANSIENT_STATUS:
                    body = bytes(exc.response.body or b"").decode("utf-8", "replace")[:200]
                    raise SourceError(
                        f"{self.market.title} stream {self.stream_url} refused the connection for "
                        f"{self._names()}: HTTP {status} {body!r}"
                    ) from None
                problem = exc
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
                problem = exc
            consecutive = 1 if state.delivered else consecutive + 1
            self.failures += 1
            self.last_error = f"{type(problem).__name__}: {problem}"
            if self.max_failures is not None and consecutive >= self.max_failures:
                raise SourceError(
                    f"{self.market.title} stream {self.stream_url} for {self._names()} failed "
                    f"{consecutive} times in a row; the last: {self.last_error}"
                ) from problem
            delay = backoff_delay(consecutive, *self.backoff)
            log.warning(
                "%s stream %s lost (%s); reconnecting in %.2f s (attempt %d)",
                self.market.title, self.stream_url, self.last_error, delay, consecutive,
                extra={"delay": delay, "attempt": consecutive},
            )  # fmt: skip
            if stop.wait(delay):
                return

    def _connect(self) -> ClientConnection:
        return connect(self.stream_url, **self._ws_options)

    def _opened(self) -> None:
        if self.connects:
            self.reconnects += 1
            log.info("Binance stream reconnected (%d reconnects): %s", self.reconnects,
                     self.stream_url)  # fmt: skip
        else:
            log.info("Binance stream connected: %s", self.stream_url)
        self.connects += 1

    def _read(self, ws: Connection, state: _State, stop: threading.Event) -> Iterator[Bar]:
        while not stop.is_set():
            try:
                raw = ws.recv(timeout=_POLL)
            except TimeoutError:
                continue
            kline = self._parse(raw)
            state.delivered = True
            if kline is None or not kline[1]:
                continue
            bar = kline[0]
            opened = _ms(bar.ts)
            last = state.last.get(bar.symbol)
            if last is not None and opened <= last:
                self.duplicates += 1
                continue
            start = last + 1 if last is not None else state.origin
            if start is not None and opened - start >= self.interval_ms:
                yield from self._fill_one(bar.symbol, start, opened, state, stop)
            self._accept(bar, state)
            yield bar

    def _fill(self, state: _State, stop: threading.Event) -> Iterator[Bar]:
        """After (re)connecting: what each symbol missed, from REST, in (ts, symbol) order."""
        starts = {s: state.last[s] + 1 for s in self.symbols if s in state.last}
        if state.origin is not None:
            starts = {s: starts.get(s, state.origin) for s in self.symbols}
        if not starts:
            return
        with self.rest.client() as client:
            now = self.rest.server_time(client, stop)
            found = [b for s, start in starts.items()
                     for b in self.rest.closed_since(client, s, start, now, stop)]  # fmt: skip
        if stop.is_set():
            return
        found.sort(key=lambda b: (b.ts, b.symbol))
        yield from self._yield_filled(found, state, "after connecting")

    def _fill_one(
        self, symbol: str, start: int, until: int, state: _State, stop: threading.Event
    ) -> Iterator[Bar]:
        """A closed kline came more than one interval after ``symbol``'s last: fill between."""
        with self.rest.client() as client:
            found = self.rest.closed_since(client, symbol, start, until, stop)
        yield from self._yield_filled(found, state, f"in the stream of {symbol}")

    def _yield_filled(self, found: list[Bar], state: _State, where: str) -> Iterator[Bar]:
        new = [b for b in found if _ms(b.ts) > state.last.get(b.symbol, -1)]
        if new:
            log.info("gap-filled %d bar(s) %s from REST (%s .. %s)", len(new), where,
                     new[0].ts.isoformat(), new[-1].ts.isoformat())  # fmt: skip
        for bar in new:
            self._accept(bar, state)
            self.gap_filled += 1
            yield bar

    def _accept(self, bar: Bar, state: _State) -> None:
        opened = _ms(bar.ts)
        state.last[bar.symbol] = max(opened, state.last.get(bar.symbol, opened))
        if state.origin is None:
            state.origin = opened

    def _parse(self, raw: str | bytes) -> tuple[Bar, bool] | None:
        """A combined-stream message as (bar, closed?); ``None`` for other events."""
        try:
            msg = json.loads(raw)
        except ValueError:
            raise SourceError(
                f"{self.market.title} stream {self.stream_url} sent something that is not JSON: "
                f"{str(raw)[:200]!r}"
            ) from None
        if isinstance(msg, dict) and ("msg" in msg or isinstance(msg.get("error"), dict)):
            err: dict[str, Any] = msg["error"] if isinstance(msg.get("error"), dict) else msg
            raise SourceError(
                f"{self.market.title} stream {self.stream_url} answered with an error for "
                f"{self._names()}: code {err.get('code')}: {err.get('msg')}"
            )
        if isinstance(msg, dict) and "result" in msg and "id" in msg:
            return None  # the answer to a method call (we send none)
        try:
            data = msg["data"]
            if data.get("e") != "kline":
                return None
            k = data["k"]
            symbol = str(k["s"]).upper()
            if symbol not in self.symbols or k["i"] != self.interval:
                log.warning("Binance stream sent a kline of %s %s, not subscribed", symbol, k["i"])
                return None
            opened = pd.Timestamp(int(k["t"]), unit="ms", tz="UTC")
            ohlcv = (float(k["o"]), float(k["h"]), float(k["l"]), float(k["c"]), float(k["v"]))
            bar = Bar(symbol, opened, *ohlcv, self.interval)
            return bar, k["x"] is True
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SourceError(
                f"{self.market.title} stream {self.stream_url} sent a message that is not a "
                f"kline event (missing or malformed {exc}): {str(raw)[:200]!r}"
            ) from None

    def _names(self) -> str:
        shown = ", ".join(self.symbols[:10])
        more = len(self.symbols) - 10
        return f"{shown} and {more} more" if more > 0 else shown

    # -- warm-up -------------------------------------------------------------------------------

    def history(self, end: pd.Timestamp, count: int) -> pd.DataFrame:
        """The last ``count`` closed bars of each symbol with ``ts < end``, as a long panel."""
        if count < 0:
            raise ValueError(f"history count must be 0 or more, not {count}")
        end_ms = _ms(end)
        rest = KlinesRest(self.rest.base, self.interval, self.interval_ms, market=self.market,
                          page_limit=self.rest.page_limit, timeout=self.rest.timeout,
                          retries=self.rest_retries)  # fmt: skip
        rows: list[dict[str, Any]] = []
        if count:
            with rest.client() as client:
                now = rest.server_time(client)
                for symbol in self.symbols:
                    bars = rest.closed_before(client, symbol, end_ms, count, now)
                    rows += [b.row() for b in bars]
        cols = ["ts", "symbol", "open", "high", "low", "close", "volume"]
        frame = pd.DataFrame(rows, columns=cols)
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
        frame = frame.astype({c: "float64" for c in cols[2:]})
        return frame.sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)


def _market(market: str | Market) -> Market:
    if isinstance(market, Market):
        return market
    if market not in MARKETS:
        raise ValueError(f"market {market!r} is not one of {', '.join(MARKETS)}")
    return MARKETS[market]


def _check_url(url: str, schemes: tuple[str, ...], name: str) -> None:
    if not isinstance(url, str) or not url.startswith(schemes) or "?" in url:
        raise ValueError(f"{name} {url!r} must start with {' or '.join(schemes)} (no query)")


def _ms(ts: pd.Timestamp | str) -> int:
    stamp = pd.Timestamp(ts)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value // 1_000_000)
