"""A ``ticks`` output on the run page: a one-line summary, never a crash."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from api.services.run_outputs import summary
from nodes import tickfile, ticks


def test_a_tick_artifact_is_summarised_with_count_and_range(tmp_path: Path) -> None:
    data = np.zeros(3, ticks.EVENT_DTYPE)
    data["ev"] = ticks.EXCH_EVENT | ticks.LOCAL_EVENT | ticks.TRADE_EVENT
    data["exch_ts"] = 1_700_000_000_000_000_000 + np.array([0, 500_000_000, 1_000_000_000])
    data["local_ts"] = data["exch_ts"]
    path = tmp_path / "book.npz"
    tickfile.save(ticks.tick_array(data, symbol="BTCUSDT"), path)
    assert summary(path) == (
        "ticks: 3 events of BTCUSDT, 2023-11-14T22:13:20+00:00 .. 2023-11-14T22:13:21+00:00"
    )


def test_tables_have_no_summary_and_a_broken_tick_file_says_so(tmp_path: Path) -> None:
    assert summary(tmp_path / "x.parquet") is None
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"nope")
    text = summary(bad)
    assert text is not None and text.startswith("ticks: unreadable") and "bad.npz" in text
