"""Generate the bundled multi-symbol universe: examples/data/universe/<SYMBOL>.parquet.

24 symbols of daily bars on business days from 2018-01-01 to 2024-12-31 (one Parquet file per
symbol, columns ts, open, high, low, close, volume; no symbol column: the catalog import takes the
symbol from the file name). Log returns follow a one-factor model with persistent drifts:

    r[i, t] = mu[i, t] + beta[i] * m[t] + sigma[i] * e[i, t]

where ``m`` is a common market return (daily vol 1 %), ``e`` is standard normal noise and the
drift ``mu[i, t]`` is an AR(1) process (half-life about 120 bars) around a small positive mean.
Persistent drifts are what makes cross-sectional momentum pay here, as it does (weakly) in real
equities: a rotation into the recent winners holds names whose drift is still high.

Two symbols exercise panel edge cases: ``NEWCO`` lists on 2020-06-01 (no bars before it) and
``HALT`` has no bars for ten business days in March 2021 (a trading halt). Opens gap from the
previous close; high >= max(open, close) and low <= min(open, close) always hold; prices have 4
decimals, volume is an integer.

Seeded (``SEED`` = 20261206, numpy PCG64): running it twice writes byte-identical files.

    python scripts/make_universe_data.py [--out DIR] [--seed N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20261206
START, END = "2018-01-01", "2024-12-31"
OUT = Path(__file__).resolve().parents[1] / "examples" / "data" / "universe"
SYMBOLS = [
    *(f"S{i:02d}" for i in range(1, 23)),
    "NEWCO",  # lists on LISTING
    "HALT",  # no bars during HALT_DAYS
]
LISTING = "2020-06-01"
HALT_DAYS = ("2021-03-08", "2021-03-19")


def _drifts(rng: np.random.Generator, n: int) -> np.ndarray:
    """AR(1) daily drifts around 0.0003 (phi gives a half-life of ~120 bars)."""
    phi = 0.5 ** (1 / 120)
    shock = 0.0008 * np.sqrt(1 - phi**2)
    mu = np.empty(n)
    mu[0] = 0.0003 + rng.normal(0, 0.0008)
    for t in range(1, n):
        mu[t] = 0.0003 + phi * (mu[t - 1] - 0.0003) + rng.normal(0, shock)
    return mu


def _bars(rng: np.random.Generator, index: pd.DatetimeIndex, market: np.ndarray) -> pd.DataFrame:
    """One symbol's bars on ``index`` (market returns aligned to it)."""
    n = len(index)
    beta = rng.uniform(0.6, 1.4)
    sigma = rng.uniform(0.008, 0.02)
    log_ret = _drifts(rng, n) + beta * market + sigma * rng.standard_normal(n)
    close = rng.uniform(20, 200) * np.exp(np.cumsum(log_ret))
    prev = np.concatenate([[close[0]], close[:-1]])
    open_ = prev * np.exp(rng.normal(0, sigma / 3, n))
    top = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, sigma / 2, n)))
    bottom = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, sigma / 2, n)))
    volume = rng.integers(50_000, 2_000_000, n)
    frame = pd.DataFrame(
        {
            "open": np.round(open_, 4),
            "high": np.round(top, 4),
            "low": np.round(bottom, 4),
            "close": np.round(close, 4),
            "volume": volume.astype("int64"),
        },
        index=index,
    )
    # rounding may cross: keep the OHLC invariants exact after it
    frame["high"] = frame[["open", "high", "close"]].max(axis=1)
    frame["low"] = frame[["open", "low", "close"]].min(axis=1)
    return frame


def generate(out: Path, seed: int = SEED) -> list[Path]:
    """Write one Parquet file per symbol into ``out``; returns the files."""
    rng = np.random.Generator(np.random.PCG64(seed))
    days = pd.bdate_range(START, END, tz="UTC", name="ts")
    market = rng.normal(0.0002, 0.01, len(days))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for symbol in SYMBOLS:
        keep = np.ones(len(days), dtype=bool)
        if symbol == "NEWCO":
            keep &= days >= pd.Timestamp(LISTING, tz="UTC")
        if symbol == "HALT":
            low, high = (pd.Timestamp(d, tz="UTC") for d in HALT_DAYS)
            keep &= ~((days >= low) & (days <= high))
        bars = _bars(rng, days[keep], market[keep])
        path = out / f"{symbol}.parquet"
        bars.reset_index().to_parquet(path, index=False, compression="zstd")
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    files = generate(args.out, args.seed)
    print(f"wrote {len(files)} files to {args.out}")


if __name__ == "__main__":
    main()
