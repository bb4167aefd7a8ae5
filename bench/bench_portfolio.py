"""Benchmark: the ``portfolio_backtest`` node on 500 symbols × 2,500 daily bars (issue 13, #8).

A seeded random walk per symbol (a long panel of 1.25 M rows, as a loader gives it) and a daily
momentum rotation: each bar, the 50 symbols with the best 60-bar return get 2 % each (so the
weights change, and the portfolio is rebalanced, on almost every bar: the heavy case), fees
5 bps, slippage 2 bps. Only the node's ``run`` is timed: the pivot of the panel, the weights'
checks, the kernel, every output table and the metrics. The first run (numba's compile or cache
load) is printed apart, then the median of warm runs.

The peer, vectorbt, runs the same rotation in its own venv (``.bench-venvs/vectorbt``, created
on first use as ``bench_sweep.py`` does; ``--no-peer`` skips it): ``Portfolio.from_orders`` with
``size_type="targetpercent"`` on the rows where the weights changed, filled at the next bar's
open with the same fees and slippage, ``cash_sharing=True, group_by=True, call_seq="auto"``
(sells first), on the same wide arrays; only that call is timed (warm, median). Rounds of ours
and the peer's alternate, so both see the same machine load; the ratio is printed.

    .venv/bin/python bench/bench_portfolio.py [--symbols N] [--bars N] [--repeat N] [--no-peer]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_sweep import ensure_peer  # noqa: E402  (the vectorbt venv, made on first use)
from nodes.base import registry  # noqa: E402

TARGET_S = 0.2
SEED = 13
TOP, LOOKBACK = 50, 60
ROUNDS = 3

PEER_SCRIPT = r"""
import json, statistics, sys, time
import numpy as np, pandas as pd, vectorbt as vbt
d = np.load(sys.argv[1])
repeat = int(sys.argv[2])
index = pd.date_range("2015-01-01", periods=len(d["close"]), freq="B")
close = pd.DataFrame(d["close"], index=index)
def once():
    t0 = time.perf_counter()
    pf = vbt.Portfolio.from_orders(
        close, size=d["size"], size_type="targetpercent", price=d["open"],
        fees=0.0005, slippage=0.0002, init_cash=1_000_000.0, cash_sharing=True, group_by=True,
        call_seq="auto", freq="1D")
    final = float(pf.value().iloc[-1])
    return time.perf_counter() - t0, final, len(pf.orders.values)
first = once()
warm = [once() for _ in range(repeat)]
print(json.dumps({"first_s": first[0], "median_s": statistics.median(w[0] for w in warm),
                  "final": warm[-1][1], "orders": warm[-1][2]}))
"""


def make_panel(symbols: int, bars: int) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The long panel, the rotation's weights (wide) and the wide arrays for the peer."""
    rng = np.random.default_rng(SEED)
    ts = pd.date_range("2015-01-01", periods=bars, freq="B", tz="UTC", name="ts")
    names = [f"S{k:03d}" for k in range(symbols)]
    close = 50 * np.exp(np.cumsum(rng.normal(0.0002, 0.02, (bars, symbols)), axis=0))
    open_ = np.vstack([close[:1], close[:-1]]) * np.exp(rng.normal(0, 0.004, (bars, symbols)))
    panel = pd.DataFrame(
        {
            "open": open_.ravel(),
            "high": np.maximum(open_, close).ravel() * 1.002,
            "low": np.minimum(open_, close).ravel() * 0.998,
            "close": close.ravel(),
            "volume": np.full(bars * symbols, 1e5),
            "symbol": pd.array(np.tile(names, bars), dtype="str"),
        },
        index=pd.DatetimeIndex(np.repeat(ts, symbols), name="ts"),
    )
    momentum = np.full((bars, symbols), -np.inf)
    momentum[LOOKBACK:] = close[LOOKBACK:] / close[:-LOOKBACK]
    best = np.argsort(-momentum, axis=1, kind="stable")[:, :TOP]
    weights = np.zeros((bars, symbols))
    np.put_along_axis(weights, best, 1.0 / TOP, axis=1)
    weights[:LOOKBACK] = 0.0
    # the peer's orders: the weights of bar t on bar t+1 (its fill), on the rows that changed
    changed = np.r_[weights[0].any(), (weights[1:] != weights[:-1]).any(axis=1)]
    size = np.full((bars, symbols), np.nan)
    rows = np.flatnonzero(changed[:-1])
    size[rows + 1] = weights[rows]
    peer = {"open": open_, "close": close, "size": size}
    return panel, pd.DataFrame(weights, index=ts, columns=names), peer


