"""Fingerprints of a run's results: sha256 of canonical orders, trades and equity.

A fingerprint must not depend on how a table happens to be stored (Parquet writer, column
order, pandas version's float printing), only on its values. The canonical text of a table:

- the index becomes columns (a plain 0..n-1 index is dropped: the row order says it), then the
  columns are sorted by name; the first line is the JSON list of the column names;
- one line per row, in the table's order (the order of fills is part of the result), the cells
  joined by ``,``: floats as ``repr`` (the shortest text that reads back to the same double;
  ``nan``, ``inf``, ``-inf``), integers in decimal, booleans ``true`` / ``false``, timestamps in
  ISO 8601 UTC with nanoseconds and a ``Z`` (a naive timestamp is taken as UTC), missing values
  ``null``, text and anything else as a JSON string.

The fingerprint is the sha256 of those lines (each ending in ``\\n``). :func:`first_difference`
walks two tables' canonical lines to say where they part.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dsl.ir import PipelineIR

__all__ = [
    "FINGERPRINTED_TYPES",
    "Difference",
    "canonical_lines",
    "first_difference",
    "output_fingerprints",
    "table_fingerprint",
]

# The port types whose values are a backtest's result: fills, round trips, the equity curve.
FINGERPRINTED_TYPES = ("orders", "trades", "equity")


def output_fingerprints(
    ir: PipelineIR, outputs: Mapping[str, Mapping[str, str]]
) -> dict[str, dict[str, str]]:
    """Node id -> port -> fingerprint of every ``orders`` / ``trades`` / ``equity`` output the
    run produced (``outputs``: node id -> port -> artifact file)."""
    from runners.io import read_value

    out: dict[str, dict[str, str]] = {}
    for node in ir.nodes:
        for port, type_name in node.outputs.items():
            path = outputs.get(node.id, {}).get(port)
            if type_name in FINGERPRINTED_TYPES and path is not None:
                out.setdefault(node.id, {})[port] = table_fingerprint(read_value(Path(path)))
    return out


def table_fingerprint(value: Any) -> str:
    """sha256 of the canonical text of a table (or series)."""
    digest = hashlib.sha256()
    for line in canonical_lines(value):
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def canonical_lines(value: Any) -> Iterator[str]:
    """The canonical text of a table or series, line by line (header first)."""
    frame = _as_frame(value)
    columns = sorted(frame.columns, key=str)
    yield json.dumps([str(c) for c in columns], ensure_ascii=False)
    cells = [_cells(frame[c]) for c in columns]
    for row in zip(*cells, strict=True):
        yield ",".join(row)


@dataclass(frozen=True)
class Difference:
    """Where two tables' canonical texts part: ``row`` counts data rows from 0 (None: the
    column names differ); ``a`` / ``b`` are the two lines (None past a table's end)."""

    row: int | None
    columns: list[str]
    a: str | None
    b: str | None

    def to_json(self) -> dict[str, Any]:
        """JSON-compatible data."""
        return {"row": self.row, "columns": self.columns, "a": self.a, "b": self.b}


def first_difference(a: Any, b: Any) -> Difference | None:
    """The first line where the canonical texts of ``a`` and ``b`` differ, or None."""
    la, lb = canonical_lines(a), canonical_lines(b)
    head_a, head_b = next(la), next(lb)
    columns = json.loads(head_a)
    if head_a != head_b:
        return Difference(None, columns, head_a, head_b)
    row = 0
    while True:
        x, y = next(la, None), next(lb, None)
        if x is None and y is None:
            return None
        if x != y:
            return Difference(row, columns, x, y)
        row += 1


def _as_frame(value: Any) -> pd.DataFrame:
    if isinstance(value, pd.Series):
        value = value.to_frame(name=value.name if value.name is not None else "value")
    if not isinstance(value, pd.DataFrame):
        raise TypeError(f"cannot fingerprint a {type(value).__name__}: not a table")
    index = value.index
    plain = isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1
    if plain:
        return value.reset_index(drop=True)
    names = [n if n is not None else f"index_{i}" for i, n in enumerate(index.names)]
    if len(names) == 1 and index.names[0] is None:
        names = ["index"]
    frame = value.copy()
    frame.index = index.set_names(names)
    return frame.reset_index()


def _cells(column: pd.Series) -> list[str]:
    """A column's cells as canonical text (vectorised for the common dtypes)."""
    dtype = column.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        stamps = column.dt.tz_convert("UTC") if column.dt.tz is not None else column
        raw = stamps.dt.tz_localize(None) if stamps.dt.tz is not None else stamps
        text = np.datetime_as_string(raw.to_numpy(dtype="datetime64[ns]"), unit="ns")
        return [("null" if t == "NaT" else f"{t}Z") for t in text.tolist()]
    if pd.api.types.is_bool_dtype(dtype) and column.notna().all():
        return ["true" if v else "false" for v in column.tolist()]
    if pd.api.types.is_float_dtype(dtype) and isinstance(dtype, np.dtype):
        return [repr(float(v)) for v in column.tolist()]
    if pd.api.types.is_integer_dtype(dtype) and column.notna().all():
        return [str(int(v)) for v in column.tolist()]
    return [_cell(v) for v in column.tolist()]


def _cell(value: Any) -> str:
    if value is None or value is pd.NaT or value is pd.NA:
        return "null"
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return repr(float(value))
    if isinstance(value, pd.Timestamp):
        stamp = value.tz_convert("UTC").tz_localize(None) if value.tzinfo else value
        text = np.datetime_as_string(stamp.to_datetime64(), unit="ns")
        return f"{text}Z"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(str(value), ensure_ascii=False)
