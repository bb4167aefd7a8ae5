"""Benchmark: the whole run path's own work on 1,000,000 one-minute bars, stage by stage.

The bars (``bench_backtest.make_minute_bars``) are written once to a temporary CSV (≈ 70 MB) and
Parquet file, then each stage a run of the SMA 10/30 crossover pipeline goes through is timed
in this process, as CPU seconds (this machine is shared: wall time is reported but means
little): reading and validating the CSV and the Parquet file, the indicators and signal, the
backtest (warm; the first call's numba compile or cache load is reported apart), writing the
node outputs as artifacts (Parquet), the run's result files (equity.parquet, trades.csv) and
what the API's results endpoint reads (the chart of at most 5,000 points and the first 10,000
trades), the run page's analysis (price candles, buy and hold, monthly returns) and the whole
equity.csv download. Prefect and MLflow start-up are not in it (``bench_run.py`` measures the
CLI cold).

``--cli`` also runs ``alphaforge run`` on the CSV pipeline end to end in a subprocess (set
``ALPHAFORGE_PREFECT_API_URL`` to a running server, else Prefect's ephemeral one starts) and
reports its wall time and its CPU time (user + system of the process tree).

Target: <= 5 s of CPU from the CSV file to the results endpoint's payload (the analysis and the
equity.csv are in the total since issue 9).

    .venv/bin/python bench/bench_real_size.py [--bars N] [--cli]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_backtest import make_minute_bars  # noqa: E402

from api.services import run_files, run_market  # noqa: E402
from dsl.compiler import compile_or_raise  # noqa: E402
from flows.results import write_results  # noqa: E402
from flows.spec import RunRecord  # noqa: E402
from nodes.base import registry  # noqa: E402
from nodes.data import read_ohlcv_csv, read_ohlcv_parquet  # noqa: E402
from runners.io import write_value  # noqa: E402

TARGET_S = 5.0
PIPELINE = """pipeline bench_real_size "SMA crossover on one-minute bars"

