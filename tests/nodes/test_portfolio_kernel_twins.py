"""The portfolio kernel's interpreted loop and its numba-compiled twin agree exactly, and the
node picks the twin for large inputs (also in a process where numpy was not imported first)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from nodes.builtin import _pkernel

ROOT = Path(__file__).resolve().parents[2]


def _market(n: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random bars with missing cells, and targets held for a few bars (longs, shorts, flats)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, m)), axis=0))
    open_ = close * (1 + rng.normal(0, 0.005, (n, m)))
    missing = rng.random((n, m)) < 0.05
    open_[missing] = np.nan
    close[missing] = np.nan
    choices = [-0.4, -0.1, 0.0, 0.1, 0.2, 0.5]
    target = np.repeat(rng.choice(choices, size=(n // 7 + 1, m)), 7, axis=0)[:n]
    return open_, close, target


@pytest.mark.parametrize(
    ("threshold", "every", "lot", "leverage"),
    [(-1.0, 1, 0.0, False), (-1.0, 3, 0.5, True), (0.05, 1, 0.0, False), (0.02, 1, 1.0, True)],
)
def test_interpreted_and_compiled_portfolio_kernels_give_identical_results(
    threshold: float, every: int, lot: float, leverage: bool
) -> None:
    open_, close, target = _market(400, 6, seed=11)
    trigger = np.arange(len(target)) % every == 0
    borrow = np.full(len(target), 0.0003)
    args = (open_, close, target, trigger, threshold, 1e5, 5e-4, 2e-4, lot, borrow, leverage)
    plain = _pkernel.simulate(*args)
    fast = _pkernel.compiled_simulate()(*args)
    assert len(plain[4]) > 100 and len(plain[5]) > 20  # many orders and trades exercised
    for a, b in zip(plain, fast, strict=True):
        np.testing.assert_array_equal(a, b)


def test_small_portfolios_use_the_interpreted_kernel_and_large_ones_the_compiled() -> None:
    assert _pkernel.simulate_for(900 * 10) is _pkernel.simulate
    assert _pkernel.simulate_for(_pkernel.JIT_MIN_CELLS) is _pkernel.compiled_simulate()


# A fresh interpreter: the node modules bind ``np`` to a lazy stand-in, which numba cannot type
# unless the kernel resolves it before compiling (see nodes/lazy.py).
_FRESH = textwrap.dedent(
    """
    import json, sys
    from nodes.base import registry
    from nodes.builtin import _pkernel
    assert "numpy" not in sys.modules, "the node modules imported numpy eagerly"
    kernel = _pkernel.simulate_for(_pkernel.JIT_MIN_CELLS)
    import numpy as np
    import pandas as pd
    n, m = 2_000, 12
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, m)), axis=0))
    target = np.repeat(rng.choice([-0.1, 0.0, 0.1], size=(n // 50 + 1, m)), 50, axis=0)[:n]
    args = (close, close, target, np.ones(n, bool), -1.0, 1e4, 1e-4, 0.0, 0.0, np.zeros(n), False)
    same = all(np.array_equal(a, b) for a, b in zip(kernel(*args), _pkernel.simulate(*args)))
    # and the node on as many cells, as a pipeline runs it
    ts = pd.date_range("2020-01-01", periods=n, freq="D", tz="UTC", name="ts")
    syms = [f"S{k:02d}" for k in range(m)]
    bars = pd.DataFrame(
        {"open": close.ravel(), "close": close.ravel(), "symbol": np.tile(syms, n)},
        index=pd.DatetimeIndex(np.repeat(ts, m), name="ts"),
    )
    node = registry().get("portfolio_backtest")
    out = node().run({"bars": bars, "weights": pd.DataFrame(target, ts, syms)},
                     node.validated_params({"cash": 1e4}))
    print(json.dumps({"compiled": kernel is not _pkernel.simulate, "same": same,
                      "orders": len(out["orders"])}))
    """
)


def test_compiled_portfolio_kernel_builds_in_a_fresh_process_with_numpy_not_yet_imported(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", _FRESH],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["compiled"] is True and out["same"] is True
    assert out["orders"] > 100
    assert any((tmp_path / "numba").rglob("*.nbi"))  # it really compiled (and cached)
