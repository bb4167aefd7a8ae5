"""A finished run's series beyond its equity curve: the traded prices, the buy-and-hold
benchmark, monthly returns and the equity CSV, computed from the files the run left.

Everything is read from the run directory (``prices.parquet`` and ``market.json`` are written
by :mod:`flows.results`; ``ir.json`` is the IR that ran), which never changes once the run has
ended, so a series shown is always the run's own. A run without these files (a pipeline with
no backtest, or a run from before they existed) gets a note saying so instead of a series.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pydantic import ValidationError

from api.models.run import Benchmark, EquityPoint, MonthlyReturns, PriceBar, RunAnalysis
from api.services.run_files import MAX_CHART_POINTS, chart_indices
from dsl.ir import PipelineIR
from nodes.base import registry

__all__ = [
    "Market",
    "analysis",
    "benchmark_equity",
    "equity_csv_chunks",
    "load_market",
    "monthly_returns",
    "panel_symbols",
    "read_equity",
]

NO_PRICES = (
    "No price data in this run: its results do not come from a backtest of an OHLCV data "
    "node (or the run is older than the price chart)."
)
BENCHMARK_NOTE = (
    "Buy and hold of the same bars with the same starting cash {cash}: one buy at the open of "
    "the second bar (where a signal set on the first bar is executed), paying this run's fee "
    "({fee} bps) and slippage ({slip} bps) once; never sold, marked at every close."
)
PANEL_PRICES = (
    "A multi-symbol run ({n} symbols): no single price chart; the weights and the contribution "
    "per symbol are below, and the Datasets page previews any symbol's bars."
)
PANEL_BENCHMARK = "No benchmark: buy and hold is drawn for single-symbol runs only."
_DAY_S = 86_400.0
_CSV_CHUNK = 50_000


@dataclass(frozen=True)
class Market:
    """The bars a run's backtest traded and the costs it traded them with."""

    prices: pd.DataFrame  # open, high, low, close indexed by ts
    cash: float
    fee_bps: float
    slippage_bps: float


def read_equity(run_dir: Path) -> pd.DataFrame | None:
    """The run's equity curve (equity, cash, position, drawdown by ts), None when it has none."""
    path = run_dir / "equity.parquet"
    if not path.exists():
        return None
    frame = pd.read_parquet(path)
    if "equity" not in frame.columns or not isinstance(frame.index, pd.DatetimeIndex):
        return None
    if "drawdown" not in frame.columns:
        equity = frame["equity"].to_numpy(dtype="float64")
        frame["drawdown"] = equity / np.maximum.accumulate(equity) - 1.0
    return frame


def load_market(run_dir: Path, equity: pd.DataFrame | None) -> Market | None:
    """The run's prices and backtest costs, None when the run stored no prices."""
    path, meta_path = run_dir / "prices.parquet", run_dir / "market.json"
    if not path.exists() or not meta_path.exists():
        return None
    present = set(pq.read_schema(path).names)
    if "close" not in present:
        return None
    cols = [c for c in ("open", "high", "low", "close") if c in present]
    prices = pd.read_parquet(path, columns=cols).astype("float64")
    close = prices["close"]
    for col in ("open", "high", "low"):
        if col not in prices.columns:
            prices[col] = close
    prices = prices[["open", "high", "low", "close"]]
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    params = _backtest_params(run_dir, str(meta.get("backtest_node", "")))
    cash = params.get("cash")
    if not isinstance(cash, int | float) and equity is not None and len(equity):
        cash = float(equity["equity"].iloc[0])  # a bar backtest holds nothing at the first close
    if not isinstance(cash, int | float):
        return None
    return Market(
        prices=prices,
        cash=float(cash),
        fee_bps=float(params.get("fee_bps") or 0.0),
        slippage_bps=float(params.get("slippage_bps") or 0.0),
    )


def _backtest_params(run_dir: Path, node_id: str) -> dict[str, Any]:
    """The backtest node's params as it ran (defaults filled in for a built-in node)."""
    try:
        ir = PipelineIR.from_json((run_dir / "ir.json").read_text(encoding="utf-8"))
        node = ir.node(node_id)
    except (FileNotFoundError, ValueError, KeyError):
        return {}
    params = dict(node.params)
    if node.runtime == "builtin" and node.type in registry():
        try:
            model = registry().get(node.type).params_model.model_validate(params)
        except ValidationError:
            return params
        return {**model.model_dump(), **params}
    return params


