"""Benchmark (issue 15 #6): events per second through the ``tick_backtest`` node vs
hftbacktest called directly with the same strategy on the same data, in the same run.

Data: the seeded synthetic book (``nodes.synthbook``, 10 minutes at high rates, ≈ 1 M events;
generated once into ``.bench-data/``). Strategy: the grid market maker (5 levels a side, 100 ms
updates and records, power-probability queue, 1 ms latencies, maker rebate / taker fee).

- **ours**: the whole node compute, ``TickBacktest.execute`` with every output: the checks of
  the events, hftbacktest driven by our loop that logs every order and fill, the equity,
  orders, trades and order-log tables, the metrics and fill statistics.
- **raw**: hftbacktest used as its examples do: a numba loop over ``elapse`` that scans the
  orders, runs the same compiled grid step and records with hftbacktest's own ``Recorder``;
  nothing else (no logs, no tables, no metrics).

Both are compiled before timing (the first runs are reported apart), then run interleaved
``--repeat`` times; the median over the pairs of ours / raw in events/s is the figure (the
ratio of the medians is printed too). Both must end in the same
position, balance and fees (the same strategy: checked). Target: ours ≥ 80 % of raw.

    .venv/bin/python bench/bench_tick.py [--seconds 600] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_RATIO = 0.8
DATA = Path(__file__).resolve().parents[1] / ".bench-data"
PARAMS: dict[str, Any] = {
    "strategy": "grid_mm",
    "grid_levels": 5,
    "half_spread_ticks": 2.0,
    "skew_ticks": 0.5,
    "order_qty": 1.0,
    "max_position": 20.0,
    "queue_model": "power_prob",
    "queue_power": 3.0,
    "maker_fee_bps": -0.5,
    "taker_fee_bps": 5.0,
    "record_interval_ms": 100.0,
    "update_interval_ms": 100.0,
}


def book(seconds: float) -> np.ndarray:
    """The synthetic book, generated once per size and kept in ``.bench-data/``."""
    from nodes.synthbook import BookSpec, generate

    path = DATA / f"tick_book_{int(seconds)}s.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    spec = BookSpec(
        seed=20261207, duration_s=seconds, limit_rate=800, cancel_rate=600, trade_rate=100
    )
    events = np.asarray(generate(spec)).view(np.ndarray)
    DATA.mkdir(exist_ok=True)
    np.save(path, events, allow_pickle=False)
    return events


def _raw_loop() -> Any:
    """hftbacktest called directly: elapse, read the orders (the grid step needs its working
    orders), the same compiled grid step and order sending, hftbacktest's Recorder."""
    from numba import njit

    from nodes.builtin import _tickkernel as k

    k.kernel(k.GRID_MM)  # compiles the helpers, _grid_step among them
    grid_step, gather, market, send = k._grid_step, k._gather, k._market, k._send

    @njit
    def raw(hbt, recorder, p, step, update_every, record_every):  # type: ignore[no-untyped-def]
        book = np.zeros(6, np.int64)
        book[0] = 1
        oi = np.empty((1024, k.OI), np.int64)
        of = np.empty((1024, k.OF), np.float64)
        work = np.zeros((k.WORK_ROWS, 4), np.int64)
        obi = np.empty((256, k.OB), np.int64)
        obf = np.empty((256, k.OBF), np.float64)
        ops = np.zeros((k.MAX_OPS, 5), np.int64)
        opq = np.zeros(k.MAX_OPS)
        mi = np.zeros(k.MI, np.int64)
        mf = np.zeros(k.MF)
        bq = np.zeros(1)
        aq = np.zeros(1)
        s = np.zeros(5)
        acct = np.zeros(k.ACCT)  # hftbacktest's own account, read at each turn
        i = 0
        while hbt.elapse(step) == 0:
            obi, obf, m = gather(hbt, obi, obf)  # the working orders only, no fill log
            n = 0
            for j in range(m):
                st = obi[j, k.OB_STATUS]
                if st == 1 or st == 5 or st == 0:
                    work[n, 0] = obi[j, k.OB_ID]
                    work[n, 1] = obi[j, k.OB_SIDE]
                    work[n, 2] = obi[j, k.OB_PRICE_TICK]
                    work[n, 3] = 0 if obi[j, k.OB_REQ] == 0 else 1
                    n += 1
            book[4] = n
            if i % record_every == 0:
                recorder.record(hbt)
            if i % update_every == 0:
                sv = hbt.state_values(0)
                acct[k.ACCT_POS], acct[k.ACCT_BALANCE], acct[k.ACCT_FEE] = (
                    sv.position,
                    sv.balance,
                    sv.fee,
                )
                market(hbt, mi, mf, s, bq, aq, acct)
                oi, of, n = grid_step(p, s, book, oi, of, work, mi, mf, bq, aq, ops, opq)
                send(hbt, of, ops, opq, n)
            i += 1
        return i

    return raw


