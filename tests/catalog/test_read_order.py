"""The order of a read's rows, (ts, symbol), on each of the reader's paths: an aligned panel
(every symbol has the same bars: a transposition), equal counts on different bars, and ragged
symbols (a stable merge of the sorted runs); pruned reads keep it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from catalog import Catalog
from catalog.reader import _row_order
from tests.catalog.helpers import bars, panel


def _roundtrip(tmp_path: Path, *frames: pd.DataFrame) -> tuple[Catalog, str, pd.DataFrame]:
    expected = panel(*frames)
    cat = Catalog.open(tmp_path / "cat")
    info = cat.import_frame("local", "p", expected, source="test")
    return cat, info.version, expected


@pytest.mark.parametrize(
    "starts",
    [
        ("2020-01-01", "2020-01-01", "2020-01-01"),  # aligned: the same bars for everyone
        ("2020-01-01", "2020-01-03", "2020-01-02"),  # equal counts, shifted bars
    ],
)
def test_reads_come_back_by_time_then_symbol(tmp_path: Path, starts: tuple[str, ...]) -> None:
    frames = [
        bars(s, start, 400, seed=i) for i, (s, start) in enumerate(zip("CAB", starts, strict=True))
    ]
    cat, version, expected = _roundtrip(tmp_path, *frames)
    pd.testing.assert_frame_equal(cat.read(version), expected)
    pruned = cat.read(version, symbols=["C", "A"], columns=["close"], start="2020-03-01")
    want = expected[expected["symbol"].isin(["A", "C"])]
    want = want[want.index >= pd.Timestamp("2020-03-01", tz="UTC")][["close", "symbol"]]
    pd.testing.assert_frame_equal(pruned, want)


def test_ragged_symbols_across_years_merge_in_order(tmp_path: Path) -> None:
    frames = [
        bars("A", "2019-12-01", 90, seed=1),
        bars("B", "2019-12-20", 30, freq="2D", seed=2),
        bars("C", "2020-01-05", 5, seed=3),
    ]
    cat, version, expected = _roundtrip(tmp_path, *frames)
    pd.testing.assert_frame_equal(cat.read(version), expected)


def test_row_order_agrees_with_a_two_key_sort() -> None:
    rng = np.random.default_rng(5)
    for aligned in (True, False):
        runs = []
        for symbol in range(4):
            stamps = np.arange(50) if aligned else np.sort(rng.choice(80, 50, replace=False))
            runs.append((np.full(50, symbol), stamps))
        ranks = np.concatenate([r for r, _ in runs])
        ts = np.concatenate([t for _, t in runs])
        order = _row_order(ts, ranks, 4)
        assert order is not None
        np.testing.assert_array_equal(order, np.lexsort((ranks, ts)))
    assert _row_order(np.arange(5), np.zeros(5, dtype=np.int64), 1) is None
