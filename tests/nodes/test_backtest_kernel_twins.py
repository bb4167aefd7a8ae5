"""The interpreted kernel (short inputs) and its numba-compiled twin (long inputs) agree exactly,
and the twin compiles in a process where nothing touched numpy first (the CLI's and the worker's
situation: the node modules bind ``np`` to a lazy stand-in, ``nodes/lazy.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from nodes.builtin import _kernel

ROOT = Path(__file__).resolve().parents[2]


def _market(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[close[0], close[:-1]] * (1 + rng.normal(0, 0.001, n))
    # targets that hold for a few bars, with partial sizes, flips and flats
    target = np.repeat(rng.choice([-1.0, -0.5, 0.0, 0.3, 1.0], size=n // 5 + 1), 5)[:n]
    return open_, close, target


@pytest.mark.parametrize(
    ("fee", "slip", "lot"), [(0.0, 0.0, 0.0), (5e-4, 2e-4, 0.0), (1e-3, 1e-3, 0.5)]
)
def test_interpreted_and_compiled_kernels_give_identical_results(
    fee: float, slip: float, lot: float
) -> None:
    open_, close, target = _market(3_000, seed=7)
    plain = _kernel.simulate(open_, close, target, 100_000.0, fee, slip, lot)
    fast = _kernel.compiled_simulate()(open_, close, target, 100_000.0, fee, slip, lot)
    assert len(plain[6]) > 100  # many trades were exercised
    for a, b in zip(plain, fast, strict=True):
        np.testing.assert_array_equal(a, b)


def test_short_inputs_use_the_interpreted_kernel_and_long_ones_the_compiled() -> None:
    assert _kernel.simulate_for(900) is _kernel.simulate
    assert _kernel.simulate_for(_kernel.JIT_MIN_BARS) is _kernel.compiled_simulate()


# Run in a fresh interpreter with an empty numba cache: a cache hit skips typing, which is where
# the lazy stand-in failed ("Untyped global name 'np' ... LazyModule"), and the test process has
# long since imported numpy and run the plain kernel (which binds the real module).
_FRESH = textwrap.dedent(
    """
    import json, sys
    from nodes.base import registry
    from nodes.builtin import _kernel
    assert "numpy" not in sys.modules, "the node modules imported numpy eagerly"
    kernel = _kernel.simulate_for(_kernel.JIT_MIN_BARS)  # compiled, before numpy is loaded
    assert kernel is not _kernel.simulate
    import numpy as np
    import pandas as pd
    n = _kernel.JIT_MIN_BARS
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    target = np.repeat(rng.choice([-1.0, 0.0, 1.0], size=n // 50 + 1), 50)[:n]
    fast = kernel(close, close, target, 1000.0, 1e-4, 0.0, 0.0)
    plain = _kernel.simulate(close, close, target, 1000.0, 1e-4, 0.0, 0.0)
    same = all(np.array_equal(a, b) for a, b in zip(fast, plain, strict=True))
    # and the node itself on as many bars, as a pipeline runs it
    index = pd.date_range("2024-01-01", periods=n, freq="min", tz="UTC", name="ts")
    bars = pd.DataFrame({"open": close, "close": close}, index=index)
    node = registry().get("backtest")
    out = node().run({"data": bars, "signal": pd.Series(target, index=index)},
                     node.validated_params({"cash": 1000}))
    print(json.dumps({"same": same, "trades": len(fast[6]), "node_trades": len(out["trades"])}))
    """
)


def test_the_compiled_kernel_builds_in_a_fresh_process_with_numpy_not_yet_imported(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", _FRESH],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["same"] is True
    assert out["trades"] > 100
    assert out["node_trades"] > 100
    assert any((tmp_path / "numba").rglob("*.nbi"))  # it really compiled (and cached)
