"""Benchmark: the ``backtest`` node alone on 1,000,000 one-minute bars.

The signal is an SMA 10/30 crossover (long/short) computed beforehand with the ``sma`` and
``crossover`` nodes; only the backtest node's ``run`` is timed (signal alignment, the numba
kernel, the equity/trades/orders frames and the metrics). The first run compiles (or loads the
numba cache) and is reported separately; then the best and median of several warm runs.

Target: <= 0.1 s warm (vectorbt needs 0.15-0.45 s here).

    .venv/bin/python bench/bench_backtest.py [--bars N] [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nodes.base import registry

SEED = 12345
TARGET_S = 0.1


def make_minute_bars(n: int, seed: int = SEED) -> pd.DataFrame:
    """``n`` one-minute bars of a seeded random walk, around the clock from 2020-01-01 UTC."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0005, n)))
    open_ = np.concatenate(([100.0], close[:-1])) * np.exp(rng.normal(0.0, 0.0001, n))
    spread = np.abs(rng.normal(0.0, 0.0003, n))
    index = pd.date_range("2020-01-01", periods=n, freq="min", tz="UTC", name="ts")
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * (1 + spread),
            "low": np.minimum(open_, close) * (1 - spread),
            "close": close,
            "volume": rng.integers(1, 1000, n).astype("float64"),
        },
        index=index,
    )


def _node(name: str, inputs: dict[str, Any], **params: Any) -> dict[str, Any]:
    node_type = registry().get(name)
    return node_type().run(inputs, node_type.validated_params(params))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print a table and return the figures."""
    parser = argparse.ArgumentParser(description="backtest node benchmark")
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)

    bars = make_minute_bars(args.bars)
    fast = _node("sma", {"series": bars["close"]}, window=10)["value"]
    slow = _node("sma", {"series": bars["close"]}, window=30)["value"]
    signal = _node("crossover", {"fast": fast, "slow": slow})["signal"]
    backtest = registry().get("backtest")
    params = backtest.validated_params({"cash": 100_000, "fee_bps": 1.0, "slippage_bps": 0.5})
    node = backtest()
    inputs = {"data": bars, "signal": signal}

    t0 = time.perf_counter()
    out = node.run(inputs, params)
    first = time.perf_counter() - t0
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        node.run(inputs, params)
        times.append(time.perf_counter() - t0)
    best, median = min(times), statistics.median(times)
    result = {
        "bars": args.bars,
        "orders": len(out["orders"]),
        "trades": len(out["trades"]),
        "first_run_s": first,
        "best_s": best,
        "median_s": median,
        "runs": args.repeat,
        "target_s": TARGET_S,
        "meets_target": median <= TARGET_S,
    }
    _print(result)
    return result


def _print(r: dict[str, Any]) -> None:
    verdict = "meets" if r["meets_target"] else "MISSES"
    rows = [
        ("bars", f"{r['bars']:,}"),
        ("orders / trades", f"{r['orders']:,} / {r['trades']:,}"),
        ("first run (JIT or cache load)", f"{r['first_run_s']:.3f} s"),
        (f"warm best of {r['runs']}", f"{r['best_s']:.4f} s"),
        (f"warm median of {r['runs']}", f"{r['median_s']:.4f} s"),
        ("target", f"<= {r['target_s']:.2f} s (vectorbt needs 0.15-0.45 s here)"),
        ("result", f"{verdict} the target"),
    ]
    width = max(len(k) for k, _ in rows)
    print("backtest node, SMA 10/30 crossover, one-minute bars")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


if __name__ == "__main__":
    main()