def run_raw(events: np.ndarray, raw: Any) -> tuple[float, tuple[float, float, float]]:
    """Seconds for the raw loop, and the final (position, balance, fee)."""
    from hftbacktest import HashMapMarketDepthBacktest, Recorder

    from nodes.builtin._tickcore import _strategy_params, build_asset
    from nodes.builtin.tickparams import TickBacktestParams

    params = TickBacktestParams.model_validate(PARAMS | {"tick_size": 0.01, "lot_size": 0.1})
    t0 = time.perf_counter()
    hbt = HashMapMarketDepthBacktest([build_asset(events, params, None)])
    span = int(events["local_ts"][-1] - events["local_ts"][0])
    recorder = Recorder(1, span // params.record_ns + 10)
    raw(hbt, recorder.recorder, _strategy_params(params), params.record_ns, 1, 1)
    state = hbt.state_values(0)
    final = (float(state.position), float(state.balance), float(state.fee))
    hbt.close()
    return time.perf_counter() - t0, final


def run_ours(events: np.ndarray) -> tuple[float, dict[str, Any]]:
    """Seconds for the node's whole compute, and its outputs."""
    from nodes.base import NodeContext, registry
    from nodes.ticks import tick_array

    node_type = registry().get("tick_backtest")
    params = node_type.validated_params(PARAMS)
    value = tick_array(events, tick_size=0.01, lot_size=0.1)
    t0 = time.perf_counter()
    out = node_type(NodeContext()).execute({"ticks": value}, params)
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the comparison; returns the summary row for bench/run_all.py."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0, help="seconds of synthetic book")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    events = book(args.seconds)
    n = len(events)
    print(f"data: {n:,} events ({args.seconds:g} s of synthetic book) in "
          f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
    t0 = time.perf_counter()
    first_ours, out = run_ours(events)
    raw = _raw_loop()
    first_raw, final = run_raw(events, raw)
    print(f"first runs (numba compiles): ours {first_ours:.1f} s, raw {first_raw:.1f} s")
    m = out["metrics"]
    same = np.allclose(final, (m["final_position"], *_ours_balance_fee(out)), rtol=1e-9)
    print(f"same strategy: final position / balance / fee equal: {same} "
          f"({m['fills']:,} fills, {m['orders_submitted']:,} orders)")  # fmt: skip
    ours_s: list[float] = []
    raw_s: list[float] = []
    for _ in range(args.repeat):
        ours_s.append(run_ours(events)[0])
        raw_s.append(run_raw(events, raw)[0])
    o_med, r_med = statistics.median(ours_s), statistics.median(raw_s)
    # (events / ours) / (events / raw) of each back-to-back pair, then the median: a pair
    # shares the machine's load of its moment (it moves 2x here between moments)
    ratio = statistics.median(r / o for r, o in zip(raw_s, ours_s, strict=True))
    print(f"ours: median {o_med:.3f} s = {n / o_med:,.0f} events/s "
          f"(runs {', '.join(f'{s:.3f}' for s in ours_s)})")  # fmt: skip
    print(f"raw:  median {r_med:.3f} s = {n / r_med:,.0f} events/s "
          f"(runs {', '.join(f'{s:.3f}' for s in raw_s)})")  # fmt: skip
    meets = ratio >= TARGET_RATIO and same
    print(f"ratio of the medians: {r_med / o_med:.2f}")
    print(f"ours / raw (events/s), median of the pairs: {ratio:.2f} (target >= {TARGET_RATIO}): "
          f"{'meets' if meets else 'MISSES'}")  # fmt: skip
    return {
        "figure": f"tick_backtest node, ours/raw {ratio:.2f} (>= {TARGET_RATIO})",
        "figure_s": o_med,
        "target_s": r_med / TARGET_RATIO,
        "meets_target": meets,
        "events": n,
        "ratio": ratio,
    }


def _ours_balance_fee(out: dict[str, Any]) -> tuple[float, float]:
    """hftbacktest's balance and fee as the node's outputs give them back."""
    fills = out["orders"]
    signed = np.where(fills["side"] == "buy", 1.0, -1.0) * fills["units"].to_numpy()
    return float(-(signed * fills["price"].to_numpy()).sum()), float(fills["fee"].sum())


if __name__ == "__main__":
    main()
