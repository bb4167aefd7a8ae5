"""Run every ``bench/bench_*.py`` module's ``main()`` and print a combined table.

Each benchmark returns a dict with ``meets_target`` and its figure and target (``figure_s`` /
``target_s``, or ``median_s`` / ``median_seconds`` and ``target_s`` / ``target_seconds``).
A benchmark that raises is reported as an error; the others still run.

    .venv/bin/python bench/run_all.py
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import traceback
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

_FIGURE_KEYS = ("figure_s", "median_s", "median_seconds")
_TARGET_KEYS = ("target_s", "target_seconds")


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _call(main: Any) -> dict[str, Any]:
    params = inspect.signature(main).parameters
    return main([]) if "argv" in params else main()


def _first(result: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    return next((float(result[k]) for k in keys if k in result), None)


def run_all() -> list[dict[str, Any]]:
    """Run each benchmark; returns one row per benchmark."""
    rows: list[dict[str, Any]] = []
    for path in sorted(BENCH.glob("bench_*.py")):
        print(f"\n=== {path.name} ===", flush=True)
        try:
            result = _call(_load(path).main)
        except Exception:
            traceback.print_exc()
            rows.append({"bench": path.stem, "error": True})
            continue
        rows.append(
            {
                "bench": path.stem,
                "figure": result.get("figure", "median"),
                "value_s": _first(result, _FIGURE_KEYS),
                "target_s": _first(result, _TARGET_KEYS),
                "meets": bool(result.get("meets_target")),
            }
        )
    return rows


def main() -> int:
    """Print the combined table; exit status 0 (benchmarks never fail the build)."""
    rows = run_all()
    print("\n=== summary ===")
    print(f"  {'benchmark':<16} {'figure':<44} {'value':>9} {'target':>9}  verdict")
    for r in rows:
        if r.get("error"):
            print(f"  {r['bench']:<16} {'(raised, see above)':<44} {'':>9} {'':>9}  ERROR")
            continue
        value = f"{r['value_s']:.3f}s" if r["value_s"] is not None else "?"
        target = f"{r['target_s']:.3f}s" if r["target_s"] is not None else "?"
        verdict = "meets" if r["meets"] else "MISSES"
        print(f"  {r['bench']:<16} {r['figure']:<44} {value:>9} {target:>9}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
