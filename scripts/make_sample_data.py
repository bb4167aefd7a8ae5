"""Generate the bundled sample bars: examples/data/sample_ohlcv.csv.

Daily bars on business days (no weekends) from 2021-01-04, about 3.5 years, of a
regime-switching price: up-trends, down-trends and ranges of random length, each with its own
drift and volatility (geometric Brownian motion in the trends, a mean-reverting log price in the
ranges). Open gaps from the previous close; high and low extend beyond open and close, so
high >= max(open, close) and low <= min(open, close) always hold. Prices have 4 decimals, volume
is an integer.

Seeded (``SEED`` = 20240501, numpy PCG64): running it twice writes byte-identical files.

    python scripts/make_sample_data.py [--out PATH] [--seed N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20240501
START = "2021-01-04"
BARS = 900
OUT = Path(__file__).resolve().parents[1] / "examples" / "data" / "sample_ohlcv.csv"

# name: (daily drift of log price, daily volatility); "range" mean-reverts instead of drifting
REGIMES: dict[str, tuple[float, float]] = {
    "up": (0.0018, 0.012),
    "down": (-0.0015, 0.017),
    "range": (0.0, 0.009),
}


def _regime_path(rng: np.random.Generator, n: int) -> list[str]:
    """Regime of each bar: runs of 40-160 bars, never the same regime twice in a row."""
    names = list(REGIMES)
    path: list[str] = []
    current = "range"
    while len(path) < n:
        path.extend([current] * int(rng.integers(40, 161)))
        current = str(rng.choice([r for r in names if r != current]))
    return path[:n]


def _closes(rng: np.random.Generator, regimes: list[str], start: float) -> np.ndarray:
    log_price = np.empty(len(regimes))
    x = np.log(start)
    anchor = x
    for i, regime in enumerate(regimes):
        drift, vol = REGIMES[regime]
        if i == 0 or regimes[i - 1] != regime:
            anchor = x  # a range oscillates around where it began
        shock = vol * rng.standard_normal()
        if regime == "range":
            x = x - 0.08 * (x - anchor) + shock
        else:
            x = x + drift - 0.5 * vol**2 + shock
        log_price[i] = x
    return np.exp(log_price)


def make_bars(seed: int = SEED, bars: int = BARS) -> pd.DataFrame:
    """The sample bars as a frame with columns ts (date string), open, high, low, close, volume."""
    rng = np.random.default_rng(seed)
    regimes = _regime_path(rng, bars)
    close = _closes(rng, regimes, start=100.0)
    vol = np.array([REGIMES[r][1] for r in regimes])
    prev_close = np.concatenate(([100.0], close[:-1]))
    open_ = prev_close * np.exp(0.3 * vol * rng.standard_normal(bars))
    high = np.maximum(open_, close) * np.exp(np.abs(0.6 * vol * rng.standard_normal(bars)))
    low = np.minimum(open_, close) * np.exp(-np.abs(0.6 * vol * rng.standard_normal(bars)))
    move = np.abs(np.log(close / prev_close))
    volume = np.round(rng.lognormal(np.log(1_000_000), 0.35, bars) * (1 + 20 * move))
    open_, close = np.round(open_, 4), np.round(close, 4)
    high = np.maximum(np.round(high, 4), np.maximum(open_, close))
    low = np.minimum(np.round(low, 4), np.minimum(open_, close))
    days = pd.bdate_range(START, periods=bars)
    return pd.DataFrame(
        {
            "ts": days.strftime("%Y-%m-%d"),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume.astype("int64"),
        }
    )


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write with explicit formatting (4 decimals, \\n line ends) so the bytes never vary."""
    lines = ["ts,open,high,low,close,volume"]
    for row in frame.itertuples(index=False):
        lines.append(
            f"{row.ts},{row.open:.4f},{row.high:.4f},{row.low:.4f},{row.close:.4f},{row.volume:d}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\n".join(lines) + "\n").encode("ascii"))


def main(argv: list[str] | None = None) -> Path:
    """Generate the file; returns its path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"output file (default {OUT})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"random seed (default {SEED})")
    args = parser.parse_args(argv)
    write_csv(make_bars(args.seed), args.out)
    print(f"wrote {args.out}")
    return args.out


if __name__ == "__main__":
    main()
