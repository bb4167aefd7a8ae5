"""Bar transforms: ``resample`` (1m → 1h / 1d ...) and ``align`` (a common calendar across
symbols). Both take one symbol's bars or a panel (:mod:`nodes.panel`) and return the same form,
only the OHLCV columns, ``symbol`` when there is one (and align's ``filled``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from nodes import panel
from nodes.base import OHLCV_COLUMNS, Node, Params, Port, PortType, register
from nodes.errors import NodeError
from nodes.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
else:
    np = lazy_module("numpy", globals(), "np")
    pd = lazy_module("pandas", globals(), "pd")

__all__ = ["Align", "Resample"]

_RULE = re.compile(r"^([1-9][0-9]{0,5})(min|h|d|w)$")
_UNIT_NS = {"min": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9, "w": 7 * 86400 * 10**9}
# intervals start at the Unix epoch (a Thursday) for min/h/d, at Monday 1970-01-05 for weeks
_MONDAY_NS = 4 * 86400 * 10**9
_BARS_IN = (Port("bars", PortType.OHLCV, "bars of one symbol or a panel"),)


def _bars(value: Any, node: str) -> pd.DataFrame:
    if not isinstance(value, pd.DataFrame) or not set(OHLCV_COLUMNS) <= set(value.columns):
        raise NodeError(f"{node}: bars must be a table with {', '.join(OHLCV_COLUMNS)}")
    if not isinstance(value.index, pd.DatetimeIndex) or len(value) == 0:
        raise NodeError(f"{node}: bars must be indexed by timestamps and not be empty")
    return value


def _codes(bars: pd.DataFrame) -> tuple[np.ndarray, list[str] | None]:
    """Each row's symbol number (0 for bars without a symbol column) and the symbols."""
    if panel.SYMBOL not in bars.columns:
        return np.zeros(len(bars), dtype=np.int64), None
    codes, uniques = pd.factorize(bars[panel.SYMBOL], sort=True)
    return codes.astype(np.int64), [str(s) for s in uniques]


def _frame(
    ts_ns: np.ndarray,
    columns: dict[str, np.ndarray],
    codes: np.ndarray,
    symbols: list[str] | None,
    unit: str,
) -> pd.DataFrame:
    """Rows sorted by (ts, symbol), indexed by ``ts`` in the input's resolution."""
    order = np.lexsort((codes, ts_ns))
    index = pd.DatetimeIndex(ts_ns[order], tz="UTC", name="ts").as_unit(unit)
    out = pd.DataFrame({c: v[order] for c, v in columns.items()}, index=index)
    if symbols is not None:
        out[panel.SYMBOL] = pd.array(np.asarray(symbols, dtype=object)[codes[order]], dtype="str")
    return out


class ResampleParams(Params):
    """The interval of the new bars."""

    rule: str = Field(
        "1d",
        description="Interval: a count and a unit, min, h, d or w (15min, 1h, 4h, 1d, 1w).",
    )

    @model_validator(mode="after")
    def _known_rule(self) -> ResampleParams:
        if not _RULE.match(self.rule):
            raise ValueError(f"rule {self.rule!r}: write a count and min, h, d or w, e.g. 1h")
        return self


@register
class Resample(Node):
    """Bars of a longer interval: open = first open, high = max, low = min, close = last close,
    volume = sum (NaN if a bar's volume is missing), per symbol for a panel.

    Intervals are left-closed, in UTC: ``4h`` covers [00:00, 04:00), [04:00, 08:00) ..., ``1d``
    a UTC day, ``1w`` Monday 00:00 to the next Monday; they count from 1970-01-01 (weeks from
    Monday 1970-01-05), so ``2d`` bars do not follow the calendar month. A new bar is
    **labelled with its interval's start** (as most vendors label bars, and as the input bars
    are taken to be: a 10:59 one-minute bar belongs to the 10:00 hour) and is only complete at
    the interval's **end**: its close is the last input bar's close before then, so use it
    (e.g. its signal) no earlier than the next bar, as the backtests do. Intervals without
    input bars give no bar (nothing is forward-filled: use ``align`` for that). The last bar
    may be partial when the data ends inside its interval. Other columns are dropped.
    """

    name = "resample"
    category = "bars"
    panel = "native"
    summary = "Bars of a longer interval (1m → 1h, 1d ...), per symbol"
    inputs = _BARS_IN
    outputs = (Port("bars", PortType.OHLCV, "the new bars, labelled with their interval's start"),)
    params_model = ResampleParams

    def run(self, inputs: Mapping[str, Any], params: ResampleParams) -> dict[str, Any]:
        """Aggregate each (symbol, interval)."""
        bars = _bars(inputs["bars"], self.name)
        found = _RULE.match(params.rule)
        assert found is not None
        width = int(found.group(1)) * _UNIT_NS[found.group(2)]
        origin = _MONDAY_NS if found.group(2) == "w" else 0
        ts = bars.index.as_unit("ns").asi8
        start = origin + (ts - origin) // width * width
        codes, symbols = _codes(bars)
        order = np.lexsort((ts, codes))  # by symbol, then time
        key_sym, key_start = codes[order], start[order]
        new = np.ones(len(order), dtype=bool)
        new[1:] = (key_sym[1:] != key_sym[:-1]) | (key_start[1:] != key_start[:-1])
        first = np.flatnonzero(new)
        last = np.append(first[1:], len(order)) - 1

        def col(name: str) -> np.ndarray:
            return bars[name].to_numpy(dtype="float64", na_value=np.nan)[order]

        columns = {
            "open": col("open")[first],
            "high": np.maximum.reduceat(col("high"), first),
            "low": np.minimum.reduceat(col("low"), first),
            "close": col("close")[last],
            "volume": np.add.reduceat(col("volume"), first),
        }
        out = _frame(key_start[first], columns, key_sym[first], symbols, bars.index.unit)
        self.ctx.log(f"{len(bars)} bars → {len(out)} bars of {params.rule}")
        return {"bars": out}


