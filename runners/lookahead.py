"""The look-ahead check's comparison (BACKTEST.md, docs/custom-nodes.md "Look-ahead check").

A node is run on the whole sample input and on its first 75 %; if any output row the prefix run
produced differs from the same row of the whole run, the node used bars it could not have seen.
This module only compares outputs (no sandbox): series/signal values and frame columns row by
row over the overlapping rows, NaN equal to NaN, ``abs(a - b) <= 1e-9 * max(1, |a|)`` with ``a``
the whole run's value; metrics outputs are not compared.

The verdict is the contract's ``Lookahead`` object::

    {status: "pass"|"fail"|"error"|"skipped", message, checked_rows, prefix_rows,
     first_difference: {port, row, ts, whole, prefix} | None}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from nodes.base import PORT_TYPES, PortForm, PortType

__all__ = [
    "COMPARED_TYPES",
    "REL_TOL",
    "compare_outputs",
    "lookahead_error",
    "lookahead_skipped",
    "values_equal",
]

REL_TOL = 1e-9
# Custom-node outputs with rows over time (everything a sandbox returns but metrics).
COMPARED_TYPES = frozenset(
    t for t, info in PORT_TYPES.items() if info.sandbox_output and info.form != PortForm.METRICS
)


def values_equal(a: float, b: float) -> bool:
    """NaN equals NaN; otherwise ``abs(a - b) <= 1e-9 * max(1, |a|)`` (``a``: the whole run)."""
    a_nan, b_nan = math.isnan(a), math.isnan(b)
    if a_nan or b_nan:
        return a_nan and b_nan
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= REL_TOL * max(1.0, abs(a))


def _verdict(
    status: str,
    message: str,
    checked_rows: int | None = None,
    prefix_rows: int | None = None,
    first_difference: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "status": status,
        "message": message,
        "checked_rows": checked_rows,
        "prefix_rows": prefix_rows,
        "first_difference": first_difference,
    }


def lookahead_error(message: str, checked_rows: int | None, prefix_rows: int | None) -> dict:
    """The verdict when the node failed on one of the inputs."""
    return _verdict("error", message, checked_rows, prefix_rows)


def lookahead_skipped(message: str = "the node has no time-indexed output") -> dict[str, Any]:
    """The verdict for a node without series, signal or frame outputs."""
    return _verdict("skipped", message)


def _scalar(v: float) -> float | None:
    return None if math.isnan(v) else float(v)


def _iso(index: pd.Index, row: int) -> str | None:
    if row >= len(index):
        return None
    ts = index[row]
    if isinstance(ts, pd.Timestamp):
        return ts.isoformat()
    return str(ts)


def _columns(value: Any) -> dict[str, np.ndarray]:
    if isinstance(value, pd.Series):
        return {"": value.to_numpy(dtype="float64", na_value=np.nan)}
    if isinstance(value, pd.DataFrame):
        return {
            str(c): pd.to_numeric(value[c], errors="coerce").to_numpy(
                dtype="float64", na_value=np.nan
            )
            for c in value.columns
        }
    raise TypeError(f"cannot compare a {type(value).__name__}")


def _first_difference(
    port: str, whole: Any, prefix: Any, rows: int
) -> tuple[int, str, float | None, float | None] | None:
    """(row, column, whole value, prefix value) of the first differing row, or None."""
    w_cols, p_cols = _columns(whole), _columns(prefix)
    best: tuple[int, str, float | None, float | None] | None = None
    for col in list(w_cols) + [c for c in p_cols if c not in w_cols]:
        if col not in w_cols or col not in p_cols:  # a column only one run produced
            w = w_cols[col][0] if col in w_cols and rows else math.nan
            p = p_cols[col][0] if col in p_cols and rows else math.nan
            cand = (0, col, _scalar(w), _scalar(p))
        else:
            a, b = w_cols[col][:rows], p_cols[col][:rows]
            with np.errstate(invalid="ignore", over="ignore"):
                tol = np.abs(a - b) <= REL_TOL * np.maximum(1.0, np.abs(a))
            ok = (np.isnan(a) & np.isnan(b)) | (a == b) | tol
            bad = np.flatnonzero(~ok)
            if bad.size == 0:
                continue
            r = int(bad[0])
            cand = (r, col, _scalar(a[r]), _scalar(b[r]))
        if best is None or cand[0] < best[0]:
            best = cand
    return best


def compare_outputs(
    whole: Mapping[str, Any],
    prefix: Mapping[str, Any],
    port_types: Mapping[str, PortType | str],
    *,
    whole_rows: int,
    prefix_rows: int,
) -> dict[str, Any]:
    """The verdict for two runs' outputs (port → value; series, signal, frame or metrics).

    ``whole_rows``/``prefix_rows`` are the input lengths; rows are compared positionally over
    the prefix's rows. ``first_difference`` is the earliest differing row over all ports (the
    message lists each differing port's first row); for a frame, ``whole``/``prefix`` are the
    first differing column's values and the message names the column.
    """
    compared = [p for p, t in port_types.items() if PortType(t) in COMPARED_TYPES]
    if not compared:
        return lookahead_skipped()
    diffs: list[tuple[int, str, dict[str, Any], str]] = []
    for port in compared:
        w, p = whole.get(port), prefix.get(port)
        if w is None or p is None:
            missing = "whole" if w is None else "prefix"
            msg = f"output {port!r} is missing from the {missing} run"
            diffs.append(
                (0, port, {"port": port, "row": 0, "ts": None, "whole": None, "prefix": None}, msg)
            )
            continue
        rows = min(prefix_rows, len(p), len(w))
        found = _first_difference(port, w, p, rows)
        if found is None and len(p) < prefix_rows:
            found = (len(p), "", None, None)
        if found is None:
            continue
        row, col, wv, pv = found
        index = w.index if len(w.index) > row else p.index
        ts = _iso(index, row)
        where = f"{port}.{col}" if col else port
        msg = f"output {where!r} differs at row {row} ({ts}): whole run {wv}, prefix run {pv}"
        diffs.append(
            (row, port, {"port": port, "row": row, "ts": ts, "whole": wv, "prefix": pv}, msg)
        )
    if not diffs:
        return _verdict(
            "pass",
            f"the first {prefix_rows} rows of {', '.join(map(repr, compared))} are the same "
            f"whether the node sees {prefix_rows} or {whole_rows} bars",
            whole_rows,
            prefix_rows,
        )
    first = min(diffs, key=lambda d: (d[0], compared.index(d[1])))
    message = "the node's output changes when later bars are added (look-ahead): " + "; ".join(
        d[3] for d in diffs
    )
    return _verdict("fail", message, whole_rows, prefix_rows, first[2])
