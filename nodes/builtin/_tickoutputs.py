"""A tick run's arrays shaped as the bar backtester's outputs (equity, orders, trades,
metrics) plus the order log and the fill statistics (docs/tick-backtest.md).

Accounting (a linear instrument, contract size 1), kept by the kernel from the logged fills
in a fixed order, so every process gets the same bits: ``balance`` (−Σ signed qty × price of
the fills) and ``fee`` (Σ fees, negative for rebates) apart; here
``cash = initial cash + balance − fee`` and ``equity = cash + position × mid``, marked at each
record. Fill fees are ``maker_fee_bps`` or ``taker_fee_bps`` / 1e4 × qty × price by the
fill's side of the book. Where orders fill whole, the account equals hftbacktest's own up to
rounding (checked: a warning otherwise); with partial fills hftbacktest's local account
counts only each order's last fill, ours every one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from nodes.builtin import _tickkernel as k
from nodes.builtin._tickcore import TickRun
from nodes.builtin.metrics import OrderArrays, TradeArrays, metrics_of
from nodes.builtin.tickbacktest import (
    EQUITY_COLUMNS,
    FILL_COLUMNS,
    FILL_METRIC_KEYS,
    ORDER_LOG_COLUMNS,
    TRADE_COLUMNS,
)
from nodes.errors import NodeError

if TYPE_CHECKING:
    from nodes.builtin.tickparams import TickVenueParams

__all__ = [
    "EQUITY_COLUMNS",
    "FILL_COLUMNS",
    "FILL_METRIC_KEYS",
    "ORDER_LOG_COLUMNS",
    "TRADE_COLUMNS",
    "shape",
]

# by hftbacktest's codes (and ours: 7 = still working when the data ended)
_STATUS = ("pending", "new", "expired", "filled", "cancelled", "partial", "rejected", "open")
_TIF = ("GTC", "GTX", "FOK", "IOC")


def _ts(ns: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(ns.astype("datetime64[ns]")).tz_localize("UTC")


def _ts_or_nat(ns: np.ndarray) -> pd.DatetimeIndex:
    out = ns.astype("datetime64[ns]")
    out[ns < 0] = np.datetime64("NaT")
    return pd.DatetimeIndex(out).tz_localize("UTC")


def _fill_order(run: TickRun) -> np.ndarray:
    """Fills in time order, ties by order id: one scan finds them in hash-map order."""
    return np.lexsort((run.fills_i[:, k.FI_ORDER], run.fills_i[:, k.FI_TS]))


def shape(run: TickRun, params: TickVenueParams, *, tables: bool = True) -> dict[str, Any]:
    """The outputs of ``tick_backtest`` from a run (``tables`` False: equity and metrics)."""
    if len(run.records_ts) == 0:
        raise NodeError(
            "tick_backtest: the book never had both a bid and an ask at a record time: "
            "nothing to mark the equity at (too little data for record_interval_ms?)"
        )
    fills_i = run.fills_i[_fill_order(run)]
    fills_f = run.fills_f[_fill_order(run)]
    maker = fills_i[:, k.FI_MAKER] == 1
    units, price = fills_f[:, k.FF_QTY], fills_f[:, k.FF_PRICE]
    rate = np.where(maker, params.maker_fee_bps, params.taker_fee_bps) / 1e4
    fee = rate * units * price
    equity = _equity(run, params.cash)
    trades = _round_trips(fills_i, units, price, fee, equity)
    metrics = metrics_of(
        equity["equity"].to_numpy(),
        equity.index,
        drawdown=equity["drawdown"].to_numpy(),
        position=equity["position"].to_numpy(),
        trades=TradeArrays(
            pnl=trades["pnl"].to_numpy(),
            ret=trades["return"].to_numpy(),
            is_open=trades["is_open"].to_numpy(),
        ),
        orders=OrderArrays(units=units, price=price, fee=fee),
        ppy=params.ppy,
        calendar=params.calendar if params.ppy is not None or params.calendar else "24x7",
    )
    metrics.update(_fill_metrics(run, fills_i, units, price, fee, maker, equity))
    metrics["warnings"].extend(_account_warnings(run, params, fills_i, maker))
    out: dict[str, Any] = {"equity": equity, "metrics": metrics}
    if tables:
        out["orders"] = _fills_frame(run, fills_i, units, price, fee, maker)
        out["trades"] = trades
        out["order_log"] = _order_log(run)
    return out


def _account_warnings(
    run: TickRun, params: TickVenueParams, fills_i: np.ndarray, maker: np.ndarray
) -> list[str]:
    """What a researcher must know about the account: taker fills hftbacktest reported
    together (priced at the last one's level), and, where every order fills whole, any
    difference from hftbacktest's own account beyond rounding."""
    out = []
    walked = (fills_i[:, k.FI_MERGED] == 1) & ~maker
    if walked.any():
        orders = np.unique(fills_i[walked, k.FI_ORDER])
        out.append(
            f"fills: {int(walked.sum())} taker fill row(s) (orders {_some(orders)}) each sum "
            "several fills hftbacktest reported together; a row is priced at the last fill's "
            "level, for an order walking the book the worst it reached (costs overstated, "
            "never understated)"
        )
    if params.exchange == "no_partial_fill":
        ours = (run.final_fee, run.final_balance, run.final_position)
        names = ("fee", "balance", "position")
        for name, a, b in zip(names, ours, run.venue, strict=True):
            if not np.isclose(a, b, rtol=1e-9, atol=1e-9):
                out.append(
                    f"account: the fills give a {name} of {a:.10g} but hftbacktest's account "
                    f"says {b:.10g}"
                )
    return out


def _some(ids: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in ids[:5])
    return shown + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def _equity(run: TickRun, cash0: float) -> pd.DataFrame:
    rf = run.records_f
    mid, position = rf[:, k.RF_MID], rf[:, k.RF_POSITION]
    cash = cash0 + rf[:, k.RF_BALANCE] - rf[:, k.RF_FEE]
    equity = cash + position * mid
    peak = np.maximum.accumulate(equity)
    returns = np.empty_like(equity)
    returns[0] = 0.0
    returns[1:] = equity[1:] / equity[:-1] - 1.0
    index = _ts(run.records_ts)
    index.name = "ts"
    block = np.column_stack(
        (
            equity,
            cash,
            position,
            equity / peak - 1.0,
            returns,
            mid,
            position * mid,
            rf[:, k.RF_BID],
            rf[:, k.RF_ASK],
        )
    )
    return pd.DataFrame(block, index=index, columns=list(EQUITY_COLUMNS))


def _fills_frame(
    run: TickRun,
    fi: np.ndarray,
    units: np.ndarray,
    price: np.ndarray,
    fee: np.ndarray,
    maker: np.ndarray,
) -> pd.DataFrame:
    submit = run.orders_i[fi[:, k.FI_ORDER] - 1, k.OI_SUBMIT]
    return pd.DataFrame(
        {
            "ts": _ts(fi[:, k.FI_TS]),
            "side": _labels(fi[:, k.FI_SIDE] > 0, "buy", "sell"),
            "units": units,
            "price": price,
            "fee": fee,
            "order_id": fi[:, k.FI_ORDER],
            "liquidity": _labels(maker, "maker", "taker"),
            "submit_ts": _ts(submit),
            "queue_time_ms": (fi[:, k.FI_TS] - submit) / 1e6,
            "seen_ts": _ts(fi[:, k.FI_SEEN]),
        },
        columns=list(FILL_COLUMNS),
    )


def _order_log(run: TickRun) -> pd.DataFrame:
    oi, of = run.orders_i, run.orders_f
    return pd.DataFrame(
        {
            "order_id": oi[:, k.OI_ID],
            "submit_ts": _ts(oi[:, k.OI_SUBMIT]),
            "side": _labels(oi[:, k.OI_SIDE] > 0, "buy", "sell"),
            "price": of[:, k.OF_PRICE],
            "qty": of[:, k.OF_QTY],
            "time_in_force": _decode(oi[:, k.OI_TIF].astype(np.int8), _TIF),
            "status": _decode(oi[:, k.OI_STATUS].astype(np.int8), _STATUS),
            "filled_qty": of[:, k.OF_FILLED],
            "first_fill_ts": _ts_or_nat(oi[:, k.OI_FIRST_FILL]),
            "last_fill_ts": _ts_or_nat(oi[:, k.OI_LAST_FILL]),
            "cancel_ts": _ts_or_nat(oi[:, k.OI_CANCEL]),
            "queue_ahead": of[:, k.OF_AHEAD],
        },
        columns=list(ORDER_LOG_COLUMNS),
    )


def _round_trips(
    fi: np.ndarray, units: np.ndarray, price: np.ndarray, fee: np.ndarray, equity: pd.DataFrame
) -> pd.DataFrame:
    """Round trips from flat to flat (a flip closes one and opens the next at the same fill,
    the fill's fee split by units); adding or reducing stays in the trade, prices are
    volume-weighted; a trade still open is marked at the last mid (``is_open``)."""
    from nodes.builtin._tickfast import trips

    signed = np.where(fi[:, k.FI_SIDE] > 0, units, -units)
    ti, tf = trips(
        fi[:, k.FI_TS], signed, price, fee, equity.index[-1].value, equity["mid"].iloc[-1]
    )
    return pd.DataFrame(
        {
            "entry_ts": _ts(ti[:, 0]),
            "exit_ts": _ts(ti[:, 1]),
            "side": _labels(ti[:, 2] > 0, "long", "short"),
            "units": tf[:, 0],
            "entry_price": tf[:, 1],
            "exit_price": tf[:, 2],
            "fees": tf[:, 3],
            "pnl": tf[:, 4],
            "return": tf[:, 4] / tf[:, 5],
            "fills": ti[:, 3],
            "is_open": ti[:, 4].astype(bool),
        },
        columns=list(TRADE_COLUMNS),
    )


def _labels(mask: np.ndarray, yes: str, no: str) -> Any:
    return _decode(mask.astype(np.int8), (no, yes))


def _decode(codes: np.ndarray, labels: tuple[str, ...]) -> Any:
    """A string column from small integer codes, through an Arrow dictionary (much faster
    than building strings one by one)."""
    import pyarrow as pa

    array = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(labels))
    return pd.array(array.dictionary_decode(), dtype="str")