data   = csv_ohlcv(path="bars.csv")
fast   = sma(data.close, window=10)
slow   = sma(data.close, window=30)
signal = crossover(fast, slow)
result = backtest(data, signal, cash=100_000, fee_bps=1, slippage_bps=0.5)
"""


def _write_files(directory: Path, n: int) -> None:
    frame = make_minute_bars(n).round(6)
    frame.to_parquet(directory / "bars.parquet")
    table = pa.Table.from_pandas(frame.reset_index(), preserve_index=False)
    seconds = pc.cast(table["ts"], pa.timestamp("s", tz="UTC"))
    table = table.set_column(0, "ts", pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%SZ"))
    options = pacsv.WriteOptions(quoting_style="none")
    pacsv.write_csv(table, directory / "bars.csv", write_options=options)


def _node(name: str, inputs: dict[str, Any], **params: Any) -> dict[str, Any]:
    node_type = registry().get(name)
    return node_type().run(inputs, node_type.validated_params(params))


class _Stages:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float]] = []

    def time(self, label: str, fn: Callable[[], Any]) -> Any:
        cpu, wall = time.process_time(), time.perf_counter()
        out = fn()
        self.rows.append((label, time.process_time() - cpu, time.perf_counter() - wall))
        return out


def _cli(directory: Path) -> dict[str, float]:
    (directory / "bench.af").write_text(PIPELINE)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "run",
            str(directory / "bench.af"),
            "--json",
            "--data-dir",
            str(directory / "data"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"alphaforge run failed:\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"cli_wall_s": wall, "cli_cpu_s": cpu, "cli_trades": out["metrics"]["num_trades"]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print a table and return the figures."""
    parser = argparse.ArgumentParser(description="1M-bar run path benchmark")
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--cli", action="store_true", help="also time `alphaforge run`")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="af-bench-") as tmp:
        directory = Path(tmp)
        _write_files(directory, args.bars)
        csv_mb = (directory / "bars.csv").stat().st_size / 1e6
        s = _Stages()
        bars = s.time("read + validate CSV", lambda: read_ohlcv_csv(directory / "bars.csv"))
        s.time("read + validate Parquet", lambda: read_ohlcv_parquet(directory / "bars.parquet"))

        def signal() -> Any:
            fast = _node("sma", {"series": bars["close"]}, window=10)["value"]
            slow = _node("sma", {"series": bars["close"]}, window=30)["value"]
            return _node("crossover", {"fast": fast, "slow": slow})["signal"]

        sig = s.time("sma 10, sma 30, crossover", signal)
        costs = {"cash": 100_000, "fee_bps": 1.0, "slippage_bps": 0.5}
        t0 = time.perf_counter()
        _node("backtest", {"data": bars, "signal": sig}, **costs)  # numba compile / cache load
        first_s = time.perf_counter() - t0  # reported apart, not in the sum
        out = s.time(
            "backtest (warm)", lambda: _node("backtest", {"data": bars, "signal": sig}, **costs)
        )

        artifacts = directory / "artifacts"
        artifacts.mkdir()

        def write_artifacts() -> dict[str, str]:
            paths = {}
            for name, value, kind in (
                ("bars", bars, "ohlcv"),
                ("signal", sig, "signal"),
                ("equity", out["equity"], "equity"),
                ("trades", out["trades"], "trades"),
                ("orders", out["orders"], "orders"),
                ("metrics", out["metrics"], "metrics"),
            ):
                path = artifacts / f"{name}.{'json' if kind == 'metrics' else 'parquet'}"
                write_value(value, kind, path)
                paths[name] = str(path)
            return paths

        paths = s.time("write node outputs (Parquet)", write_artifacts)
        run_dir = directory / "run"
        run_dir.mkdir()
        ir = compile_or_raise(PIPELINE)  # write_results finds the result's ports in it
        outputs = {
            "data": {"bars": paths["bars"]},
            "result": {"equity": paths["equity"], "trades": paths["trades"]}
            | {"metrics": paths["metrics"], "orders": paths["orders"]},
        }
        s.time(
            "run results (equity.parquet, trades.csv, prices)",
            lambda: write_results(ir, outputs, run_dir),
        )
        payload = s.time(
            "API results payload (chart + trades)",
            lambda: run_files.results(
                run_dir, RunRecord(run_id="bench", pipeline="bench", metrics=out["metrics"])
            ).model_dump_json(),
        )
        analysis = s.time(
            "API run analysis (candles, buy and hold, monthly)",
            lambda: run_market.analysis(run_dir).model_dump_json(),
        )
        csv_bytes = s.time(
            "API equity.csv (all bars)",
            lambda: sum(len(part) for part in run_market.equity_csv_chunks(run_dir)),
        )

    total_cpu = sum(cpu for _, cpu, _ in s.rows)
    result: dict[str, Any] = {
        "bars": args.bars,
        "csv_mb": csv_mb,
        "trades": len(out["trades"]),
        "backtest_first_s": first_s,
        "stages": [{"stage": k, "cpu_s": c, "wall_s": w} for k, c, w in s.rows],
        "payload_mb": len(payload) / 1e6,
        "analysis_mb": len(analysis) / 1e6,
        "equity_csv_mb": csv_bytes / 1e6,
        "figure": "CPU, CSV to results payload",
        "figure_s": total_cpu,
        "target_s": TARGET_S,
        "meets_target": total_cpu <= TARGET_S,
    }
    if args.cli:
        with tempfile.TemporaryDirectory(prefix="af-bench-cli-") as tmp:
            _write_files(Path(tmp), args.bars)
            result |= _cli(Path(tmp))
    _print(result)
    return result


def _print(r: dict[str, Any]) -> None:
    print(
        f"run path on {r['bars']:,} one-minute bars (CSV {r['csv_mb']:.0f} MB, "
        f"{r['trades']:,} trades)"
    )
    width = max(len(x["stage"]) for x in r["stages"])
    for x in r["stages"]:
        print(f"  {x['stage']:<{width}}  cpu {x['cpu_s']:6.2f} s   wall {x['wall_s']:6.2f} s")
    print(f"  {'total CPU':<{width}}  cpu {r['figure_s']:6.2f} s   (target <= {r['target_s']} s)")
    print(
        f"  results payload {r['payload_mb']:.1f} MB, analysis {r['analysis_mb']:.1f} MB, "
        f"equity.csv {r['equity_csv_mb']:.0f} MB"
    )
    print(f"  first backtest (numba compile or cache load), wall: {r['backtest_first_s']:.2f} s")
    if "cli_wall_s" in r:
        print(f"  alphaforge run: wall {r['cli_wall_s']:.1f} s, CPU {r['cli_cpu_s']:.1f} s")
    print(f"  result: {'meets' if r['meets_target'] else 'MISSES'} the target")


if __name__ == "__main__":
    main()
