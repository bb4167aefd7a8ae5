"""Reading OHLCV files: the canonical frame, every DataError kind with its row, loader nodes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nodes.base import NodeContext, registry
from nodes.data import (
    read_ohlcv_csv,
    read_ohlcv_parquet,
    require_volume,
    validate_ohlcv,
    volume_missing,
)
from nodes.errors import DataError, NodeError

HEADER = "ts,open,high,low,close,volume\n"
GOOD = [
    "2024-01-02,10,11,9,10.5,100",
    "2024-01-03,10.5,12,10,11.5,200",
    "2024-01-04,11.5,12,11,11.8,300",
]


def _csv(tmp_path: Path, lines: list[str], header: str = HEADER, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_text(header + "\n".join(lines) + "\n")
    return path


def _error(tmp_path: Path, lines: list[str], header: str = HEADER) -> DataError:
    with pytest.raises(DataError) as info:
        read_ohlcv_csv(_csv(tmp_path, lines, header))
    return info.value


def test_csv_reads_into_the_canonical_frame(tmp_path: Path) -> None:
    bars = read_ohlcv_csv(_csv(tmp_path, GOOD))
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert bars.index.name == "ts" and str(bars.index.tz) == "UTC"
    assert all(bars[c].dtype == "float64" for c in bars.columns)
    assert bars.index[0] == pd.Timestamp("2024-01-02", tz="UTC")
    assert bars["close"].tolist() == [10.5, 11.5, 11.8]


def test_csv_column_names_are_case_insensitive_with_timestamp_aliases(tmp_path: Path) -> None:
    header = "Date,OPEN,High,low,Close,Volume,Adj Close\n"
    bars = read_ohlcv_csv(_csv(tmp_path, [line + ",1" for line in GOOD], header))
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert len(bars) == 3


def test_csv_naive_timestamps_are_read_in_the_timezone_and_converted_to_utc(
    tmp_path: Path,
) -> None:
    lines = ["2024-07-01 09:30,10,11,9,10.5,100", "2024-12-02 09:30,10,11,9,10.5,100"]
    bars = read_ohlcv_csv(_csv(tmp_path, lines), timezone="America/New_York")
    assert bars.index.tolist() == [
        pd.Timestamp("2024-07-01 13:30", tz="UTC"),  # EDT, UTC-4
        pd.Timestamp("2024-12-02 14:30", tz="UTC"),  # EST, UTC-5
    ]


def test_csv_timestamps_with_offsets_are_converted_to_utc(tmp_path: Path) -> None:
    lines = ["2024-01-02T09:30:00+02:00,10,11,9,10.5,100", "2024-01-02T09:31:00Z,10,11,9,10,1"]
    bars = read_ohlcv_csv(_csv(tmp_path, lines), timezone="Asia/Tokyo")  # offsets win
    assert bars.index.tolist() == [
        pd.Timestamp("2024-01-02 07:30", tz="UTC"),
        pd.Timestamp("2024-01-02 09:31", tz="UTC"),
    ]


def test_csv_keeps_every_row_in_file_order_and_ignores_trailing_blank_lines(
    tmp_path: Path,
) -> None:
    path = tmp_path / "b.csv"
    path.write_text(HEADER + "\n".join(GOOD) + "\n\n\n")
    assert len(read_ohlcv_csv(path)) == 3


@pytest.mark.parametrize(
    ("lines", "header", "kind", "row"),
    [
        (["2024-01-02,10,11,9,100"], "ts,open,high,low,volume\n", "MISSING_COLUMNS", None),
        ([], HEADER, "EMPTY", None),
        ([GOOD[0], "2024-13-45,1,2,0.5,1,1", GOOD[2]], HEADER, "UNPARSEABLE_TIMESTAMP", 3),
        ([GOOD[0], GOOD[1], ",1,2,0.5,1,1"], HEADER, "UNPARSEABLE_TIMESTAMP", 4),
        ([GOOD[0], GOOD[1], "2024-01-04T10:00Z,1,2,0.5,1,1"], HEADER, "UNPARSEABLE_TIMESTAMP", 4),
        ([GOOD[0], "2024-01-03,1,2,0.5,1.2.3,1"], HEADER, "UNPARSEABLE_NUMBER", 3),
        ([GOOD[0], GOOD[1], "2024-01-04,1,2,,1,1"], HEADER, "NAN_PRICE", 4),
        ([GOOD[0], "2024-01-03,1,2,0.5,NaN,1"], HEADER, "NAN_PRICE", 3),
        ([GOOD[0], "2024-01-03,1,2,0.5,inf,1"], HEADER, "NAN_PRICE", 3),
        ([GOOD[0], "2024-01-03,1,2,0.5,1,"], HEADER, "NAN_VOLUME", 3),
        ([GOOD[0], GOOD[1], "2024-01-04,0,2,0,1,1"], HEADER, "NON_POSITIVE_PRICE", 4),
        (["2024-01-02,1,2,0.5,-1,1", *GOOD[1:]], HEADER, "NON_POSITIVE_PRICE", 2),
        ([GOOD[0], "2024-01-03,1,2,0.5,1,-5"], HEADER, "NEGATIVE_VOLUME", 3),
        ([GOOD[0], GOOD[1], "2024-01-04,1,0.5,2,1,1"], HEADER, "HIGH_BELOW_LOW", 4),
        ([GOOD[0], "2024-01-03,1,2,0.5,2.5,1"], HEADER, "PRICE_OUTSIDE_RANGE", 3),
        ([GOOD[0], GOOD[2], GOOD[1]], HEADER, "UNSORTED", 4),
        ([GOOD[0], GOOD[1], GOOD[1]], HEADER, "DUPLICATE_TIMESTAMP", 4),
        ([GOOD[0], "", GOOD[1]], HEADER, "UNPARSEABLE_TIMESTAMP", 3),  # a blank line inside
        ([GOOD[0], GOOD[1] + ",7"], HEADER, "MALFORMED_CSV", 3),
        ([GOOD[0] + ",7", GOOD[1]], HEADER, "MALFORMED_CSV", 2),
        (GOOD, "ts,date,open,high,low,close,volume\n", "AMBIGUOUS_COLUMNS", None),
    ],
)
def test_csv_error_kind_and_editor_line_number(
    tmp_path: Path, lines: list[str], header: str, kind: str, row: int | None
) -> None:
    err = _error(tmp_path, lines, header)
    assert (err.kind, err.row) == (kind, row)
    assert err.source is not None and err.source.endswith("bars.csv")
    assert kind in str(err) and (row is None or f"row {row}" in str(err))


def test_csv_without_volume_reads_with_volume_missing(tmp_path: Path) -> None:
    """No volume column (or only blanks in it): accepted, volume all NaN; a gap is not."""
    rows = ["2024-01-02,10,11,9,10.5", "2024-01-03,10.5,12,10,11"]
    bars = read_ohlcv_csv(_csv(tmp_path, rows, "ts,open,high,low,close\n"))
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert bars["volume"].isna().all() and volume_missing(bars)
    assert bars["close"].tolist() == [10.5, 11.0]
    blank = read_ohlcv_csv(_csv(tmp_path, [r + "," for r in rows], HEADER))
    assert volume_missing(blank)
    assert not volume_missing(read_ohlcv_csv(_csv(tmp_path, GOOD, HEADER)))
    with pytest.raises(DataError) as gap:
        read_ohlcv_csv(_csv(tmp_path, [rows[0] + ",5", rows[1] + ","], HEADER))
    assert (gap.value.kind, gap.value.row) == ("NAN_VOLUME", 3)


def test_require_volume_refuses_an_all_missing_volume_column() -> None:
    missing = pd.Series([float("nan")] * 3)
    with pytest.raises(DataError) as err:
        require_volume("volume", missing, "node 'v' (data.volume)")
    assert err.value.kind == "MISSING_VOLUME" and "volume is missing" in str(err.value)
    require_volume("close", missing, "x")  # only volume is checked
    require_volume("volume", pd.Series([1.0, float("nan")]), "x")  # some volume: node's business


def test_csv_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + "\n".join(GOOD)).encode())
    assert len(read_ohlcv_csv(path)) == 3


def test_csv_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        read_ohlcv_csv(tmp_path / "nope.csv")
    assert info.value.kind == "FILE_NOT_FOUND"


def test_csv_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("")
    with pytest.raises(DataError, match="EMPTY"):
        read_ohlcv_csv(path)


def test_csv_nonexistent_local_time_is_reported_with_its_row(tmp_path: Path) -> None:
    lines = ["2024-03-10 01:30,1,2,0.5,1,1", "2024-03-10 02:30,1,2,0.5,1,1"]  # NY springs forward
    with pytest.raises(DataError) as info:
        read_ohlcv_csv(_csv(tmp_path, lines), timezone="America/New_York")
    assert (info.value.kind, info.value.row) == ("UNPARSEABLE_TIMESTAMP", 3)


def test_csv_from_an_upload_buffer_names_the_source() -> None:
    data = (HEADER + "\n".join(GOOD)).encode()
    assert len(read_ohlcv_csv(io.BytesIO(data), source="upload.csv")) == 3
    with pytest.raises(DataError) as info:
        read_ohlcv_csv(io.BytesIO(data + b"\n2024-01-01,1,2,0.5,1,1"), source="upload.csv")
    assert (info.value.source, info.value.row, info.value.kind) == ("upload.csv", 5, "UNSORTED")


def test_csv_symbol_column_allows_the_same_time_for_different_symbols(tmp_path: Path) -> None:
    header = "ts,symbol,open,high,low,close,volume\n"
    lines = [
        "2024-01-02,AAA,10,11,9,10,1",
        "2024-01-02,BBB,20,21,19,20,1",
        "2024-01-03,AAA,10,11,9,10,1",
        "2024-01-03,AAA,10,11,9,10,1",
    ]
    with pytest.raises(DataError) as info:
        read_ohlcv_csv(_csv(tmp_path, lines, header))
    assert (info.value.kind, info.value.row) == ("DUPLICATE_TIMESTAMP", 5)
    bars = read_ohlcv_csv(_csv(tmp_path, lines[:3], header))
    assert bars["symbol"].tolist() == ["AAA", "BBB", "AAA"]  # file order kept


def test_validate_accepts_a_frame_with_a_datetime_index() -> None:
    index = pd.DatetimeIndex(["2024-01-02", "2024-01-03"], name="ts")
    frame = pd.DataFrame(
        {"open": [1, 2], "high": [2, 3], "low": [0.5, 1], "close": [1.5, 2.5], "volume": [1, 2]},
        index=index,
    )
    bars = validate_ohlcv(frame, "memory", timezone="Europe/Paris")
    assert bars.index[0] == pd.Timestamp("2024-01-01 23:00", tz="UTC")
    assert bars["volume"].dtype == "float64"


def test_parquet_reads_and_reports_1_based_rows(tmp_path: Path) -> None:
    good = read_ohlcv_csv(_csv(tmp_path, GOOD))
    path = tmp_path / "bars.parquet"
    good.to_parquet(path)
    pd.testing.assert_frame_equal(read_ohlcv_parquet(path), good)
    bad = good.reset_index()
    bad.loc[1, "low"] = 50.0
    bad.to_parquet(path)
    with pytest.raises(DataError) as info:
        read_ohlcv_parquet(path)
    assert (info.value.kind, info.value.row) == ("HIGH_BELOW_LOW", 2)


def _loader(name: str, tmp_path: Path, **ctx_kwargs) -> object:
    return registry().get(name)(NodeContext(base_dir=tmp_path, **ctx_kwargs))


def _params(node_type: str, **params) -> object:
    return registry().get(node_type).validated_params(params)


def test_csv_node_resolves_relative_paths_and_filters_dates_inclusively(tmp_path: Path) -> None:
    _csv(tmp_path, GOOD)
    node = _loader("csv_ohlcv", tmp_path)
    params = _params("csv_ohlcv", path="bars.csv", start="2024-01-03", end="2024-01-04")
    bars = node.run({}, params)["bars"]
    assert bars.index.strftime("%Y-%m-%d").tolist() == ["2024-01-03", "2024-01-04"]
    params = _params("csv_ohlcv", path="bars.csv", end="2024-01-03T00:00:00")
    assert len(node.run({}, params)["bars"]) == 2


def test_csv_node_date_range_without_bars_is_empty_error(tmp_path: Path) -> None:
    _csv(tmp_path, GOOD)
    with pytest.raises(DataError, match="EMPTY"):
        _loader("csv_ohlcv", tmp_path).run(
            {}, _params("csv_ohlcv", path="bars.csv", start="2025-01-01")
        )


def test_csv_node_params_refuse_unknown_timezone_and_reversed_range() -> None:
    with pytest.raises(NodeError, match="time zone"):
        _params("csv_ohlcv", path="x.csv", timezone="Mars/Olympus")
    with pytest.raises(NodeError, match="start"):
        _params("csv_ohlcv", path="x.csv", start="2024-02-01", end="2024-01-01")


def test_csv_node_selects_a_symbol_or_gives_the_panel_sorted_by_time_then_symbol(
    tmp_path: Path,
) -> None:
    header = "ts,symbol,open,high,low,close,volume\n"
    lines = [
        "2024-01-02,BBB,20,21,19,20,1",
        "2024-01-03,BBB,21,22,20,21,1",
        "2024-01-02,AAA,10,11,9,10,1",
    ]
    _csv(tmp_path, lines, header)
    node = _loader("csv_ohlcv", tmp_path)
    bars = node.run({}, _params("csv_ohlcv", path="bars.csv", symbol="BBB"))["bars"]
    assert bars["close"].tolist() == [20.0, 21.0]
    both = node.run({}, _params("csv_ohlcv", path="bars.csv"))["bars"]
    assert both["symbol"].tolist() == ["AAA", "BBB", "BBB"]
    assert both["close"].tolist() == [10.0, 20.0, 21.0]
    assert [str(t.date()) for t in both.index] == ["2024-01-02", "2024-01-02", "2024-01-03"]
    with pytest.raises(DataError, match="UNKNOWN_SYMBOL"):
        node.run({}, _params("csv_ohlcv", path="bars.csv", symbol="CCC"))


def test_csv_node_labels_bars_with_the_symbol_param(tmp_path: Path) -> None:
    _csv(tmp_path, GOOD)
    bars = _loader("csv_ohlcv", tmp_path).run({}, _params("csv_ohlcv", path="bars.csv", symbol="X"))
    assert bars["bars"]["symbol"].tolist() == ["X"] * 3


def test_loader_fingerprint_is_the_sha256_of_the_file_and_follows_its_bytes(
    tmp_path: Path,
) -> None:
    import hashlib

    path = _csv(tmp_path, GOOD)
    node, params = _loader("csv_ohlcv", tmp_path), _params("csv_ohlcv", path="bars.csv")
    first = node.fingerprint(params)
    assert first == hashlib.sha256(path.read_bytes()).hexdigest()
    _csv(tmp_path, GOOD[:2])
    assert node.fingerprint(params) != first


def test_loader_refuses_paths_outside_the_folder_when_confined(tmp_path: Path) -> None:
    inner = tmp_path / "data"
    inner.mkdir()
    _csv(tmp_path, GOOD)
    node = _loader("csv_ohlcv", inner, confine_paths=True)
    with pytest.raises(NodeError, match="outside"):
        node.run({}, _params("csv_ohlcv", path="../bars.csv"))


def test_parquet_node_reads_a_parquet_file(tmp_path: Path) -> None:
    read_ohlcv_csv(_csv(tmp_path, GOOD)).to_parquet(tmp_path / "b.parquet")
    out = _loader("parquet_ohlcv", tmp_path).run({}, _params("parquet_ohlcv", path="b.parquet"))
    assert out["bars"]["close"].tolist() == [10.5, 11.5, 11.8]


def test_dataset_node_reads_by_name_and_suggests_close_names(tmp_path: Path) -> None:
    read_ohlcv_csv(_csv(tmp_path, GOOD)).to_parquet(tmp_path / "b.parquet")
    node = _loader("dataset_ohlcv", tmp_path, datasets={"btc_daily": tmp_path / "b.parquet"})
    bars = node.run({}, _params("dataset_ohlcv", name="btc_daily", end="2024-01-02"))["bars"]
    assert len(bars) == 1
    assert node.fingerprint(_params("dataset_ohlcv", name="btc_daily"))
    with pytest.raises(DataError, match="btc_daily") as info:
        node.run({}, _params("dataset_ohlcv", name="btc_dialy"))
    assert info.value.kind == "UNKNOWN_DATASET"


def test_goog_sample_from_backtesting_reads_cleanly() -> None:
    import backtesting

    path = Path(backtesting.__file__).parent / "test" / "GOOG.csv"
    bars = read_ohlcv_csv(path)
    assert len(bars) == 2148 and bars.index.is_monotonic_increasing
    assert np.isfinite(bars.to_numpy()).all()
