"""Imports: files, folders, URLs; the loader rules on every file; nothing written on bad data."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import catalog.partitions
import catalog.sources
from catalog import Catalog, CatalogError
from nodes.errors import DataError
from tests.catalog.helpers import bars, panel, per_symbol_folder, write_csv


def _nothing_stored(root: Path) -> bool:
    """No version, no name, no staging left behind."""
    return not any(
        p.is_file() for sub in ("objects", "names", "staging") for p in (root / sub).rglob("*")
    )


def test_a_multi_symbol_file_with_symbol_col_and_an_extra_column_round_trips(
    tmp_path: Path,
) -> None:
    a, b = bars("AAA", "2022-01-01", 6, seed=1), bars("BRK/B", "2022-01-03", 4, seed=2)
    expected = panel(a, b)
    expected["oi"] = np.arange(len(expected), dtype="float64")
    raw = expected.rename(columns={"symbol": "Ticker"})
    src = write_csv(raw, tmp_path / "mixed.csv")
    cat = Catalog.open(tmp_path / "cat")
    info = cat.import_files("local", "mixed", [src], symbol_col="Ticker")
    pd.testing.assert_frame_equal(cat.read(info.version), expected)
    assert info.columns == ["open", "high", "low", "close", "volume", "oi"]
    paths = [f["path"] for f in cat.manifest(info.version)["files"]]
    assert "data/symbol=BRK%2FB/2022.parquet" in paths  # '/' never reaches a path


def test_progress_reports_bytes_up_to_the_total_and_chunks_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tiny chunks and spool: the streaming and spilling paths run on small data
    monkeypatch.setattr(catalog.sources, "CHUNK_ROWS", 7)
    monkeypatch.setattr(catalog.partitions, "SPOOL_ROWS", 10)
    frames = {s: bars(s, "2020-12-20", 40, seed=i) for i, s in enumerate(["AAA", "BBB", "CCC"])}
    folder = per_symbol_folder(tmp_path / "src", frames)
    seen: list[tuple[int, int]] = []
    cat = Catalog.open(tmp_path / "cat")
    info = cat.import_files("local", "three", [folder], progress=lambda d, t: seen.append((d, t)))
    total = sum(p.stat().st_size for p in folder.iterdir())
    assert seen[-1] == (total, total) and all(t == total for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and len(seen) > 6
    pd.testing.assert_frame_equal(cat.read(info.version), panel(*frames.values()))


def test_parquet_files_import_like_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog.sources, "CHUNK_ROWS", 3)
    frame = bars("AAA", "2020-01-01", 10)
    src = tmp_path / "AAA.parquet"
    frame.drop(columns=["symbol"]).to_parquet(src)
    cat = Catalog.open(tmp_path / "cat")
    info = cat.import_files("local", "pq", [src])
    pd.testing.assert_frame_equal(cat.read(info.version), frame)


def test_symbol_names_files_without_a_symbol_column_and_conflicts_with_one(
    tmp_path: Path,
) -> None:
    frame = bars("SPY", "2020-01-01", 5)
    plain = write_csv(frame, tmp_path / "prices.csv", symbol=False)
    cat = Catalog.open(tmp_path / "cat")
    info = cat.import_files("local", "spy", [plain], symbol="SPY")
    assert [s.symbol for s in info.symbols] == ["SPY"]
    with_col = write_csv(frame, tmp_path / "with.csv")
    with pytest.raises(DataError, match="SYMBOL_CONFLICT") as err:
        cat.import_files("local", "spy2", [with_col], symbol="QQQ")
    assert err.value.source == str(with_col)


def test_bad_data_fails_with_kind_file_and_row_and_stores_nothing(tmp_path: Path) -> None:
    good = bars("AAA", "2020-01-01", 8)
    bad = bars("BBB", "2020-01-01", 8, seed=5)
    bad.iloc[3, bad.columns.get_loc("high")] = bad["low"].iloc[3] - 1  # CSV line 5
    folder = per_symbol_folder(tmp_path / "src", {"AAA": good, "BBB": bad})
    cat = Catalog.open(tmp_path / "cat")
    with pytest.raises(DataError) as err:
        cat.import_files("local", "broken", [folder])
    assert (err.value.kind, err.value.source, err.value.row) == (
        "HIGH_BELOW_LOW",
        str(folder / "BBB.csv"),
        5,
    )
    assert _nothing_stored(tmp_path / "cat")


def test_a_bar_repeated_in_another_file_names_both_files(tmp_path: Path) -> None:
    frame = bars("AAA", "2020-01-01", 10)
    first = write_csv(frame.iloc[:6], tmp_path / "src" / "a1.csv")
    second = write_csv(frame.iloc[5:], tmp_path / "src" / "a2.csv")  # overlaps one bar
    cat = Catalog.open(tmp_path / "cat")
    with pytest.raises(DataError) as err:
        cat.import_files("local", "dup", [tmp_path / "src"])
    assert (err.value.kind, err.value.source, err.value.row) == (
        "DUPLICATE_TIMESTAMP",
        str(second),
        2,
    )
    assert f"{first}, row 7" in str(err.value)
    assert _nothing_stored(tmp_path / "cat")
    # the two files given in the wrong order: the later period first
    with pytest.raises(DataError, match=r"UNSORTED.*successive periods"):
        cat.import_files("local", "dup", [second, first])


def test_files_of_one_symbol_in_successive_periods_make_one_series(tmp_path: Path) -> None:
    frame = bars("AAA", "2020-12-25", 12)
    write_csv(frame.iloc[:6], tmp_path / "src" / "2020.csv")
    write_csv(frame.iloc[6:], tmp_path / "src" / "2021.csv")
    cat = Catalog.open(tmp_path / "cat")
    info = cat.import_files("local", "joined", [tmp_path / "src"])
    pd.testing.assert_frame_equal(cat.read(info.version), frame)


def test_the_report_lists_files_checks_notes_and_gaps(tmp_path: Path) -> None:
    frame = bars("AAA", "2020-01-01", 30)
    frame = frame.drop(frame.index[[10, 11, 12, 20]])  # a 4-day gap and a 2-day gap
    src = write_csv(frame.drop(columns=["volume"]), tmp_path / "AAA.csv", symbol=False)
    cat = Catalog.open(tmp_path / "cat")
    report = cat.report(cat.import_files("local", "gappy", [src]).version)
    (entry,) = report["files"]
    assert entry["rows"] == 26 and entry["symbols"] == ["AAA"]
    assert entry["notes"] == ["no volume column: volume is missing"]
    assert entry["start"].startswith("2020-01-01") and entry["end"].startswith("2020-01-30")
    assert "HIGH_BELOW_LOW" in report["checks"] and "ORDER_ACROSS_FILES" in report["checks"]
    gaps = report["gaps"]["AAA"]
    # spacings: 22 of 1 day, one of 4 days, one of 2 days -> median 1 day; only 4 > 3x1
    assert gaps["median_spacing_s"] == 86400.0
    assert gaps["largest_gap_s"] == 4 * 86400.0
    assert gaps["gaps_over_3x_median"] == 1


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    folder = tmp_path / "www"
    folder.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_url_is_downloaded_and_imported_and_a_missing_one_is_a_clear_error(
    tmp_path: Path, http_folder: tuple[Path, str]
) -> None:
    folder, base = http_folder
    frame = bars("QQQ", "2020-01-01", 5)
    write_csv(frame, folder / "QQQ.csv", symbol=False)
    cat = Catalog.open(tmp_path / "cat")
    info = cat.import_files("local", "web", [f"{base}/QQQ.csv"])
    pd.testing.assert_frame_equal(cat.read(info.version), frame)
    assert info.sources[0]["file"] == f"{base}/QQQ.csv"
    with pytest.raises(CatalogError, match="HTTP 404"):
        cat.import_files("local", "web", [f"{base}/missing.csv"])


def test_an_empty_folder_and_a_bad_name_are_refused(tmp_path: Path) -> None:
    cat = Catalog.open(tmp_path / "cat")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CatalogError, match=r"no \*.csv or \*.parquet files"):
        cat.import_files("local", "x", [tmp_path / "empty"])
    with pytest.raises(CatalogError, match="invalid dataset name '9lives'"):
        cat.import_files("local", "9lives", [tmp_path / "empty"])
