"""The look-ahead check's plan over many seeds, with the node computed in this process (the
sandboxed runs are tests/flows/test_nodelab.py): cheats are caught at every seed, honest nodes
pass at every seed, and a seed replays the same check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

import flows.nodelab as nodelab
from flows.nodelab import check_lookahead
from runners.base import NodeResult
from runners.custom import CustomNodeManifest
from runners.lookahead import PREFIX_CUTS, changed_bars, lookahead_plan

Node = Callable[[pd.Series], pd.Series]
SEEDS = range(60)

MANIFEST = CustomNodeManifest.model_validate(
    {
        "name": "in_process",
        "version": "1.0.0",
        "language": "python",
        "inputs": [{"name": "x", "type": "series"}],
        "outputs": [{"name": "y", "type": "series"}],
        "code": "def run(inputs, params):\n    return {}\n",
    }
)


@pytest.fixture
def run_in_process(monkeypatch: pytest.MonkeyPatch) -> Callable[[Node, int], dict[str, Any]]:
    calls: list[int] = []

    def check(node: Node, seed: int) -> dict[str, Any]:
        def execute(_m: Any, _p: Any, inputs: dict[str, Any], _id: str) -> Any:
            calls.append(len(inputs["x"]))
            return NodeResult(status="completed"), {"y": node(inputs["x"])}

        monkeypatch.setattr(nodelab, "_execute", execute)
        calls.clear()
        verdict = check_lookahead(MANIFEST, seed=seed)
        assert len(calls) == 1 + PREFIX_CUTS + 1  # bounded: whole, three prefixes, changed
        return verdict

    return check


CHEATS: dict[str, Node] = {
    # the issue's two: the whole series' maximum, and honest only at the old check's lengths
    "normalised by x.max()": lambda x: x / x.max(),
    "honest only at 400 and 300 bars": lambda x: (
        x.ewm(span=10).mean() if len(x) in (400, 300) else x.shift(-1).fillna(x)
    ),
    "normalised by x.min()": lambda x: x / x.min(),
    "z-score over the whole series": lambda x: (x - x.mean()) / x.std(),
    "reads the next bar": lambda x: x.shift(-1),
    "centred rolling mean": lambda x: x.rolling(5, center=True).mean(),
    "rank over the whole series": lambda x: x.rank(pct=True),
}

HONEST: dict[str, Node] = {
    "ema": lambda x: x.ewm(span=20, adjust=False).mean(),
    "rolling mean": lambda x: x.rolling(10).mean(),
    "normalised by the running max": lambda x: x / x.cummax(),
    "expanding z-score": lambda x: (x - x.expanding().mean()) / x.expanding().std(),
    "momentum": lambda x: x / x.shift(5) - 1,
    "first bar as base": lambda x: x / x.iloc[0],
}


@pytest.mark.parametrize("name", list(CHEATS))
def test_every_cheat_fails_at_every_seed(
    run_in_process: Callable[[Node, int], dict[str, Any]], name: str
) -> None:
    for seed in SEEDS:
        verdict = run_in_process(CHEATS[name], seed)
        assert verdict["status"] == "fail", (name, seed, verdict["message"])
        assert verdict["seed"] == seed and f"(seed {seed})" in verdict["message"]
        assert verdict["first_difference"]["port"] == "y"


@pytest.mark.parametrize("name", list(HONEST))
def test_honest_nodes_pass_at_every_seed(
    run_in_process: Callable[[Node, int], dict[str, Any]], name: str
) -> None:
    for seed in SEEDS:
        verdict = run_in_process(HONEST[name], seed)
        assert verdict["status"] == "pass", (name, seed, verdict["message"])
        assert verdict["checked_rows"] == 400 and verdict["seed"] == seed


def test_the_max_normaliser_passed_the_old_two_length_check() -> None:
    # why the changed future is needed: the window's maximum is in its first rows, so every
    # prefix of it holds the maximum and no prefix run differs from the whole run
    close = nodelab.load_sample()["close"].iloc[-400:]
    assert int(np.argmax(close.to_numpy())) < 0.2 * 400


def test_a_seed_replays_the_same_plan_and_random_seeds_differ() -> None:
    assert lookahead_plan(400, 7) == lookahead_plan(400, 7)
    plans = {lookahead_plan(400, s).prefix_lengths for s in range(20)}
    assert len(plans) > 15
    for s in range(200):
        plan = lookahead_plan(400, s)
        assert len(plan.prefix_lengths) == PREFIX_CUTS
        assert all(200 <= n < 380 for n in plan.prefix_lengths)
        assert 120 <= plan.changed_from <= 360 and 2.0 <= plan.factor <= 4.0


def test_changed_bars_keep_the_past_and_stay_valid_bars() -> None:
    bars = nodelab.load_sample()
    out = changed_bars(bars, 500, 2.0)
    pd.testing.assert_frame_equal(out.iloc[:500], bars.iloc[:500])
    assert (out["high"] >= out["low"]).all() and (out[["open", "low"]] > 0).all().all()
    assert out["low"].iloc[500] >= 2 * bars["high"].max()  # a new high above every earlier bar
    assert out["high"].iloc[501] <= bars["low"].min() / 2  # and a new low below every one
