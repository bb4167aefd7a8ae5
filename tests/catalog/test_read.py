"""Pruned reads: only the partitions of the symbols and dates asked for are opened, only the
columns asked for come back, and unknown ones are named."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fsspec.implementations.local import LocalFileSystem

from catalog import Catalog, CatalogError
from catalog.storage import Storage
from tests.catalog.helpers import bars, panel, per_symbol_folder


class CountingFS(LocalFileSystem):
    """A local filesystem that records which Parquet files are opened."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened: list[str] = []

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if str(path).endswith(".parquet"):
            self.opened.append(str(path).split("/data/", 1)[-1])
        return super()._open(path, mode=mode, **kwargs)


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Catalog, str, pd.DataFrame]:
    frames = {s: bars(s, "2019-06-01", 400, seed=i) for i, s in enumerate(["AAA", "BBB", "CCC"])}
    folder = per_symbol_folder(tmp_path / "src", frames)
    version = Catalog.open(tmp_path / "cat").import_files("local", "d", [folder]).version
    fs = CountingFS(skip_instance_cache=True)  # fsspec would hand back an earlier one
    counting = Catalog(Storage(fs, (tmp_path / "cat").as_posix(), str(tmp_path / "cat")))
    return counting, version, panel(*frames.values())


def test_a_symbol_and_date_range_open_only_the_overlapping_partitions(
    stored: tuple[Catalog, str, pd.DataFrame],
) -> None:
    cat, version, everything = stored
    start, end = datetime(2020, 3, 1, tzinfo=UTC), datetime(2020, 3, 31, tzinfo=UTC)
    out = cat.read(version, symbols=["BBB"], columns=["close"], start=start, end=end)
    assert cat.storage.fs.opened == ["symbol=BBB/2020.parquet"]  # type: ignore[attr-defined]
    expected = everything[(everything["symbol"] == "BBB")].loc["2020-03-01":"2020-03-31"]
    pd.testing.assert_frame_equal(out, expected[["close", "symbol"]])
    assert len(out) == 31


def test_a_range_across_new_year_opens_both_years_of_each_symbol_asked(
    stored: tuple[Catalog, str, pd.DataFrame],
) -> None:
    cat, version, everything = stored
    start, end = datetime(2019, 12, 30, tzinfo=UTC), datetime(2020, 1, 2, 23, tzinfo=UTC)
    out = cat.read(version, symbols=["AAA", "CCC"], start=start, end=end)
    opened = sorted(cat.storage.fs.opened)  # type: ignore[attr-defined]
    assert opened == [
        "symbol=AAA/2019.parquet",
        "symbol=AAA/2020.parquet",
        "symbol=CCC/2019.parquet",
        "symbol=CCC/2020.parquet",
    ]
    mask = everything["symbol"].isin(["AAA", "CCC"]).to_numpy()
    expected = everything[mask].loc["2019-12-30":"2020-01-02"]
    pd.testing.assert_frame_equal(out, expected)
    assert list(out["symbol"][:2]) == ["AAA", "CCC"]  # rows by (ts, symbol)


def test_the_whole_version_reads_as_the_long_panel(
    stored: tuple[Catalog, str, pd.DataFrame],
) -> None:
    cat, version, everything = stored
    pd.testing.assert_frame_equal(cat.read(version), everything)
    assert len(cat.storage.fs.opened) == 6  # type: ignore[attr-defined]


def test_unknown_symbols_and_columns_are_named_with_what_exists(
    stored: tuple[Catalog, str, pd.DataFrame],
) -> None:
    cat, version, _ = stored
    with pytest.raises(CatalogError, match=r"no symbol 'BB'.*did you mean 'BBB'.*AAA, BBB, CCC"):
        cat.read(version, symbols=["BB"])
    with pytest.raises(CatalogError, match=r"no column 'clsoe'.*'close'.*ts, symbol, open"):
        cat.read(version, columns=["clsoe"])
    assert cat.storage.fs.opened == []  # type: ignore[attr-defined]


def test_a_range_outside_the_data_opens_nothing_and_gives_an_empty_frame(
    stored: tuple[Catalog, str, pd.DataFrame],
) -> None:
    cat, version, everything = stored
    out = cat.read(version, start=datetime(2030, 1, 1, tzinfo=UTC))
    assert cat.storage.fs.opened == [] and len(out) == 0  # type: ignore[attr-defined]
    assert list(out.columns) == list(everything.columns)
    assert str(out.index.dtype) == "datetime64[ns, UTC]"
