"""Benchmark (issue 15, the custom tick strategy): strategy steps per second through
``tick_strategy_backtest`` with the strategy in the Docker sandbox, against the built-in
``grid_mm`` (numba, in process) on the same data with the same logic.

Data: the seeded synthetic book (``nodes.synthbook`` defaults: 40 limit orders, 30 cancels and
5 trades a second), one hour by default. Strategy: examples/strategies/tick_grid.py (the
built-in grid's logic as a TickStrategy), 3 levels a side, a step every 100 ms (36,000 steps
an hour). Both are compiled before timing. Reported: the custom run's steps/s after its first
step (hftbacktest, the state snapshot, one JSON round trip to the sandbox, the intents
checked and applied), its whole wall time (container start and stop included), the built-in's
wall time, and whether both gave the same fills (they must).

    ALPHAFORGE_SANDBOX_TAG=... .venv/bin/python bench/bench_tick_custom.py [--seconds 3600]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VENUE: dict[str, Any] = {"tick_size": 0.01, "lot_size": 0.1, "entry_latency_ns": 2_000_000,
                         "response_latency_ns": 2_000_000, "record_interval_ms": 100.0,
                         "queue_model": "power_prob", "maker_fee_bps": -0.5}  # fmt: skip
GRID = {"levels": 3, "half_spread_ticks": 2.0, "skew_ticks": 0.5, "qty": 1.0, "max_position": 10.0}


def book(seconds: float) -> np.ndarray:
    from nodes.synthbook import BookSpec, generate

    return np.asarray(generate(BookSpec(seed=20261207, duration_s=seconds))).view(np.ndarray)


def main() -> None:
    from nodes.base import NodeContext
    from nodes.builtin.tickbacktest import run_tick_backtest
    from nodes.builtin.tickparams import TickBacktestParams
    from nodes.builtin.tickstrategy import TickStrategyBacktest, TickStrategyBacktestParams
    from runners.papertrade.service import SandboxStrategyBacktester

    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3600.0)
    ap.add_argument("--wall-s", type=float, default=300.0)
    args = ap.parse_args()
    events = book(args.seconds)
    code = (ROOT / "examples" / "strategies" / "tick_grid.py").read_text()
    same_grid = {"grid_levels": 3, "half_spread_ticks": 2.0, "skew_ticks": 0.5,
                 "order_qty": 1.0, "max_position": 10.0, "update_interval_ms": 100.0}  # fmt: skip
    built_in_params = TickBacktestParams.model_validate(VENUE | same_grid)
    run_tick_backtest(events[:2000], built_in_params)  # compile
    t0 = time.perf_counter()
    built_in = run_tick_backtest(events, built_in_params)
    built_in_s = time.perf_counter() - t0
    custom = {"strategy": "tick_grid", "code": code, "step_ms": 100.0, "wall_s": args.wall_s}
    params = TickStrategyBacktestParams.model_validate(VENUE | GRID | custom)
    ctx = NodeContext(strategies=SandboxStrategyBacktester("docker"))
    node = TickStrategyBacktest(ctx)
    node.run({"ticks": events[:2000]}, params)  # compile the custom loop
    t0 = time.perf_counter()
    ours = node.run({"ticks": events}, params)
    ours_s = time.perf_counter() - t0
    same = ours["orders"].equals(built_in["orders"])
    m = ours["metrics"]
    print(json.dumps({
        "events": len(events), "steps": m["steps"], "steps_per_s": round(m["steps_per_s"], 1),
        "custom_wall_s": round(ours_s, 2), "built_in_wall_s": round(built_in_s, 3),
        "fills": m["fills"], "orders": m["orders_submitted"], "same_fills": same,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
