"""Helpers shared by the node tests: tiny bar frames and running a node by name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nodes.base import registry


def make_bars(
    opens: Sequence[float],
    closes: Sequence[float] | None = None,
    *,
    start: str = "2024-01-01",
    freq: str = "D",
) -> pd.DataFrame:
    """Canonical bars with the given opens and closes (high/low just around them)."""
    o = np.asarray(opens, dtype="float64")
    c = o.copy() if closes is None else np.asarray(closes, dtype="float64")
    index = pd.date_range(start, periods=len(o), freq=freq, tz="UTC", name="ts")
    return pd.DataFrame(
        {
            "open": o,
            "high": np.maximum(o, c) + 1.0,
            "low": np.minimum(o, c) - 1.0,
            "close": c,
            "volume": np.full(len(o), 1000.0),
        },
        index=index,
    )


def run_node(name: str, inputs: Mapping[str, Any], **params: Any) -> dict[str, Any]:
    """Run the built-in node ``name`` with JSON params, as the runner does."""
    node_type = registry().get(name)
    return node_type().run(inputs, node_type.validated_params(params))


@pytest.fixture
def random_walk() -> pd.Series:
    """500 daily closes of a seeded random walk, always positive."""
    rng = np.random.default_rng(7)
    values = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, 500)))
    index = pd.date_range("2020-01-01", periods=500, freq="D", tz="UTC", name="ts")
    return pd.Series(values, index=index, name="close")
