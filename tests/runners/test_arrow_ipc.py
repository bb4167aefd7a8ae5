"""The sandbox's numpy-only Arrow IPC reader against pyarrow, on what the host writes."""

from __future__ import annotations

import decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from runners.jobs import _write_arrow
from runners.sandbox.arrow_ipc import ArrowFormatError, read_pandas, read_table


def _roundtrip(frame: pd.DataFrame, tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    path = tmp_path / "x.arrow"
    _write_arrow(frame, path)
    return read_pandas(str(path)), pd.read_feather(path)


def test_every_column_type_the_host_writes_reads_as_pyarrow_does(tmp_path: Path) -> None:
    idx = pd.date_range("2020-01-01", periods=5, freq="min", tz="UTC", name="ts")
    frame = pd.DataFrame(
        {
            "f64": [1.5, np.nan, 3.0, -4.25, 5.0],
            "f32": np.float32([1, 2, np.nan, 4, 5]),
            "i64": [1, -2, 3, 4, 2**40],
            "i8": np.int8([1, -2, 3, 4, 127]),
            "u16": np.uint16([0, 1, 2, 3, 65535]),
            "nullable_int": pd.array([1, None, 3, 4, 5], dtype="Int64"),
            "flag": [True, False, True, True, False],
            "nullable_flag": pd.array([True, None, False, True, None], dtype="boolean"),
            "text": ["x", None, "zé", "", "v"],
            "naive_ts": pd.to_datetime(
                ["2020-01-01", None, "2021-06-30", "2022-01-01", "2023-01-01"]
            ),
            "ny_ts": pd.date_range("2021", periods=5, tz="America/New_York"),
            "ns_ts": pd.DatetimeIndex(["2020-01-01T00:00:00.000000001"] * 5).as_unit("ns"),
            "span": pd.to_timedelta([1, 2, None, 4, 5], unit="s"),
        },
        index=idx,
    )
    got, ref = _roundtrip(frame, tmp_path)
    pd.testing.assert_frame_equal(got, ref)
    assert got.index.tz is not None and str(got.index.tz) == "UTC"
    assert got.loc[idx[1], "nullable_int"] is pd.NA
    assert got["ns_ts"].iloc[0].nanosecond == 1


def test_columns_the_reader_does_not_take_are_written_as_strings(tmp_path: Path) -> None:
    idx = pd.RangeIndex(3, name="row")
    frame = pd.DataFrame(
        {
            "cat": pd.Categorical(["a", "b", "a"]),
            "dec": [decimal.Decimal("1.10"), decimal.Decimal("2"), None],
            "period": pd.period_range("2020-01", periods=3, freq="M"),
            "x": [1.0, 2.0, 3.0],
        },
        index=idx,
    )
    got, ref = _roundtrip(frame, tmp_path)
    pd.testing.assert_frame_equal(got, ref)
    assert list(got["cat"]) == ["a", "b", "a"]
    assert list(got["period"]) == ["2020-01", "2020-02", "2020-03"]
    assert got.index.equals(idx) and got.index.name == "row"


def test_many_record_batches_are_concatenated_in_order(tmp_path: Path) -> None:
    n = 150_000  # > 2 batches of feather's 65,536 rows
    values = np.random.default_rng(3).normal(size=n)
    values[[0, 65_535, 65_536, n - 1]] = np.nan
    idx = pd.date_range("2020-01-01", periods=n, freq="s", tz="UTC", name="ts")
    frame = pd.DataFrame({"value": values, "n": np.arange(n)}, index=idx)
    path = tmp_path / "x.arrow"
    _write_arrow(frame, path)
    assert feather.read_table(path).to_batches().__len__() >= 3
    got = read_pandas(str(path))
    pd.testing.assert_frame_equal(got, pd.read_feather(path))
    assert np.isnan(got["value"].to_numpy()[[65_535, 65_536]]).all()


def test_an_empty_input_reads_as_an_empty_frame(tmp_path: Path) -> None:
    idx = pd.DatetimeIndex([], tz="UTC", name="ts")
    got, ref = _roundtrip(pd.DataFrame({"value": pd.Series([], dtype="float64")}, idx), tmp_path)
    assert len(got) == 0 and list(got.columns) == ["value"]
    pd.testing.assert_frame_equal(got, ref)


def test_read_table_reports_names_time_zones_and_metadata(tmp_path: Path) -> None:
    idx = pd.date_range("2020-01-01", periods=2, freq="D", tz="Europe/Paris", name="ts")
    path = tmp_path / "x.arrow"
    _write_arrow(pd.DataFrame({"a": [1.0, 2.0]}, index=idx), path)
    names, columns, zones, metadata = read_table(str(path))
    assert names == ["a", "ts"]
    assert zones == [None, "Europe/Paris"]
    assert columns[0].tolist() == [1.0, 2.0]
    assert "pandas" in metadata


def _write_table(table: pa.Table, path: Path, **kwargs: object) -> str:
    options: dict[str, object] = {"compression": "uncompressed", **kwargs}
    feather.write_feather(table, str(path), **options)  # type: ignore[arg-type]
    return str(path)


@pytest.mark.parametrize(
    ("table", "kwargs", "message"),
    [
        (pa.table({"c": pa.array(["a", "b"]).dictionary_encode()}), {}, "dictionary"),
        (pa.table({"v": [1.0, 2.0]}), {"compression": "zstd"}, "compressed"),
        (pa.table({"l": pa.array([[1], [2, 3]])}), {}, "nested"),
        (pa.table({"b": pa.array([b"x", b"y"])}), {}, "Arrow type Binary"),
    ],
    ids=["dictionary", "compressed", "list", "binary"],
)
def test_what_the_reader_does_not_take_is_refused_by_name(
    tmp_path: Path, table: pa.Table, kwargs: dict[str, object], message: str
) -> None:
    path = _write_table(table, tmp_path / "x.arrow", **kwargs)
    with pytest.raises(ArrowFormatError, match=message):
        read_table(path)


def test_a_file_that_is_not_arrow_is_refused(tmp_path: Path) -> None:
    parquet = tmp_path / "x.parquet"
    pd.DataFrame({"a": [1.0]}).to_parquet(parquet)
    with pytest.raises(ArrowFormatError, match="not an Arrow IPC file"):
        read_table(str(parquet))
    good = tmp_path / "x.arrow"
    _write_arrow(pd.DataFrame({"a": [1.0]}), good)
    truncated = tmp_path / "cut.arrow"
    raw = good.read_bytes()
    truncated.write_bytes(raw[:8] + raw[-16:])
    with pytest.raises(ArrowFormatError):
        read_table(str(truncated))
