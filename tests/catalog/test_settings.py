"""The catalog the settings name: a directory under the store by default, S3 from the env."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from flows.catalog import open_catalog
from flows.settings import CoreSettings, get_settings
from tests.catalog.helpers import bars, per_symbol_folder


def test_the_default_catalog_is_catalog_in_the_store(tmp_path: Path) -> None:
    settings = CoreSettings(data_dir=tmp_path / "data")
    assert settings.catalog_location == str((tmp_path / "data" / "catalog").resolve())
    assert open_catalog(settings).url == settings.catalog_location
    shared = CoreSettings(data_dir=tmp_path / "data", store_url=str(tmp_path / "store"))
    assert shared.catalog_location == str((tmp_path / "store" / "catalog").resolve())


def test_the_cli_imports_into_s3_named_by_the_environment(
    s3_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = s3_server.new_bucket()
    for key, value in {
        "CATALOG_URL": f"s3://{bucket}/catalog",
        "S3_ENDPOINT_URL": s3_server.endpoint,
        "S3_KEY": "testing",
        "S3_SECRET": "testing",
        "S3_REGION": "us-east-1",
        "NAMESPACE": "research",
    }.items():
        monkeypatch.setenv(f"ALPHAFORGE_{key}", value)
    get_settings.cache_clear()
    try:
        folder = per_symbol_folder(tmp_path / "src", {"SPY": bars("SPY", "2020-01-01", 5)})
        assert main(["data", "import", str(folder), "--name", "etf"]) == 0
        out = capsys.readouterr().out
        assert out.startswith("imported: research/etf@") and f"s3://{bucket}/catalog" in out
        settings = get_settings()
        assert open_catalog(settings).names("research") == ["etf"]
    finally:
        get_settings.cache_clear()
