"""The interpreted kernel (short inputs) and its numba-compiled twin (long inputs) agree exactly."""

from __future__ import annotations

import numpy as np
import pytest

from nodes.builtin import _kernel


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
    assert len(plain[9]) > 100  # many trades were exercised
    for a, b in zip(plain, fast, strict=True):
        np.testing.assert_array_equal(a, b)


def test_short_inputs_use_the_interpreted_kernel_and_long_ones_the_compiled() -> None:
    assert _kernel.simulate_for(900) is _kernel.simulate
    assert _kernel.simulate_for(_kernel.JIT_MIN_BARS) is _kernel.compiled_simulate()
