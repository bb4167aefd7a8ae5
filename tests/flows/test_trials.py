"""The trials of a sweep block (flows.trials): grids with constraints in the written order,
seeded random draws that repeat with the seed, honour constraints and never duplicate."""

from __future__ import annotations

import itertools

import pytest

from dsl.compiler import compile_or_raise
from dsl.ir import SweepIR
from flows.trials import grid_trials, random_trials, trials_of

HEAD = """pipeline s "S"

data   = csv_ohlcv(path="data/sample_ohlcv.csv")
fast   = sma(data.close, window=10)
slow   = sma(data.close, window=30)
signal = crossover(fast, slow)
result = backtest(data, signal, cash=100_000)
"""


def _sweep(block: str) -> SweepIR:
    ir = compile_or_raise(HEAD + block)
    assert ir.sweep is not None
    return ir.sweep


def test_a_grid_yields_every_allowed_combination_in_order() -> None:
    sweep = _sweep(
        "sweep grid {\n  fast.window = [5, 10, 20]\n  slow.window = range(10, 40, 10)\n"
        "  where fast.window < slow.window\n  objective maximize result.sharpe\n}\n"
    )
    got = [(t["fast"]["window"], t["slow"]["window"]) for t in grid_trials(sweep)]
    want = [(f, s) for f, s in itertools.product([5, 10, 20], [10, 20, 30]) if f < s]
    assert got == want and len(got) == sweep.grid_size == 6
    assert list(trials_of(sweep)) == list(grid_trials(sweep))


def test_a_big_range_is_generated_lazily() -> None:
    sweep = _sweep("sweep grid {\n  fast.window = range(2, 10001)\n}\n")
    first = next(iter(grid_trials(sweep)))
    assert first == {"fast": {"window": 2}}


def test_random_draws_repeat_with_the_seed_and_honour_constraints() -> None:
    sweep = _sweep(
        "sweep random(trials=40, seed=7) {\n  fast.window = int(2, 400)\n"
        "  slow.window = int(10, 2000, log=true)\n  where fast.window < slow.window\n"
        "  objective maximize result.sharpe\n}\n"
    )
    a, b = list(trials_of(sweep)), list(trials_of(sweep))
    assert a == b and len(a) == 40
    pairs = [(t["fast"]["window"], t["slow"]["window"]) for t in a]
    assert len(set(pairs)) == 40
    assert all(f < s and 2 <= f <= 400 and 10 <= s <= 2000 for f, s in pairs)
    assert random_trials(sweep, 40, seed=8) != a
    # log-uniform (without the constraint): as many draws below the geometric middle (~141)
    free = sweep.model_copy(update={"where": ()})
    slow = [t["slow"]["window"] for t in random_trials(free, 400, 1)]
    below = sum(s < 141 for s in slow) / len(slow)
    assert 0.4 < below < 0.6


def test_random_over_a_small_grid_samples_it_without_repeats() -> None:
    sweep = _sweep(
        "sweep random(trials=50, seed=1) {\n  fast.window = [5, 10]\n  slow.window = [20, 30]\n"
        "  objective maximize result.sharpe\n}\n"
    )
    drawn = list(trials_of(sweep))
    assert len(drawn) == 4  # the whole grid, once each
    assert sorted((t["fast"]["window"], t["slow"]["window"]) for t in drawn) == [
        (5, 20),
        (5, 30),
        (10, 20),
        (10, 30),
    ]


def test_float_spaces_keep_their_step_and_a_grid_needs_one() -> None:
    sweep = _sweep(
        "sweep random(trials=30, seed=3) {\n  result.fee_bps = float(0.5, 5.0, step=0.5)\n"
        "  objective maximize result.sharpe\n}\n"
    )
    fees = {t["result"]["fee_bps"] for t in trials_of(sweep)}
    assert fees <= {0.5 * k for k in range(1, 11)} and len(fees) == 10
    cont = _sweep(
        "sweep random(trials=5, seed=3) {\n  result.fee_bps = float(0.5, 5.0)\n"
        "  objective maximize result.sharpe\n}\n"
    )
    cont = cont.model_copy(update={"method": "grid"})
    with pytest.raises(ValueError, match="has no step: a grid needs one"):
        next(grid_trials(cont))


def test_constraints_that_reject_every_draw_are_reported() -> None:
    sweep = _sweep(
        "sweep random(trials=5, seed=3) {\n  fast.window = int(2, 1000000)\n"
        "  slow.window = int(2, 1000000)\n  where fast.window == slow.window\n"
        "  objective maximize result.sharpe\n}\n"
    )
    with pytest.raises(ValueError, match="rejected 10,001 random draws in a row after 0 trial"):
        list(trials_of(sweep))
