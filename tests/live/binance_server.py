"""A local stand-in for Binance's public market data, for the kline source's tests.

:class:`BinanceReplay` runs two real servers on free ports of 127.0.0.1, each in a thread:

- the **combined stream** (``ws_url``; websockets' sync server): a client connects to
  ``/stream?streams=btcusdt@kline_1m/...`` and receives the recorded messages of its streams,
  verbatim, from the replay's cursor on. The cursor is the exchange's clock: it starts at
  ``start_ms`` (the first message of a kline opening at or after it) and moves as messages are
  sent. When every message is sent the connection stays open and quiet, as an exchange with
  nothing new to say.
- the **REST API** (``rest_url``; http.server): ``GET /api/v3/time`` answers the clock (the event
  time of the last message passed), ``GET /api/v3/klines`` the documented kline arrays of every
  kline closed by then (its final recorded values) plus, last, the kline still forming (its
  latest update), selected by ``startTime``/``endTime`` on the open time and cut to ``limit``
  (at most 1000), as Binance does. Errors are Binance's ``{"code", "msg"}`` with HTTP 400
  (unknown symbol, interval or limit) or 503 (``rest_failures``).

``plan`` says what the server does with each connection attempt, in order (:class:`Session`;
attempts after the plan get a plain session): refuse the handshake with an HTTP status, send a
payload (an error) instead of the stream, drop after ``drop_after`` messages (``"abrupt"``: the
TCP connection shut without a close frame; ``"close"``: a close frame, 1001 going away, as
Binance's 24-hour cut), ``skip`` messages while the client is away (so the client must gap-fill
from REST), and re-send each stream's last closed kline when a session starts. A stream the
recording does not have is answered with ``{"code": -1121, "msg": "Invalid symbol: ..."}`` and
a close (our choice: what Binance does with an unknown stream name could not be checked here).
``sessions``, ``rest_requests`` (the klines queries) and ``rest_paths`` (every REST path asked
for) record what happened, for the assertions.

The clock can also be held and moved by the test, for restarts: :meth:`BinanceReplay.hold`
stops the stream before the first message of a kline opening at or after a time (the exchange
has nothing new to say; connections stay open and quiet until :meth:`~BinanceReplay.release`),
and :meth:`~BinanceReplay.advance` moves the clock to a later time without sending anything to
anyone (time passing while no client listens: the klines closed meanwhile are on REST only).
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

RECORDING = Path(__file__).parent / "data" / "binance_klines_1m.jsonl"


@dataclass(frozen=True)
class Paths:
    """Where one market serves its stream and REST answers, and its most klines a request."""

    stream: str
    time: str
    klines: str
    max_limit: int


MARKETS = {
    "spot": Paths("/stream", "/api/v3/time", "/api/v3/klines", 1000),
    "usdm": Paths("/market/stream", "/fapi/v1/time", "/fapi/v1/klines", 1500),
}


@dataclass(frozen=True)
class Session:
    """What the server does with one connection attempt."""

    refuse: int | None = None
    answer: dict[str, Any] | None = None
    drop_after: int | None = None
    drop: Literal["abrupt", "close"] = "abrupt"
    skip: int = 0
    resend_last_closed: bool = False


@dataclass
class _Log:
    path: str
    plan: Session
    sent: int = 0
    resent: int = 0
    #: (symbol, open ms) of the closed klines skipped while the client was away
    skipped_closed: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class BinanceReplay:
    """The replay of ``lines`` (JSON messages) from ``start_ms``; see the module docstring."""

    lines: list[str]
    start_ms: int | None = None
    plan: list[Session] = field(default_factory=list)
    rest_failures: int = 0
    market: Literal["spot", "usdm"] = "spot"
    sessions: list[_Log] = field(default_factory=list)
    rest_requests: list[dict[str, str]] = field(default_factory=list)
    rest_paths: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.paths = MARKETS[self.market]
        self.messages = [json.loads(line) for line in self.lines]
        self.interval = self.messages[0]["data"]["k"]["i"]
        self.streams = {m["stream"] for m in self.messages}
        self.symbols = {m["data"]["s"] for m in self.messages}
        start = self.start_ms if self.start_ms is not None else 0
        self.cursor = self._index(start)
        self.held: int | None = None  # the stream sends no message from this index on
        self.lock = threading.Lock()
        self._stopping = threading.Event()
        self._pending: dict[int, _Log] = {}

    # -- what the tests read ----------------------------------------------------------------

    def closed(self, since_ms: int = 0) -> list[dict[str, Any]]:
        """The recorded closed klines (``k`` of ``x`` true) opening at or after ``since_ms``."""
        return [m["data"]["k"] for m in self.messages
                if m["data"]["k"]["x"] and m["data"]["k"]["t"] >= since_ms]  # fmt: skip

    def now_ms(self) -> int:
        """The exchange's clock: the event time of the last message the replay passed."""
        with self.lock:
            return self._now()

    def hold(self, at_ms: int) -> None:
        """Stop the stream before the first message of a kline opening at or after ``at_ms``."""
        with self.lock:
            self.held = self._index(at_ms)

    def release(self) -> None:
        """Let the stream go on (to the recording's end)."""
        with self.lock:
            self.held = None

    def advance(self, to_ms: int) -> None:
        """Move the clock to the first message of a kline opening at or after ``to_ms``,
        sending nothing (time passing while no client listens)."""
        with self.lock:
            target = self._index(to_ms)
            if target < self.cursor:
                raise ValueError(f"the clock is past {to_ms} already")
            self.cursor = target

    def passed_closed(self, symbol: str) -> list[dict[str, Any]]:
        """The closed klines of ``symbol`` whose final message the clock has passed."""
        with self.lock:
            passed = self.messages[: self.cursor]
        return [m["data"]["k"] for m in passed
                if m["data"]["s"] == symbol and m["data"]["k"]["x"]]  # fmt: skip

    def _index(self, at_ms: int) -> int:
        ks = [m["data"]["k"]["t"] for m in self.messages]
        return next((i for i, t in enumerate(ks) if t >= at_ms), len(ks))

    def _now(self) -> int:
        if self.cursor == 0:
            return int(self.messages[0]["data"]["E"]) - 1
        return int(self.messages[min(self.cursor, len(self.messages)) - 1]["data"]["E"])

    # -- life -------------------------------------------------------------------------------

    def start(self) -> BinanceReplay:
        self._ws: Server = serve(self._handle, "127.0.0.1", 0, process_request=self._admit,
                                 ping_interval=None)  # fmt: skip
        self.ws_url = f"ws://127.0.0.1:{self._ws.socket.getsockname()[1]}"
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _rest_handler(self))
        self._http.daemon_threads = True
        self.rest_url = f"http://127.0.0.1:{self._http.server_address[1]}"
        for target in (self._ws.serve_forever, self._http.serve_forever):
            threading.Thread(target=target, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._ws.shutdown()
        self._http.shutdown()
        self._http.server_close()

    def __enter__(self) -> BinanceReplay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the stream -------------------------------------------------------------------------

    def _admit(self, conn: ServerConnection, request: Request) -> Response | None:
        with self.lock:
            n = len(self.sessions)
            log = _Log(request.path, self.plan[n] if n < len(self.plan) else Session())
            self.sessions.append(log)
        if log.plan.refuse is not None:
            return conn.respond(log.plan.refuse, "Service Unavailable\n")
        url = urlsplit(request.path)
        if url.path != self.paths.stream or not parse_qs(url.query).get("streams"):
            hint = f"Use {self.paths.stream}?streams=<a>/<b>"
            return conn.respond(400, json.dumps({"code": -1100, "msg": hint}) + "\n")
        self._pending[id(conn)] = log
        return None

    def _handle(self, ws: ServerConnection) -> None:
        log = self._pending.pop(id(ws))
        assert ws.request is not None
        wanted = set(parse_qs(urlsplit(ws.request.path).query)["streams"][0].split("/"))
        unknown = sorted(wanted - self.streams)
        if log.plan.answer is not None or unknown:
            answer = log.plan.answer or {"code": -1121, "msg": f"Invalid symbol: {unknown[0]}"}
            ws.send(json.dumps(answer))
            ws.close(1008, "invalid request")
            return
        if log.plan.resend_last_closed:
            for raw in self._last_closed(wanted):
                ws.send(raw)
                log.resent += 1
        while not self._stopping.is_set():
            with self.lock:
                if self.cursor >= len(self.lines):
                    break
                held = self.held is not None and self.cursor >= self.held
                if not held:
                    raw, msg = self.lines[self.cursor], self.messages[self.cursor]
                    self.cursor += 1
            if held:  # quiet, the connection open, until released
                try:
                    ws.recv(timeout=0.05)
                except TimeoutError:
                    continue
                except ConnectionClosed:
                    return
                continue
            if msg["stream"] not in wanted:
                continue
            try:
                ws.send(raw)
            except ConnectionClosed:
                return
            log.sent += 1
            if log.plan.drop_after is not None and log.sent >= log.plan.drop_after:
                with self.lock:
                    end = min(len(self.lines), self.cursor + log.plan.skip)
                    log.skipped_closed = [(m["data"]["s"], m["data"]["k"]["t"])
                                          for m in self.messages[self.cursor : end]
                                          if m["data"]["k"]["x"]]  # fmt: skip
                    self.cursor = end
                if log.plan.drop == "abrupt":
                    ws.socket.shutdown(socket.SHUT_RDWR)
                else:
                    ws.close(1001, "going away")
                return
        while not self._stopping.is_set():  # all sent: stay open and quiet
            try:
                ws.recv(timeout=0.2)
            except TimeoutError:
                continue
            except ConnectionClosed:
                return

    def _last_closed(self, wanted: set[str]) -> list[str]:
        with self.lock:
            last: dict[str, int] = {}
            for i in range(min(self.cursor, len(self.lines))):
                m = self.messages[i]
                if m["stream"] in wanted and m["data"]["k"]["x"]:
                    last[m["stream"]] = i
            return [self.lines[i] for i in sorted(last.values())]

    # -- REST -------------------------------------------------------------------------------

    def klines(self, query: dict[str, str]) -> tuple[int, Any]:
        """The answer (status, JSON) to ``GET /api/v3/klines?<query>`` (or ``/fapi/v1/klines``)."""
        with self.lock:
            self.rest_requests.append(query)
            if self.rest_failures > 0:
                self.rest_failures -= 1
                return 503, {"code": -1001, "msg": "Internal error; unable to process your "
                             "request. Please try again."}  # fmt: skip
            now, cursor = self._now(), self.cursor
        symbol = query.get("symbol", "")
        if symbol not in self.symbols:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        if query.get("interval") != self.interval:
            return 400, {"code": -1120, "msg": "Invalid interval."}
        limit = int(query.get("limit", "500"))
        if not 1 <= limit <= self.paths.max_limit:
            return 400, {"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."}
        ks = [m["data"]["k"] for m in self.messages if m["data"]["s"] == symbol]
        rows = [_row(k) for k in ks if k["x"] and k["T"] < now]
        seen = [m["data"]["k"] for m in self.messages[:cursor] if m["data"]["s"] == symbol]
        if seen and not seen[-1]["x"] and seen[-1]["T"] >= now:
            rows.append(_row(seen[-1]))  # the kline still forming, as Binance answers it
        lo, hi = int(query.get("startTime", 0)), int(query.get("endTime", 2**62))
        rows = [r for r in rows if lo <= r[0] <= hi]
        return 200, rows[:limit] if "startTime" in query else rows[-limit:]


def _row(k: dict[str, Any]) -> list[Any]:
    """A kline as ``/api/v3/klines`` answers it (the documented array)."""
    return [k["t"], k["o"], k["h"], k["l"], k["c"], k["v"], k["T"], k["q"], k["n"], k["V"],
            k["Q"], "0"]  # fmt: skip


def _rest_handler(replay: BinanceReplay) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            with replay.lock:
                replay.rest_paths.append(url.path)
            if url.path == replay.paths.time:
                status, body = 200, {"serverTime": replay.now_ms()}
            elif url.path == replay.paths.klines:
                status, body = replay.klines(query)
            else:
                status, body = 404, {"code": -1, "msg": f"no such endpoint {url.path}"}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def recording() -> list[str]:
    """The lines of ``data/binance_klines_1m.jsonl``."""
    return RECORDING.read_text().splitlines()