def benchmark_equity(
    prices: pd.DataFrame, cash: float, fee_bps: float, slippage_bps: float
) -> np.ndarray:
    """Buy-and-hold equity at every close: flat on the first bar, then all the cash buys at the
    second bar's open (fill = open × (1 + slippage), units sized so that units × fill plus the
    fee is the cash, as the backtest sizes a signal of 1) and is marked at each close."""
    close = prices["close"].to_numpy(dtype="float64")
    out = np.full(len(close), cash, dtype="float64")
    if len(close) < 2:
        return out
    fill = float(prices["open"].iloc[1]) * (1.0 + slippage_bps / 1e4)
    units = cash / (fill * (1.0 + fee_bps / 1e4))
    out[1:] = cash - units * fill * (1.0 + fee_bps / 1e4) + units * close[1:]
    return out


def _summary(index: pd.DatetimeIndex, equity: np.ndarray, cash: float) -> dict[str, float | None]:
    """total_return, cagr and max_drawdown as docs/backtest.md defines them."""
    total = equity[-1] / cash - 1.0
    years = (index[-1] - index[0]).total_seconds() / (365.25 * _DAY_S) if len(index) > 1 else 0
    ratio = equity[-1] / cash
    cagr = ratio ** (1.0 / years) - 1.0 if years > 0 and ratio > 0 else None
    dd = float(np.min(equity / np.maximum.accumulate(equity) - 1.0))
    return {"total_return": _clean(total), "cagr": _clean(cagr), "max_drawdown": _clean(dd)}


def monthly_returns(equity: pd.Series) -> list[MonthlyReturns]:
    """Per calendar month: the last equity of the month over the last equity of the month
    before (over the first equity, for the first month) minus 1; a year's total compounds its
    months. Months in the index's own time zone (UTC for the loaders)."""
    if len(equity) == 0:
        return []
    index = pd.DatetimeIndex(equity.index)
    values = equity.to_numpy(dtype="float64")
    keys = index.year * 12 + (index.month - 1)
    last = np.flatnonzero(np.r_[keys[1:] != keys[:-1], True])  # last bar of each month
    ends = values[last]
    starts = np.r_[values[0], ends[:-1]]
    rets = ends / starts - 1.0
    rows: dict[int, MonthlyReturns] = {}
    for key, ret in zip(keys[last].tolist(), rets.tolist(), strict=True):
        year, month = divmod(int(key), 12)
        row = rows.setdefault(year, MonthlyReturns(year=year, months=[None] * 12, total=None))
        row.months[month] = _clean(ret)
    for row in rows.values():
        growth = [1.0 + m for m in row.months if m is not None]
        row.total = _clean(math.prod(growth) - 1.0) if growth else None
    return [rows[y] for y in sorted(rows)]


def analysis(run_dir: Path, max_points: int = MAX_CHART_POINTS) -> RunAnalysis:
    """Prices (as at most ``max_points`` candles), benchmark (at the equity chart's
    timestamps) and monthly returns of the run in ``run_dir``."""
    equity = read_equity(run_dir)
    market = load_market(run_dir, equity)
    out = RunAnalysis(prices=[], monthly=[])
    if equity is None or len(equity) == 0:
        out.monthly_note = "No equity curve in this run, so no monthly returns."
    else:
        out.monthly = monthly_returns(equity["equity"])
    symbols = panel_symbols(run_dir)
    if symbols > 1:
        out.prices_note = PANEL_PRICES.format(n=symbols)
        out.benchmark_note = PANEL_BENCHMARK
        return out
    if market is None:
        out.prices_note = NO_PRICES
        out.benchmark_note = "No benchmark: " + NO_PRICES[0].lower() + NO_PRICES[1:]
        return out
    out.price_bars = len(market.prices)
    out.prices, out.bars_per_candle = _candles(market.prices, max_points)
    out.benchmark, out.benchmark_note = _benchmark(market, equity, max_points)
    return out


def panel_symbols(run_dir: Path) -> int:
    """How many symbols the run's stored bars hold (0 or 1: a single-symbol run)."""
    path = run_dir / "prices.parquet"
    if not path.exists() or "symbol" not in pq.read_schema(path).names:
        return 0
    symbols = pq.read_table(path, columns=["symbol"]).column("symbol")
    return len(pc.unique(symbols))


