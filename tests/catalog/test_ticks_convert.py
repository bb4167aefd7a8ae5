"""Converters to tick events: Binance USD-M futures dumps and Tardis CSV; round trips."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from catalog import Catalog
from catalog.ticks import binance, tardis
from nodes import ticks
from nodes.errors import DataError

MS = 1_000_000
B, S = ticks.BUY_EVENT, ticks.SELL_EVENT


def _depth(u: int, pu: int, t: int, bids: list[list[str]], asks: list[list[str]]) -> dict:
    return {
        "e": "depthUpdate",
        "E": t + 2,
        "T": t,
        "s": "BTCUSDT",
        "U": pu + 1,
        "u": u,
        "pu": pu,
        "b": bids,
        "a": asks,
    }


def _write(path: Path, lines: list[str], gz: bool = False) -> Path:
    text = "\n".join(lines) + "\n"
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def test_binance_stream_with_snapshot_becomes_book_and_trades(tmp_path: Path) -> None:
    snap = tmp_path / "snap.json"
    bids, asks = [["99.9", "2"], ["100.0", "1"]], [["100.1", "3"]]
    snap.write_text(
        json.dumps({"lastUpdateId": 100, "E": 999, "T": 1000, "bids": bids, "asks": asks})
    )
    msgs = [
        json.dumps(_depth(90, 80, 990, [["100.0", "5"]], [])),  # older than the snapshot: dropped
        json.dumps(
            {
                "stream": "btcusdt@depth",
                "data": _depth(105, 95, 1001, [["100.0", "0"]], [["100.2", "1.5"]]),
            }
        ),
        json.dumps(
            {
                "e": "aggTrade",
                "E": 1003,
                "T": 1002,
                "s": "BTCUSDT",
                "a": 1,
                "p": "100.1",
                "q": "0.4",
                "m": False,
            }
        ),
        json.dumps(
            {
                "e": "trade",
                "E": 1004,
                "T": 1003,
                "s": "BTCUSDT",
                "t": 2,
                "p": "99.9",
                "q": "1",
                "X": "MARKET",
                "m": True,
            }
        ),
        json.dumps(
            {
                "e": "trade",
                "E": 1004,
                "T": 1003,
                "s": "BTCUSDT",
                "t": 3,
                "p": "1",
                "q": "1",
                "X": "INSURANCE_FUND",
                "m": True,
            }
        ),
        json.dumps({"e": "markPriceUpdate", "s": "BTCUSDT"}),
        json.dumps(_depth(110, 105, 1004, [], [["100.1", "2.6"]])),
    ]
    # each line with its local receive time (ns), as hftbacktest's collector records
    stamped = [f"{(1000 + i) * MS + 7} {m}" for i, m in enumerate(msgs)]
    path = _write(tmp_path / "d.gz", stamped, gz=True)
    out = binance.convert_stream([path], snapshot=snap, symbol="BTCUSDT")
    assert out["skipped"] == 1
    ev = out["events"]["BTCUSDT"]
    got = [
        (int(r["ev"]) & 0x3FFFFFFF, int(r["exch_ts"]) // MS, float(r["px"]), float(r["qty"]))
        for r in ev
    ]
    assert got == [
        (ticks.DEPTH_CLEAR_EVENT | B, 1000, 99.9, 0.0),
        (ticks.DEPTH_SNAPSHOT_EVENT | B, 1000, 100.0, 1.0),
        (ticks.DEPTH_SNAPSHOT_EVENT | B, 1000, 99.9, 2.0),
        (ticks.DEPTH_CLEAR_EVENT | S, 1000, 100.1, 0.0),
        (ticks.DEPTH_SNAPSHOT_EVENT | S, 1000, 100.1, 3.0),
        (ticks.DEPTH_EVENT | B, 1001, 100.0, 0.0),
        (ticks.DEPTH_EVENT | S, 1001, 100.2, 1.5),
        (ticks.TRADE_EVENT | B, 1002, 100.1, 0.4),
        (ticks.TRADE_EVENT | S, 1003, 99.9, 1.0),
        (ticks.DEPTH_EVENT | S, 1004, 100.1, 2.6),
    ]
    ticks.check_order(ev, "x")
    assert ev["local_ts"][5:].tolist() == [1001 * MS + 7] * 2 + [
        1002 * MS + 7,
        1003 * MS + 7,
        1006 * MS + 7,
    ]
    # without the prefix, the local time is the message's event time E
    plain = binance.convert_stream([_write(tmp_path / "p.txt", msgs[1:2])])["events"]["BTCUSDT"]
    assert plain["local_ts"].tolist() == [1003 * MS] * 2


def test_a_gap_in_the_diff_stream_names_file_and_line(tmp_path: Path) -> None:
    msgs = [json.dumps(_depth(10, 5, 1, [["1", "1"]], [])), json.dumps(_depth(20, 12, 2, [], []))]
    path = _write(tmp_path / "gap.txt", msgs)
    with pytest.raises(DataError, match=r"gap\.txt, row 2: SEQUENCE_GAP: pu=12 .* u=10"):
        binance.convert_stream([path])


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("{not json", "row 1: BAD_JSON"),
        (
            json.dumps(
                {"e": "aggTrade", "s": "X", "T": 1, "E": 1, "p": "abc", "q": "1", "m": True}
            ),
            "BAD_NUMBER: price 'abc'",
        ),
        (
            json.dumps({"e": "depthUpdate", "s": "X", "E": 1, "U": 1, "u": 2, "b": []}),
            "lacks integer field 'T'",
        ),
    ],
)
def test_bad_stream_lines_are_named(tmp_path: Path, line: str, words: str) -> None:
    path = _write(tmp_path / "bad.txt", [line])
    with pytest.raises(DataError, match=words):
        binance.convert_stream([path])


def test_binance_vision_trades_csv(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "BTCUSDT-trades-2024-01-01.csv",
        [
            "id,price,qty,quote_qty,time,is_buyer_maker",
            "1,42000.1,0.010,420.001,1704067200001,true",
            "2,42000.2,0.020,840.004,1704067200005,false",
        ],
    )
    ev = binance.convert_trades_csv([path])["events"]["BTCUSDT"]
    assert [(int(r["ev"]) & 0x3FFFFFFF) for r in ev] == [
        ticks.TRADE_EVENT | S,
        ticks.TRADE_EVENT | B,
    ]
    assert ev["exch_ts"].tolist() == [1704067200001 * MS, 1704067200005 * MS]
    bad = _write(tmp_path / "bad.csv", ["1,42000.1,0.01,420,1704067200001,maybe"])
    with pytest.raises(DataError, match=r"bad\.csv, row 1: BAD_LINE: is_buyer_maker"):
        binance.convert_trades_csv([bad], symbol="X")


BOOK = [
    tardis.BOOK_HEADER,
    "deribit,BTC-PERP,1704067200000000,1704067200000500,true,ask,42001.5,100",
    "deribit,BTC-PERP,1704067200000000,1704067200000500,true,ask,42002,50",
    "deribit,BTC-PERP,1704067200000000,1704067200000500,true,bid,42000.5,70",
    "deribit,BTC-PERP,1704067200000000,1704067200000500,true,bid,42000,20",
    "deribit,BTC-PERP,1704067200100000,1704067200100700,false,bid,42000.5,0",
    "deribit,BTC-PERP,1704067200200000,1704067200200300,false,ask,42001,10",
]
TRADES = [
    tardis.TRADES_HEADER,
    "deribit,BTC-PERP,1704067200150000,1704067200150400,1,buy,42001.5,5",
    "deribit,BTC-PERP,1704067200250000,1704067200250100,2,sell,42000,3",
]


def test_tardis_round_trips_through_the_catalog_and_back_to_csv(tmp_path: Path) -> None:
    book = _write(tmp_path / "book.csv.gz", BOOK, gz=True)
    trades = _write(tmp_path / "trades.csv", TRADES)
    events = tardis.convert([book, trades])["events"]
    ev = events["BTC-PERP"]
    assert len(ev) == 6 + 2 + 2  # 4 snapshot levels + 2 clears + 2 diffs + 2 trades
    assert ev["exch_ts"][0] == 1704067200000000 * 1000
    cat = Catalog.open(tmp_path / "cat")
    info = cat.import_ticks("local", "deribit", events, tick_size=0.5, lot_size=1.0)
    back = cat.read_ticks(info.version)["BTC-PERP"]
    np.testing.assert_array_equal(np.asarray(back), np.asarray(ev))
    # back to the canonical CSV: the same text, and converting it gives the same events
    tardis.write_csv(back, "BTC-PERP", tmp_path / "b2.csv", tmp_path / "t2.csv", exchange="deribit")
    snap_sorted = [BOOK[0], BOOK[3], BOOK[4], BOOK[1], BOOK[2], *BOOK[5:]]  # bids best-first first
    assert (tmp_path / "b2.csv").read_text().splitlines() == snap_sorted
    assert (tmp_path / "t2.csv").read_text().splitlines()[1].endswith(",buy,42001.5,5")
    again = tardis.convert([tmp_path / "b2.csv", tmp_path / "t2.csv"])["events"]["BTC-PERP"]
    np.testing.assert_array_equal(np.asarray(again), np.asarray(ev))


def test_a_bad_tardis_header_or_side_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"x\.csv, row 1: BAD_HEADER"):
        tardis.convert([_write(tmp_path / "x.csv", ["a,b,c"])])
    rows = [tardis.BOOK_HEADER, "d,S,1,2,false,middle,1,1"]
    with pytest.raises(DataError, match=r"y\.csv, row 2: BAD_SIDE"):
        tardis.convert([_write(tmp_path / "y.csv", rows)])
