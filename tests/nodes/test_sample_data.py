"""scripts/make_sample_data.py: deterministic, realistic, and the committed CSV is its output."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np

from nodes.data import read_ohlcv_csv

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "examples" / "data" / "sample_ohlcv.csv"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_sample_data", ROOT / "scripts" / "make_sample_data.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sample_data_script_is_byte_identical_across_runs(tmp_path: Path) -> None:
    script = _script()
    first = script.main(["--out", str(tmp_path / "a.csv")])
    second = script.main(["--out", str(tmp_path / "b.csv")])
    assert first.read_bytes() == second.read_bytes()
    other_seed = script.main(["--out", str(tmp_path / "c.csv"), "--seed", "1"])
    assert other_seed.read_bytes() != first.read_bytes()


def test_committed_sample_csv_is_the_scripts_output(tmp_path: Path) -> None:
    out = _script().main(["--out", str(tmp_path / "s.csv")])
    assert out.read_bytes() == COMMITTED.read_bytes()


def test_sample_data_is_valid_business_day_bars_with_consistent_ohlc() -> None:
    bars = read_ohlcv_csv(COMMITTED)  # every validation rule of the loaders
    assert 750 <= len(bars) <= 1100  # about 3-4 years of sessions
    assert (bars.index.day_of_week < 5).all()
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    text = COMMITTED.read_text().splitlines()
    assert text[0] == "ts,open,high,low,close,volume"
    assert all(len(field.split(".")[1]) == 4 for field in text[1].split(",")[1:5])


def test_sample_data_has_trends_in_both_directions() -> None:
    close = read_ohlcv_csv(COMMITTED)["close"].to_numpy()
    quarterly = np.log(close[::63][1:] / close[::63][:-1])
    assert quarterly.max() > 0.05 and quarterly.min() < -0.05
