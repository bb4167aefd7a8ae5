"""The catalog on S3: moto's S3 server over real HTTP (the ``s3_server`` fixture), including
a server failing mid-read and mid-write (HTTP 500 from the proxy in front of it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from catalog import Catalog, CatalogError
from tests.catalog.helpers import bars, panel, per_symbol_folder


def _open(server: Any, bucket: str) -> Catalog:
    return Catalog.open(f"s3://{bucket}/catalog", **server.options())


def _keys(server: Any, bucket: str) -> list[str]:
    cat = _open(server, bucket)
    return sorted(k.split("/catalog/", 1)[1] for k in cat.storage.fs.find(bucket))


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    a, b = bars("AAA", "2019-12-20", 20, seed=1), bars("BBB", "2019-12-22", 20, seed=2)
    return per_symbol_folder(tmp_path / "src", {"AAA": a, "BBB": b}), panel(a, b)


def test_import_read_and_versions_on_s3_match_the_local_catalog(
    s3_server: Any, folder: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    src, expected = folder
    bucket = s3_server.new_bucket()
    info = _open(s3_server, bucket).import_files("local", "daily", [src], message="s3")
    local = Catalog.open(tmp_path / "cat").import_files("local", "daily", [src])
    assert info.version == local.version  # the same bytes wherever they are stored
    fresh = _open(s3_server, bucket)  # nothing cached: everything comes over HTTP
    assert fresh.names("local") == ["daily"]
    assert [(v.version, v.message) for v in fresh.versions("local", "daily")] == [
        (info.version, "s3")
    ]
    pd.testing.assert_frame_equal(fresh.read(info.version), expected)
    out = fresh.read(info.version, symbols=["BBB"], columns=["close"])
    pd.testing.assert_frame_equal(out, expected[expected["symbol"] == "BBB"][["close", "symbol"]])
    fresh.verify(info.version)
    assert not any(k.startswith("staging/") for k in _keys(s3_server, bucket))


def test_a_server_error_mid_read_is_a_clear_catalog_error(
    s3_server: Any, folder: tuple[Path, pd.DataFrame]
) -> None:
    src, _ = folder
    bucket = s3_server.new_bucket()
    version = _open(s3_server, bucket).import_files("local", "daily", [src]).version
    fresh = _open(s3_server, bucket)
    fresh.resolve("local", "daily")  # the manifest is read before the failure starts
    s3_server.fail = lambda method, path: method == "GET" and "symbol%3DBBB" in path
    try:
        with pytest.raises(CatalogError) as err:
            fresh.read(version)
    finally:
        s3_server.fail = None
    text = str(err.value)
    assert f"reading version {version[:12]}" in text and f"s3://{bucket}/catalog" in text
    assert "internal error" in text and "Traceback" not in text
    assert s3_server.failed  # the proxy did fail a request


@pytest.mark.parametrize(
    ("what", "rule"),
    [
        ("a data file", lambda m, p: m == "PUT" and "BBB/2020.parquet" in p),
        ("the copy into objects/", lambda m, p: m == "PUT" and "/objects/" in p and "BBB" in p),
        ("the manifest", lambda m, p: m == "PUT" and p.endswith("manifest.json")),
        ("the name's list", lambda m, p: m == "PUT" and "/names/" in p),
    ],
)
def test_a_server_error_mid_write_leaves_no_version_and_no_name(
    s3_server: Any, folder: tuple[Path, pd.DataFrame], what: str, rule: Any
) -> None:
    src, _ = folder
    bucket = s3_server.new_bucket()
    s3_server.fail = rule
    try:
        with pytest.raises(CatalogError, match="failed"):
            _open(s3_server, bucket).import_files("local", "daily", [src])
    finally:
        s3_server.fail = None
    assert _keys(s3_server, bucket) == [], what
    with pytest.raises(CatalogError, match="no dataset local/daily"):
        _open(s3_server, bucket).resolve("local", "daily")


def test_a_missing_bucket_is_named(s3_server: Any) -> None:
    with pytest.raises(CatalogError, match="bucket 'no-such-bucket' does not exist"):
        Catalog.open("s3://no-such-bucket/catalog", **s3_server.options())
