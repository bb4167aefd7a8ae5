"""The CSV reader's fast paths (C-parsed numbers, Arrow regex for UTC offsets) give exactly what
the text path gives, and still name the first bad row when a column is not all numbers."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nodes.data import read_ohlcv_csv
from nodes.errors import DataError


def _bars_text(n: int, seed: int, *, ts: list[str] | None = None) -> tuple[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = np.exp(rng.normal(0.0, 3.0, n)) * rng.choice([1.0, 1e-5, 1e5], n)
    text = [repr(float(v)) for v in close]  # shortest round-trip text, 17 digits at most
    stamps = ts or [f"2024-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z" for i in range(n)]
    lines = ["ts,open,high,low,close,volume"] + [
        f"{stamps[i]},{text[i]},{text[i]},{text[i]},{text[i]},{i}" for i in range(n)
    ]
    return "\n".join(lines) + "\n", close


def test_numbers_are_the_correctly_rounded_values_of_their_text(tmp_path: Path) -> None:
    text, close = _bars_text(3_000, seed=5)
    path = tmp_path / "bars.csv"
    path.write_text(text)
    bars = read_ohlcv_csv(path)
    expected = np.array([float(repr(float(v))) for v in close])  # Python's own conversion
    np.testing.assert_array_equal(bars["close"].to_numpy(), expected)
    assert bars["volume"].tolist() == [float(i) for i in range(3_000)]
    # an uploaded buffer reads the same as the file (the header is read first, then rewound)
    assert read_ohlcv_csv(io.BytesIO(text.encode())).equals(bars)


def test_a_bad_number_deep_in_a_long_file_is_named_with_its_line(tmp_path: Path) -> None:
    text, _ = _bars_text(3_000, seed=6)
    lines = text.splitlines()
    fields = lines[2_500].split(",")
    fields[3] = "1.2.3"  # low
    lines[2_500] = ",".join(fields)
    path = tmp_path / "bars.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as info:
        read_ohlcv_csv(path)
    assert info.value.kind == "UNPARSEABLE_NUMBER"
    assert info.value.row == 2_501  # editor line: header is line 1
    assert "'1.2.3'" in info.value.message


def test_numbers_with_spaces_and_missing_values_keep_their_meaning(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("ts,open,high,low,close,volume\n2024-01-02, 10 ,11,9,10.5,100\n")
    assert read_ohlcv_csv(path)["open"].tolist() == [10.0]
    path.write_text("ts,open,high,low,close,volume\n2024-01-02,10,11,9,,100\n")
    with pytest.raises(DataError) as info:
        read_ohlcv_csv(path)
    assert (info.value.kind, info.value.row) == ("NAN_PRICE", 2)


def test_timestamps_and_symbols_that_look_like_numbers_stay_text(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        "date,symbol,open,high,low,close,volume\n"
        "20240102,007,10,11,9,10.5,100\n"
        "20240103,007,10,11,9,10.5,100\n"
    )
    bars = read_ohlcv_csv(path)
    assert bars.index.tolist() == [
        pd.Timestamp("2024-01-02", tz="UTC"),
        pd.Timestamp("2024-01-03", tz="UTC"),
    ]
    assert bars["symbol"].tolist() == ["007", "007"]


def test_a_mix_of_offset_and_naive_timestamps_is_found_at_its_row(tmp_path: Path) -> None:
    stamps = [f"2024-01-01 00:{i:02d}:00+00:00" for i in range(50)]
    stamps[37] = "2024-01-01 00:37:00"
    text, _ = _bars_text(50, seed=7, ts=stamps)
    path = tmp_path / "bars.csv"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        read_ohlcv_csv(path)
    assert (info.value.kind, info.value.row) == ("UNPARSEABLE_TIMESTAMP", 39)
    assert "mixes" in info.value.message
