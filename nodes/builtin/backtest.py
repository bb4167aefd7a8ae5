"""The single-asset bar backtest node (rules: docs/backtest.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import Field

from nodes.base import Node, Port, PortType, register
from nodes.builtin.metrics import (
    METRIC_KEYS,
    TEXT_METRIC_KEYS,
    AnnualisationParams,
    OrderArrays,
    TradeArrays,
    log_metric_notes,
    metrics_of,
)
from nodes.errors import NodeError
from nodes.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
else:
    np = lazy_module("numpy", globals(), "np")
    pd = lazy_module("pandas", globals(), "pd")
    pa = lazy_module("pyarrow", globals(), "pa")

__all__ = [
    "EQUITY_COLUMNS",
    "EXIT_REASONS",
    "ORDER_COLUMNS",
    "TRADE_COLUMNS",
    "Backtest",
    "BacktestParams",
    "align_signal",
    "run_backtest",
]

EQUITY_COLUMNS = ("equity", "cash", "position", "drawdown")
TRADE_COLUMNS = (
    "entry_ts",
    "exit_ts",
    "side",
    "units",
    "entry_price",
    "exit_price",
    "fees",
    "pnl",
    "return",
    "bars_held",
    "is_open",
)
ORDER_COLUMNS = ("ts", "side", "units", "price", "fee", "target")
#: the trades' ``exit_reason`` (a column only when stops are set), by the kernel's code
EXIT_REASONS = ("signal", "stop_loss", "take_profit", "open")


class BacktestParams(AnnualisationParams):
    """Capital, costs and sizing of the backtest; ``ppy`` / ``calendar`` for its metrics.

    Fees and slippage stop at 1,000 bps (10 %, backtesting.py's bound too): the fee-inclusive
    sizing divides by 1 - fee, and a 100 % slippage would fill sells at zero.
    """

    cash: float = Field(100_000.0, gt=0, description="Starting cash.")
    fee_bps: float = Field(
        0.0, ge=0, le=1_000, description="Fee per fill, in basis points of the traded notional."
    )
    slippage_bps: float = Field(
        0.0,
        ge=0,
        le=1_000,
        description="Fill price moved against you on every fill, in basis points of the open.",
    )
    lot_size: float | None = Field(
        None, gt=0, description="Units are rounded toward zero to a multiple of this."
    )
    risk_free: float = Field(
        0.0, ge=-1, le=1, description="Annual risk-free rate for Sharpe and Sortino."
    )
    stop_loss_bps: float | None = Field(
        None,
        gt=0,
        le=10_000,
        description="Close a trade within the first later bar whose low (long) / high (short) "
        "reaches this far past its entry price, in basis points; needs high and low.",
    )
    take_profit_bps: float | None = Field(
        None,
        gt=0,
        le=1_000_000,
        description="Close a trade within the first later bar whose high (long) / low (short) "
        "reaches this far in its favour from its entry price, in basis points; needs high and "
        "low.",
    )


def align_signal(signal: Any, index: pd.DatetimeIndex) -> np.ndarray:
    """The signal as float64 on the data's bars.

    Leading NaN (indicator warm-up) become 0. Any later NaN — including a data bar the signal
    lacks — a timestamp not in the data, or a value outside [-1, 1] raises :class:`NodeError`
    naming the first offending timestamp.
    """
    if not isinstance(signal, pd.Series) or not pd.api.types.is_numeric_dtype(signal.dtype):
        raise NodeError(f"backtest: signal must be a numeric series, got {type(signal).__name__}")
    if signal.index.equals(index):
        values = signal.to_numpy(dtype="float64", copy=True)
    else:
        if not signal.index.is_unique:
            dup = signal.index[signal.index.duplicated()][0]
            raise NodeError(f"backtest: the signal has two values at {dup}")
        extra = signal.index.difference(index)
        if len(extra):
            raise NodeError(
                f"backtest: the signal has {len(extra)} timestamp(s) not in the data, "
                f"first {extra[0]}; compute it from the same bars"
            )
        values = signal.reindex(index).to_numpy(dtype="float64", copy=True)
    nan = np.isnan(values)
    if nan.any():
        lead = int(np.argmin(nan)) if not nan.all() else len(values)
        if nan[lead:].any():
            bad = lead + int(np.argmax(nan[lead:]))
            raise NodeError(
                f"backtest: the signal is NaN (or missing) at {index[bad]} after it started; "
                "only leading warm-up NaN are allowed (they count as 0)"
            )
        values[:lead] = 0.0
    out_of_range = np.abs(values) > 1.0 + 1e-9
    if out_of_range.any():
        bad = int(np.argmax(out_of_range))
        raise NodeError(f"backtest: signal {values[bad]} at {index[bad]} is outside [-1, 1]")
    return np.clip(values, -1.0, 1.0, out=values)  # our own copy


def _check_data(data: Any) -> pd.DataFrame:
    if not isinstance(data, pd.DataFrame) or not {"open", "close"} <= set(data.columns):
        raise NodeError("backtest: data must be an ohlcv table with open and close columns")
    if not isinstance(data.index, pd.DatetimeIndex) or len(data) == 0:
        raise NodeError("backtest: data must have bars indexed by timestamp")
    if not (data.index.is_monotonic_increasing and data.index.is_unique):
        raise NodeError("backtest: data timestamps must be increasing and unique (one symbol)")
    return data


def run_backtest(
    data: pd.DataFrame, signal: pd.Series, params: BacktestParams, *, tables: bool = True
) -> dict[str, Any]:
    """Equity, trades, orders and metrics of trading ``signal`` on ``data``; without
    ``tables``, equity and metrics only (the same metrics, computed from the simulation's
    arrays without building the trades and orders tables: what a sweep's trial reads)."""
    from nodes.builtin._kernel import simulate_for, simulate_stops_for

    data = _check_data(data)
    index = data.index
    target = align_signal(signal, index)
    open_ = data["open"].to_numpy(dtype="float64")
    close = data["close"].to_numpy(dtype="float64")
    if not (np.isfinite(open_).all() and np.isfinite(close).all()):
        raise NodeError("backtest: open and close must be finite (load data with a loader node)")
    lot = params.lot_size if params.lot_size is not None else 0.0
    fee, slip = params.fee_bps / 1e4, params.slippage_bps / 1e4
    stops = params.stop_loss_bps is not None or params.take_profit_bps is not None
    if stops:
        high, low = _high_low(data)
        sl = (params.stop_loss_bps or 0.0) / 1e4
        tp = (params.take_profit_bps or 0.0) / 1e4
        res = simulate_stops_for(len(open_))(
            open_, high, low, close, target, params.cash, fee, slip, lot, sl, tp
        )
    else:
        res = simulate_for(len(open_))(open_, close, target, params.cash, fee, slip, lot)
    curve = res[0]
    equity, position, drawdown = curve[0], curve[2], curve[3]
    # one float block on the kernel's (4, n) array: no copy (the table is read, never written)
    equity_frame = pd.DataFrame(curve.T, index=index, columns=_equity_columns(), copy=False)
    o_units, o_price, o_fee = res[2], res[3], res[4]
    t_units, t_entry_px, t_exit_px, t_fees, t_pnl, t_open = res[9:15]
    metrics = metrics_of(
        equity,
        index,
        drawdown=drawdown,
        position=position,
        trades=TradeArrays(
            pnl=t_pnl,
            ret=t_pnl / (t_units * t_entry_px),
            is_open=t_open.astype(bool),
            units=t_units,
            entry_price=t_entry_px,
            exit_price=t_exit_px,
            fees=t_fees,
        ),
        orders=OrderArrays(units=np.abs(o_units), price=o_price, fee=o_fee),
        ppy=params.ppy,
        risk_free=params.risk_free,
        calendar=params.calendar,
    )
    skipped = _lot_warning(index, params.lot_size, *res[15:18])
    if skipped is not None:
        metrics["warnings"] = [skipped, *metrics["warnings"]]
    out: dict[str, Any] = {"equity": equity_frame, "metrics": metrics}
    if tables:
        out["orders"] = _orders_frame(index, *res[1:6])
        out["trades"] = _trades_frame(index, *res[6:15])
        if stops:
            reason = np.where(res[14], 3, res[18]).astype(np.int8)
            names = np.array(EXIT_REASONS, dtype=object)[reason]
            out["trades"]["exit_reason"] = pd.array(names, dtype="str")
    return out


def _high_low(data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    if not {"high", "low"} <= set(data.columns):
        raise NodeError("backtest: stop_loss_bps / take_profit_bps need high and low columns")
    high = data["high"].to_numpy(dtype="float64")
    low = data["low"].to_numpy(dtype="float64")
    if not (np.isfinite(high).all() and np.isfinite(low).all()):
        raise NodeError("backtest: high and low must be finite for stop_loss_bps / take_profit_bps")
    return high, low


_EQUITY_INDEX: list[pd.Index] = []


def _equity_columns() -> pd.Index:
    """The equity table's column labels, built once: a string index is an Arrow array, and
    building one per backtest is a measurable share of a sweep trial."""
    if not _EQUITY_INDEX:
        _EQUITY_INDEX.append(pd.Index(EQUITY_COLUMNS))
    return _EQUITY_INDEX[0]


def _lot_warning(
    index: pd.DatetimeIndex,
    lot: float | None,
    bars: np.ndarray,
    lot_value: np.ndarray,
    equity: np.ndarray,
) -> str | None:
    """The warning for target changes that gave no order because of ``lot_size``, or None."""
    if lot is None or len(bars) == 0:
        return None
    return (
        f"lot_size={lot:g}: {len(bars)} signal change(s) gave no order because the change was "
        f"smaller than one lot (first at {index[bars[0]].isoformat()}, where one lot cost "
        f"{lot_value[0]:,.2f} and the equity was {equity[0]:,.2f})"
    )


def _labels(mask: np.ndarray, yes: str, no: str) -> pd.api.extensions.ExtensionArray:
    # a string column from a mask, through an Arrow dictionary (3x faster than from numpy str)
    codes = pa.array(mask.astype(np.int8))
    labels = pa.DictionaryArray.from_arrays(codes, pa.array([no, yes])).dictionary_decode()
    return pd.array(labels, dtype="str")


def _orders_frame(
    index: pd.DatetimeIndex,
    bar: np.ndarray,
    units: np.ndarray,
    price: np.ndarray,
    fee: np.ndarray,
    target: np.ndarray,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts": index[bar],
            "side": _labels(units > 0, "buy", "sell"),
            "units": np.abs(units),
            "price": price,
            "fee": fee,
            "target": target,
        }
    )


def _trades_frame(
    index: pd.DatetimeIndex,
    entry: np.ndarray,
    exit_: np.ndarray,
    side: np.ndarray,
    units: np.ndarray,
    entry_px: np.ndarray,
    exit_px: np.ndarray,
    fees: np.ndarray,
    pnl: np.ndarray,
    is_open: np.ndarray,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "entry_ts": index[entry],
            "exit_ts": index[exit_],
            "side": _labels(side > 0, "long", "short"),
            "units": units,
            "entry_price": entry_px,
            "exit_price": exit_px,
            "fees": fees,
            "pnl": pnl,
            "return": pnl / (units * entry_px),
            "bars_held": (exit_ - entry).astype("int64"),
            "is_open": is_open.astype(bool),
        },
        columns=list(TRADE_COLUMNS),
    )


@register
class Backtest(Node):
    """Single-asset bar backtest of a target-position signal, with fees and slippage.

    Rules:

    - The signal is the target position as a fraction of equity in [-1, 1] (1 = all equity
      long, -1 = all equity short). It must share the data's timestamps; leading NaN (warm-up)
      count as 0, any later NaN is an error.
    - No look-ahead: the signal of bar t is executed at the **open of bar t+1**. The last bar's
      signal is never executed.
    - Orders happen only when the signal changes (the first bar counts as a change from 0);
      between changes the position is not rebalanced.
    - Fill price = open × (1 + slippage_bps/1e4) for buys, × (1 − slippage_bps/1e4) for sells,
      on every fill. Fee = fee_bps/1e4 × |units × fill price|, paid from cash, on every fill.
    - Size, fee included: the new position's value at the fill is |signal| × the equity left
      after this order's fee (equity = cash + units × fill). A full long spends the cash
      exactly, so cash never goes negative on a long target (as in backtesting.py and
      vectorbt); without costs it is signal × equity / open.
    - Units are fractional unless ``lot_size`` is set (then rounded toward zero to a multiple);
      a signal change smaller than one lot gives no order and a warning (metrics and log).
    - Shorts are allowed, without leverage (|signal| ≤ 1 of the equity). Margin, borrow costs,
      interest on cash and liquidation are **not modelled** in v1; a losing short can take
      equity below zero.
    - Equity is marked at every bar's close: cash + units × close.
    - A trade is a round trip from flat to flat; a flip (long → short) closes one trade and opens
      another at the same fill (the fill's fee is split by units). Adding to or reducing a
      position stays in the trade (volume-weighted prices). A position still open at the end is
      a trade with ``is_open`` true, marked at the last close, and is left out of the trade
      metrics (num_trades, win_rate, profit_factor, avg_trade_return).
    - Optional ``stop_loss_bps`` / ``take_profit_bps`` (need high and low): from the bar after
      a trade's entry fill, a long exits within the first bar whose low reaches entry ×
      (1 − stop) at that price, or at the open if the bar opens below it; else within the first
      bar whose high reaches entry × (1 + take) (at the open if it opens above). A bar reaching
      both exits at the stop. Shorts mirror this. Slippage and fee apply as on every fill; then
      the position stays flat until the signal leaves that side (0 or the other side). The
      trades get an ``exit_reason`` column (signal, stop_loss, take_profit, open).

    Outputs: ``equity`` (equity, cash, position in units, drawdown per bar), ``trades``,
    ``metrics`` (as the ``metrics`` node: periods per year from ``ppy``, else ``calendar``, else
    inferred; ``ppy_source``, ``notes`` and ``warnings`` say how and why, and the log repeats
    them), ``orders`` (ts, side, units, price, fee, target). Details and peer comparisons:
    docs/backtest.md.
    """

    name = "backtest"
    category = "backtest"
    panel_hint = "for several symbols with shared capital use portfolio_backtest(data, weights)"
    summary = "Bar backtest of a target-position signal"
    inputs = (
        Port("data", PortType.OHLCV, "the bars traded (open for fills, close for marking)"),
        Port("signal", PortType.SIGNAL, "target position in [-1, 1] per bar"),
    )
    outputs = (
        Port("equity", PortType.EQUITY, "equity curve marked at closes", columns=EQUITY_COLUMNS),
        Port("trades", PortType.TRADES, "round-trip trades", columns=TRADE_COLUMNS),
        Port("metrics", PortType.METRICS, "performance metrics"),
        Port("orders", PortType.ORDERS, "fills", columns=ORDER_COLUMNS),
    )
    params_model = BacktestParams
    metric_keys = METRIC_KEYS
    text_metric_keys = TEXT_METRIC_KEYS

    def run(self, inputs: Mapping[str, Any], params: BacktestParams) -> dict[str, Any]:
        """Simulate and report (how ppy was chosen, warnings and notes go to the node's log)."""
        wanted = self.ctx.outputs
        tables = wanted is None or not wanted.isdisjoint({"trades", "orders"})
        out = run_backtest(inputs["data"], inputs["signal"], params, tables=tables)
        log_metric_notes(self.ctx.log, out["metrics"])
        return out
