"""Small OHLCV data for the catalog tests, built so the expected frames are known exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def bars(symbol: str, start: str, periods: int, *, freq: str = "D", seed: int = 0) -> pd.DataFrame:
    """Canonical bars of one symbol (UTC ``ts`` index, float64 OHLCV, ``symbol``); prices with
    4 decimals so a CSV round trip is exact."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range(start, periods=periods, freq=freq, tz="UTC").as_unit("ns")
    ts = pd.DatetimeIndex(stamps, freq=None, name="ts")  # as a loader returns it: no freq
    close = np.round(100 + rng.standard_normal(periods).cumsum(), 4)
    frame = pd.DataFrame(
        {
            "open": np.round(close + 0.25, 4),
            "high": np.round(close + 1.0, 4),
            "low": np.round(close - 1.0, 4),
            "close": close,
            "volume": rng.integers(1, 1000, periods).astype("float64"),
        },
        index=ts,
    )
    frame["symbol"] = pd.Series(symbol, index=ts, dtype="str")
    return frame


def panel(*frames: pd.DataFrame) -> pd.DataFrame:
    """The long panel of several symbols' bars: rows by (ts, symbol)."""
    out = pd.concat(frames)
    order = np.lexsort((out["symbol"].to_numpy(dtype=object), out.index.asi8))
    return out.iloc[order]


def write_csv(frame: pd.DataFrame, path: Path, *, symbol: bool = True) -> Path:
    """``frame`` as a CSV file with ISO timestamps (with or without its symbol column)."""
    out = frame if symbol else frame.drop(columns=["symbol"])
    out = out.reset_index()
    out["ts"] = out["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False)
    return path


def per_symbol_folder(folder: Path, symbols: dict[str, pd.DataFrame]) -> Path:
    """One CSV per symbol, named after it, without a symbol column."""
    for name, frame in symbols.items():
        write_csv(frame, folder / f"{name}.csv", symbol=False)
    return folder