def _fill_metrics(
    run: TickRun,
    fi: np.ndarray,
    units: np.ndarray,
    price: np.ndarray,
    fee: np.ndarray,
    maker: np.ndarray,
    equity: pd.DataFrame,
) -> dict[str, Any]:
    oi = run.orders_i
    n_orders = len(oi)
    filled = int((run.orders_f[:, k.OF_FILLED] > 0).sum()) if n_orders else 0
    queue = (fi[:, k.FI_TS] - oi[fi[:, k.FI_ORDER] - 1, k.OI_SUBMIT]) / 1e6 if len(fi) else None
    return {
        "events": run.events,
        "orders_submitted": n_orders,
        "orders_filled": filled,
        "orders_cancelled": int((oi[:, k.OI_STATUS] == 4).sum()) if n_orders else 0,
        "fill_ratio": filled / n_orders if n_orders else None,
        "fills": len(fi),
        "maker_fills": int(maker.sum()),
        "taker_fills": int((~maker).sum()),
        "maker_fees": float(fee[maker].sum()),
        "taker_fees": float(fee[~maker].sum()),
        "traded_units": float(units.sum()),
        "traded_value": float((units * price).sum()),
        "queue_time_mean_ms": float(queue.mean()) if queue is not None else None,
        "queue_time_median_ms": float(np.median(queue)) if queue is not None else None,
        "max_abs_inventory": _max_abs_inventory(fi, units, equity),
        "final_position": run.final_position,
    }


def _max_abs_inventory(fi: np.ndarray, units: np.ndarray, equity: pd.DataFrame) -> float:
    """The largest |position| ever held: the position changes only at fills, so the running
    sum of the signed fills is exact (the records only sample it)."""
    path = np.cumsum(np.where(fi[:, k.FI_SIDE] > 0, units, -units)) if len(fi) else np.zeros(1)
    return float(max(np.abs(path).max(), np.abs(equity["position"].to_numpy()).max()))
