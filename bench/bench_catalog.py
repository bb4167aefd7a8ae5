"""Issue 13 #8 (a): load throughput of a 1 GB Parquet dataset through the catalog, warm.

A seeded random-walk universe (``--symbols`` symbols of one-minute bars, as many as make
``--gb`` GB of Parquet) is imported into a catalog under ``.bench-data/`` once (kept for later
runs: the import is not what is measured). Then, interleaved, ``--repeat`` times each:

- **ours**: ``Catalog.read(version)`` — every symbol and column, the canonical long frame
  (pandas, rows by time then symbol), what a ``dataset(...)`` step gets;
- **pyarrow alone** on the same files: ``pyarrow.dataset(files).to_table()`` (Arrow, file order)
  and the same ``.to_pandas()``.

Throughput is the version's Parquet bytes on disk divided by the wall time (the stricter of the
two readings: the decoded frame is larger). Warm = the files in the page cache (one read first).
Target: ours >= 1.5 GB/s; the ratio to pyarrow alone is printed beside it.

    .venv/bin/python bench/bench_catalog.py [--gb 1.0] [--symbols 200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from catalog import Catalog  # noqa: E402

TARGET_GBPS = 1.5
BYTES_PER_ROW = 47.0  # zstd-1 Parquet of a random-walk OHLCV minute bar, measured here


def _universe(symbols: int, rows_per_symbol: int, seed: int = 13) -> pd.DataFrame:
    """A long frame of random-walk minute bars (valid OHLC), rows by (ts, symbol)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    ts = pd.date_range("2015-01-01", periods=rows_per_symbol, freq="1min", tz="UTC")
    parts = []
    for i in range(symbols):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 5e-4, rows_per_symbol)))
        open_ = np.concatenate([[close[0]], close[:-1]])
        spread = np.abs(rng.normal(0, 2e-4, rows_per_symbol)) * close
        parts.append(
            pd.DataFrame(
                {
                    "open": open_,
                    "high": np.maximum(open_, close) + spread,
                    "low": np.minimum(open_, close) - spread,
                    "close": close,
                    "volume": rng.integers(1, 10_000, rows_per_symbol).astype("float64"),
                    "symbol": f"S{i:04d}",
                },
                index=pd.Index(ts, name="ts"),
            )
        )
    frame = pd.concat(parts)
    order = np.lexsort((frame["symbol"].to_numpy(), frame.index.asi8))
    return frame.iloc[order]


def ensure_dataset(gb: float, symbols: int) -> tuple[Catalog, str]:
    """The benchmark's catalog and version (imported on first use, then kept)."""
    where = ROOT / ".bench-data" / f"catalog-{gb:g}gb-{symbols}"
    catalog = Catalog.open(where)
    if "bench" in catalog.names("bench"):
        return catalog, catalog.resolve("bench", "bench").version
    rows = int(gb * 1e9 / BYTES_PER_ROW / symbols)
    print(f"  importing {symbols} symbols x {rows:,} bars into {where} (once)...", flush=True)
    t0 = time.perf_counter()
    frame = _universe(symbols, rows)
    info = catalog.import_frame("bench", "bench", frame, source="bench_catalog.py")
    del frame
    gc.collect()
    print(f"  imported {info.bytes / 1e9:.2f} GB in {time.perf_counter() - t0:.0f} s", flush=True)
    return catalog, info.version


def _files(catalog: Catalog, version: str) -> list[str]:
    manifest = catalog.manifest(version)
    return [catalog.storage.path(f"objects/{version}/{f['path']}") for f in manifest["files"]]


def _time(fn: Any) -> float:
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - t0
    del out
    return elapsed


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--symbols", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    import pyarrow.dataset as ds

    catalog, version = ensure_dataset(args.gb, args.symbols)
    info = catalog.info(version)
    size = info.bytes
    files = _files(catalog, version)
    print(f"version {version[:12]}: {info.rows:,} rows, {len(files)} files, {size / 1e9:.2f} GB")

    def ours() -> Any:
        return catalog.read(version)

    def arrow_table() -> Any:
        return ds.dataset(files, format="parquet").to_table()

    def arrow_pandas() -> Any:
        return ds.dataset(files, format="parquet").to_table().to_pandas()

    readers = (("ours", ours), ("pyarrow", arrow_table), ("pyarrow_pandas", arrow_pandas))
    runs: dict[str, list[float]] = {name: [] for name, _ in readers}
    for fn in (ours, arrow_table, arrow_pandas):  # warm the page cache and the code paths
        _time(fn)
    for i in range(args.repeat):
        for name, fn in (
            ("ours", ours),
            ("pyarrow", arrow_table),
            ("pyarrow_pandas", arrow_pandas),
        ):
            runs[name].append(_time(fn))
        print(
            f"  round {i + 1}: ours {runs['ours'][-1]:.3f} s, pyarrow {runs['pyarrow'][-1]:.3f} s,"
            f" pyarrow+pandas {runs['pyarrow_pandas'][-1]:.3f} s",
            flush=True,
        )
    med = {k: statistics.median(v) for k, v in runs.items()}
    gbps = {k: size / 1e9 / v for k, v in med.items()}
    print(f"\nwarm medians of {args.repeat} ({size / 1e9:.2f} GB of Parquet, {info.rows:,} rows):")
    labels = {
        "ours": "ours (Catalog.read -> long pandas frame)",
        "pyarrow": "pyarrow alone (to_table)",
        "pyarrow_pandas": "pyarrow alone (to_table + to_pandas)",
    }
    for key, label in labels.items():
        print(f"  {label:42s} {med[key]:.3f} s  {gbps[key]:.2f} GB/s")
    ratio = med["pyarrow"] / med["ours"]
    print(
        f"  ours / pyarrow throughput: {ratio:.2f}; target ours >= {TARGET_GBPS} GB/s: "
        f"{'meets' if gbps['ours'] >= TARGET_GBPS else 'misses'}"
    )
    return {
        "meets_target": gbps["ours"] >= TARGET_GBPS,
        "figure_s": med["ours"],
        "target_s": size / 1e9 / TARGET_GBPS,
        "gbps": gbps,
        "ratio_to_pyarrow": ratio,
    }


if __name__ == "__main__":
    main()
