"""Content-addressed versions: import -> version hash -> exact bytes -> the same frame back."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from catalog import Catalog, CatalogError
from tests.catalog.helpers import bars, panel, per_symbol_folder, write_csv


def _version_of(manifest: dict) -> str:
    """The version hash, computed here independently of catalog.manifest."""
    files = sorted([f["path"], f["sha256"], f["rows"]] for f in manifest["files"])
    body = {"files": files, "format": 1, "schema": manifest["schema"]}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def two_symbols(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    a, b = bars("AAA", "2019-12-25", 20, seed=1), bars("BBB", "2019-12-28", 15, seed=2)
    return per_symbol_folder(tmp_path / "src", {"AAA": a, "BBB": b}), panel(a, b)


def test_import_round_trips_to_the_exact_frame_and_the_files_hash_to_the_version(
    tmp_path: Path, two_symbols: tuple[Path, pd.DataFrame]
) -> None:
    folder, expected = two_symbols
    cat = Catalog.open(tmp_path / "cat")
    info = cat.import_files("local", "daily", [folder], message="first")
    pd.testing.assert_frame_equal(cat.read(info.version), expected)
    manifest = cat.manifest(info.version)
    root = tmp_path / "cat" / "objects" / info.version
    for f in manifest["files"]:
        data = (root / f["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
    assert _version_of(manifest) == info.version
    # one file per symbol per calendar year
    assert sorted(f["path"] for f in manifest["files"]) == [
        "data/symbol=AAA/2019.parquet",
        "data/symbol=AAA/2020.parquet",
        "data/symbol=BBB/2019.parquet",
        "data/symbol=BBB/2020.parquet",
    ]
    assert (info.rows, [s.symbol for s in info.symbols]) == (35, ["AAA", "BBB"])
    assert [(s.rows, s.start.date().isoformat()) for s in info.symbols] == [
        (20, "2019-12-25"),
        (15, "2019-12-28"),
    ]
    assert info.message == "first" and info.short() == info.version[:12]
    cat.verify(info.version)


def test_the_same_data_gives_the_same_version_in_another_catalog_and_adds_nothing(
    tmp_path: Path, two_symbols: tuple[Path, pd.DataFrame]
) -> None:
    folder, _ = two_symbols
    cat = Catalog.open(tmp_path / "cat")
    first = cat.import_files("local", "daily", [folder])
    again = cat.import_files("local", "daily", [folder], message="again")
    other = Catalog.open(tmp_path / "other").import_files("team", "copy", [folder])
    assert first.version == again.version == other.version
    assert len(list((tmp_path / "cat" / "objects").iterdir())) == 1
    assert [v.version for v in cat.versions("local", "daily")] == [first.version]
    a = tmp_path / "cat" / "objects" / first.version / "data" / "symbol=AAA" / "2019.parquet"
    b = tmp_path / "other" / "objects" / first.version / "data" / "symbol=AAA" / "2019.parquet"
    assert a.read_bytes() == b.read_bytes()


def test_a_changed_file_makes_a_new_version_and_the_old_one_still_reads_its_data(
    tmp_path: Path,
) -> None:
    old = bars("AAA", "2021-01-01", 10, seed=3)
    src = write_csv(old, tmp_path / "aaa.csv")
    cat = Catalog.open(tmp_path / "cat")
    v1 = cat.import_files("local", "aaa", [src], message="v1")
    new = old.copy()
    new.iloc[4, new.columns.get_loc("close")] = new["close"].iloc[4] + 0.5
    new.iloc[4, new.columns.get_loc("high")] = new["high"].iloc[4] + 0.5
    write_csv(new, src)
    v2 = cat.import_files("local", "aaa", [src], message="v2")
    assert v1.version != v2.version
    assert [v.message for v in cat.versions("local", "aaa")] == ["v1", "v2"]
    assert cat.resolve("local", "aaa").version == v2.version
    pd.testing.assert_frame_equal(cat.read(v1.version), old)
    pd.testing.assert_frame_equal(cat.read(v2.version), new)
    # importing the first data again makes it the latest again (the list is append-only)
    write_csv(old, src)
    back = cat.import_files("local", "aaa", [src], message="back")
    assert back.version == v1.version
    listed = [(v.version, v.message) for v in cat.versions("local", "aaa")]
    assert listed == [(v1.version, "v1"), (v2.version, "v2"), (v1.version, "back")]


def test_resolve_takes_a_unique_prefix_and_names_what_exists_otherwise(tmp_path: Path) -> None:
    cat = Catalog.open(tmp_path / "cat")
    src = write_csv(bars("AAA", "2021-01-01", 5), tmp_path / "aaa.csv")
    info = cat.import_files("local", "prices", [src])
    assert cat.resolve("local", "prices", info.version[:6]).version == info.version
    with pytest.raises(CatalogError, match=r"did you mean 'prices'"):
        cat.resolve("local", "price")
    with pytest.raises(CatalogError, match=info.version[:12]):
        cat.resolve("local", "prices", "abcdef12")
    with pytest.raises(CatalogError, match="at least 6 hex"):
        cat.resolve("local", "prices", "abc")
    with pytest.raises(CatalogError, match="invalid dataset name"):
        cat.resolve("local", "../etc")
    assert cat.names("local") == ["prices"]
    assert cat.info(info.version).name == "prices"


def test_verify_finds_a_file_changed_after_the_import(tmp_path: Path) -> None:
    cat = Catalog.open(tmp_path / "cat")
    src = write_csv(bars("AAA", "2021-01-01", 5), tmp_path / "aaa.csv")
    info = cat.import_files("local", "prices", [src])
    path = tmp_path / "cat" / "objects" / info.version / "data" / "symbol=AAA" / "2021.parquet"
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(CatalogError, match=r"symbol=AAA/2021.parquet .* does not match"):
        cat.verify(info.version)


def test_import_frame_stores_the_web_upload_like_a_file(tmp_path: Path) -> None:
    cat = Catalog.open(tmp_path / "cat")
    frame = bars("AAA", "2021-01-01", 5).drop(columns=["symbol"])
    info = cat.import_frame("local", "upload", frame, source="SPY.csv", message="web")
    out = cat.read(info.version)
    assert out["symbol"].unique().tolist() == ["SPY"]
    pd.testing.assert_frame_equal(out.drop(columns=["symbol"]), frame)
    assert cat.report(info.version)["files"][0]["file"] == "SPY.csv"
