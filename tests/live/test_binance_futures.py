"""The kline source on Binance USD-M futures, against the local server in its futures shape
(``/market/stream``, ``/fapi/v1/klines`` with at most 1500 klines a request, ``/fapi/v1/time``).

The recording is the generator's (``data/make_binance_klines.py``, same seed) made 1,800 minutes
long, so that a gap-fill and a warm-up need more than one page of 1500. Expected values come
from the recording; the paths and page sizes are asserted on the server's side.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dsl.ir import StreamIR
from live.feeds import FeedError, source_factory
from live.instances import check_feed
from live.sources.binance import BinanceKlineSource
from live.sources.errors import SourceError
from live.store import Desired
from live.stream import StreamPipeline, StreamService
from live.stream.errors import StreamError
from live.stream.sources import build_source, source_params
from tests.live.binance_server import BinanceReplay, Session
from tests.live.stream_support import compiled, read_csv_events, workdir, write_af
from tests.live.test_binance_source import (
    MINUTE,
    PAIR,
    T0,
    assert_gapless,
    bar_values,
    take,
    values,
)

MINUTES = 1_800
LIVE = T0 + 30 * MINUTE
RESUME = T0 + 1_700 * MINUTE  # where the stream resumes after the drop: a 1,670-minute gap
DROP_AFTER = 20
STREAMS = "streams=btcusdt@kline_1m/ethusdt@kline_1m"


def _long_recording() -> list[str]:
    path = Path(__file__).parent / "data" / "make_binance_klines.py"
    spec = importlib.util.spec_from_file_location("make_binance_klines", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [json.dumps(m, separators=(",", ":")) for m in module.messages(minutes=MINUTES)]


LINES = _long_recording()
OPENS = [json.loads(line)["data"]["k"]["t"] for line in LINES]


def _index(ms: int) -> int:
    return next(i for i, t in enumerate(OPENS) if t >= ms)


@pytest.fixture
def futures(request: pytest.FixtureRequest) -> Iterator[BinanceReplay]:
    options: dict[str, Any] = getattr(request, "param", {})
    server = BinanceReplay(LINES, start_ms=options.get("start_ms", LIVE),
                           plan=list(options.get("plan", [])), market="usdm")  # fmt: skip
    with server:
        yield server


def usdm(server: BinanceReplay, **kw: Any) -> BinanceKlineSource:
    """A futures source on the local server; the ``/market`` route as on Binance."""
    return BinanceKlineSource(PAIR, "1m", market="usdm", ws_url=f"{server.ws_url}/market",
                              rest_url=server.rest_url, backoff_initial=0.02, backoff_max=0.2,
                              **kw)  # fmt: skip


# the first session drops after DROP_AFTER messages; the stream skips ahead to RESUME meanwhile
SKIP = _index(RESUME) - _index(LIVE) - DROP_AFTER
GAP = [Session(drop_after=DROP_AFTER, drop="abrupt", skip=SKIP), Session(resend_last_closed=True)]


@pytest.mark.parametrize("futures", [{"plan": GAP}], indirect=True)
def test_a_futures_session_reconnects_and_gap_fills_from_fapi_in_pages_of_1500(
    futures: BinanceReplay,
) -> None:
    expected = futures.closed(LIVE)
    assert len(expected) == 2 * (MINUTES - 30)
    src = usdm(futures)
    got = take(src, len(expected), timeout=60)
    assert_gapless(got, expected)
    assert src.connects == 2 and src.reconnects == 1
    skipped = futures.sessions[0].skipped_closed
    assert len(skipped) > 2 * 1500 and src.gap_filled >= len(skipped)
    # the server saw the futures routes only, never the spot ones
    assert [s.path for s in futures.sessions] == [f"/market/stream?{STREAMS}"] * 2
    assert set(futures.rest_paths) == {"/fapi/v1/time", "/fapi/v1/klines"}
    for symbol in PAIR:
        pages = [q for q in futures.rest_requests if q["symbol"] == symbol]
        assert len(pages) == 2, pages  # ~1,670 missed klines: one full page and the rest
        assert pages[0]["limit"] == "1500"
        assert int(pages[1]["startTime"]) == int(pages[0]["startTime"]) + 1500 * MINUTE
        assert 0 < int(pages[1]["limit"]) < 1500  # no more than the last window can hold


@pytest.mark.parametrize("futures", [{"start_ms": RESUME}], indirect=True)
def test_a_futures_warm_up_pages_fapi_klines_at_1500(futures: BinanceReplay) -> None:
    src = usdm(futures)
    first = take(src, 1)[0]
    assert first.ts == pd.Timestamp(RESUME, unit="ms", tz="UTC")
    warm = src.history(first.ts, 1_600)
    assert warm.groupby("symbol").size().to_dict() == {"BTCUSDT": 1_600, "ETHUSDT": 1_600}
    assert warm["ts"].max() == first.ts - pd.Timedelta(minutes=1)
    recorded = [k for k in futures.closed(RESUME - 1_600 * MINUTE) if k["t"] < RESUME]
    rows = [(r.symbol, int(r.ts.value // 1_000_000), r.open, r.high, r.low, r.close, r.volume)
            for r in warm.itertuples()]  # fmt: skip
    assert sorted(rows) == sorted(values(k) for k in recorded)
    btc = [q for q in futures.rest_requests if q["symbol"] == "BTCUSDT"]
    assert [q["limit"] for q in btc] == ["1500", "1500"]  # 1,600 back: two pages


@pytest.mark.parametrize("futures", [{}], indirect=True)
def test_a_spot_source_is_refused_by_the_futures_server(futures: BinanceReplay) -> None:
    """The server really checks the routes: the spot ones are not the futures'."""
    spot = BinanceKlineSource(PAIR, "1m", ws_url=futures.ws_url, rest_url=futures.rest_url)
    with pytest.raises(SourceError, match=r"refused the connection .*HTTP 400.*/market/stream"):
        take(spot, 1)
    with pytest.raises(SourceError, match=r"/api/v3/time answered HTTP 404"):
        spot.history(pd.Timestamp(LIVE, unit="ms", tz="UTC"), 5)


