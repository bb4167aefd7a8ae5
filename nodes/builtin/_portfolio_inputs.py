"""The portfolio backtest's inputs as arrays: the bars (a long panel or one symbol's frame)
pivoted to ``(bars, symbols)`` opens and closes, and the target weights aligned to them.

Checked at the door (nodes/README: corrupt data is worse than no data): every error names the
symbols or the timestamps at fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nodes.errors import NodeError
from nodes.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
else:
    np = lazy_module("numpy", globals(), "np")
    pd = lazy_module("pandas", globals(), "pd")
    pa = lazy_module("pyarrow", globals(), "pa")
    pc = lazy_module("pyarrow.compute", globals(), "pc")

_WHO = "portfolio_backtest"


@dataclass(frozen=True)
class Panel:
    """The traded symbols' bars on the union of their timestamps (NaN: no bar) and targets."""

    index: pd.DatetimeIndex
    symbols: list[str]
    open: np.ndarray  # (bars, symbols)
    close: np.ndarray
    target: np.ndarray


def _names(items: Any, limit: int = 5) -> str:
    items = list(items)
    shown = ", ".join(str(x) for x in items[:limit])
    return shown + (f" … ({len(items)} in all)" if len(items) > limit else "")


def _bars_shape(bars: Any) -> pd.DataFrame:
    if not isinstance(bars, pd.DataFrame) or not {"open", "close"} <= set(bars.columns):
        raise NodeError(f"{_WHO}: bars must be an ohlcv table with open and close columns")
    if not isinstance(bars.index, pd.DatetimeIndex) or len(bars) == 0:
        raise NodeError(f"{_WHO}: bars must be indexed by timestamp (ts) and not empty")
    return bars


def _price(bars: pd.DataFrame, column: str) -> np.ndarray:
    values = bars[column].to_numpy(dtype="float64")
    bad = ~np.isfinite(values)
    if bad.any():
        at = int(np.argmax(bad))
        where = f" of {bars['symbol'].iloc[at]}" if "symbol" in bars.columns else ""
        raise NodeError(
            f"{_WHO}: {column} is {values[at]} at {bars.index[at]}{where}; every bar needs a "
            "finite open and close (a symbol without a bar has no row)"
        )
    return values


def _numeric(dtype: Any) -> bool:
    return bool(pd.api.types.is_numeric_dtype(dtype)) and not pd.api.types.is_bool_dtype(dtype)


def _weights_frame(weights: Any, single: str | None) -> pd.DataFrame:
    """The weights as a wide frame with string symbol columns."""
    if isinstance(weights, pd.Series):
        # one symbol's bars: the series is its weights, whatever its name ("close", …)
        name = single or (weights.name if isinstance(weights.name, str) else None)
        if not name:
            raise NodeError(
                f"{_WHO}: weights given as one series on several symbols; give a wide frame "
                "(ts × symbol) or name the series after its symbol"
            )
        weights = weights.to_frame(name)
    if not isinstance(weights, pd.DataFrame):
        raise NodeError(
            f"{_WHO}: weights must be a frame of target weights (ts × symbol), got "
            f"{type(weights).__name__}"
        )
    if weights.shape[1] == 0:
        raise NodeError(f"{_WHO}: weights have no symbol columns")
    kinds = weights.dtypes
    wrong = {d for d in set(kinds) if not _numeric(d)}  # a few dtypes among many columns
    bad = [c for c, d in zip(weights.columns, kinds, strict=True) if d in wrong]
    if bad:
        raise NodeError(f"{_WHO}: weights of {_names(bad)} are not numbers")
    if not weights.columns.is_unique:
        dup = weights.columns[weights.columns.duplicated()]
        raise NodeError(f"{_WHO}: weights name {_names(dup)} twice")
    return weights


@dataclass(frozen=True)
class _Layout:
    """Where the long bars' rows sit: the unique timestamps, each row's bar number, the bars'
    symbols and each row's symbol number (None: every ts block lists ``names`` in order)."""

    index: pd.DatetimeIndex
    tcode: np.ndarray
    names: list[str]
    codes: np.ndarray | None


def _layout(bars: pd.DataFrame) -> _Layout:
    ns = bars.index.asi8
    step = np.diff(ns)
    if (step < 0).any():
        at = int(np.argmax(step < 0)) + 1
        raise NodeError(f"{_WHO}: bars must be sorted by ts (row {at}, {bars.index[at]}, is not)")
    new = np.empty(len(ns), np.bool_)
    new[0] = True
    np.not_equal(step, 0, out=new[1:])
    starts = np.flatnonzero(new)
    index, tcode = bars.index[starts], np.cumsum(new) - 1
    if "symbol" not in bars.columns:
        if len(starts) != len(ns):
            raise NodeError(f"{_WHO}: bars without a symbol column must have unique timestamps")
        return _Layout(index, tcode, [], None)
    names = _balanced(bars, starts)
    if names is not None:
        return _Layout(index, tcode, names, None)
    codes, uniques = pd.factorize(bars["symbol"])
    return _Layout(index, tcode, [str(u) for u in uniques], codes)


