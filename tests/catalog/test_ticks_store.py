"""Tick datasets in the catalog: content-addressed versions of event arrays, read back equal."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from catalog import Catalog, CatalogError
from nodes import ticks
from nodes.errors import DataError
from nodes.synthbook import BookSpec, generate

DAY = 86_400


def _book(seed: int, **kw: float) -> ticks.TickArray:
    return generate(BookSpec(seed=seed, duration_s=120, **kw))  # type: ignore[arg-type]


def test_ticks_round_trip_and_the_same_events_give_the_same_version(tmp_path: Path) -> None:
    cat = Catalog.open(tmp_path / "cat")
    a, b = _book(1), _book(2, mid=50.0)
    info = cat.import_ticks("local", "books", {"AAA": a, "BBB": b}, message="first")
    assert info.kind == "ticks" and info.rows == len(a) + len(b)
    assert [s.symbol for s in info.symbols] == ["AAA", "BBB"]
    back = cat.read_ticks(info.version)
    np.testing.assert_array_equal(np.asarray(back["AAA"]), np.asarray(a))
    np.testing.assert_array_equal(np.asarray(back["BBB"]), np.asarray(b))
    assert ticks.tick_meta(back["BBB"]) == ticks.TickMeta("BBB", 0.01, 0.1)
    manifest = cat.manifest(info.version)
    assert manifest["kind"] == "ticks"
    assert manifest["symbols"][0]["trades"] == int(
        np.count_nonzero((a["ev"] & ticks.KIND_MASK) == ticks.TRADE_EVENT)
    )
    cat.verify(info.version)
    # a second catalog elsewhere: the same events, the same version
    again = Catalog.open(tmp_path / "other").import_ticks("local", "x", {"AAA": a, "BBB": b})
    assert again.version == info.version
    changed = cat.import_ticks("local", "books", {"AAA": a, "BBB": b}, tick_size=0.005)
    assert changed.version != info.version
    assert [v.version for v in cat.versions("local", "books")] == [info.version, changed.version]


def test_bars_and_ticks_refuse_each_others_readers(tmp_path: Path) -> None:
    cat = Catalog.open(tmp_path)
    info = cat.import_ticks("local", "books", {"AAA": _book(1)})
    with pytest.raises(CatalogError, match="is a ticks dataset, not bars"):
        cat.read(info.version)
    with pytest.raises(CatalogError, match="no symbol 'ZZZ'"):
        cat.read_ticks(info.version, symbols=["ZZZ"])


def test_events_spanning_midnight_are_split_by_day_and_read_as_one(tmp_path: Path) -> None:
    start = int(datetime(2024, 3, 1, 23, 59, tzinfo=UTC).timestamp()) * 10**9
    data = generate(BookSpec(seed=4, start_ns=start, duration_s=120))
    cat = Catalog.open(tmp_path)
    info = cat.import_ticks("local", "night", {"X": data})
    paths = [f["path"] for f in cat.manifest(info.version)["files"]]
    assert paths == ["data/symbol=X/2024-03-01.npz", "data/symbol=X/2024-03-02.npz"]
    np.testing.assert_array_equal(np.asarray(cat.read_ticks(info.version)["X"]), np.asarray(data))


def test_a_read_from_a_start_opens_with_the_book_as_it_stood(tmp_path: Path) -> None:
    data = _book(9)
    cat = Catalog.open(tmp_path)
    info = cat.import_ticks("local", "b", {"S": data})
    cut = int(data["exch_ts"][len(data) // 2])
    part = cat.read_ticks(info.version, start=datetime.fromtimestamp(cut / 1e9, UTC))["S"]
    kinds = part["ev"] & ticks.KIND_MASK
    assert kinds[0] == ticks.DEPTH_CLEAR_EVENT
    # the snapshot equals our own row-by-row replay of the events before the cut
    before = data[data["exch_ts"] < part["exch_ts"][0]]
    book: dict[tuple[bool, float], float] = {}
    for row in before:
        kind = int(row["ev"]) & ticks.KIND_MASK
        if kind in (ticks.DEPTH_EVENT, ticks.DEPTH_SNAPSHOT_EVENT):
            book[(bool(int(row["ev"]) & ticks.BUY_EVENT), float(row["px"]))] = float(row["qty"])
    expected = {k: v for k, v in book.items() if v > 0}
    snap = part[kinds == ticks.DEPTH_SNAPSHOT_EVENT]
    got = {(bool(int(r["ev"]) & ticks.BUY_EVENT), float(r["px"])): float(r["qty"]) for r in snap}
    assert got == expected
    assert {bid for bid, _ in got} == {True, False}  # both sides
    ticks.check_order(part, "part")


def test_bad_sizes_and_empty_imports_are_refused(tmp_path: Path) -> None:
    cat = Catalog.open(tmp_path)
    with pytest.raises(DataError, match="tick_size must be > 0"):
        cat.import_ticks("local", "b", {"S": _book(1)}, tick_size=0)
    with pytest.raises(DataError, match="NO_EVENTS"):
        cat.import_ticks("local", "b", {})
