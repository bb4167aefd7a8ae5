"""A tick backtest's chart data for the run page: mid price, position and inventory over time,
and the fills (docs/tick-backtest.md "In the web app").

The values are the ``tick_backtest`` step's own outputs in the artifact store (``equity``: one
row every ``record_interval_ms``; ``orders``: one row per fill), found through the run record
as :mod:`api.services.run_outputs` finds any output. The chart's time axis counts whole seconds
(lightweight-charts), so the records are grouped into buckets of whole seconds — more than one
when the run is long, so that at most ``max_points`` buckets are sent — keeping each bucket's
extremes: the mid as open / high / low / close, position and inventory as min / max / last. The
fills are sent one by one (up to ``max_fills``) with their exact times.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from api.errors import NotFound
from api.models.run import TickChart, TickFill
from api.services.run_outputs import DONE_STATES, artifact_path, read_ir
from flows.artifacts import ArtifactStore
from flows.spec import RunRecord, read_run_record

__all__ = ["MAX_FILLS", "MAX_POINTS", "bucket", "tick_chart", "tick_node"]

#: the node types whose results the chart draws (a built-in or a custom tick strategy)
TICK_NODES = ("tick_backtest", "tick_strategy_backtest")
MAX_POINTS = 5_000
MAX_FILLS = 20_000


def tick_node(run_dir: Path, record: RunRecord) -> str:
    """The tick step (``tick_backtest`` or ``tick_strategy_backtest``) to draw: the run's
    primary result when it is one, else the first one (pipeline order) that completed;
    :class:`NotFound` when there is none."""
    ir = read_ir(run_dir)
    steps = [n.id for n in (ir.nodes if ir else ()) if n.type in TICK_NODES]
    done = [s for s in steps if (n := record.nodes.get(s)) and n.state in DONE_STATES and n.key]
    if not done:
        why = "none completed" if steps else "the pipeline has none"
        raise NotFound(f"this run has no tick_backtest result to draw ({why})")
    return record.primary_metrics_node if record.primary_metrics_node in done else done[0]


def bucket(ts_ns: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Bucket times (ns, ascending): ``(starts, first_rows, seconds)`` — each non-empty bucket's
    start in UTC seconds, the row where it begins, and the width in whole seconds (the least
    that gives at most ``max_points`` buckets)."""
    if len(ts_ns) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), 1
    seconds = np.floor_divide(ts_ns, 1_000_000_000)
    span = int(seconds[-1] - seconds[0]) + 1
    width = max(1, -(-span // max(1, max_points)))
    ids = np.floor_divide(seconds, width)
    first = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    return ids[first] * width, first, width


def _nullable(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in values]


def _reduce(values: np.ndarray, first: np.ndarray) -> dict[str, np.ndarray]:
    """Per bucket (rows from ``first[i]``): first, min, max, last of ``values``, NaN skipped."""
    last = np.r_[first[1:], len(values)] - 1
    with np.errstate(invalid="ignore"):
        return {
            "open": values[first],
            "min": np.fmin.reduceat(values, first),
            "max": np.fmax.reduceat(values, first),
            "last": values[last],
        }


def _fills(path: Path, limit: int) -> tuple[list[TickFill], int]:
    frame = pq.read_table(path, columns=["ts", "side", "units", "price", "fee", "liquidity"])
    total = frame.num_rows
    rows = frame.slice(0, limit).to_pandas()
    stamps = pd.DatetimeIndex(rows["ts"])
    stamps = stamps.tz_localize("UTC") if stamps.tz is None else stamps.tz_convert("UTC")
    ns = stamps.asi8
    fills = [
        TickFill(
            ts=stamp.isoformat(),
            time_ms=int(t // 1_000_000),
            side=side,
            price=float(price),
            qty=float(qty),
            liquidity=liquidity,
            fee=float(fee) if np.isfinite(fee) else None,
        )
        for stamp, t, side, price, qty, liquidity, fee in zip(
            stamps,
            ns,
            rows["side"],
            rows["price"],
            rows["units"],
            rows["liquidity"],
            rows["fee"],
            strict=True,
        )
    ]
    return fills, total


def tick_chart(
    run_dir: Path, store: ArtifactStore, max_points: int = 2_000, max_fills: int = 5_000
) -> TickChart:
    """The chart data of the run's ``tick_backtest`` step (:func:`tick_node`)."""
    record = read_run_record(run_dir)
    if record is None:
        raise NotFound("the run has not started yet")
    node = tick_node(run_dir, record)
    equity = pq.read_table(artifact_path(record, store, node, "equity")).to_pandas()
    index = pd.DatetimeIndex(equity.index)
    ts_ns = (index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")).asi8
    starts, first, width = bucket(ts_ns, max_points)
    mid = _reduce(equity["mid"].to_numpy("float64"), first)
    position = _reduce(equity["position"].to_numpy("float64"), first)
    inventory = _reduce(equity["inventory"].to_numpy("float64"), first)
    fills, total = _fills(artifact_path(record, store, node, "orders"), max_fills)
    return TickChart(
        node=node,
        records=len(equity),
        bucket_s=width,
        time=[int(t) for t in starts],
        mid_open=_nullable(mid["open"]),
        mid_high=_nullable(mid["max"]),
        mid_low=_nullable(mid["min"]),
        mid_close=_nullable(mid["last"]),
        position_min=_nullable(position["min"]),
        position_max=_nullable(position["max"]),
        position_last=_nullable(position["last"]),
        inventory_min=_nullable(inventory["min"]),
        inventory_max=_nullable(inventory["max"]),
        inventory_last=_nullable(inventory["last"]),
        fills=fills,
        fills_total=total,
    )
