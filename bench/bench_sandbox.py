"""Benchmark: one sandboxed custom-node execution on a 10,000-row input, start to result.

Targets: a fresh container <= 0.6 s; a warm-pool container (pre-started, single-use) <= 0.1 s;
after all the pooled executions the pool holds exactly its cap (no container left beyond it).
Measured through the whole runner path (job files, container, entrypoint, the node, host-side
validation, artifact written) for the indicator template in each language. Run with
``python bench/bench_sandbox.py`` (needs Docker and the sandbox images:
``infra/build_sandbox_images.sh``). :func:`main` returns the numbers as a dict.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from dsl.ir import InputBinding, NodeIR
from runners.custom import CustomNodeManifest, ManifestCatalog, template
from runners.docker import DockerRunner
from runners.docker.pool import close_process_pool
from runners.io import write_value

FRESH_TARGET_S = 0.6
POOL_TARGET_S = 0.1
ROWS = 10_000
LANGUAGES = ("python", "javascript", "wasm")


def _input(tmp: Path) -> Path:
    idx = pd.date_range("2020-01-01", periods=ROWS, freq="min", tz="UTC", name="ts")
    x = pd.Series(100 + np.cumsum(np.random.default_rng(7).normal(size=ROWS)), index=idx)
    path = tmp / "x.parquet"
    write_value(x.rename("x"), "series", path)
    return path


def _node(manifest: CustomNodeManifest) -> NodeIR:
    return NodeIR(
        id="bench",
        type=manifest.name,
        version=manifest.version,
        inputs={"x": InputBinding(node="data", port="x")},
        outputs={"ema": "series"},
        runtime=manifest.language,
        code_hash=manifest.code_hash(),
    )


def _measure(
    runner: DockerRunner, manifest: CustomNodeManifest, path: Path, tmp: Path, n: int
) -> list[float]:
    times: list[float] = []
    pool = runner.executor.pool
    for _ in range(n):
        if pool is not None:
            pool.wait_ready()  # a warm hit; sustained rate is bounded by the refills
        out = Path(tempfile.mkdtemp(dir=tmp))
        t0 = time.perf_counter()
        result = runner.run(_node(manifest), {"x": str(path)}, output_dir=out)
        times.append(time.perf_counter() - t0)
        assert result.ok, result.error
        assert result.usage.get("pooled") is (pool is not None)
    return times


def main(repeats: int = 11) -> dict[str, Any]:
    """Fresh and pooled executions per language; print and return the medians."""
    out: dict[str, Any] = {
        "rows": ROWS,
        "fresh_target_s": FRESH_TARGET_S,
        "pool_target_s": POOL_TARGET_S,
    }
    manifests = {lang: template(lang, "indicator") for lang in LANGUAGES}  # type: ignore[arg-type]
    catalog = ManifestCatalog(list(manifests.values()))
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp_name:
        tmp = Path(tmp_name)
        path = _input(tmp)
        fresh = DockerRunner(catalog, work_root=tmp / "work", pool_size=0)
        pooled = DockerRunner(catalog, work_root=tmp / "work", pool_size=1)
        fresh.ensure_ready()
        pool = pooled.start_pool()
        try:
            for lang, manifest in manifests.items():
                _measure(fresh, manifest, path, tmp, 1)  # page cache, image layers
                f = _measure(fresh, manifest, path, tmp, repeats)
                p = _measure(pooled, manifest, path, tmp, repeats)
                out[lang] = {
                    "fresh_median_s": round(statistics.median(f), 4),
                    "fresh_best_s": round(min(f), 4),
                    "pool_median_s": round(statistics.median(p), 4),
                    "pool_best_s": round(min(p), 4),
                }
            pool.wait_ready()
            time.sleep(1.0)  # the executed containers are removed in the background
            held = pooled.executor.client.api.containers(
                all=True, filters={"label": f"alphaforge.pool_id={pool.pool_id}"}
            )
            out["pool_after"] = {"containers": len(held), "cap": pool.cap}
        finally:
            pooled.close()
            close_process_pool()
    for lang in LANGUAGES:
        r = out[lang]
        fv = "OK" if r["fresh_median_s"] <= FRESH_TARGET_S else "SLOWER THAN TARGET"
        pv = "OK" if r["pool_median_s"] <= POOL_TARGET_S else "SLOWER THAN TARGET"
        print(
            f"sandbox {lang:10s} {ROWS} rows: fresh median {r['fresh_median_s']:.3f} s "
            f"(best {r['fresh_best_s']:.3f}; target <= {FRESH_TARGET_S} s: {fv}); "
            f"warm pool median {r['pool_median_s']:.3f} s (best {r['pool_best_s']:.3f}; "
            f"target <= {POOL_TARGET_S} s: {pv})"
        )
    after = out["pool_after"]
    verdict = "OK" if after["containers"] <= after["cap"] else "OVER THE CAP"
    print(
        f"sandbox pool after {len(LANGUAGES) * repeats} pooled executions: "
        f"{after['containers']} containers (cap {after['cap']}: {verdict})"
    )
    out["meets_target"] = after["containers"] <= after["cap"] and all(
        out[lang]["fresh_median_s"] <= FRESH_TARGET_S
        and out[lang]["pool_median_s"] <= POOL_TARGET_S
        for lang in LANGUAGES
    )
    return out


if __name__ == "__main__":
    main()
