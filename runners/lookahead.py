"""The look-ahead check: its plan and its comparisons (BACKTEST.md, docs/custom-nodes.md).

A node is run on the whole sample window and, to see whether any output row used bars after it:

- on **prefixes** of the window at :data:`PREFIX_CUTS` random lengths (one in each band of
  :data:`PREFIX_BANDS`): a node that reads later bars, or behaves honestly only at some input
  lengths, changes rows the prefix run produced;
- on the window with the bars **after a random cut changed** (:func:`changed_bars`: later bars
  scaled up and down in turn, so the future holds both new highs and new lows): a node that
  normalises by ``x.max()``, ``x.min()``, the mean or the spread of the whole series changes
  rows before the cut, even when the extreme it uses lies in every prefix.

The lengths, the cut and the factor come from one ``seed`` (:func:`lookahead_plan`), which the
verdict reports: the same seed replays the same check. Rows are compared by
:func:`compare_outputs`: series/signal values and frame columns row by row over the rows both
runs share, NaN equal to NaN, ``abs(a - b) <= 1e-9 * max(1, |a|)`` with ``a`` the whole run's
value; metrics outputs are not compared. :func:`combine` turns the comparisons into the verdict,
the contract's ``Lookahead`` object::

    {status: "pass"|"fail"|"error"|"skipped", message, checked_rows, prefix_rows,
     first_difference: {port, row, ts, whole, prefix} | None, seed, prefix_lengths, changed_from}
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nodes.base import PORT_TYPES, PortForm, PortType

__all__ = [
    "COMPARED_TYPES",
    "PREFIX_BANDS",
    "PREFIX_CUTS",
    "REL_TOL",
    "LookaheadPlan",
    "changed_bars",
    "combine",
    "compare_outputs",
    "lookahead_error",
    "lookahead_plan",
    "lookahead_skipped",
    "values_equal",
]

REL_TOL = 1e-9
#: Prefix lengths as fractions of the window: one random length in each band (from half the
#: window: a node may rightly refuse an input shorter than its warm-up; the changed-future run
#: reaches early rows). With that run the check costs 1 + PREFIX_CUTS + 1 executions (two at a
#: time).
PREFIX_BANDS: tuple[tuple[float, float], ...] = ((0.5, 0.65), (0.65, 0.8), (0.8, 0.95))
PREFIX_CUTS = len(PREFIX_BANDS)
#: Where the future may be changed (fraction of the window) and by how much.
CHANGE_BAND = (0.3, 0.9)
CHANGE_FACTOR = (2.0, 4.0)
# Custom-node outputs with rows over time (everything a sandbox returns but metrics and models).
COMPARED_TYPES = frozenset(
    t
    for t, info in PORT_TYPES.items()
    if info.sandbox_output and info.form in (PortForm.SERIES, PortForm.TABLE)
)


@dataclass(frozen=True)
class LookaheadPlan:
    """What one check runs: prefix lengths, the row the future is changed from, the factor."""

    seed: int
    whole_rows: int
    prefix_lengths: tuple[int, ...]
    changed_from: int
    factor: float


def lookahead_plan(whole_rows: int, seed: int) -> LookaheadPlan:
    """The check's random lengths for a window of ``whole_rows`` bars, from ``seed``."""
    rng = random.Random(seed)
    lengths: set[int] = set()
    for lo, hi in PREFIX_BANDS:
        a, b = max(1, int(whole_rows * lo)), max(1, int(whole_rows * hi) - 1)
        lengths.add(rng.randint(min(a, b), max(a, b)))
    lo, hi = CHANGE_BAND
    changed_from = rng.randint(max(1, int(whole_rows * lo)), max(1, int(whole_rows * hi)))
    factor = round(rng.uniform(*CHANGE_FACTOR), 3)
    lengths.discard(whole_rows)
    return LookaheadPlan(seed, whole_rows, tuple(sorted(lengths)), changed_from, factor)


def changed_bars(bars: pd.DataFrame, start: int, factor: float) -> pd.DataFrame:
    """``bars`` with every bar from row ``start`` on scaled up and down in turn, far enough that
    the changed future holds prices above every earlier high and below every earlier low (by
    ``factor``): a node that looks at the whole series' extremes, mean or spread sees them
    change. Each bar stays a valid bar (positive, high >= low); rows before ``start`` are
    unchanged."""
    out = bars.copy()
    n = len(out) - start
    if n <= 0:
        return out
    cols = [c for c in ("open", "high", "low", "close", "volume") if c in out.columns]
    prices = out[[c for c in ("open", "high", "low", "close") if c in out.columns]]
    top, bottom = float(prices.max().max()), float(prices.min().min())
    later = prices.iloc[start:]
    up = factor * top / float(later.min().min())
    down = bottom / (factor * float(later.max().max()))
    scale = np.where(np.arange(n) % 2 == 0, up, down)
    out.iloc[start:, [out.columns.get_loc(c) for c in cols]] *= scale[:, None]
    return out


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
    change: str = "later bars are added",
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
    message = f"the node's output changes when {change} (look-ahead): " + "; ".join(
        d[3] for d in diffs
    )
    return _verdict("fail", message, whole_rows, prefix_rows, first[2])


def combine(
    plan: LookaheadPlan,
    port_types: Mapping[str, PortType | str],
    whole: Mapping[str, Any],
    prefixes: Sequence[Mapping[str, Any]],
    changed: Mapping[str, Any],
) -> dict[str, Any]:
    """The verdict of a whole check: each prefix run (in ``plan.prefix_lengths`` order) and the
    changed-future run compared with the whole run; the first failure, else a pass. The
    verdict carries ``seed``, ``prefix_lengths`` and ``changed_from`` (the message the seed)."""
    n = plan.whole_rows
    lengths = ", ".join(map(str, plan.prefix_lengths))
    how = (
        f"prefixes of {lengths} bars and bars changed from row {plan.changed_from} "
        f"(seed {plan.seed})"
    )
    extra = {
        "seed": plan.seed,
        "prefix_lengths": list(plan.prefix_lengths),
        "changed_from": plan.changed_from,
    }
    for rows, outputs in zip(plan.prefix_lengths, prefixes, strict=True):
        verdict = compare_outputs(whole, outputs, port_types, whole_rows=n, prefix_rows=rows)
        if verdict["status"] == "fail":
            verdict["message"] += f"; checked with {how}"
            return verdict | extra
        if verdict["status"] == "skipped":
            return verdict | extra
    verdict = compare_outputs(
        whole,
        changed,
        port_types,
        whole_rows=n,
        prefix_rows=plan.changed_from,
        change=f"the bars from row {plan.changed_from} on are changed",
    )
    if verdict["status"] == "fail":
        verdict["message"] += f"; checked with {how}"
        return verdict | extra
    compared = [p for p, t in port_types.items() if PortType(t) in COMPARED_TYPES]
    longest = max(plan.prefix_lengths, default=plan.changed_from)
    message = (
        f"no row of {', '.join(map(repr, compared))} changes when later bars are added or "
        f"changed: checked the {n}-bar window against {how}"
    )
    return _verdict("pass", message, n, longest) | extra
