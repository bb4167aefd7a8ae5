"""The Binance kline source against a real local WebSocket + REST server replaying a recording.

The server (``binance_server.py``) replays ``data/binance_klines_1m.jsonl`` (BTCUSDT and
ETHUSDT 1-minute klines, one to three open updates before each closed one) from 00:30; the
REST API serves the same bars. Expected values always come from the recording itself.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import pytest

from live.sources.binance import BinanceKlineSource, backoff_delay
from live.sources.errors import SourceError
from runners.papertrade.bars import Bar
from tests.live.binance_server import BinanceReplay, Session, recording

MINUTE = 60_000
T0 = 1_717_372_800_000  # 2024-06-03 00:00 UTC, the recording's first kline
LIVE = T0 + 30 * MINUTE  # where the replayed stream starts; before it is REST-only history
PAIR = ["BTCUSDT", "ETHUSDT"]


@pytest.fixture
def replay(request: pytest.FixtureRequest) -> Iterator[BinanceReplay]:
    """A started server; ``@pytest.mark.parametrize("replay", [{...}], indirect=True)`` sets
    its plan, start and REST failures."""
    options: dict[str, Any] = getattr(request, "param", {})
    server = BinanceReplay(recording(), start_ms=options.get("start_ms", LIVE),
                           plan=list(options.get("plan", [])),
                           rest_failures=options.get("rest_failures", 0))  # fmt: skip
    with server:
        yield server


def source(server: BinanceReplay, symbols: list[str] = PAIR, **kw: Any) -> BinanceKlineSource:
    kw.setdefault("backoff_initial", 0.02)
    kw.setdefault("backoff_max", 0.2)
    return BinanceKlineSource(symbols, "1m", ws_url=server.ws_url, rest_url=server.rest_url, **kw)


def take(src: BinanceKlineSource, n: int, *, timeout: float = 30.0) -> list[Bar]:
    """The bars ``src`` yields: ``n`` of them plus whatever comes in the half second after (a
    duplicate at the end), or what came before ``timeout`` if fewer."""
    stop = threading.Event()
    watchdog = threading.Timer(timeout, stop.set)
    watchdog.start()
    out: list[Bar] = []
    try:
        for bar in src.bars(stop):
            out.append(bar)
            if len(out) == n:
                threading.Timer(0.5, stop.set).start()
    finally:
        watchdog.cancel()
    return out


def values(k: dict[str, Any]) -> tuple[str, int, float, float, float, float, float]:
    return (k["s"], k["t"], float(k["o"]), float(k["h"]), float(k["l"]), float(k["c"]),
            float(k["v"]))  # fmt: skip


def bar_values(b: Bar) -> tuple[str, int, float, float, float, float, float]:
    return (b.symbol, int(b.ts.value // 1_000_000), b.open, b.high, b.low, b.close, b.volume)


def assert_gapless(got: list[Bar], expected: list[dict[str, Any]]) -> None:
    """Per symbol exactly the recorded closed bars (values too), each once, in time order."""
    keys = [b.key for b in got]
    assert len(keys) == len(set(keys)), "a bar was yielded twice"
    for symbol in PAIR:
        mine = [bar_values(b) for b in got if b.symbol == symbol]
        assert mine == [values(k) for k in expected if k["s"] == symbol], symbol
    stamps = [b.ts for b in got]
    assert stamps == sorted(stamps), "bars of different times were yielded out of order"


def test_closed_klines_become_bars_with_the_recorded_values(replay: BinanceReplay) -> None:
    expected = replay.closed(LIVE)
    assert len(expected) == 120
    src = source(replay)
    got = take(src, len(expected))
    # in arrival order, the open updates (x false) dropped: their values differ from the close
    assert [bar_values(b) for b in got] == [values(k) for k in expected]
    assert {b.interval for b in got} == {"1m"} and str(got[0].ts.tz) == "UTC"
    assert got[0].ts == pd.Timestamp("2024-06-03 00:30", tz="UTC")
    assert got[0].tick()["price"] == float(expected[0]["c"])
    assert src.stats() == {"connects": 1, "reconnects": 0, "failures": 0, "gap_filled": 0,
                           "duplicates": 0, "last_error": None}  # fmt: skip
    assert replay.rest_requests == []


DROPS = [
    Session(drop_after=37, drop="abrupt", skip=45),
    Session(drop_after=50, drop="close", skip=20, resend_last_closed=True),
    Session(resend_last_closed=True),
]


@pytest.mark.parametrize("replay", [{"plan": DROPS}], indirect=True)
def test_dropped_connections_reconnect_and_gap_fill_without_duplicate_or_gap(
    replay: BinanceReplay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="live.sources.binance")
    expected = replay.closed(LIVE)
    src = source(replay)
    got = take(src, len(expected))
    assert_gapless(got, expected)
    assert src.reconnects == 2 and src.connects == 3 and src.failures == 2
    assert "ConnectionClosedOK" in (src.last_error or "")  # the second drop had a close frame
    skipped = [k for s in replay.sessions for k in s.skipped_closed]
    assert len(skipped) >= 10 and src.gap_filled >= len(skipped)
    resent = sum(s.resent for s in replay.sessions)
    assert resent >= 2 and src.duplicates >= resent
    lost = [r for r in caplog.records if "lost" in r.getMessage()]
    assert [r.levelno for r in lost] == [logging.WARNING] * 2
    assert sum("gap-filled" in r.getMessage() for r in caplog.records) >= 2


@pytest.mark.parametrize(
    "replay", [{"plan": [Session(drop_after=37, skip=45)], "rest_failures": 2}], indirect=True
)
def test_a_gap_fill_the_rest_api_refuses_is_retried_on_a_new_connection(
    replay: BinanceReplay,
) -> None:
    expected = replay.closed(LIVE)
    src = source(replay)
    got = take(src, len(expected))
    assert_gapless(got, expected)
    assert src.failures == 3 and src.reconnects == 3  # the drop, then two fills answered 503


@pytest.mark.parametrize("replay", [{}], indirect=True)
def test_after_resumes_a_restart_by_filling_from_rest_first(replay: BinanceReplay) -> None:
    after = pd.Timestamp(T0 + 20 * MINUTE, unit="ms", tz="UTC")
    expected = replay.closed(T0 + 21 * MINUTE)
    src = source(replay, after=after)
    got = take(src, len(expected))
    assert_gapless(got, expected)
    first = [bar_values(b) for b in got[:18]]
    assert first == sorted((values(k) for k in expected[:18]), key=lambda v: (v[1], v[0]))
    assert src.gap_filled >= 18 and src.reconnects == 0


REFUSALS = [Session(refuse=503)] * 3 + [Session(drop_after=10, drop="close"), Session(refuse=503)]


@pytest.mark.parametrize("replay", [{"plan": REFUSALS}], indirect=True)
def test_back_off_grows_is_bounded_and_resets_after_a_session_that_delivered(
    replay: BinanceReplay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="live.sources.binance")
    expected = replay.closed(LIVE)
    src = source(replay, backoff_initial=0.02, backoff_factor=2, backoff_max=0.05)
    got = take(src, len(expected))
    assert_gapless(got, expected)
    delays = [r.delay for r in caplog.records if hasattr(r, "delay")]
    assert delays == [0.02, 0.04, 0.05, 0.02, 0.04]
    assert src.failures == 5 and src.connects == 2


def test_backoff_delay_is_exponential_and_capped() -> None:
    assert [backoff_delay(n, 1.0, 2.0, 60.0) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff_delay(3, 0.5, 1.0, 5.0) == 0.5


def test_history_pages_and_ends_just_before_the_first_live_bar(replay: BinanceReplay) -> None:
    src = source(replay, page_limit=7)
    stop = threading.Event()
    bars = src.bars(stop)
    first = next(bars)
    try:
        warm = src.history(first.ts, 25)
    finally:
        stop.set()
        bars.close()
    assert first.ts == pd.Timestamp(LIVE, unit="ms", tz="UTC")
    assert list(warm.columns) == ["ts", "symbol", "open", "high", "low", "close", "volume"]
    assert warm.groupby("symbol").size().to_dict() == {"BTCUSDT": 25, "ETHUSDT": 25}
    assert warm["ts"].max() == first.ts - pd.Timedelta(minutes=1)  # no gap, no overlap
    assert warm.equals(warm.sort_values(["ts", "symbol"], ignore_index=True))
    recorded = [k for k in replay.closed(LIVE - 25 * MINUTE) if k["t"] < LIVE]
    rows = [(r.symbol, int(r.ts.value // 1_000_000), r.open, r.high, r.low, r.close, r.volume)
            for r in warm.itertuples()]  # fmt: skip
    assert sorted(rows) == sorted(values(k) for k in recorded)
    klines = [q for q in replay.rest_requests if q["symbol"] == "BTCUSDT"]
    assert len(klines) == 4 and {q["limit"] for q in klines} == {"7"}  # 7 + 7 + 7 + 4


def test_history_returns_what_exists_and_never_the_kline_still_forming(
    replay: BinanceReplay,
) -> None:
    src = source(replay, page_limit=7)
    everything = src.history(pd.Timestamp(LIVE, unit="ms", tz="UTC"), 1000)
    assert everything.groupby("symbol").size().to_dict() == {"BTCUSDT": 30, "ETHUSDT": 30}
    replay.cursor += 2  # the exchange's clock moves into 00:30: two updates, the kline forms
    assert LIVE < replay.now_ms() < LIVE + MINUTE
    raw = httpx.get(f"{replay.rest_url}/api/v3/klines",
                    params={"symbol": "BTCUSDT", "interval": "1m", "limit": 3}).json()  # fmt: skip
    assert raw[-1][0] == LIVE and raw[-1][6] > replay.now_ms()  # Binance answers it too...
    late = src.history(pd.Timestamp("2030-01-01", tz="UTC"), 5)
    last = pd.Timestamp(LIVE - MINUTE, unit="ms", tz="UTC")
    assert late["ts"].max() == last and len(late) == 10  # ...which history leaves out
    assert source(replay).history(late["ts"].max(), 0).empty


@pytest.mark.parametrize(
    "replay", [{"plan": [Session(answer={"code": -1121, "msg": "Invalid symbol."})]}],
    indirect=True,
)  # fmt: skip
def test_an_error_payload_on_the_stream_is_a_clear_error(replay: BinanceReplay) -> None:
    src = source(replay)
    with pytest.raises(SourceError) as caught:
        take(src, 1)
    message = str(caught.value)
    assert replay.ws_url in message and "BTCUSDT, ETHUSDT" in message
    assert "code -1121: Invalid symbol." in message and caught.value.code == "AF520"


def test_unknown_symbols_are_refused_by_stream_and_rest_with_their_names(
    replay: BinanceReplay,
) -> None:
    src = source(replay, ["BTCUSDT", "NOPEUSDT"])
    with pytest.raises(SourceError, match=r"NOPEUSDT.*Invalid symbol: nopeusdt@kline_1m"):
        take(src, 1)
    with pytest.raises(SourceError) as caught:
        src.history(pd.Timestamp(LIVE, unit="ms", tz="UTC"), 5)
    message = str(caught.value)
    assert "HTTP 400 for NOPEUSDT: code -1121: Invalid symbol." in message
    assert f"{replay.rest_url}/api/v3/klines?symbol=NOPEUSDT" in message


@pytest.mark.parametrize(
    "replay",
    [{"plan": [Session(answer={"stream": "btcusdt@kline_1m", "data": {"e": "kline", "k": {}}})]}],
    indirect=True,
)
def test_a_malformed_kline_message_is_refused_loudly(replay: BinanceReplay) -> None:
    with pytest.raises(SourceError, match=r"not a kline event \(missing or malformed 's'\)"):
        take(source(replay), 1)


@pytest.mark.parametrize("replay", [{"plan": [Session(refuse=403)]}], indirect=True)
def test_a_handshake_refused_with_4xx_is_not_retried(replay: BinanceReplay) -> None:
    src = source(replay)
    with pytest.raises(SourceError, match=r"refused the connection for BTCUSDT, ETHUSDT: HTTP 403"):
        take(src, 1)
    assert len(replay.sessions) == 1


def test_an_unreachable_stream_gives_up_after_max_failures() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    src = BinanceKlineSource(["BTCUSDT"], ws_url=f"ws://127.0.0.1:{port}",
                             rest_url=f"http://127.0.0.1:{port}", backoff_initial=0.01,
                             max_failures=3)  # fmt: skip
    with pytest.raises(SourceError, match=rf"127.0.0.1:{port}/stream.*failed 3 times in a row"):
        take(src, 1)
    assert src.failures == 3 and src.connects == 0


def _run(src: BinanceKlineSource, stop: threading.Event, out: list[Bar]) -> threading.Thread:
    thread = threading.Thread(target=lambda: out.extend(src.bars(stop)), daemon=True)
    thread.start()
    return thread


def test_stop_ends_bars_on_a_quiet_connection(replay: BinanceReplay) -> None:
    src, stop, out = source(replay), threading.Event(), []
    thread = _run(src, stop, out)
    expected = len(replay.closed(LIVE))
    for _ in range(300):  # up to 30 s for the whole replay to arrive; then the stream is quiet
        if len(out) == expected:
            break
        threading.Event().wait(0.1)
    assert len(out) == expected
    stop.set()
    thread.join(10)  # without stop the quiet connection would be read for ever
    assert not thread.is_alive()


@pytest.mark.parametrize("replay", [{"plan": [Session(refuse=503)] * 50}], indirect=True)
def test_stop_ends_bars_during_a_long_back_off(replay: BinanceReplay) -> None:
    src, stop, out = source(replay, backoff_initial=60, backoff_max=60), threading.Event(), []
    thread = _run(src, stop, out)
    for _ in range(300):
        if src.failures:
            break
        threading.Event().wait(0.1)
    assert src.failures == 1  # and now waiting 60 s
    stop.set()
    thread.join(10)
    assert not thread.is_alive() and out == []


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ([], {}, "at least one symbol"),
        (["BTC/USDT"], {}, "not a Binance spot symbol.*BTCUSDT, not BTC/USDT"),
        (["btcusdt", "BTCUSDT"], {}, "BTCUSDT is listed twice"),
        (["BTCUSDT"], {"interval": "7m"}, "'7m' is not a Binance spot kline interval.*1m, 3m"),
        (["BTCUSDT"], {"interval": "1M"}, "calendar month"),
        (["BTCUSDT"], {"page_limit": 1001}, "page_limit must be 1..1000"),
        (["BTCUSDT"], {"backoff_initial": 0}, "backoff_initial > 0"),
        (["BTCUSDT"], {"backoff_max": 0.5}, "backoff_max >= backoff_initial"),
        (["BTCUSDT"], {"max_failures": 0}, "max_failures must be at least 1"),
        (["BTCUSDT"], {"ws_url": "https://stream.binance.com"}, "ws_url .* must start with ws"),
        (["BTCUSDT"], {"rest_url": "api.binance.com"}, "rest_url .* must start with http"),
    ],
)
def test_bad_settings_are_refused_with_a_sentence(
    args: list[str], kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        BinanceKlineSource(args, **kwargs)


def test_the_stream_url_names_every_symbol_in_binance_spelling() -> None:
    src = BinanceKlineSource(["btcusdt", "ETHUSDT"], "15m", ws_url="wss://example.test:9443/")
    assert src.symbols == ("BTCUSDT", "ETHUSDT")
    assert src.stream_url == (
        "wss://example.test:9443/stream?streams=btcusdt@kline_15m/ethusdt@kline_15m"
    )
