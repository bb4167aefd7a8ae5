"""The trials of a ``sweep`` block: which param values each trial runs with.

- **grid**: every combination of the params' values (the spaces' finite values, in the order
  written; the last param varies fastest), those failing a ``where`` constraint left out —
  generated lazily, never listed whole;
- **random**: ``trials`` draws (option, default 20) from the spaces with the block's ``seed``
  (default 0): a value list or ``choice`` uniformly, ``int``/``float`` uniformly or log-uniformly
  (``log=true``) on their step grid; a draw that fails a constraint is drawn again, and a
  combination already drawn is not repeated (a small finite grid is sampled without
  replacement). The same seed gives the same trials.

A trial is ``{node id: {param: value}}``, the shape of :meth:`flows.spec.RunSpec.with_overrides`.
Optuna's trials come from its sampler (asked in batches by the sweep flow), not from here.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Iterator
from typing import Any

from dsl.ir import FloatSpace, IntSpace, SweepIR, SweepParam, ValuesSpace, compile_constraint

__all__ = ["DEFAULT_RANDOM_TRIALS", "Trial", "grid_trials", "random_trials", "trials_of"]

Trial = dict[str, dict[str, Any]]
DEFAULT_RANDOM_TRIALS = 20
MAX_DRAWS_PER_TRIAL = 10_000  # rejected draws in a row before the constraints are reported
SMALL_GRID = 100_000  # a random sweep over a grid this small samples the grid itself


def trials_of(sweep: SweepIR) -> Iterator[Trial]:
    """The trials of a grid or random sweep (see the module doc)."""
    if sweep.method == "grid":
        return grid_trials(sweep)
    if sweep.method == "random":
        trials = int(sweep.options.get("trials", DEFAULT_RANDOM_TRIALS))  # type: ignore[arg-type]
        seed = int(sweep.options.get("seed", 0))  # type: ignore[arg-type]
        return iter(random_trials(sweep, trials, seed))
    raise ValueError(f"a {sweep.method} sweep's trials come from its sampler, not a list")


def _keys(sweep: SweepIR) -> list[tuple[str, str]]:
    return [(p.node, p.param) for p in sweep.params]


def _as_trial(keys: list[tuple[str, str]], values: tuple[Any, ...]) -> Trial:
    trial: Trial = {}
    for (node, param), value in zip(keys, values, strict=True):
        trial.setdefault(node, {})[param] = value
    return trial


def _grid_values(p: SweepParam) -> range | list[Any]:
    space = p.space
    if isinstance(space, ValuesSpace):
        return list(space.values)
    if isinstance(space, IntSpace):
        return range(space.low, space.high + 1, space.step)
    if space.step is None:
        raise ValueError(
            f"{p.node}.{p.param} = float({space.low}, {space.high}) has no step: a grid needs "
            "one (float(lo, hi, step=...)), or use a random or optuna sweep"
        )
    n = int((space.high - space.low) / space.step + 1e-9) + 1
    return [round(space.low + i * space.step, 12) for i in range(n)]


def space_values(p: SweepParam) -> list[Any] | None:
    """Every value a finite space holds (listed values, stepped ints or floats), in order; None
    for a continuous float range."""
    space = p.space
    if isinstance(space, FloatSpace) and space.step is None:
        return None
    return list(_grid_values(p))


def grid_trials(sweep: SweepIR) -> Iterator[Trial]:
    """Every combination that passes the constraints, lazily."""
    keys = _keys(sweep)
    checks = [compile_constraint(w) for w in sweep.where]
    for combo in itertools.product(*(_grid_values(p) for p in sweep.params)):
        env = dict(zip(keys, combo, strict=True))
        if all(check(env) for check in checks):
            yield _as_trial(keys, combo)


def _draw(space: ValuesSpace | IntSpace | FloatSpace, rng: random.Random) -> Any:
    if isinstance(space, ValuesSpace):
        return space.values[rng.randrange(len(space.values))]
    if isinstance(space, IntSpace):
        if space.log and space.low > 0:
            value = math.exp(rng.uniform(math.log(space.low), math.log(space.high + 1)))
            k = min(int((value - space.low) // space.step), (space.high - space.low) // space.step)
        else:
            k = rng.randrange((space.high - space.low) // space.step + 1)
        return space.low + k * space.step
    if space.log and space.low > 0:
        value = math.exp(rng.uniform(math.log(space.low), math.log(space.high)))
    else:
        value = rng.uniform(space.low, space.high)
    if space.step is not None:
        steps = round((value - space.low) / space.step)
        value = min(space.high, space.low + steps * space.step)
        value = round(value, 12)
    return value


def random_trials(sweep: SweepIR, n: int, seed: int) -> list[Trial]:
    """``n`` distinct draws passing the constraints. When every space is finite and the grid
    holds at most :data:`SMALL_GRID` combinations, the draws are a seeded sample of the allowed
    grid (all of it when it holds fewer than ``n``); otherwise draws are made one by one and a
    combination drawn before, or failing a constraint, is drawn again. ValueError with a
    sentence when the constraints reject :data:`MAX_DRAWS_PER_TRIAL` draws in a row."""
    keys = _keys(sweep)
    checks = [compile_constraint(w) for w in sweep.where]
    rng = random.Random(seed)
    size = _grid_size(sweep)
    if size is not None and size <= SMALL_GRID:
        allowed = list(grid_trials(sweep))
        return rng.sample(allowed, min(n, len(allowed)))
    seen: set[str] = set()
    out: list[Trial] = []
    misses = 0
    while len(out) < n:
        combo = tuple(_draw(p.space, rng) for p in sweep.params)
        env = dict(zip(keys, combo, strict=True))
        fingerprint = json.dumps(combo)
        if fingerprint in seen or not all(check(env) for check in checks):
            misses += 1
            if misses > MAX_DRAWS_PER_TRIAL:
                raise ValueError(
                    f"the sweep's constraints rejected {misses:,} random draws in a row after "
                    f"{len(out)} trial(s): loosen the `where` lines or ask for fewer trials"
                )
            continue
        misses = 0
        seen.add(fingerprint)
        out.append(_as_trial(keys, combo))
    return out


def _grid_size(sweep: SweepIR) -> int | None:
    """Combinations of a sweep whose spaces are all finite (None when one is continuous)."""
    total = 1
    for p in sweep.params:
        space = p.space
        if isinstance(space, ValuesSpace):
            total *= len(space.values)
        elif isinstance(space, IntSpace):
            total *= (space.high - space.low) // space.step + 1
        elif space.step is not None:
            total *= int((space.high - space.low) / space.step + 1e-9) + 1
        else:
            return None
    return total