def test_the_futures_defaults_are_binance_usdm_endpoints_and_limits() -> None:
    src = BinanceKlineSource(["btcusdt", "BTCUSDT_261225"], "1h", market="usdm")
    assert src.stream_url == (
        "wss://fstream.binance.com/market/stream?streams=btcusdt@kline_1h/btcusdt_261225@kline_1h"
    )
    assert src.rest.base == "https://fapi.binance.com" and src.rest.page_limit == 1500
    assert src.rest.market.klines_path == "/fapi/v1/klines"
    spot = BinanceKlineSource(["BTCUSDT"], "1h")
    assert spot.stream_url.startswith("wss://stream.binance.com:9443/stream?")
    assert spot.rest.base == "https://api.binance.com" and spot.rest.page_limit == 1000


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"interval": "1s"}, "1s klines exist on spot only"),
        ({"page_limit": 1501}, r"page_limit must be 1..1500"),
        ({"symbols": [f"S{i:03d}USDT" for i in range(201)]}, "at most 200 streams"),
        ({"symbols": ["BTCUSDT_2612"]}, "not a Binance USD-M futures symbol"),
        ({"market": "coinm"}, "market 'coinm' is not one of spot, usdm"),
    ],
)
def test_bad_futures_settings_are_refused_with_a_sentence(
    kwargs: dict[str, Any], match: str
) -> None:
    options: dict[str, Any] = {"symbols": ["BTCUSDT"], "interval": "1m", "market": "usdm"}
    options.update(kwargs)
    with pytest.raises(ValueError, match=match):
        BinanceKlineSource(options.pop("symbols"), options.pop("interval"), **options)
    if "page_limit" in kwargs:  # spot's most is 1000, futures' 1500
        with pytest.raises(ValueError, match=r"page_limit must be 1..1000"):
            BinanceKlineSource(["BTCUSDT"], page_limit=1001)


def _plan(source: str, params: dict[str, Any]) -> Any:
    stream = StreamIR(source=source, source_params=params, every="1m", every_seconds=60)
    return source_params(stream, "p.af")


def test_a_stream_block_on_binance_futures_builds_the_futures_source(tmp_path: Path) -> None:
    plan = _plan("binance_futures", {"universe": ["BTCUSDT", "ETHUSDT"], "interval": "1m"})
    source, interval = build_source(plan, where="p.af", base_dir=tmp_path, warmup=10,
                                    data_step=lambda: None)  # fmt: skip
    assert isinstance(source, BinanceKlineSource) and interval == "1m"
    assert source.market.name == "usdm" and source.symbols == ("BTCUSDT", "ETHUSDT")
    assert source.stream_url.startswith("wss://fstream.binance.com/market/stream?")
    assert source.rest.base == "https://fapi.binance.com"
    spot, _ = build_source(_plan("binance", {"symbols": ["BTCUSDT"]}), where="p.af",
                           base_dir=tmp_path, warmup=10, data_step=lambda: None)  # fmt: skip
    assert isinstance(spot, BinanceKlineSource) and spot.market.name == "spot"