class AlignParams(Params):
    """The calendar and how missing bars are filled."""

    calendar: Literal["union", "intersection"] = Field(
        "union",
        description="union: every timestamp some symbol has; intersection: only those every "
        "symbol has (the others' bars are dropped).",
    )
    fill: Literal["none", "ffill"] = Field(
        "none",
        description="ffill: a symbol without a bar at a calendar timestamp gets a flat bar at "
        "its last close (volume 0, filled=true); none: it has no bar there.",
    )
    max_fill: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="With ffill: fill at most this many bars in a row (a longer gap keeps the "
        "rest empty). Left out: no limit.",
    )
    extend: bool = Field(
        False,
        description="With ffill: also fill after a symbol's last bar (a delisted symbol stays "
        "flat to the end). Default: only gaps between its first and last bars.",
    )

    @model_validator(mode="after")
    def _fill_options(self) -> AlignParams:
        if self.fill == "none" and (self.max_fill is not None or self.extend):
            raise ValueError('max_fill and extend need fill="ffill"')
        return self


@register
class Align(Node):
    """Put the symbols of a panel on a common calendar, with an explicit fill policy.

    ``calendar="intersection"`` keeps only the timestamps at which every symbol has a bar.
    ``calendar="union"`` keeps every timestamp some symbol has; with ``fill="ffill"`` a symbol
    missing a bar there gets a flat bar at its previous close (open = high = low = close,
    volume 0), marked ``filled=true`` — never before its first bar (nothing is back-filled),
    at most ``max_fill`` in a row, and after its last bar only with ``extend=true``. With
    ``fill="none"`` (the default) no bar is made. The output has a boolean column ``filled``
    (false for real bars); other columns than OHLCV and ``symbol`` are dropped. One symbol's
    bars come back unchanged (with ``filled`` false).
    """

    name = "align"
    category = "bars"
    panel = "native"
    summary = "Common calendar across symbols; forward-fill policy explicit"
    inputs = _BARS_IN
    outputs = (
        Port(
            "bars",
            PortType.OHLCV,
            "the bars on the calendar, with a filled column",
            columns=(*OHLCV_COLUMNS, "filled"),
        ),
    )
    params_model = AlignParams

    def run(self, inputs: Mapping[str, Any], params: AlignParams) -> dict[str, Any]:
        """Build the calendar, drop or fill."""
        bars = _bars(inputs["bars"], self.name)
        codes, symbols = _codes(bars)
        ts = bars.index.as_unit("ns").asi8
        stamps, row = np.unique(ts, return_inverse=True)
        n_sym = 1 if symbols is None else len(symbols)
        present = np.zeros((len(stamps), n_sym), dtype=bool)
        present[row, codes] = True
        cols = {c: bars[c].to_numpy(dtype="float64", na_value=np.nan) for c in OHLCV_COLUMNS}
        keep = np.ones(len(bars), dtype=bool)
        if params.calendar == "intersection":
            keep = np.asarray(present.all(axis=1))[row]
        out_ts, out_codes = ts[keep], codes[keep]
        out_cols = {c: v[keep] for c, v in cols.items()}
        filled = np.zeros(int(keep.sum()), dtype=bool)
        if params.fill == "ffill" and params.calendar == "union":
            f_ts, f_codes, f_close = _fills(present, row, codes, cols["close"], params)
            no_volume = np.isnan(cols["volume"])
            vol_missing = np.zeros(n_sym, dtype=bool)
            np.logical_or.at(vol_missing, codes, no_volume)
            out_ts = np.concatenate([out_ts, stamps[f_ts]])
            out_codes = np.concatenate([out_codes, f_codes])
            for c in ("open", "high", "low", "close"):
                out_cols[c] = np.concatenate([out_cols[c], f_close])
            f_volume = np.where(vol_missing[f_codes], np.nan, 0.0)
            out_cols["volume"] = np.concatenate([out_cols["volume"], f_volume])
            filled = np.concatenate([filled, np.ones(len(f_ts), dtype=bool)])
        out = _frame(out_ts, {**out_cols, "filled": filled}, out_codes, symbols, bars.index.unit)
        self.ctx.log(
            f"{params.calendar} calendar of {len(stamps)} timestamps: kept {int(keep.sum())} of "
            f"{len(bars)} bars, filled {int(filled.sum())}"
        )
        return {"bars": out}


def _fills(
    present: np.ndarray, row: np.ndarray, codes: np.ndarray, close: np.ndarray, p: AlignParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (calendar row, symbol, previous close) of every bar to fill."""
    n_rows = present.shape[0]
    closes = np.full(present.shape, np.nan)
    closes[row, codes] = close
    rows = np.arange(n_rows)[:, None]
    last_bar = np.maximum.accumulate(np.where(present, rows, -1), axis=0)  # -1: none yet
    gap = rows - last_bar  # bars since the symbol's last bar (0 on a bar)
    want = ~present & (last_bar >= 0)
    if p.max_fill is not None:
        want &= gap <= p.max_fill
    if not p.extend:
        final = np.where(present.any(axis=0), n_rows - 1 - np.argmax(present[::-1], axis=0), -1)
        want &= rows < final[None, :]
    f_row, f_sym = np.nonzero(want)
    prev = closes[last_bar[f_row, f_sym], f_sym]
    return f_row, f_sym.astype(np.int64), prev
