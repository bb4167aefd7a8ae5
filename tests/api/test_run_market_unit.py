"""Worked small examples of the run page's series (api.services.run_market): monthly returns
and buy and hold, with the expected numbers computed by hand."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from api.services.run_market import _candles, benchmark_equity, equity_csv_chunks, monthly_returns


def test_monthly_returns_chain_month_ends_and_compound_the_year() -> None:
    index = pd.to_datetime(
        ["2021-01-04", "2021-01-29", "2021-02-26", "2021-03-31", "2022-01-03"], utc=True
    )
    rows = monthly_returns(pd.Series([100.0, 110.0, 99.0, 99.0, 108.9], index=index))
    assert [r.year for r in rows] == [2021, 2022]
    # Jan 110/100-1, Feb 99/110-1, Mar 99/99-1; Jan 2022 over Mar 2021's end: 108.9/99-1
    assert rows[0].months[:3] == pytest.approx([0.10, -0.10, 0.0])
    assert rows[0].months[3:] == [None] * 9
    assert rows[0].total == pytest.approx(99 / 100 - 1)  # 1.1 * 0.9 * 1.0 - 1
    assert rows[1].months[0] == pytest.approx(0.10) and rows[1].total == pytest.approx(0.10)


def test_buy_and_hold_buys_at_the_second_open_paying_fee_and_slippage_once() -> None:
    bars = pd.DataFrame({"open": [10.0, 20.0, 22.0], "close": [10.0, 25.0, 30.0]})
    # fill 20 * 1.001 (10 bps slippage); units = 1000 / (20.02 * 1.002) (20 bps fee, included)
    units = 1000 / (20.02 * 1.002)
    equity = benchmark_equity(bars, cash=1000.0, fee_bps=20.0, slippage_bps=10.0)
    assert equity.tolist() == pytest.approx([1000.0, units * 25, units * 30], rel=1e-12)
    assert benchmark_equity(bars.iloc[:1], 1000.0, 20.0, 10.0).tolist() == [1000.0]


def test_candles_merge_runs_of_bars_when_there_are_too_many() -> None:
    index = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
    bars = pd.DataFrame(
        {
            "open": [1.0, 2.0, 3.0, 4.0, 5.0],
            "high": [1.5, 9.0, 3.5, 4.5, 5.5],
            "low": [0.5, 1.5, 0.1, 3.5, 4.5],
            "close": [1.2, 2.2, 3.2, 4.2, 5.2],
        },
        index=index,
    )
    candles, size = _candles(bars, max_points=2)
    assert size == 3
    assert [(c.ts.day, c.open, c.high, c.low, c.close) for c in candles] == [
        (1, 1.0, 9.0, 0.1, 3.2),
        (4, 4.0, 5.5, 3.5, 5.2),
    ]


def test_equity_csv_reads_back_bit_for_bit_with_sub_second_stamps_and_gaps(
    tmp_path: Path,
) -> None:
    index = pd.DatetimeIndex(
        ["2024-01-01 00:00:00.0015", "2024-01-01 00:00:01", "2024-01-01 00:00:02.25"], tz="UTC"
    )
    equity = pd.DataFrame(
        {"equity": [0.1 + 0.2, 1e-300, 123456789012345678.0], "position": [1.0, np.nan, -2.5]}
        | {"drawdown": [0.0, -0.5, 0.0]},
        index=index.rename("ts"),
    )
    equity.to_parquet(tmp_path / "equity.parquet")
    text = "".join(equity_csv_chunks(tmp_path))
    lines = text.splitlines()
    assert lines[0] == "ts,equity,position,drawdown"
    assert lines[1] == "2024-01-01T00:00:00.001500000Z,0.30000000000000004,1,0"
    assert lines[2] == "2024-01-01T00:00:01.000000000Z,1e-300,,-0.5"  # a gap is empty
    back = pd.read_csv(io.StringIO(text), index_col="ts", parse_dates=["ts"])
    assert back.index.equals(index.rename("ts"))
    pd.testing.assert_frame_equal(back, equity, check_exact=True, check_index_type=False)


def test_equity_csv_stamps_whole_seconds_without_a_fraction(tmp_path: Path) -> None:
    index = pd.date_range("2024-03-01", periods=2, freq="min", tz="UTC", name="ts")
    pd.DataFrame({"equity": [100.0, 101.5]}, index=index).to_parquet(tmp_path / "equity.parquet")
    assert "".join(equity_csv_chunks(tmp_path)) == (
        "ts,equity,drawdown\n2024-03-01T00:00:00Z,100,0\n2024-03-01T00:01:00Z,101.5,0\n"
    )