def _balanced(bars: pd.DataFrame, starts: np.ndarray) -> list[str] | None:
    """The symbols of the first ts block when every block lists them in the same order (a full
    panel, whose pivot is a reshape), else None."""
    size = len(bars) // len(starts)
    if size * len(starts) != len(bars) or not (np.diff(starts) == size).all():
        return None
    column = pa.array(bars["symbol"])
    first = [str(x) for x in column.slice(0, size).to_pylist()]
    if len(set(first)) != size:
        return None
    if len(starts) > 1:
        same = pc.equal(column.slice(size), column.slice(0, len(column) - size))
        if not pc.all(same).as_py():
            return None
    return first


def _pivot(
    bars: pd.DataFrame, layout: _Layout, symbols: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """The open and close of ``symbols`` as (bars, symbols) arrays, NaN where there is no bar."""
    open_all, close_all = _price(bars, "open"), _price(bars, "close")
    n, m = len(layout.index), len(symbols)
    at = {sym: k for k, sym in enumerate(layout.names)}
    if layout.codes is None:  # a full panel (or one symbol without a symbol column)
        where = np.array([at[sym] for sym in symbols] if layout.names else [0], np.int64)
        shape = (n, len(bars) // n)
        open_ = np.ascontiguousarray(open_all.reshape(shape)[:, where])
        close = np.ascontiguousarray(close_all.reshape(shape)[:, where])
        return open_, close
    remap = np.full(len(layout.names), -1, np.int64)
    for col, sym in enumerate(symbols):
        remap[at[sym]] = col
    col_of = remap[layout.codes]
    keep = col_of >= 0
    rows, cols = layout.tcode[keep], col_of[keep]
    flat = rows * m + cols
    if len(flat) > 1 and not (np.diff(flat) > 0).all():
        order = np.sort(flat)
        dup = np.flatnonzero(order[1:] == order[:-1])
        if len(dup):
            cell = int(order[dup[0]])
            raise NodeError(
                f"{_WHO}: two bars of {symbols[cell % m]} at {layout.index[cell // m]}; a "
                "panel has one row per (ts, symbol)"
            )
    open_ = np.full((n, m), np.nan)
    close = np.full((n, m), np.nan)
    open_[rows, cols] = open_all[keep]
    close[rows, cols] = close_all[keep]
    return open_, close


def _aligned(frame: pd.DataFrame, index: pd.DatetimeIndex) -> np.ndarray:
    """The weights on the bars' timestamps (an error naming the first stray or missing ones)."""
    if not frame.index.equals(index):
        if not isinstance(frame.index, pd.DatetimeIndex):
            raise NodeError(f"{_WHO}: weights must be indexed by the bars' timestamps (ts)")
        extra = frame.index.difference(index)
        missing = index.difference(frame.index)
        if len(extra) or len(missing) or not frame.index.is_unique:
            parts = []
            if len(extra):
                parts.append(f"{len(extra)} timestamp(s) the bars lack (first {extra[0]})")
            if len(missing):
                parts.append(f"no row for {len(missing)} bar timestamp(s) (first {missing[0]})")
            if not frame.index.is_unique:
                parts.append(f"two rows at {frame.index[frame.index.duplicated()][0]}")
            raise NodeError(
                f"{_WHO}: the weights' timestamps must be the bars' ones: " + "; ".join(parts)
            )
        frame = frame.reindex(index)
    return frame.to_numpy(dtype="float64", copy=True)


def _targets(values: np.ndarray, close: np.ndarray, index: Any, symbols: list[str]) -> np.ndarray:
    """NaN weights are 0, except on a bar the symbol lacks: there its last target holds."""
    inf = np.isinf(values)
    if inf.any():
        t, s = np.argwhere(inf)[0]
        raise NodeError(f"{_WHO}: weight of {symbols[s]} at {index[t]} is {values[t, s]}")
    nan = np.isnan(values)
    if nan.any():
        values[nan & ~np.isnan(close)] = 0.0
        still = np.isnan(values)
        if still.any():
            rows = np.where(still, 0, np.arange(len(values))[:, None])
            np.maximum.accumulate(rows, axis=0, out=rows)
            values = np.take_along_axis(values, rows, axis=0)
            values[np.isnan(values)] = 0.0
    return values


def panel_inputs(bars: Any, weights: Any) -> Panel:
    """The bars and the weights as arrays on the same bars × symbols grid.

    The symbols are the weights' columns (a subset of the bars' symbols; the others are not
    traded), the bars the union of the bars' timestamps. Bars of one symbol may come without a
    symbol column: the weights' one column (or the series' name) names it.
    """
    bars = _bars_shape(bars)
    layout = _layout(bars)
    names = layout.names
    single = names[0] if len(names) == 1 else (None if names else "asset")
    frame = _weights_frame(weights, single)
    symbols = [str(c) for c in frame.columns]
    frame.columns = symbols
    if not layout.names:
        if len(symbols) != 1:
            raise NodeError(
                f"{_WHO}: bars without a symbol column are one symbol, but the weights have "
                f"{len(symbols)} columns ({_names(symbols)})"
            )
        layout = _Layout(layout.index, layout.tcode, symbols, None)
    have = set(layout.names)
    unknown = [c for c in symbols if c not in have]
    if unknown:
        raise NodeError(
            f"{_WHO}: weights for {_names(unknown)}, which the bars do not have (they hold "
            f"{_names(layout.names)})"
        )
    open_, close = _pivot(bars, layout, symbols)
    target = _targets(_aligned(frame, layout.index), close, layout.index, symbols)
    return Panel(layout.index, symbols, open_, close, target)
