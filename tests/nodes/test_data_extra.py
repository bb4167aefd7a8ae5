"""The loaders' options for the dataset catalog: extra columns kept, columns renamed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from nodes.data import iter_ohlcv_csv, validate_ohlcv
from nodes.errors import DataError

CSV = (
    "date,Open,High,Low,Close,Volume,Ticker,oi\n"
    "2024-01-02,10,11,9,10.5,100,AAA,7\n"
    "2024-01-02,20,21,19,20.5,200,BBB,8\n"
    "2024-01-03,10.5,12,10,11,150,AAA,9\n"
)


def test_keep_extra_carries_other_columns_as_read_and_rename_makes_a_symbol(
    tmp_path: Path,
) -> None:
    src = tmp_path / "bars.csv"
    src.write_text(CSV)
    chunks = list(iter_ohlcv_csv(src, chunk_rows=2, rename={"Ticker": "symbol"}, keep_extra=True))
    out = pd.concat(chunks)
    assert list(out.columns) == ["open", "high", "low", "close", "volume", "symbol", "oi"]
    assert out["symbol"].tolist() == ["AAA", "BBB", "AAA"]
    assert out["oi"].tolist() == ["7", "8", "9"]  # as read: the caller types them
    with pytest.raises(DataError, match="DUPLICATE_TIMESTAMP"):  # no symbol column without
        list(iter_ohlcv_csv(src))


def test_renamed_symbol_column_is_checked_like_a_symbol_column(tmp_path: Path) -> None:
    src = tmp_path / "bars.csv"
    src.write_text(
        CSV.replace("2024-01-03,10.5,12,10,11,150,AAA", "2024-01-02,10.5,12,10,11,150,AAA")
    )
    with pytest.raises(DataError) as err:
        list(iter_ohlcv_csv(src, rename={"Ticker": "symbol"}))
    assert (err.value.kind, err.value.row) == ("DUPLICATE_TIMESTAMP", 4)


def test_validate_without_keep_extra_drops_other_columns() -> None:
    raw = pd.DataFrame(
        {"ts": ["2024-01-02"], "open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0], "x": [1]}
    )
    assert "x" not in validate_ohlcv(raw, "t").columns
    assert validate_ohlcv(raw, "t", keep_extra=True)["x"].tolist() == [1]
