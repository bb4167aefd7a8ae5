"""The sandbox work root: ALPHAFORGE_SANDBOX_WORK_ROOT (a directory mounted at the same path on
the engine's host and in a worker's container), else <temp dir>/alphaforge-sandbox."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from runners.strategyhost import new_slot
from runners.workroot import WORK_ROOT_ENV, sandbox_work_root


def test_the_variable_names_the_root_of_job_directories_and_strategy_slots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(WORK_ROOT_ENV, raising=False)
    assert sandbox_work_root() == Path(tempfile.gettempdir()) / "alphaforge-sandbox"
    monkeypatch.setenv(WORK_ROOT_ENV, str(tmp_path / "shared"))
    assert sandbox_work_root() == tmp_path / "shared"
    slot = new_slot()
    assert slot.parent == tmp_path / "shared" and slot.is_dir()


def test_a_relative_root_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WORK_ROOT_ENV, "sandbox")
    with pytest.raises(ValueError, match=f"{WORK_ROOT_ENV}='sandbox' is not an absolute path"):
        sandbox_work_root()
