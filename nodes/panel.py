"""Several symbols at once ("panels"): the representation, its helpers, per-symbol dispatch.

Representation (decided for the whole product):

- a panel of bars (``ohlcv``, or any ``frame`` of rows per symbol) is LONG: index ``ts`` (UTC,
  ascending, repeated across symbols), a string column ``symbol``, rows sorted by
  (ts, symbol), each (ts, symbol) once. A frame is a panel when its ``symbol`` column holds 2
  or more symbols (:func:`is_panel`); a frame of one symbol is an ordinary single-symbol frame.
- a ``series`` or ``signal`` on a panel (``data.close``, ``sma(data.close)``) is WIDE: a
  DataFrame indexed by the unique sorted ``ts``, one float64 column per symbol (columns sorted),
  NaN where that symbol has no bar. A signal on a panel holds target weights per symbol
  (fractions of the portfolio's equity, negative = short); NaN there means "no bar, no new
  target".

A wide value also knows which of its cells are bars of their symbol (:func:`bars`): a
computed series has NaN where a symbol has a bar but no value (an indicator's warm-up), and a
per-symbol node must see those bars, not skip them. The cells travel in ``frame.attrs`` (a
:class:`BarMask`, set by :func:`wide` and :func:`run_node`, stored with the value by the
runners); a wide frame without them (or whose index or columns changed since) takes its
non-NaN cells as its bars.

:func:`run_node` is what :meth:`nodes.base.Node.execute` does with a node's ``panel`` kind:
``native`` nodes get panels as they are, ``per_symbol`` nodes run once per symbol on that
symbol's own rows (exactly the single-symbol run, so a symbol listed later, or with a gap,
gives what it gives alone, and no symbol's data reaches another's output), ``none`` nodes
refuse a panel with a NodeError saying what to use.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nodes.base import Node
from nodes.errors import NodeError
from nodes.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
else:
    np = lazy_module("numpy", globals(), "np")
    pd = lazy_module("pandas", globals(), "pd")

__all__ = [
    "BARS_ATTR",
    "NAME_ATTR",
    "PANEL_KINDS",
    "SYMBOL",
    "BarMask",
    "assemble_long",
    "assemble_wide",
    "bars",
    "is_panel",
    "run_node",
    "set_bars",
    "split",
    "symbol_groups",
    "symbols_of",
    "union_index",
    "wide",
]

SYMBOL = "symbol"
PANEL_KINDS = frozenset({"none", "per_symbol", "native"})
BARS_ATTR = "alphaforge_bars"
NAME_ATTR = "alphaforge_name"


class BarMask:
    """The cells of a wide frame that are bars of their symbol (bool, rows × columns), with the
    index and columns they were made for: a frame whose index or columns differ ignores them.
    Never changed once made (a deep copy, as pandas makes of ``attrs``, is the same object)."""

    __slots__ = ("cells", "columns", "index")

    def __init__(self, index: pd.Index, columns: Sequence[str], cells: np.ndarray) -> None:
        self.index, self.columns, self.cells = index, list(columns), cells

    def fits(self, frame: pd.DataFrame) -> bool:
        """True when these cells describe ``frame`` (same timestamps, same symbols)."""
        return (
            self.cells.shape == frame.shape
            and list(frame.columns) == self.columns
            and (frame.index is self.index or frame.index.equals(self.index))
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BarMask):
            return NotImplemented
        return (
            self.columns == other.columns
            and self.index.equals(other.index)
            and np.array_equal(self.cells, other.cells)
        )

    __hash__ = None  # type: ignore[assignment]

    def __deepcopy__(self, memo: dict[int, Any]) -> BarMask:
        return self


def is_panel(frame: Any) -> bool:
    """True for a long frame whose ``symbol`` column holds two or more symbols.

    The answer is remembered for the frame object (values are not changed once made: nodes are
    pure), since a sweep asks it of the same bars in every trial and a scan of a million
    symbols costs ~10 ms."""
    if not isinstance(frame, pd.DataFrame) or SYMBOL not in frame.columns or len(frame) < 2:
        return False
    col = frame[SYMBOL]
    first, last = col.iloc[0], col.iloc[-1]
    if first != last:
        return True
    key, shape = id(frame), (len(frame), first)
    seen = _SEEN.get(key)
    if seen is not None and seen[1] == shape and seen[0]() is frame:
        return seen[2]
    answer = bool((col != first).any())  # vectorised on Arrow strings: no Python objects
    _SEEN[key] = (weakref.ref(frame, lambda _r: _SEEN.pop(key, None)), shape, answer)
    return answer


# is_panel's answers: id(frame) -> (the frame, weakly; (rows, first symbol); answer)
_SEEN: dict[int, tuple[weakref.ref[pd.DataFrame], tuple[int, Any], bool]] = {}


def symbols_of(value: pd.DataFrame) -> list[str]:
    """The symbols of a long panel (sorted) or of a wide frame (its columns)."""
    if SYMBOL in value.columns:
        return sorted(str(s) for s in pd.unique(value[SYMBOL]))
    return [str(c) for c in value.columns]


def symbol_groups(frame: pd.DataFrame) -> tuple[list[str], list[np.ndarray]]:
    """The sorted symbols of a long frame and, for each, the positions of its rows (in order)."""
    codes, uniques = pd.factorize(frame[SYMBOL], sort=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    groups = [order[bounds[i] : bounds[i + 1]] for i in range(len(uniques))]
    return [str(s) for s in uniques], groups


def split(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each symbol's own rows of a long frame (as a single-symbol loader would give them)."""
    symbols, groups = symbol_groups(frame)
    return {s: frame.take(rows) for s, rows in zip(symbols, groups, strict=True)}