def _benchmark(
    market: Market, equity: pd.DataFrame | None, max_points: int
) -> tuple[Benchmark | None, str | None]:
    if equity is None or not market.prices.index.equals(equity.index):
        return None, "No benchmark: the stored prices are not on the equity curve's bars."
    if len(market.prices) < 2:
        return None, "No benchmark: buy and hold needs at least two bars."
    bench = benchmark_equity(market.prices, market.cash, market.fee_bps, market.slippage_bps)
    drawdown = bench / np.maximum.accumulate(bench) - 1.0
    strat = equity["equity"].to_numpy(dtype="float64")
    idx = chart_indices(strat, equity["drawdown"].to_numpy(dtype="float64"), max_points)
    stamps = pd.DatetimeIndex(equity.index)[idx].to_pydatetime()
    points = [
        EquityPoint(ts=ts, equity=_clean(e) or 0.0, drawdown=_clean(d) or 0.0)
        for ts, e, d in zip(stamps, bench[idx].tolist(), drawdown[idx].tolist(), strict=True)
    ]
    note = BENCHMARK_NOTE.format(
        cash=f"{market.cash:,.2f}", fee=f"{market.fee_bps:g}", slip=f"{market.slippage_bps:g}"
    )
    stats = _summary(pd.DatetimeIndex(equity.index), bench, market.cash)
    return (
        Benchmark(
            cash=market.cash,
            fee_bps=market.fee_bps,
            slippage_bps=market.slippage_bps,
            note=note,
            equity=points,
            total_return=stats["total_return"],
            cagr=stats["cagr"],
            max_drawdown=stats["max_drawdown"],
        ),
        None,
    )


def _candles(prices: pd.DataFrame, max_points: int) -> tuple[list[PriceBar], int]:
    """Every bar, or runs of ``size`` bars merged into one candle (first open, highest high,
    lowest low, last close, at the first bar's time) so that at most ``max_points`` remain."""
    n = len(prices)
    size = max(1, -(-n // max_points))
    values = prices.to_numpy(dtype="float64")
    stamps = pd.DatetimeIndex(prices.index)
    if size > 1:
        groups = np.arange(n) // size
        frame = pd.DataFrame(values, columns=["open", "high", "low", "close"])
        merged = frame.groupby(groups).agg(
            {"open": "first", "high": "max", "low": "min", "close": "last"}
        )
        values = merged.to_numpy(dtype="float64")
        stamps = stamps[np.arange(0, n, size)]
    bars = []
    for ts, (o, h, lo, c) in zip(stamps.to_pydatetime(), values.tolist(), strict=True):
        if all(math.isfinite(v) for v in (o, h, lo, c)):
            bars.append(PriceBar(ts=ts, open=o, high=h, low=lo, close=c))
    return bars, size


def equity_csv_chunks(run_dir: Path) -> Iterator[str]:
    """The equity curve as CSV, a chunk of rows at a time: ts (ISO 8601, UTC), the
    equity file's columns (equity, cash, position, drawdown), then close and benchmark_equity
    when the run stored prices. Numbers are written so that they read back exactly."""
    equity = read_equity(run_dir)
    if equity is None:
        yield "ts,equity,drawdown\n"
        return
    frame = equity.copy()
    market = load_market(run_dir, equity)
    if market is not None and market.prices.index.equals(frame.index):
        frame["close"] = market.prices["close"].to_numpy()
        frame["benchmark_equity"] = benchmark_equity(
            market.prices, market.cash, market.fee_bps, market.slippage_bps
        )
    stamps = _iso(pd.DatetimeIndex(frame.index))
    yield ",".join(["ts", *map(str, frame.columns)]) + "\n"
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    for start in range(0, len(frame), _CSV_CHUNK):
        part = frame.iloc[start : start + _CSV_CHUNK]
        columns = {"ts": stamps.slice(start, _CSV_CHUNK)}
        columns |= {str(c): pa.array(part[c].to_numpy(), from_pandas=True) for c in part.columns}
        out = io.BytesIO()
        # Arrow writes each float's shortest exact form (reads back bit for bit), a missing
        # value empty: what pandas' to_csv writes, ten times faster on a million bars
        pacsv.write_csv(pa.table(columns), out, write_options=options)
        yield out.getvalue().decode()


def _iso(index: pd.DatetimeIndex) -> pa.Array:
    """ISO 8601 strings, ``Z`` for UTC, to the second unless the bars need finer (Arrow's
    cast: 2x numpy's ``datetime_as_string``, 5x pandas' own formatting on a million bars)."""
    values = index.as_unit("ns").asi8
    unit = "s" if (values % 1_000_000_000 == 0).all() else "ns"
    naive = index.tz_convert("UTC").tz_localize(None) if index.tz is not None else index
    text = pc.cast(pa.array(naive.as_unit(unit)), pa.string())
    text = pc.replace_substring(text, " ", "T", max_replacements=1)
    if index.tz is not None:
        text = pc.binary_join_element_wise(text, pa.scalar("Z"), "")
    return text


def _clean(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None
