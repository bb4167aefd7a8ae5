"""Helpers shared by the node tests: tiny bar frames and running a node by name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
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


ROOT = Path(__file__).resolve().parents[2]
PEER_VENV = ROOT / ".bench-venvs" / "vectorbt"
#: the version the vectorbt comparison was written against (its fill and fee formulas were read
#: there): tests/nodes/test_portfolio_vectorbt.py
VECTORBT = "vectorbt==1.2.0"


@pytest.fixture(scope="session")
def vectorbt_python() -> Path:
    """vectorbt's interpreter in its own venv, created on first use (a failure says why).

    Every pytest worker asks for it: a file lock lets one create it while the others wait,
    and a marker written last says it is complete (a half-made venv is made again)."""
    import fcntl
    import subprocess
    import sys

    python = PEER_VENV / "bin" / "python"
    done = PEER_VENV / ".alphaforge-installed"
    PEER_VENV.parent.mkdir(parents=True, exist_ok=True)
    with (PEER_VENV.parent / "vectorbt.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            steps = (
                [sys.executable, "-m", "venv", "--clear", str(PEER_VENV)],
                [str(python), "-m", "pip", "install", "-q", VECTORBT],
            )
            for step in steps:
                proc = subprocess.run(step, capture_output=True, text=True, timeout=1800)
                if proc.returncode != 0:
                    pytest.fail(
                        f"cannot create the vectorbt venv at {PEER_VENV} "
                        f"({' '.join(step[2:4])}): {(proc.stderr or proc.stdout)[-2000:]}"
                    )
            done.write_text(VECTORBT)
    check = subprocess.run(
        [str(python), "-c", "import vectorbt"], capture_output=True, text=True, timeout=600
    )
    if check.returncode != 0:
        pytest.fail(f"vectorbt does not import in {PEER_VENV}: {check.stderr[-2000:]}")
    return python