def wide(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """One column of a long panel as a wide frame (ts × symbol), NaN where a symbol has no
    bar; its bars are the (ts, symbol) rows the panel has."""
    values = frame[column]
    if not pd.api.types.is_numeric_dtype(values.dtype):
        raise NodeError(f"column {column!r} of the panel is not numbers ({values.dtype})")
    sym_codes, symbols = pd.factorize(frame[SYMBOL], sort=True)
    ts_codes, stamps = pd.factorize(frame.index, sort=True)
    shape = (len(stamps), len(symbols))
    out = np.full(shape, np.nan)
    out[ts_codes, sym_codes] = values.to_numpy(dtype="float64", na_value=np.nan)
    cells = np.zeros(shape, dtype=bool)
    cells[ts_codes, sym_codes] = True
    index = pd.DatetimeIndex(stamps, name=frame.index.name)
    result = pd.DataFrame(out, index=index, columns=pd.Index([str(s) for s in symbols]))
    result.attrs[NAME_ATTR] = column
    return set_bars(result, cells)


def set_bars(frame: pd.DataFrame, cells: np.ndarray) -> pd.DataFrame:
    """Record which cells of the wide ``frame`` are bars (changes ``frame.attrs``; returns it)."""
    frame.attrs[BARS_ATTR] = BarMask(frame.index, [str(c) for c in frame.columns], cells)
    return frame


def bars(frame: pd.DataFrame) -> np.ndarray:
    """Which cells of a wide frame are bars of their symbol: the recorded ones, else the
    non-NaN cells."""
    mask = frame.attrs.get(BARS_ATTR)
    if isinstance(mask, BarMask) and mask.fits(frame):
        return mask.cells
    return frame.notna().to_numpy()


def assemble_wide(parts: Mapping[str, pd.Series]) -> pd.DataFrame:
    """Per-symbol series as one wide frame on the union of their timestamps (columns sorted);
    each symbol's bars are the rows of its series."""
    symbols = sorted(parts)
    index = union_index([parts[s].index for s in symbols])
    out = np.full((len(index), len(symbols)), np.nan)
    cells = np.zeros(out.shape, dtype=bool)
    for j, s in enumerate(symbols):
        pos = index.get_indexer(parts[s].index)
        out[pos, j] = parts[s].to_numpy(dtype="float64", na_value=np.nan)
        cells[pos, j] = True
    return set_bars(pd.DataFrame(out, index=index, columns=pd.Index(symbols)), cells)


def assemble_long(parts: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per-symbol frames as one long frame: a ``symbol`` column, rows sorted by (ts, symbol)."""
    symbols = sorted(parts)
    frames = [parts[s].assign(**{SYMBOL: s}) for s in symbols]
    out = pd.concat(frames) if frames else pd.DataFrame()
    return out.sort_index(kind="stable")  # concatenated by symbol: stable keeps that order


def union_index(indexes: Sequence[pd.Index]) -> pd.Index:
    """The sorted union of ``indexes`` (the first itself when they are all equal)."""
    first = indexes[0]
    if all(ix is first or ix.equals(first) for ix in indexes[1:]):
        return first
    out = first
    for ix in indexes[1:]:
        out = out.union(ix)
    return out.sort_values()


def run_node(node: Node, inputs: Mapping[str, Any], params: Any) -> dict[str, Any]:
    """Run ``node`` on ``inputs`` as its ``panel`` kind says (see the module doc and
    :mod:`nodes.persymbol`)."""
    from nodes import persymbol

    return persymbol.run_node(node, inputs, params)