def test_a_futures_source_a_setting_refuses_is_a_stream_error_naming_the_file(
    tmp_path: Path,
) -> None:
    plan = _plan("binance_futures", {"universe": ["BTCUSDT"], "interval": "1s"})
    with pytest.raises(StreamError, match=r"p.af: source `binance_futures`: .*spot only"):
        build_source(plan, where="p.af", base_dir=tmp_path, warmup=10, data_step=lambda: None)


def _desired(feed: dict[str, Any]) -> Desired:
    return Desired(id="i1", owner_id=1, strategy_name="s", strategy_version=1, code="",
                   code_hash="0" * 64, account="paper", market="ETHUSDT", feed=feed,
                   initial_cash=1000.0, fee_bps=0.0, slippage_bps=0.0, mode="paper", config={},
                   config_version=1)  # fmt: skip


@pytest.mark.parametrize("futures", [{}], indirect=True)
def test_an_instance_feed_of_kind_binance_futures_reads_the_futures_market(
    futures: BinanceReplay, tmp_path: Path
) -> None:
    feed = check_feed({"kind": "binance_futures"})
    assert feed["interval"] == "1m"
    options = {"ws_url": f"{futures.ws_url}/market", "rest_url": futures.rest_url}
    make = source_factory(tmp_path, binance_futures=options)
    source = make(_desired(feed))
    assert isinstance(source, BinanceKlineSource) and source.market.name == "usdm"
    got = take(source, 5)
    expected = [k for k in futures.closed(LIVE) if k["s"] == "ETHUSDT"]
    assert [bar_values(b) for b in got][:5] == [values(k) for k in expected[:5]]
    assert futures.sessions[0].path == "/market/stream?streams=ethusdt@kline_1m"
    with pytest.raises(FeedError, match=r"binance_futures feed of ETHUSDT: .*spot only"):
        make(_desired({"kind": "binance_futures", "interval": "1s"}))


FUTURES_PIPELINE = """pipeline fut

data = csv_ohlcv(path="data/sample_ohlcv.csv")
fast = sma(data.close, window=3)

stream {{
    source = binance_futures(universe=["BTCUSDT", "ETHUSDT"], interval=1m, ws_url="{ws}",
                             rest_url="{rest}")
    warmup = 10m
    every 1m
    emit fast to csv_append(path="out/fast.csv")
}}
"""


@pytest.mark.parametrize("futures", [{}], indirect=True)
def test_a_stream_pipeline_on_binance_futures_warms_up_from_fapi_and_runs_live(
    futures: BinanceReplay, tmp_path: Path
) -> None:
    folder = workdir(tmp_path)
    text = FUTURES_PIPELINE.format(ws=f"{futures.ws_url}/market", rest=futures.rest_url)
    ir = compiled(write_af(folder, "fut", text))
    pipeline = StreamPipeline(ir, base_dir=folder, state_dir=folder / "s", straggler_s=0.2)
    service = StreamService([pipeline])
    service.start()
    try:
        deadline = time.monotonic() + 60
        while pipeline.health()["evaluations"] < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        service.drain_sinks(30)
    finally:
        service.stop()
    health = pipeline.health()
    assert health["evaluations"] >= 20 and not health["errors"], health
    assert health["first_live"] == pd.Timestamp(LIVE, unit="ms", tz="UTC").isoformat()
    events = read_csv_events(folder / "out" / "fast.csv")
    closes = {(k["s"], k["t"]): float(k["c"]) for k in futures.closed()}
    for row in events.head(20).itertuples():
        t = int(row.ts.value // 1_000_000)
        expected = sum(closes[(row.symbol, t - i * MINUTE)] for i in range(3)) / 3
        assert row.value == pytest.approx(expected, rel=1e-12), row  # warm-up bars included
    assert set(futures.rest_paths) == {"/fapi/v1/time", "/fapi/v1/klines"}
    assert all(s.path.startswith("/market/stream?") for s in futures.sessions)
