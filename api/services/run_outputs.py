"""A finished run's node outputs, read back from the artifact store for the run page.

``run.json`` names each node's artifact key and ``ir.json`` each node's output ports; the
values are the Parquet files the node wrote (:mod:`runners.io`'s format: tables keep their
index, a series is a one-column table). Only tables and series are served, thinned to a chart's
size (:func:`output_frame`), so a page can draw what the run's own files (equity, trades) do not
hold: a portfolio's weights over time, its contribution per symbol. Other values get a one-line
``summary`` instead (``ticks``: its events and time range, from the tick file's marker).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from api.errors import NotFound, Unprocessable
from api.models.run import OutputFrame, RunOutput
from dsl.ir import PipelineIR
from flows.artifacts import ArtifactStore, StoreError
from flows.spec import RunRecord, read_run_record
from nodes import tickfile
from nodes.errors import DataError

__all__ = [
    "DONE_STATES",
    "MAX_CELLS",
    "MAX_OUTPUT_ROWS",
    "artifact_path",
    "output_frame",
    "outputs",
    "read_ir",
    "thin",
]

MAX_OUTPUT_ROWS = 5_000
# a response holds at most this many values (a 500-symbol weights frame: 500 rows of 500)
MAX_CELLS = 250_000
DONE_STATES = _DONE = ("completed", "cached")
_TABLE_SUFFIX = ".parquet"


def _ir(run_dir: Path) -> PipelineIR | None:
    try:
        return PipelineIR.from_json((run_dir / "ir.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def outputs(run_dir: Path, store: ArtifactStore | None = None) -> list[RunOutput]:
    """The output ports of the nodes that completed (or came from the cache), in the IR's
    order; empty while the run has no record. With ``store``, values that are not tables or
    series get a :func:`summary`."""
    record, ir = read_run_record(run_dir), _ir(run_dir)
    if record is None or ir is None:
        return []
    out = []
    for node in ir.nodes:
        done = record.nodes.get(node.id)
        if done is None or done.state not in _DONE or not done.key:
            continue
        for port, port_type in node.outputs.items():
            out.append(
                RunOutput(
                    node=node.id,
                    node_type=node.type,
                    port=port,
                    type=port_type,
                    primary=node.id == record.primary_metrics_node,
                    summary=None if store is None else _summary(record, store, node.id, port),
                )
            )
    return out


def _summary(record: RunRecord, store: ArtifactStore, node: str, port: str) -> str | None:
    try:
        path = _artifact(record, store, node, port)
    except NotFound:
        return None
    return summary(path)


def summary(path: Path) -> str | None:
    """One line about an artifact that is not a table or series (None for those): a tick
    file's event count and time range, or what is wrong with it."""
    if path.suffix != ".npz":
        return None
    try:
        marker = tickfile.read_marker(path)
    except DataError as exc:
        return f"ticks: unreadable ({exc})"
    text = f"ticks: {marker.get('events', 0):,} events"
    if marker.get("symbol"):
        text += f" of {marker['symbol']}"
    start, end = marker.get("start_ns"), marker.get("end_ns")
    if start is not None and end is not None:
        text += f", {_ns(start)} .. {_ns(end)}"
    return text


def _ns(value: int) -> str:
    return pd.Timestamp(int(value), unit="ns", tz="UTC").isoformat()


def read_ir(run_dir: Path) -> PipelineIR | None:
    """The run's compiled pipeline (``ir.json``), or None while it has none."""
    return _ir(run_dir)


def artifact_path(record: RunRecord, store: ArtifactStore, node: str, port: str) -> Path:
    """The stored file of ``node.port``; :class:`NotFound` with a sentence when the step did not
    complete, its artifacts are gone or it has no such output."""
    return _artifact(record, store, node, port)


def _artifact(record: RunRecord, store: ArtifactStore, node: str, port: str) -> Path:
    done = record.nodes.get(node)
    if done is None or done.state not in _DONE or not done.key:
        raise NotFound(f"step {node!r} has no outputs in this run")
    try:
        paths = store.output_paths(done.key)
    except (StoreError, OSError):
        raise NotFound(
            f"the outputs of step {node!r} are no longer in the artifact store; run the "
            "pipeline again to see them"
        ) from None
    if port not in paths:
        known = ", ".join(sorted(paths)) or "none"
        raise NotFound(f"step {node!r} has no output {port!r} (its outputs: {known})")
    return Path(paths[port])


def output_frame(
    run_dir: Path, store: ArtifactStore, node: str, port: str, max_rows: int
) -> OutputFrame:
    """The table or series ``node.port`` of the run, at most ``max_rows`` rows (fewer when the
    frame is wide: at most :data:`MAX_CELLS` values), thinned by :func:`thin`."""
    record = read_run_record(run_dir)
    if record is None:
        raise NotFound("the run has not started yet")
    path = _artifact(record, store, node, port)
    port_type = next((o.type for o in outputs(run_dir) if o.node == node and o.port == port), "")
    if path.suffix != _TABLE_SUFFIX:
        about = summary(path)
        raise Unprocessable(
            f"output {node}.{port} is a {port_type or path.suffix} value, not a table or series"
            + (f" ({about})" if about else "")
        )
    frame = pq.read_table(path).to_pandas()
    cap = max(1, min(max_rows, MAX_OUTPUT_ROWS, MAX_CELLS // max(1, frame.shape[1])))
    thinned, step = thin(frame, cap)
    return OutputFrame(
        node=node,
        port=port,
        type=port_type,
        index_name=None if thinned.index.name is None else str(thinned.index.name),
        index=_values(thinned.index),
        columns=[str(c) for c in thinned.columns],
        data=[_values(thinned[c]) for c in thinned.columns],
        rows=len(frame),
        step=step,
    )


def thin(frame: pd.DataFrame, max_rows: int) -> tuple[pd.DataFrame, int]:
    """``frame`` with at most ``max_rows`` rows and the number of rows merged into each: runs
    of ``step`` rows become one (numeric columns: mean skipping NaN; others: the last value;
    index: the first)."""
    n = len(frame)
    step = max(1, -(-n // max(1, max_rows)))
    if step == 1:
        return frame, 1
    groups = np.arange(n) // step
    merged: dict[Any, Any] = {}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            merged[name] = column.astype("float64").groupby(groups).mean().to_numpy()
        else:
            merged[name] = column.groupby(groups).last().to_numpy()
    index = frame.index[np.arange(0, n, step)]
    return pd.DataFrame(merged, index=index, columns=frame.columns), step


def _values(values: pd.Index | pd.Series) -> list[Any]:
    """JSON values: timestamps as ISO 8601 UTC, NaN and infinities as null."""
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values):
        stamps = pd.DatetimeIndex(values)
        if stamps.tz is None:
            stamps = stamps.tz_localize("UTC")
        return [None if ts is pd.NaT else ts.isoformat() for ts in stamps.tz_convert("UTC")]
    return [_clean(v) for v in values.tolist()]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value
