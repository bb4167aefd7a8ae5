"""Benchmark: compile a generated 500-step pipeline; the target is at most 1 s.

Run with ``python bench/bench_compile.py``. :func:`main` returns the numbers as a dict.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsl import compile_source
from dsl.parser import metamodel

TARGET_SECONDS = 1.0
STEPS = 500


def generate(steps: int = STEPS) -> str:
    """Exactly ``steps`` steps: data, indicator pairs, crossovers, combine, backtest."""
    lines = ['pipeline bench "Generated benchmark pipeline"', 'data = csv_ohlcv(path="x.csv")']
    signals: list[str] = []
    triples, rest = divmod(steps - 3, 3)
    for i in range(triples):
        lines.append(f"fast_{i} = sma(data.close, window={5 + i % 20})")
        lines.append(f"slow_{i} = ema(data.close, window={30 + i % 50})")
        lines.append(f'sig_{i} = crossover(fast_{i}, slow_{i}, mode="long_only")')
        signals.append(f"sig_{i}")
    if rest >= 1:
        lines.append("z = zscore(data.close, window=20)")
    if rest == 2:
        lines.append("z_sig = threshold(z, lower=-1.0, upper=1.0)")
        signals.append("z_sig")
    lines.append(f'signal = combine({", ".join(signals)}, how="mean")')
    lines.append("result = backtest(data, signal, cash=100_000, fee_bps=5)")
    return "\n".join(lines) + "\n"


def main(repeats: int = 5) -> dict[str, Any]:
    """Compile the generated pipeline ``repeats`` times; print and return the timings."""
    text = generate()
    t0 = time.perf_counter()
    metamodel()
    metamodel_s = time.perf_counter() - t0
    times: list[float] = []
    result = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = compile_source(text, filename="bench.af")
        times.append(time.perf_counter() - t0)
    assert result is not None
    steps = len(result.outline)
    best, median = min(times), statistics.median(times)
    out = {
        "steps": steps,
        "errors": len(result.errors),
        "metamodel_seconds": round(metamodel_s, 4),
        "best_seconds": round(best, 4),
        "median_seconds": round(median, 4),
        "target_seconds": TARGET_SECONDS,
        "meets_target": median <= TARGET_SECONDS,
    }
    verdict = "OK" if out["meets_target"] else "SLOWER THAN TARGET"
    print(
        f"compile {steps} steps: median {median:.3f} s, best {best:.3f} s "
        f"(target <= {TARGET_SECONDS:.1f} s: {verdict}); metamodel build {metamodel_s:.3f} s"
    )
    return out


if __name__ == "__main__":
    main()
