"""Small panels for the panel tests: three symbols, one listed later, one with gaps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from nodes.base import registry

N_BARS = 60
# nanoseconds, as the loaders give them
DAYS = pd.date_range("2024-01-01", periods=N_BARS, freq="D", tz="UTC", name="ts").as_unit("ns")


def symbol_bars(seed: int, stamps: pd.DatetimeIndex, symbol: str) -> pd.DataFrame:
    """One symbol's bars (a seeded random walk) on ``stamps``, labelled with ``symbol``."""
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.03, len(stamps))))
    open_ = close * np.exp(rng.normal(0.0, 0.01, len(stamps)))
    frame = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.01,
            "low": np.minimum(open_, close) * 0.99,
            "close": close,
            "volume": rng.integers(1, 1000, len(stamps)).astype("float64"),
        },
        index=stamps,
    )
    frame["symbol"] = symbol
    return frame


def long_panel(parts: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per-symbol bars as a long panel, rows sorted by (ts, symbol), as the loaders give it."""
    frame = pd.concat([parts[s] for s in sorted(parts)])
    return frame.sort_index(kind="stable")


def three_symbols(flat_from: int | None = None) -> dict[str, pd.DataFrame]:
    """AAA on every day; BBB listed on day 20; CCC missing days 10-12 and 40.

    ``flat_from``: AAA's closes stop moving from that bar on (an RSI or z-score gets undefined,
    NaN, in the middle of its bars)."""
    aaa = symbol_bars(1, DAYS, "AAA")
    if flat_from is not None:
        aaa.loc[aaa.index[flat_from:], ["open", "high", "low", "close"]] = 60.0
    ccc_days = DAYS.delete([10, 11, 12, 40])
    return {
        "AAA": aaa,
        "BBB": symbol_bars(2, DAYS[20:], "BBB"),
        "CCC": symbol_bars(3, ccc_days, "CCC"),
    }


def run(name: str, inputs: Mapping[str, Any], **params: Any) -> dict[str, Any]:
    """Run node ``name`` as the runners do (``execute``: per symbol on a panel)."""
    node_type = registry().get(name)
    return node_type().execute(inputs, node_type.validated_params(params))


def single(name: str, inputs: Mapping[str, Any], **params: Any) -> dict[str, Any]:
    """Run node ``name`` directly on one symbol's inputs."""
    node_type = registry().get(name)
    return node_type().run(inputs, node_type.validated_params(params))
