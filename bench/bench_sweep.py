"""Benchmark a 1,000-trial sweep end to end (issue 11, item 9).

A grid of the SMA crossover (20 fast × 50 slow windows, every pair with fast < slow: 1,000
trials) on 100,000 one-minute bars (a seeded random walk written as CSV), with MLflow tracking
on (a parent run and 1,000 child runs), through Prefect:

(a) ``local:1`` — the sweep flow evaluating every chunk in its own process: the end-to-end wall
    time (the ``run_sweep`` call: flow run, data load, 1,000 trials, statistics, MLflow) against
    the target of :data:`TARGET_S`, trials/s, and where the time went (trials, MLflow on the
    critical path, Prefect and the rest);
(b) the same grid on 2 workers: ``local:2`` (2 processes forked from the warm flow), ``dask:2``
    (prefect-dask on a 2-worker ``distributed.LocalCluster``) and ``pool:2`` (2 Prefect process
    workers polling one work pool, each chunk a flow run of the chunk deployment) against
    ``pool:1`` — the speed-up of a second worker;
(c) the peak memory of all the processes of (a) (sampled from /proc every 50 ms) as their
    summed PSS (a page forked workers share with the flow counted once, not once per process;
    the summed RSS is printed beside it): target ≤ :data:`RSS_TARGET_MB` MB.

Every configuration runs in a fresh interpreter against one Prefect server this benchmark
starts (as ``alphaforge serve`` or a team's server would be running); the server's own start-up
is printed apart. The peer, vectorbt, is installed by this benchmark in its own venv
(``.bench-venvs/vectorbt``, skipped with ``--no-peer``) and runs the same 1,000 crossovers with
``Portfolio.from_signals`` on the same closes, interleaved with (a); the ratio is printed.

    .venv/bin/python bench/bench_sweep.py [--bars N] [--configs local:1,local:2,...] [--no-peer]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_S = 5.0
# The issue states the target beside the peer's time on its reference machine: ≤ 5 s where
# vectorbt's grid takes ≈ 20 s. On a slower or busier machine the fair reading is the ratio,
# measured in the same run: ours ≤ 0.25 × vectorbt's.
PEER_REFERENCE_S = 20.0
TARGET_RATIO = TARGET_S / PEER_REFERENCE_S
RSS_TARGET_MB = 1024
BARS = 100_000
CONFIGS = ("local:1", "local:2", "dask:2", "pool:1", "pool:2")
PEER_VENV = ROOT / ".bench-venvs" / "vectorbt"
FAST = (2, 42, 2)  # range(2, 42, 2): 20 windows
SLOW = (50, 550, 10)  # range(50, 550, 10): 50 windows, all above every fast one

QUICK = ((2, 22, 2), (50, 150, 10))  # --quick: a 10 × 10 grid (100 trials), to look into a path

SOURCE = f"""pipeline bench_sma_grid "SMA crossover: 1,000-trial grid"
data   = csv_ohlcv(path="bars.csv")
fast   = sma(data.close, window=10)
slow   = sma(data.close, window=60)
signal = crossover(fast, slow)
result = backtest(data, signal, cash=100_000, fee_bps=5, slippage_bps=2)
sweep grid {{
    fast.window = range{FAST}
    slow.window = range{SLOW}
    where fast.window < slow.window
    objective maximize result.sharpe
}}
"""

PEER_SCRIPT = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import numpy as np, pandas as pd, vectorbt as vbt
t_import = time.perf_counter() - t0
close = pd.read_csv(sys.argv[1], usecols=["ts", "close"], index_col="ts", parse_dates=True)["close"]
fast_w, slow_w = json.loads(sys.argv[2]), json.loads(sys.argv[3])
pairs = [(f, s) for f in fast_w for s in slow_w if f < s]
t1 = time.perf_counter()
fast = vbt.MA.run(close, [f for f, _ in pairs], short_name="fast")
slow = vbt.MA.run(close, [s for _, s in pairs], short_name="slow")
entries = fast.ma_crossed_above(slow)
exits = fast.ma_crossed_below(slow)
pf = vbt.Portfolio.from_signals(close, entries, exits, fees=0.0005, slippage=0.0002,
                                init_cash=100_000, freq="1min")
sharpe = pf.sharpe_ratio()
best = sharpe.idxmax()
t_grid = time.perf_counter() - t1
print(json.dumps({"trials": len(pairs), "grid_s": t_grid, "import_s": t_import,
                  "best": [int(x) for x in best], "peak_rss_mb":
                  resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


# ---- data and the peer -------------------------------------------------------------------------


def write_data(directory: Path, bars: int, quick: bool = False) -> Path:
    """A seeded random walk of ``bars`` one-minute OHLCV bars as ``bars.csv``, and the grid's
    pipeline as ``grid.af`` (``quick``: 100 trials)."""
    import numpy as np
    import pandas as pd

    path = directory / "bars.csv"
    rng = np.random.default_rng(11)
    ts = pd.date_range("2021-01-04", periods=bars, freq="1min", tz="UTC")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.0008, bars)))
    open_ = np.r_[close[0], close[:-1]]
    pd.DataFrame(
        {
            "ts": ts,
            "open": open_,
            "high": np.maximum(open_, close) * 1.0004,
            "low": np.minimum(open_, close) * 0.9996,
            "close": close,
            "volume": rng.integers(1, 1_000, bars),
        }
    ).to_csv(path, index=False)
    source = SOURCE
    if quick:
        source = source.replace(f"range{FAST}", f"range{QUICK[0]}")
        source = source.replace(f"range{SLOW}", f"range{QUICK[1]}")
    (directory / "grid.af").write_text(source)
    return path


def ensure_peer() -> Path | None:
    """vectorbt's interpreter in its own venv (created on first use), or None if it cannot be
    installed here."""
    python = PEER_VENV / "bin" / "python"
    if python.exists():
        return python
    try:
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "vectorbt"],
            check=True,
            timeout=900,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"  vectorbt could not be installed ({exc}): no peer figure", flush=True)
        return None
    return python


def run_peer(python: Path, csv: Path) -> dict[str, Any]:
    """vectorbt's 1,000 crossovers; wall time of the grid and the process's peak RSS."""
    fast, slow = list(range(*FAST)), list(range(*SLOW))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(python), "-c", PEER_SCRIPT, str(csv), json.dumps(fast), json.dumps(slow)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"vectorbt failed:\n{proc.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = wall
    return out


# ---- memory ------------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kb(pid: int) -> int:
    """The proportional set size: private pages plus each shared page over its sharers (forked
    workers share their parent's warm pages, which a sum of RSS counts once per process)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeRss:
    """The peak, over time, of the summed RSS (and PSS) of ``roots`` and all their
    descendants."""

    def __init__(self, roots: list[int], every_s: float = 0.05) -> None:
        self.roots = roots
        self.peak_kb = 0
        self.peak_pss_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(every_s,), daemon=True)
        self._thread.start()

    def _loop(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            tree = _children()
            seen: set[int] = set()
            todo = list(self.roots)
            while todo:
                pid = todo.pop()
                if pid not in seen:
                    seen.add(pid)
                    todo.extend(tree.get(pid, []))
            self.peak_kb = max(self.peak_kb, sum(_rss_kb(p) for p in seen))
            self.peak_pss_kb = max(self.peak_pss_kb, sum(_pss_kb(p) for p in seen))

    def stop(self) -> float:
        """Stop sampling; the peak in MB."""
        self._stop.set()
        self._thread.join()
        return self.peak_kb / 1024


# ---- one configuration, in a fresh interpreter -------------------------------------------------


def one(config: str, directory: Path) -> dict[str, Any]:
    """Run the grid once with ``config`` (``executor:workers``); prints and returns figures."""
    t_start = time.perf_counter()
    from dsl import compile_source
    from flows.settings import CoreSettings
    from flows.spec import RunSpec
    from flows.sweep import new_sweep_id, run_sweep
    from flows.sweepspec import SweepSpec, read_trials, sweep_dir

    executor, workers = config.split(":")
    compiled = compile_source((directory / "grid.af").read_text(), filename="grid.af")
    assert compiled.ir is not None, compiled.format("grid.af")
    settings = CoreSettings(data_dir=directory / "store")
    spec = SweepSpec(
        sweep_id=new_sweep_id(),
        run=RunSpec(ir=compiled.ir, base_dir=str(directory), track=True, trigger="sweep"),
        executor=executor,  # type: ignore[arg-type]
        workers=int(workers),
    )
    t_imported = time.perf_counter()
    t0 = time.perf_counter()
    record = run_sweep(spec, settings=settings)
    wall = time.perf_counter() - t0
    rows = list(read_trials(sweep_dir(settings.store_root, spec.sweep_id)))
    trial_s = sum(r.seconds or 0.0 for r in rows)
    timings = record.timings
    return {
        "config": config,
        "status": record.status,
        "error": record.error,
        "trials": record.done,
        "wall_s": wall,
        "imports_s": t_imported - t_start,
        "trials_s": trial_s,
        "trials_per_worker_s": trial_s / int(workers),
        "trial_ms_median": 1000 * sorted(r.seconds or 0.0 for r in rows)[len(rows) // 2],
        # the parent run opens in a thread beside the trials: only the wait for it counts
        "mlflow_critical_s": timings.get("mlflow_open_wait_s", timings.get("mlflow_open_s", 0.0))
        + timings.get("tracking_finish_s", 0.0),
        "mlflow_children_s": timings.get("mlflow_children_s", 0.0),
        "flow_body_s": timings.get("total_s", 0.0),
        "timings": timings,
        "best": record.best.params if record.best else None,
        "dsr": record.overfit.deflated_sharpe if record.overfit else None,
        "pbo": record.overfit.pbo if record.overfit else None,
    }


def _create_tracking_store(data_dir: Path) -> None:
    """Create the MLflow store the runs share (its tables: ≈ 2 s once per install, not a
    sweep's cost)."""
    from mlflow import MlflowClient

    from flows.settings import CoreSettings

    MlflowClient(tracking_uri=CoreSettings(data_dir=data_dir).mlflow_uri).search_experiments()


def _measure(config: str, directory: Path, api_url: str, workers: list[Any]) -> dict[str, Any]:
    env = {**os.environ, "PREFECT_API_URL": api_url, "PYTHONPATH": str(ROOT)}
    env["PREFECT_LOGGING_LEVEL"] = "WARNING"
    argv = [sys.executable, str(Path(__file__).resolve()), "--one", config, "--dir", str(directory)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    roots = [proc.pid] + [w.proc.pid for w in workers]
    rss = TreeRss(roots)
    out, err = proc.communicate(timeout=1800)
    peak = rss.stop()
    process_s = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{config} failed:\n{err.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["process_s"] = process_s
    result["peak_rss_mb"] = peak
    result["peak_pss_mb"] = rss.peak_pss_kb / 1024
    return result


# ---- the whole benchmark -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table and return the figures."""
    parser = argparse.ArgumentParser(description="1,000-trial sweep benchmark")
    parser.add_argument("--bars", type=int, default=BARS)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a 100-trial grid, no peer")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.dir)))
        return {}
    configs = [c for c in args.configs.split(",") if c]
    peer = None if args.no_peer or args.quick else ensure_peer()
    from prefect.client.orchestration import SyncPrefectClient

    from deployments.deploy import POOL_NAME, ensure_sweep_deployments
    from deployments.stack import PrefectServer, Worker

    with tempfile.TemporaryDirectory(prefix="af-bench-sweep-") as tmp:
        directory = Path(tmp)
        csv = write_data(directory, args.bars, args.quick)
        t0 = time.perf_counter()
        os.environ.setdefault("PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED", "false")
        server = PrefectServer(directory / "prefect", ui=False)
        results: dict[str, dict[str, Any]] = {}
        peers: list[dict[str, Any]] = []
        try:
            server.wait_ready()
            server_s = time.perf_counter() - t0
            with SyncPrefectClient(api=server.api_url) as client:
                ensure_sweep_deployments(client, POOL_NAME)
            print(f"Prefect server started in {server_s:.1f} s (not counted below)", flush=True)
            _create_tracking_store(directory / "store")
            for config in configs:
                executor, n = config.split(":")
                workers = []
                try:
                    if executor == "pool":
                        workers = [
                            Worker(
                                server.api_url,
                                directory / f"worker-{n}-{i}",
                                directory / f"worker-{n}-{i}.log",
                                name=f"bench-{n}-{i}",
                                limit=1,  # a worker is one process: one chunk at a time
                            )
                            for i in range(int(n))
                        ]
                        for w in workers:
                            w.wait_ready()
                    results[config] = _measure(config, directory, server.api_url, workers)
                finally:
                    for w in workers:
                        w.stop()
                r = results[config]
                print(
                    f"  {config:<8} {r['wall_s']:6.2f} s  {r['trials']} trials  "
                    f"peak RSS {r['peak_rss_mb']:.0f} MB  ({r['status']})",
                    flush=True,
                )
                if peer is not None and config == configs[0]:  # interleaved with (a)
                    peers.append(run_peer(peer, csv))
                    print(f"  vectorbt {peers[-1]['grid_s']:6.2f} s", flush=True)
            if peer is not None and configs[0] in results:  # and once more after the rest
                peers.append(run_peer(peer, csv))
                results[configs[0] + "#2"] = _measure(configs[0], directory, server.api_url, [])
        finally:
            server.stop()
    summary = _summary(results, peers, configs[0], args.bars)
    _print(summary, results, peers)
    return summary


def _summary(
    results: dict[str, dict[str, Any]], peers: list[dict[str, Any]], first: str, bars: int
) -> dict[str, Any]:
    runs = [r for k, r in results.items() if k.split("#")[0] == first]
    a = min(runs, key=lambda r: r["wall_s"]) if runs else None
    out: dict[str, Any] = {
        "figure": f"1,000-trial grid, {bars:,} bars, {first}",
        "figure_s": a["wall_s"] if a else None,
        "target_s": TARGET_S,
        "meets_target": bool(a and a["wall_s"] <= TARGET_S and a["peak_pss_mb"] <= RSS_TARGET_MB),
        "target_ratio": TARGET_RATIO,
    }
    if a:
        out["trials_per_s"] = a["trials"] / a["wall_s"]
        out["peak_rss_mb"] = a["peak_rss_mb"]
        out["peak_pss_mb"] = a["peak_pss_mb"]
    if peers:
        out["vectorbt_s"] = min(p["grid_s"] for p in peers)
        out["vectorbt_rss_mb"] = max(p["peak_rss_mb"] for p in peers)
        if a:
            out["ratio_to_vectorbt"] = a["wall_s"] / out["vectorbt_s"]
            out["meets_target_relative"] = bool(
                out["ratio_to_vectorbt"] <= TARGET_RATIO and a["peak_pss_mb"] <= RSS_TARGET_MB
            )
    for fast, base in (("local:2", "local:1"), ("dask:2", "local:1"), ("pool:2", "pool:1")):
        if fast in results and base in results:
            out[f"speedup_{fast}"] = results[base]["wall_s"] / results[fast]["wall_s"]
    return out


def _print(summary: dict[str, Any], results: dict[str, dict[str, Any]], peers: list[Any]) -> None:
    print("\nsweep benchmark (issue 11 #9): SMA crossover grid, MLflow tracking on")
    head = (
        f"  {'config':<9}{'wall s':>8}{'trials/s':>10}{'trials s':>10}{'per wkr':>9}"
        f"{'MLflow*':>9}{'Prefect+':>10}{'RSS MB':>8}{'PSS MB':>8}  best  DSR  PBO"
    )
    print(head)
    for key, r in results.items():
        other = r["wall_s"] - r["trials_per_worker_s"] - r["mlflow_critical_s"]
        print(
            f"  {key:<9}{r['wall_s']:8.2f}{r['trials'] / r['wall_s']:10.0f}{r['trials_s']:10.2f}"
            f"{r['trials_per_worker_s']:9.2f}{r['mlflow_critical_s']:9.2f}{other:10.2f}"
            f"{r['peak_rss_mb']:8.0f}{r['peak_pss_mb']:8.0f}  {r['best']}  {r['dsr']}  {r['pbo']}"
        )
    print(
        "  trials s: Σ of the trials' own seconds (all processes); per wkr: that over the "
        "workers;\n  MLflow*: MLflow on the critical path (waiting for the parent run, which "
        "opens in a thread\n  beside the first trials, + the final flush; the child runs are "
        "written by a background\n  thread while trials run); "
        "Prefect+: the rest of the wall time (Prefect\n  flow and task runs, chunk dispatch, "
        "each process's imports and data load, statistics)."
    )
    for key, r in results.items():
        print(
            f"  {key}: MLflow child runs written in the background in {r['mlflow_children_s']:.2f}"
            f" s; the fresh interpreter's imports {r['imports_s']:.2f} s (not in wall)"
        )
        steps = ", ".join(f"{k.removesuffix('_s')} {v:.2f}" for k, v in r["timings"].items())
        print(f"    the flow's own timings (s): {steps}")
    a_s, target = summary.get("figure_s"), summary["target_s"]
    print(f"\n  (a) {summary['figure']}: {a_s:.2f} s (target ≤ {target:.0f} s)" if a_s else "")
    if "vectorbt_s" in summary and a_s:
        print(
            f"      vectorbt (Portfolio.from_signals on the same closes): "
            f"{summary['vectorbt_s']:.2f} s, peak RSS {summary['vectorbt_rss_mb']:.0f} MB: "
            f"ours / vectorbt = {a_s / summary['vectorbt_s']:.2f}"
        )
    for key in ("local:2", "dask:2", "pool:2"):
        if f"speedup_{key}" in summary:
            base = "pool:1" if key == "pool:2" else "local:1"
            print(f"  (b) {key} over {base}: ×{summary[f'speedup_{key}']:.2f}")
    if "peak_rss_mb" in summary:
        print(
            f"  (c) peak memory of (a), all processes: {summary['peak_pss_mb']:.0f} MB PSS "
            f"(target ≤ {RSS_TARGET_MB} MB); summed RSS {summary['peak_rss_mb']:.0f} MB counts "
            "the pages forked workers share with the flow once per process"
        )
    print(f"  meets targets: {summary['meets_target']} (absolute: ≤ {TARGET_S:.0f} s, memory)")
    if "meets_target_relative" in summary:
        print(
            f"  meets targets relative to the peer: {summary['meets_target_relative']} "
            f"(ours / vectorbt {summary['ratio_to_vectorbt']:.2f} ≤ {TARGET_RATIO:.2f}, the "
            f"issue's {TARGET_S:.0f} s against vectorbt's ≈ {PEER_REFERENCE_S:.0f} s there)"
        )


if __name__ == "__main__":
    main()
