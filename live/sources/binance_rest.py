"""Binance's public REST market data, the part the kline source needs: closed klines and the
server's clock, on spot (``/api/v3``) or USD-M futures (``/fapi/v1``; see
:mod:`live.sources.binance_markets`).

``GET <rest_url>/api/v3/klines?symbol=&interval=&startTime=&endTime=&limit=`` answers an array
of klines (open time ascending), each the documented array ``[open time, open, high, low,
close, volume, close time, quote volume, trades, taker base volume, taker quote volume,
ignore]``, prices and volumes as strings; ``startTime`` / ``endTime`` bound the *open* time
(inclusive), ``limit`` is at most 1000 (``/fapi/v1/klines``: the same, at most 1500). The
answer may end with the kline still forming, so a kline counts as closed only when its close
time is before the server's time (``GET /api/v3/time`` or ``/fapi/v1/time`` →
``{"serverTime": ms}``). Errors come as HTTP 4xx/5xx with Binance's
``{"code": -1121, "msg": "Invalid symbol."}``.

:class:`KlinesRest` pages both ways in windows ``page_limit`` intervals long, so a window never
holds more klines than one request returns; each request asks for no more than its window can
hold (futures weigh a request by its ``limit``: a short gap-fill costs 1, not 10):
:meth:`~KlinesRest.closed_since` forward (a gap-fill),
:meth:`~KlinesRest.closed_before` backward (the warm-up history). HTTP 429/418/5xx and network
failures raise :class:`~live.sources.errors.SourceUnavailable` after ``retries`` more attempts
(``Retry-After`` honoured, capped); anything else the server refuses raises
:class:`~live.sources.errors.SourceError` quoting its code and message, the URL and the symbol.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pandas as pd

from live.sources.binance_markets import SPOT, Market
from live.sources.errors import SourceError, SourceUnavailable
from runners.papertrade.bars import Bar

__all__ = ["MAX_LIMIT", "KlinesRest", "bar_from_row"]

#: The most klines one spot ``/api/v3/klines`` request returns (a market's own: ``max_limit``).
MAX_LIMIT = SPOT.max_limit
_TRANSIENT = {418, 429, 500, 502, 503, 504}


def bar_from_row(symbol: str, interval: str, row: Any) -> Bar:
    """One kline array of ``/api/v3/klines`` as a :class:`Bar` (``ts`` = its open time)."""
    try:
        return Bar(
            symbol,
            pd.Timestamp(int(row[0]), unit="ms", tz="UTC"),
            float(row[1]),
            float(row[2]),
            float(row[3]),
            float(row[4]),
            float(row[5]),
            interval,
        )
    except (TypeError, ValueError, IndexError) as exc:
        raise SourceError(
            f"Binance REST sent a kline for {symbol} that is not one: {row!r}"
        ) from exc


class KlinesRest:
    """Closed klines of one interval from ``rest_url`` (``market``'s paths); at most
    ``page_limit`` klines per request (default: the market's most)."""

    def __init__(
        self,
        rest_url: str,
        interval: str,
        interval_ms: int,
        *,
        market: Market = SPOT,
        page_limit: int | None = None,
        timeout: float = 10.0,
        retries: int = 0,
        retry_pause: float = 0.5,
    ) -> None:
        page_limit = market.max_limit if page_limit is None else page_limit
        if not 1 <= page_limit <= market.max_limit:
            raise ValueError(
                f"page_limit must be 1..{market.max_limit} ({market.title}'s most), "
                f"not {page_limit}"
            )
        self.market = market
        self.base = rest_url.rstrip("/")
        self.interval = interval
        self.interval_ms = interval_ms
        self.page_limit = page_limit
        #: A window of this many ms holds exactly ``page_limit`` open times, whatever the phase
        #: of the interval grid (1w klines open on Mondays, not on multiples of a week).
        self.span = page_limit * interval_ms
        self.timeout = timeout
        self.retries = retries
        self.retry_pause = retry_pause

    def server_time(self, client: httpx.Client, stop: threading.Event | None = None) -> int:
        """The exchange's clock in epoch milliseconds."""
        path = self.market.time_path
        answer = self._get(client, path, {}, "", stop)
        if not isinstance(answer, dict) or not isinstance(answer.get("serverTime"), int):
            raise SourceError(f"Binance REST {self.base}{path} answered {answer!r}")
        return int(answer["serverTime"])

    def client(self) -> httpx.Client:
        """A fresh HTTP client (one per gap-fill or history call: no sharing across threads)."""
        return httpx.Client(timeout=self.timeout)

    def closed_since(
        self,
        client: httpx.Client,
        symbol: str,
        start_ms: int,
        now_ms: int,
        stop: threading.Event | None = None,
    ) -> list[Bar]:
        """Closed klines with open time in ``[start_ms, now_ms)`` closed before ``now_ms``."""
        out: list[Bar] = []
        lo = start_ms
        while lo < now_ms and not (stop is not None and stop.is_set()):
            hi = min(now_ms - 1, lo + self.span - 1)
            out += [b for b, closes in self._page(client, symbol, lo, hi, stop) if closes < now_ms]
            lo = hi + 1
        return out

    def closed_before(
        self,
        client: httpx.Client,
        symbol: str,
        end_ms: int,
        count: int,
        now_ms: int,
        stop: threading.Event | None = None,
    ) -> list[Bar]:
        """The last ``count`` closed klines with open time before ``end_ms``, oldest first.

        Pages backwards until ``count`` are found or a whole window comes back empty (before
        the symbol's listing, or an exchange outage longer than a window).
        """
        found: list[Bar] = []
        hi = min(end_ms, now_ms) - 1  # nothing opening at ``now_ms`` or later has closed
        while len(found) < count and hi >= 0 and not (stop is not None and stop.is_set()):
            lo = max(0, hi - self.span + 1)
            page = [b for b, closes in self._page(client, symbol, lo, hi, stop) if closes < now_ms]
            if not page:
                break
            found = page + found
            hi = lo - 1
        return found[-count:] if count > 0 else []

    def _page(
        self, client: httpx.Client, symbol: str, lo: int, hi: int, stop: threading.Event | None
    ) -> list[tuple[Bar, int]]:
        """One request: the klines with open time in ``[lo, hi]`` and their close times."""
        fits = -(-(hi - lo + 1) // self.interval_ms)  # open times a window this long can hold
        params = {
            "symbol": symbol,
            "interval": self.interval,
            "startTime": lo,
            "endTime": hi,
            "limit": max(1, min(self.page_limit, fits)),
        }
        path = self.market.klines_path
        rows = self._get(client, path, params, symbol, stop)
        if not isinstance(rows, list):
            raise SourceError(
                f"Binance REST {self.base}{path} answered {str(rows)[:200]!r} for "
                f"{symbol}, not an array of klines"
            )
        out = []
        for row in rows:
            bar = bar_from_row(symbol, self.interval, row)
            opened = int(row[0])
            if lo <= opened <= hi:
                out.append((bar, int(row[6])))
        return out

    def _get(
        self,
        client: httpx.Client,
        path: str,
        params: dict[str, Any],
        symbol: str,
        stop: threading.Event | None,
    ) -> Any:
        url = f"{self.base}{path}"
        for_symbol = f" for {symbol}" if symbol else ""
        attempt = 0
        while True:
            try:
                answer = client.get(url, params=params)
            except httpx.HTTPError as exc:
                problem = f"Binance REST {url} is unreachable{for_symbol}: {exc}"
                wait = self.retry_pause * 2**attempt
            else:
                if answer.status_code == 200:
                    try:
                        return answer.json()
                    except ValueError as exc:
                        raise SourceError(
                            f"Binance REST {answer.url} answered something that is not JSON"
                            f"{for_symbol}: {answer.text[:200]!r}"
                        ) from exc
                problem = (
                    f"Binance REST {answer.url} answered HTTP {answer.status_code}{for_symbol}: "
                    f"{_describe(answer)}"
                )
                if answer.status_code not in _TRANSIENT:
                    raise SourceError(problem)
                wait = _retry_after(answer) or self.retry_pause * 2**attempt
            if attempt >= self.retries:
                raise SourceUnavailable(problem)
            attempt += 1
            if (stop or threading.Event()).wait(min(wait, 30.0)):
                raise SourceUnavailable(f"{problem} (stopped while waiting to retry)")


def _describe(answer: httpx.Response) -> str:
    """Binance's ``code`` and ``msg`` when the body has them, else the body's start."""
    try:
        body = answer.json()
    except ValueError:
        return repr(answer.text[:200])
    if isinstance(body, dict) and "msg" in body:
        return f"code {body.get('code')}: {body['msg']}"
    return repr(str(body)[:200])


def _retry_after(answer: httpx.Response) -> float | None:
    try:
        return float(answer.headers.get("Retry-After", ""))
    except ValueError:
        return None
