"""Benchmark: the live side (issue 14) on this machine.

1. **Engine throughput** (``bench/liveengine.py``): bars per second through the reconciler's
   instance workers on a scratch PostgreSQL database, the example SMA module active in each
   instance, with 1, 10 and 50 instances on the (unsandboxed) process host and 1 and 5 in the
   Docker sandbox; the ``on_tick`` round trip and the per-bar database transaction as
   percentiles; the memory of one instance's host process or container.
2. **Strategy backtest speed**: ``runners.papertrade.backtest.backtest_strategy`` of the same
   module on 10,000 one-minute bars (process host, Docker host) against the vectorised bar
   backtester on the same SMA logic (the ``sma`` and ``crossover`` nodes, long only, then the
   ``backtest`` node), rounds interleaved; the ratio printed. The round trips of both are
   printed beside (the strategy enters on a cross only, the signal from the first bar above,
   so they may differ by one).
3. **Stream pipeline latency**: ``examples/stream_signals.af`` on the sample's replayed bars,
   one bar released at a time (the next once the previous one's events are out), so each
   bar's figure is its own: from the source yielding it to its first event (the queue hop,
   the group, the evaluation, the sinks' submission), and the graph's evaluation alone;
   against re-running the whole pipeline in batch (the data step read again, every node)
   over the same window for a sample of those bars, whose values are checked against the
   stream's.

    .venv/bin/python bench/bench_live.py [--quick] [--no-docker] [--skip engine,backtest,stream]

Needs PostgreSQL (127.0.0.1:5432, trust) and, for the Docker rows, the sandbox image. No target
is set by the issue; :func:`main` returns the figures with ``meets_target`` true when every part
ran (``figure_s``: the stream's mean per-bar latency).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import pandas as pd
from bench_backtest import make_minute_bars
from liveengine import CODE, CONFIG, ROOT, _percentiles, run_engine, scratch_database

os.environ.setdefault("ALPHAFORGE_ALLOW_PROCESS_RUNNER", "1")  # the process host rows


def _bars(n: int) -> pd.DataFrame:
    return make_minute_bars(n).reset_index()


# -- 2. the strategy backtest against the vectorised one -------------------------------------


def _vectorised(bars: pd.DataFrame) -> tuple[float, int]:
    from nodes.base import registry

    def node(name: str, inputs: dict[str, Any], **params: Any) -> dict[str, Any]:
        kind = registry().get(name)
        return kind().run(inputs, kind.validated_params(params))

    t0 = time.perf_counter()
    data = bars.set_index("ts")
    fast = node("sma", {"series": data["close"]}, window=CONFIG["fast"])["value"]
    slow = node("sma", {"series": data["close"]}, window=CONFIG["slow"])["value"]
    signal = node("crossover", {"fast": fast, "slow": slow}, mode="long_only")["signal"]
    out = node("backtest", {"data": data, "signal": signal}, cash=100_000, fee_bps=5,
               slippage_bps=2)  # fmt: skip
    return time.perf_counter() - t0, len(out["trades"])


def _strategy(bars: pd.DataFrame, kind: str) -> tuple[float, int]:
    from runners.papertrade.backtest import backtest_strategy
    from runners.strategyhost import strategy_host

    t0 = time.perf_counter()
    host = strategy_host(CODE, instance_id=f"bench-{kind}", choice=kind, tick_timeout_s=60)
    result = backtest_strategy(host, bars, config=CONFIG, interval="1m", fee_bps=5,
                               slippage_bps=2)  # fmt: skip
    return time.perf_counter() - t0, len(result.trades)


def bench_backtest(n_bars: int, rounds: int, kinds: list[str]) -> dict[str, Any]:
    bars = _bars(n_bars)
    _vectorised(bars)  # the numba kernel's first call (cache load) is not the comparison
    times: dict[str, list[float]] = {k: [] for k in [*kinds, "vectorised"]}
    trades: dict[str, int] = {}
    for _ in range(rounds):
        for kind in kinds:
            seconds, trades[kind] = _strategy(bars, kind)
            times[kind].append(seconds)
        seconds, trades["vectorised"] = _vectorised(bars)
        times["vectorised"].append(seconds)
    medians = {k: statistics.median(v) for k, v in times.items()}
    return {"bars": n_bars, "rounds": rounds, "median_s": medians, "trades": trades,
            "ratio": {k: medians[k] / medians["vectorised"] for k in kinds}}  # fmt: skip


# -- 3. the stream pipeline ------------------------------------------------------------------


class PacedReplay:
    """A replay that yields a bar, then waits for its events before the next one."""

    recorded = True

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.interval = inner.interval
        self.yielded: dict[str, float] = {}
        self.first_event: dict[str, float] = {}
        self.released = threading.Event()

    def history(self, end: pd.Timestamp, count: int) -> pd.DataFrame:
        return pd.DataFrame(self.inner.history(end, count))

    def seen(self, ts: str) -> None:
        self.first_event.setdefault(ts, time.perf_counter())
        self.released.set()

    def bars(self, stop: threading.Event) -> Iterator[Any]:
        for bar in self.inner.bars(stop):
            self.released.clear()
            self.yielded[bar.ts.isoformat()] = time.perf_counter()
            yield bar
            if not self.released.wait(30):
                raise TimeoutError(f"no event for the bar of {bar.ts} within 30 s")


def bench_stream(live: int, samples: int, url: str) -> dict[str, Any]:
    from dsl.compiler import compile_or_raise
    from live.stream import StreamService
    from live.stream.service import load_pipeline
    from runners.inprocess import InProcessRunner
    from runners.memgraph import MemoryGraph
    from runners.papertrade.replay import ReplaySource

    os.environ["ALPHAFORGE_DATABASE_URL"] = url  # the example's postgres sink
    tmp = Path(tempfile.mkdtemp(prefix="bench-live-"))
    try:
        (tmp / "data").mkdir()
        shutil.copy(ROOT / "examples" / "data" / "sample_ohlcv.csv", tmp / "data")
        af = tmp / "stream_signals.af"
        shutil.copy(ROOT / "examples" / "stream_signals.af", af)
        frame = pd.read_csv(tmp / "data" / "sample_ohlcv.csv")
        source = PacedReplay(ReplaySource(frame, interval="1d", start=600, limit=live))
        events: dict[str, dict[str, float]] = {}

        def on_event(e: Any) -> None:
            events.setdefault(e.ts, {})[e.node] = e.value
            if e.node == "signal":
                source.seen(e.ts)

        pipeline = load_pipeline(af, state_root=tmp / "state", source=source, on_event=on_event)
        evaluate = pipeline.graph.evaluate
        evaluations: list[float] = []

        def timed(*args: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return evaluate(*args, **kw)
            finally:
                evaluations.append(time.perf_counter() - t0)

        pipeline.graph.evaluate = timed  # type: ignore[method-assign]
        health = StreamService([pipeline]).run_until_end(timeout_s=600)["pipelines"]
        health = health[pipeline.name]
        assert health["state"] == "ended" and not health["errors"], health
        latency = [source.first_event[ts] - source.yielded[ts] for ts in source.first_event]

        # the batch alternative: the whole pipeline again over the window, per bar
        ir = compile_or_raise(af.read_text(), filename=str(af))
        data = next(n for n in ir.nodes if not n.dependencies())
        start = health["warmup_from"][:10]
        stamps = sorted(source.first_event)
        picked = [
            stamps[int(i)] for i in np.linspace(0, len(stamps) - 1, min(samples, len(stamps)))
        ]
        batch: list[float] = []
        worst = 0.0
        for ts in picked:
            params = {**data.params, "start": start, "end": ts[:10]}
            nodes = tuple(n.model_copy(update={"params": params}) if n is data else n
                          for n in ir.nodes)  # fmt: skip
            one = ir.model_copy(update={"nodes": nodes, "stream": None})
            t0 = time.perf_counter()
            graph = MemoryGraph(one, InProcessRunner(base_dir=tmp), swept=[])
            out = graph.evaluate({}, ["signal", "trend"])
            batch.append(time.perf_counter() - t0)
            value = float(next(iter(out["signal"].values())).loc[pd.Timestamp(ts)])
            worst = max(worst, abs(value - float(events[ts]["signal"])))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"bars": len(latency), "latency_ms": _percentiles(latency),
            "evaluate_ms": _percentiles(evaluations), "batch_ms": _percentiles(batch),
            "batch_samples": len(batch), "max_abs_diff": worst,
            "window_bars": len(pipeline.frame)}  # fmt: skip


# -- the command -----------------------------------------------------------------------------


def _docker_ok() -> bool:
    try:
        from runners.docker.engine import docker_client

        docker_client(timeout=5).ping()
        return True
    except Exception:
        return False


def _print_engine(rows: list[dict[str, Any]]) -> None:
    print("\nengine: bars/s through the instance workers (steady state, every instance running)")
    print(f"  {'host':<8} {'inst':>4} {'bars':>6} {'load s':>7} {'bars/s':>8}  "
          f"{'on_tick ms p50/p95/p99':>24}  {'save_bar ms p50/p95/p99':>24}  "
          f"{'RSS MB':>7} {'cgroup MB':>9}")  # fmt: skip
    for r in rows:
        t, s = r["tick_ms"], r["save_ms"]
        print(f"  {r['host']:<8} {r['instances']:>4} {r['bars']:>6} {r['load_s']:>7.1f} "
              f"{r['bars_per_s']:>8.0f}  {t['p50']:>7.2f} {t['p95']:>7.2f} {t['p99']:>8.2f}  "
              f"{s['p50']:>7.2f} {s['p95']:>7.2f} {s['p99']:>8.2f}  "
              f"{r['rss_mb_median']:>7.1f} {r['cgroup_mb_median']:>9.1f}")  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the parts asked for, print them and return the figures."""
    parser = argparse.ArgumentParser(description="live side benchmark")
    parser.add_argument("--quick", action="store_true", help="a smoke run (a few seconds)")
    parser.add_argument("--no-docker", action="store_true", help="skip the Docker rows")
    parser.add_argument("--skip", default="", help="parts to skip: engine,backtest,stream")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    docker = not args.no_docker and _docker_ok()
    if not args.no_docker and not docker:
        print("(no Docker engine answers: the Docker rows are skipped)")
    out: dict[str, Any] = {"quick": args.quick, "docker": docker}
    load = os.getloadavg()[0]
    print(f"load average at start: {load:.1f} ({os.cpu_count()} cores)")
    with scratch_database() as url:
        if "engine" not in skip:
            plan = [("process", 1, 60), ("process", 10, 20)] if args.quick else [
                ("process", 1, 1000), ("process", 10, 300), ("process", 50, 60)]  # fmt: skip
            if docker:
                plan += [("docker", 1, 60)] if args.quick else [("docker", 1, 600),
                                                                ("docker", 5, 300)]  # fmt: skip
            bars = _bars(3_000)
            rows = []
            for kind, n, live in plan:
                rows.append(run_engine(url, bars, kind, n, live))
                print(f"  ... {kind} x{n}: {rows[-1]['bars_per_s']:.0f} bars/s", flush=True)
            _print_engine(rows)
            out["engine"] = rows
        if "backtest" not in skip:
            kinds = ["process", "docker"] if docker else ["process"]
            bt = bench_backtest(2_000 if args.quick else 10_000, 1 if args.quick else 3, kinds)
            print(f"\nstrategy backtest, {bt['bars']:,} one-minute bars, median of "
                  f"{bt['rounds']} interleaved round(s):")  # fmt: skip
            for kind, seconds in bt["median_s"].items():
                ratio = f"  ×{bt['ratio'][kind]:.0f} the vectorised" if kind in bt["ratio"] else ""
                print(f"  {kind:<11} {seconds:8.3f} s  ({bt['bars'] / seconds:>9,.0f} bars/s, "
                      f"{bt['trades'][kind]} round trips){ratio}")  # fmt: skip
            out["backtest"] = bt
        if "stream" not in skip:
            st = bench_stream(30 if args.quick else 300, 5 if args.quick else 20, url)
            lat, ev, ba = st["latency_ms"], st["evaluate_ms"], st["batch_ms"]
            print(f"\nstream pipeline (examples/stream_signals.af), {st['bars']} closed bars, "
                  f"window {st['window_bars']} bars:")  # fmt: skip
            print(f"  bar → first event   mean {lat['mean']:7.2f} ms  p95 {lat['p95']:7.2f} ms")
            print(f"  graph evaluation    mean {ev['mean']:7.2f} ms  p95 {ev['p95']:7.2f} ms")
            print(f"  batch re-run        mean {ba['mean']:7.2f} ms  p95 {ba['p95']:7.2f} ms "
                  f"({st['batch_samples']} bars; ×{ba['mean'] / lat['mean']:.1f} the stream; "
                  f"values agree to {st['max_abs_diff']:.1e})")  # fmt: skip
            out["stream"] = st
            out["figure"] = "stream: mean per-bar latency"
            out["figure_s"] = lat["mean"] / 1000
    out["meets_target"] = True
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    return out


if __name__ == "__main__":
    main()
