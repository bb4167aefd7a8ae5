"""A sweep's Optuna storage given as ``env:NAME``: read from the worker's environment."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from flows.sweepoptuna import optuna_storage
from flows.sweeptrial import SweepPlanError


def _storage(ref: str | None, tmp_path: Path) -> str:
    fake = SimpleNamespace(
        spec=SimpleNamespace(optuna_storage=ref), settings=SimpleNamespace(store_root=tmp_path)
    )
    return optuna_storage(fake)  # type: ignore[arg-type]


def test_an_env_reference_is_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AF_TEST_OPTUNA", "postgresql+psycopg://u:p@db/af")
    assert _storage("env:AF_TEST_OPTUNA", tmp_path) == "postgresql+psycopg://u:p@db/af"
    monkeypatch.delenv("AF_TEST_OPTUNA")
    with pytest.raises(SweepPlanError, match="AF_TEST_OPTUNA, which this worker does not have"):
        _storage("env:AF_TEST_OPTUNA", tmp_path)


def test_a_url_is_used_as_given_and_none_is_sqlite_in_the_store(tmp_path: Path) -> None:
    assert _storage("sqlite:///x.db", tmp_path) == "sqlite:///x.db"
    assert _storage(None, tmp_path) == f"sqlite:///{tmp_path / 'sweeps' / 'optuna.db'}"
    assert (tmp_path / "sweeps").is_dir()
