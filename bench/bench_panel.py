"""Benchmark: per-symbol dispatch on a panel of 500 symbols × 2,500 daily bars.

Times, warm (best and median of several runs): ``data.close`` of the long panel as a wide frame
(:func:`nodes.panel.wide`), ``sma(window=20)`` through ``Node.execute`` (run once per symbol on
its own bars and put back together), and the cross-sectional ``top_n`` on the result. One
symbol in ten is listed later and one in ten has gaps, so the per-symbol rows differ.

Target: sma on the panel well under 1 s (issue 13's panels); the others are reported.

    .venv/bin/python bench/bench_panel.py [--symbols N] [--bars N] [--repeat N]
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

from nodes import panel
from nodes.base import registry

SEED = 13
TARGET_S = 1.0


def make_panel(n_symbols: int, n_bars: int, seed: int = SEED) -> pd.DataFrame:
    """A long panel of seeded random walks; symbol i % 10 == 1 listed at a third of the
    bars, i % 10 == 2 missing every 7th bar."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range("2015-01-01", periods=n_bars, freq="D", tz="UTC", name="ts")
    frames = []
    for i in range(n_symbols):
        keep = np.arange(n_bars)
        if i % 10 == 1:
            keep = keep[n_bars // 3 :]
        elif i % 10 == 2:
            keep = keep[keep % 7 != 3]
        close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, len(keep))))
        frames.append(
            pd.DataFrame(
                {
                    "open": close,
                    "high": close * 1.01,
                    "low": close * 0.99,
                    "close": close,
                    "volume": 1.0,
                    "symbol": f"S{i:04d}",
                },
                index=stamps[keep],
            )
        )
    return pd.concat(frames).sort_index(kind="stable")


def _timed(fn: Any, repeat: int) -> tuple[Any, list[float]]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, times


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print a table and return the figures."""
    parser = argparse.ArgumentParser(description="panel dispatch benchmark")
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--bars", type=int, default=2500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    bars = make_panel(args.symbols, args.bars)
    reg = registry()
    sma, top_n = reg.get("sma"), reg.get("top_n")
    sma_params = sma.validated_params({"window": 20})
    top_params = top_n.validated_params({"n": 20})
    close, t_wide = _timed(lambda: panel.wide(bars, "close"), args.repeat)
    value, t_sma = _timed(
        lambda: sma().execute({"series": close}, sma_params)["value"], args.repeat
    )
    _, t_top = _timed(lambda: top_n().execute({"x": value}, top_params)["weights"], args.repeat)
    figures = {
        "wide_s": min(t_wide),
        "sma_best_s": min(t_sma),
        "sma_median_s": statistics.median(t_sma),
        "top_n_s": min(t_top),
        "target_s": TARGET_S,
    }
    print(f"panel: {args.symbols} symbols × {args.bars} bars ({len(bars):,} rows)")
    print(f"  data.close → wide      {figures['wide_s']:.3f} s")
    print(
        f"  sma per symbol         {figures['sma_best_s']:.3f} s best, "
        f"{figures['sma_median_s']:.3f} s median (target ≤ {TARGET_S} s: "
        f"{'meets' if figures['sma_median_s'] <= TARGET_S else 'misses'})"
    )
    print(f"  top_n (n=20)           {figures['top_n_s']:.3f} s")
    return figures


if __name__ == "__main__":
    main()