def _ours(node: Any, inputs: dict[str, Any], params: Any, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        node.run(inputs, params)
        times.append(time.perf_counter() - t0)
    return times


def _peer(python: Path, data: Path, repeat: int) -> dict[str, Any]:
    proc = subprocess.run(
        [str(python), "-c", PEER_SCRIPT, str(data), str(repeat)],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"vectorbt failed:\n{proc.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print a table and return the figures."""
    parser = argparse.ArgumentParser(description="portfolio_backtest benchmark")
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--bars", type=int, default=2_500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-peer", action="store_true")
    args = parser.parse_args(argv)

    panel, weights, peer_arrays = make_panel(args.symbols, args.bars)
    node_type = registry().get("portfolio_backtest")
    params = node_type.validated_params({"cash": 1_000_000.0, "fee_bps": 5.0, "slippage_bps": 2.0})
    node = node_type()
    inputs = {"bars": panel, "weights": weights}
    t0 = time.perf_counter()
    out = node.run(inputs, params)
    first = time.perf_counter() - t0
    python = None if args.no_peer else ensure_peer()
    ours: list[float] = []
    theirs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "panel.npz"
        np.savez(data, **peer_arrays)
        for _ in range(ROUNDS):  # interleaved: both see the same load
            ours += _ours(node, inputs, params, args.repeat)
            if python is not None:
                theirs.append(_peer(python, data, args.repeat))
    median = statistics.median(ours)
    result: dict[str, Any] = {
        "symbols": args.symbols,
        "bars": args.bars,
        "orders": len(out["orders"]),
        "final_equity": float(out["equity"]["equity"].iloc[-1]),
        "first_run_s": first,
        "best_s": min(ours),
        "median_s": median,
        "runs": len(ours),
        "target_s": TARGET_S,
        "meets_target": median <= TARGET_S,
    }
    if theirs:
        peer_median = statistics.median(t["median_s"] for t in theirs)
        result.update(
            peer_median_s=peer_median,
            peer_first_s=theirs[0]["first_s"],
            peer_orders=theirs[-1]["orders"],
            peer_final_equity=theirs[-1]["final"],
            ratio=median / peer_median,
        )
    _print(result)
    return result


def _print(r: dict[str, Any]) -> None:
    verdict = "meets" if r["meets_target"] else "MISSES"
    rows = [
        ("panel", f"{r['symbols']:,} symbols × {r['bars']:,} daily bars"),
        ("orders", f"{r['orders']:,} (final equity {r['final_equity']:,.0f})"),
        ("first run (JIT or cache load)", f"{r['first_run_s']:.3f} s"),
        (f"warm best / median of {r['runs']}", f"{r['best_s']:.4f} / {r['median_s']:.4f} s"),
        ("target", f"<= {r['target_s']:.2f} s warm"),
        ("result", f"{verdict} the target"),
    ]
    if "peer_median_s" in r:
        rows += [
            (
                "vectorbt from_orders, warm median",
                f"{r['peer_median_s']:.4f} s (first {r['peer_first_s']:.2f} s; "
                f"{r['peer_orders']:,} orders, final equity {r['peer_final_equity']:,.0f})",
            ),
            ("ours / vectorbt", f"{r['ratio']:.2f}"),
        ]
    width = max(len(k) for k, _ in rows)
    print("portfolio_backtest node, daily top-50 momentum rotation")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


if __name__ == "__main__":
    main()
