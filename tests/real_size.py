"""One million one-minute bars for the real-size tests, and an independent re-computation of the
SMA-crossover backtest on them.

:func:`million_bars_files` (the ``million_bars`` session fixture of tests/conftest.py) writes
the bars once per test session — shared by the pytest-xdist workers through a lock in the
session's temporary root — as ``bars.csv`` (≈ 70 MB, as a user would export it: ISO timestamps
with ``Z``, prices with 6 decimals, integer volumes) and ``bars.parquet``. The bars are a seeded
random walk around the clock (weekends included, like crypto), with opens gapping from the
previous close and highs/lows around both.

:func:`sma_crossover_reference` recomputes, with numpy only and exact integer arithmetic for
the crossover, what ``sma(10)``/``sma(30)`` → ``crossover`` → ``backtest`` (no fees, no
slippage, full-equity long/short) must give on these bars: the equity curve, the number of
closed trades and the headline figures. Prices on a 1e-6 grid make a tie between the two
averages an exact integer test; the seed was checked to give none (a tie would make the float
pipeline's choice arbitrary), and :func:`sma_crossover_reference` asserts it.
"""

from __future__ import annotations

import fcntl
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

__all__ = [
    "BARS",
    "MillionBars",
    "Reference",
    "make_minute_bars",
    "million_bars_files",
    "sma_crossover_reference",
]

BARS = 1_000_000
SEED = 2  # checked: no bar where the 10- and 30-bar averages tie exactly (20261204 has one)
START = "2024-01-01"
TICKS = 1_000_000  # prices are whole multiples of 1 / TICKS
MINUTES_PER_YEAR = 365 * 24 * 60  # the 24x7 calendar: a 365-day year (docs/backtest.md)


def make_minute_bars(n: int = BARS, seed: int = SEED) -> pd.DataFrame:
    """``n`` one-minute bars of a seeded random walk from 2024-01-01 UTC (canonical frame)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0005, n)))
    open_ = np.concatenate(([100.0], close[:-1])) * np.exp(rng.normal(0.0, 0.0001, n))
    high = np.maximum(open_, close) * (1.0 + np.abs(rng.normal(0.0, 0.0003, n)))
    low = np.minimum(open_, close) * (1.0 - np.abs(rng.normal(0.0, 0.0003, n)))
    index = pd.date_range(START, periods=n, freq="min", tz="UTC", name="ts")
    frame = pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close}, index=index
    ).round(6)  # rounding is monotonic: low <= open, close <= high still hold
    frame["volume"] = rng.integers(1, 5_000, n).astype("float64")
    return frame


@dataclass(frozen=True)
class MillionBars:
    """The session's bar files and the frame they hold."""

    csv: Path
    parquet: Path
    frame: pd.DataFrame


def _write(directory: Path) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    frame = make_minute_bars()
    frame.to_parquet(directory / "bars.parquet.partial")
    table = pa.Table.from_pandas(frame.reset_index(), preserve_index=False)
    seconds = pc.cast(table["ts"], pa.timestamp("s", tz="UTC"))
    stamps = pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%SZ")
    table = table.set_column(0, "ts", stamps)
    table = table.set_column(5, "volume", pc.cast(table["volume"], pa.int64()))
    options = pacsv.WriteOptions(quoting_style="none")
    pacsv.write_csv(table, directory / "bars.csv.partial", write_options=options)
    (directory / "bars.parquet.partial").rename(directory / "bars.parquet")
    (directory / "bars.csv.partial").rename(directory / "bars.csv")


def million_bars_files(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> MillionBars:
    """The 1,000,000-bar CSV and Parquet files, written once per session (all workers); the
    ``million_bars`` session fixture of tests/conftest.py."""
    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        root = root.parent  # shared by the xdist workers of this session
    directory = root / "million-bars"
    directory.mkdir(exist_ok=True)
    with (root / "million-bars.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (directory / "bars.csv").exists():
            _write(directory)
    return MillionBars(
        directory / "bars.csv",
        directory / "bars.parquet",
        pd.read_parquet(directory / "bars.parquet"),
    )


@dataclass(frozen=True)
class Reference:
    """What the zero-cost SMA 10/30 crossover backtest must report."""

    equity: np.ndarray
    final_equity: float
    total_return: float
    max_drawdown: float
    num_trades: int
    sharpe_at: dict[float, float]  # periods per year -> Sharpe

    def sharpe(self, ppy: float) -> float:
        return self.sharpe_at[ppy] if ppy in self.sharpe_at else _sharpe(self.equity, ppy)


def _sharpe(equity: np.ndarray, ppy: float) -> float:
    r = equity[1:] / equity[:-1] - 1.0
    return float(r.mean() / r.std(ddof=1) * np.sqrt(ppy))


def sma_crossover_reference(
    bars: pd.DataFrame, fast: int = 10, slow: int = 30, cash: float = 100_000.0
) -> Reference:
    """The SMA crossover (long above, short below, hold on a tie, flat in the warm-up) traded
    at the next bar's open with all the equity, no costs; marked at every close."""
    close_ticks = np.rint(bars["close"].to_numpy() * TICKS).astype(np.int64)
    assert np.array_equal(close_ticks / TICKS, bars["close"].to_numpy()), "prices off the grid"
    csum = np.concatenate(([0], np.cumsum(close_ticks)))
    n = len(close_ticks)
    # sum of the last w closes at bar t (t >= w-1); compare slow*sum_fast with fast*sum_slow
    sum_fast = csum[fast:] - csum[:-fast]  # bars fast-1 .. n-1
    sum_slow = csum[slow:] - csum[:-slow]  # bars slow-1 .. n-1
    diff = slow * sum_fast[slow - fast :] - fast * sum_slow  # bars slow-1 .. n-1, exact
    assert not (diff == 0).any(), "the averages tie on some bar: choose another seed"
    target = np.zeros(n)
    target[slow - 1 :] = np.where(diff > 0, 1.0, -1.0)
    # orders: at the open of bar i when target[i-1] changed (from 0 before the first bar)
    prev = np.concatenate(([0.0], target[:-1]))
    before = np.concatenate(([0.0], prev[:-1]))
    change = np.flatnonzero(prev != before)  # bars where an order fills
    opens = bars["open"].to_numpy()
    closes = bars["close"].to_numpy()
    side = prev[change]  # position after the fill, as a fraction of equity
    # wealth at each fill: the previous position's gain from its fill's open to this open
    growth = np.ones(len(change))
    growth[1:] = 1.0 - side[:-1] + side[:-1] * opens[change[1:]] / opens[change[:-1]]
    wealth = cash * np.cumprod(growth)
    units = side * wealth / opens[change]
    cash_after = wealth - units * opens[change]
    segment = np.searchsorted(change, np.arange(n), side="right") - 1
    equity = np.where(
        segment >= 0,
        cash_after[segment] + units[segment] * closes,
        cash,
    )
    peak = np.maximum.accumulate(equity)
    return Reference(
        equity=equity,
        final_equity=float(equity[-1]),
        total_return=float(equity[-1] / cash - 1.0),
        max_drawdown=float((equity / peak - 1.0).min()),
        num_trades=len(change) - 1,  # every fill after the first closes a trade (all flips)
        sharpe_at={MINUTES_PER_YEAR: _sharpe(equity, MINUTES_PER_YEAR)},
    )
