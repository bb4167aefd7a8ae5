"""The portfolio backtest's output tables, built from the kernel's arrays (columns and
meanings: docs/backtest.md#portfolio-backtest)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nodes.builtin import _pkernel as K
from nodes.builtin._portfolio_inputs import Panel
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
    "CONTRIBUTION_COLUMNS",
    "EQUITY_COLUMNS",
    "ORDER_COLUMNS",
    "TRADE_COLUMNS",
    "contribution_frame",
    "orders_frame",
    "trades_frame",
]

EQUITY_COLUMNS = ("equity", "cash", "gross_exposure", "net_exposure", "leverage", "drawdown")
TRADE_COLUMNS = (
    "symbol", "entry_ts", "exit_ts", "side", "units", "entry_price", "exit_price", "fees",
    "borrow_cost", "pnl", "return", "bars_held", "is_open",
)  # fmt: skip
ORDER_COLUMNS = ("ts", "symbol", "side", "units", "price", "fee", "notional", "target")
CONTRIBUTION_COLUMNS = ("symbol", "pnl", "contribution", "fees", "borrow_cost", "trades")


def _labels(codes: np.ndarray, names: list[str]) -> pd.api.extensions.ExtensionArray:
    """A string column of ``names[code]``, through an Arrow dictionary (far faster than from a
    numpy array of Python strings)."""
    array = pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(names))
    return pd.array(array.dictionary_decode(), dtype="str")


def orders_frame(panel: Panel, rows: np.ndarray) -> pd.DataFrame:
    """Every fill, from the kernel's order rows."""
    units, price = rows[:, K.O_UNITS], rows[:, K.O_PRICE]
    return pd.DataFrame(
        {
            "ts": panel.index[rows[:, K.O_BAR].astype(np.int64)],
            "symbol": _labels(rows[:, K.O_SYM], panel.symbols),
            "side": _labels(units > 0, ["sell", "buy"]),
            "units": np.abs(units),
            "price": price,
            "fee": rows[:, K.O_FEE],
            "notional": np.abs(units) * price,
            "target": rows[:, K.O_TARGET],
        },
        columns=list(ORDER_COLUMNS),
    )


def trades_frame(panel: Panel, rows: np.ndarray) -> pd.DataFrame:
    """The round trips per symbol, from the kernel's trade rows."""
    entry = rows[:, K.T_ENTRY].astype(np.int64)
    exit_ = rows[:, K.T_EXIT].astype(np.int64)
    units, entry_px, pnl = rows[:, K.T_UNITS], rows[:, K.T_ENTRY_PX], rows[:, K.T_PNL]
    return pd.DataFrame(
        {
            "symbol": _labels(rows[:, K.T_SYM], panel.symbols),
            "entry_ts": panel.index[entry],
            "exit_ts": panel.index[exit_],
            "side": _labels(rows[:, K.T_SIDE] > 0, ["short", "long"]),
            "units": units,
            "entry_price": entry_px,
            "exit_price": rows[:, K.T_EXIT_PX],
            "fees": rows[:, K.T_FEES],
            "borrow_cost": rows[:, K.T_BORROW],
            "pnl": pnl,
            "return": pnl / (units * entry_px),
            "bars_held": exit_ - entry,
            "is_open": rows[:, K.T_OPEN] > 0,
        },
        columns=list(TRADE_COLUMNS),
    )


def contribution_frame(
    panel: Panel,
    cash: float,
    pnl: np.ndarray,
    orders: np.ndarray,
    trades: np.ndarray,
    borrowed: np.ndarray,
) -> pd.DataFrame:
    """PnL, its share of the starting cash, fees, borrow and trades per symbol."""
    m = len(panel.symbols)
    final = pnl[-1]
    sym_o = orders[:, K.O_SYM].astype(np.int64)
    sym_t = trades[:, K.T_SYM].astype(np.int64)
    return pd.DataFrame(
        {
            "symbol": pd.array(panel.symbols, dtype="str"),
            "pnl": final,
            "contribution": final / cash,
            "fees": np.bincount(sym_o, weights=orders[:, K.O_FEE], minlength=m),
            "borrow_cost": borrowed,
            "trades": np.bincount(sym_t, minlength=m).astype(np.int64),
        },
        columns=list(CONTRIBUTION_COLUMNS),
    )
