"""What a run left in its directory, read for the API: record, node states, logs, results.

The run directory (``<data_dir>/runs/<run_key>``, see :mod:`flows.record`) is the source of
truth for everything a run produced; these readers never write. Node states come from
``run.json`` once the run has ended and from the per-node result files while it runs.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from api.models.run import EquityPoint, LogLine, RunResults
from dsl.ir import PipelineIR
from flows.spec import RunRecord, read_run_record
from flows.tracebacks import has_traceback, user_text

__all__ = [
    "MAX_CHART_POINTS",
    "MAX_TRADE_ROWS",
    "LogTail",
    "chart_indices",
    "equity_points",
    "escape_formula",
    "forget_log",
    "live_node_states",
    "logged_nodes",
    "parse_log",
    "read_record",
    "results",
    "trades_csv",
]

MAX_CHART_POINTS = 5_000
MAX_LOG_READ_BYTES = 4 * 1024 * 1024
# A results page lists at most this many trades (~3 MB of JSON); trades.csv has all of them.
MAX_TRADE_ROWS = 10_000
_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ([A-Z]+)\s+(.*)$")
_TAG = re.compile(r"^\[([^\]\s]{1,100})\]\s?(.*)$", re.DOTALL)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NODE_STATE = {"skipped": "cancelled"}  # never ran: the contract has no "skipped"


def read_record(run_dir: Path) -> RunRecord | None:
    """``run.json`` of the run, or None while the flow has not started."""
    return read_run_record(run_dir)


def live_node_states(run_dir: Path, record: RunRecord | None, ended: str | None) -> dict[str, str]:
    """Each node's state. ``ended`` is the run's final status, if it has one: nodes that never
    finished are then ``cancelled`` (run cancelled or failed) rather than pending."""
    if record is None:
        return {}
    states = {n: _NODE_STATE.get(s, s) for n, s in record.node_states.items()}
    if record.status in ("completed", "failed"):
        return states
    for node_id in states:
        path = run_dir / "nodes" / f"{node_id}.json"
        try:
            states[node_id] = json.loads(path.read_text(encoding="utf-8"))["status"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            continue
    unfinished = [n for n, s in states.items() if s in ("pending", "running")]
    if ended is not None:
        return states | {n: "cancelled" for n in unfinished}
    return states | _running(run_dir, states, unfinished)


def _running(run_dir: Path, states: dict[str, str], unfinished: list[str]) -> dict[str, str]:
    """Unfinished nodes are running once the log mentions them or all their upstream nodes
    are done (the flow submits each node as soon as its inputs exist); else pending."""
    logged = logged_nodes(run_dir)
    try:
        ir = PipelineIR.from_json((run_dir / "ir.json").read_text(encoding="utf-8"))
        deps = {n.id: set(n.dependencies()) for n in ir.nodes}
    except (FileNotFoundError, ValueError):
        deps = {}
    done = {n for n, s in states.items() if s in ("completed", "cached")}
    return {
        n: "running" if n in logged or (n in deps and deps[n] <= done) else "pending"
        for n in unfinished
    }


class LogTail:
    """Reads a growing run log incrementally: each :meth:`read` parses only the bytes written
    since the last one. A record is handed out once the next record starts (its continuation
    lines, such as a traceback, may still follow) or, with ``final``, at the end of the run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.seq = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""
        self._pending: LogLine | None = None
        self.drained = False  # True once a final read reached the end of the file

    @property
    def pending_node(self) -> str | None:
        """The node id of the record still being read (its continuation may follow)."""
        return self._pending.node_id if self._pending is not None else None

    def read(self, *, final: bool = False) -> list[LogLine]:
        """The records completed since the last call (``final``: the last one too)."""
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read(MAX_LOG_READ_BYTES)
        except FileNotFoundError:
            chunk = b""
        self.offset += len(chunk)
        text = self._partial + self._decoder.decode(chunk)
        raws = text.split("\n")
        self._partial = raws.pop()  # being written (or "" after a newline)
        at_end = len(chunk) < MAX_LOG_READ_BYTES
        if final and at_end and self._partial:  # the writer is done: no newline will come
            raws.append(self._partial)
            self._partial = ""
        out: list[LogLine] = []
        for raw in raws:
            line = self._record(raw)
            if line is not None:
                if self._pending is not None:
                    out.append(_for_users(self._pending))
                self._pending = line
            elif self._pending is not None and raw:
                message = f"{self._pending.message}\n{raw}"
                self._pending = self._pending.model_copy(update={"message": message})
        if final and at_end and self._pending is not None:
            out.append(_for_users(self._pending))
            self._pending = None
        self.drained = final and at_end
        return out

    def _record(self, raw: str) -> LogLine | None:
        line = _log_record(raw, self.seq + 1)
        if line is not None:
            self.seq += 1
        return line


def _log_record(raw: str, seq: int) -> LogLine | None:
    """The record a log line starts (numbered ``seq``), or None for a continuation line."""
    match = _LINE.match(raw)
    if match is None:
        return None
    stamp, level, message = match.groups()
    node_id: str | None = None
    tagged = _TAG.match(message)
    if tagged:
        node_id = None if tagged.group(1) == "flow" else tagged.group(1)
        message = tagged.group(2)
    return LogLine(seq=seq, ts=_ts(stamp), node_id=node_id, level=level, message=message)


_LOGGED: dict[Path, tuple[LogTail, set[str]]] = {}
_LOGGED_LOCK = threading.Lock()


def logged_nodes(run_dir: Path) -> set[str]:
    """The node ids the run's log has mentioned so far (read incrementally per run)."""
    path = run_dir / "run.log"
    with _LOGGED_LOCK:
        tail, seen = _LOGGED.setdefault(path, (LogTail(path), set()))
        seen.update(line.node_id for line in tail.read() if line.node_id)
        if tail.pending_node:
            seen.add(tail.pending_node)
        return set(seen)


def forget_log(run_dir: Path) -> None:
    """Drop the incremental reader of a run that has ended."""
    with _LOGGED_LOCK:
        _LOGGED.pop(run_dir / "run.log", None)


def parse_log(run_dir: Path, after: int = 0) -> list[LogLine]:
    """The run log as lines (``seq`` from 1); lines that do not start a record (tracebacks)
    continue the previous line's message. Only lines with ``seq > after`` are returned."""
    path = run_dir / "run.log"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return parse_log_text(text, after)


def parse_log_text(text: str, after: int = 0) -> list[LogLine]:
    """:func:`parse_log` on text already read (the incomplete last line is left out)."""
    out: list[LogLine] = []
    lines = text.split("\n")
    if lines and lines[-1] != "":
        lines = lines[:-1]  # being written
    for raw in lines:
        line = _log_record(raw, len(out) + 1)
        if line is None:
            if out and raw:
                last = out[-1]
                out[-1] = last.model_copy(update={"message": f"{last.message}\n{raw}"})
            continue
        out.append(line)
    return [_for_users(line) for line in out if line.seq > after]


def _for_users(line: LogLine) -> LogLine:
    """The line with any Python traceback replaced by a pointer to the operators' copy (runs
    since issue 9 write none to ``run.log``; older runs' logs did)."""
    if not has_traceback(line.message):
        return line
    return line.model_copy(update={"message": user_text(line.message)})


def _ts(stamp: str) -> datetime | None:
    # The flow-run process logs local time (logging's asctime): convert it to UTC.
    try:
        local = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")
    except ValueError:
        return None
    return local.astimezone().astimezone(UTC)


def equity_points(run_dir: Path, max_points: int = MAX_CHART_POINTS) -> list[EquityPoint]:
    """The equity curve with its drawdown, for a chart: every bar up to ``max_points`` bars,
    else at most ``max_points`` points that keep the curve's shape (:func:`chart_indices`:
    first and last bar, and in each of ``(max_points - 2) // 3`` equal runs of bars the lowest
    and highest equity and the deepest drawdown — so every peak, trough and the maximum
    drawdown of a 1,000,000-bar run are on the chart, as 5,000 points instead of 1,000,000)."""
    path = run_dir / "equity.parquet"
    if not path.exists():
        return []
    present = set(pq.read_schema(path).names)
    frame = pd.read_parquet(path, columns=[c for c in ("equity", "drawdown") if c in present])
    equity = frame["equity"].to_numpy(dtype="float64")
    if "drawdown" in frame.columns:
        drawdown = frame["drawdown"].to_numpy(dtype="float64")
    else:
        drawdown = equity / np.maximum.accumulate(equity) - 1.0
    idx = chart_indices(equity, drawdown, max_points)
    stamps = pd.DatetimeIndex(frame.index)[idx].to_pydatetime()
    return [
        EquityPoint(ts=ts, equity=_finite(e), drawdown=_finite(d))
        for ts, e, d in zip(stamps, equity[idx].tolist(), drawdown[idx].tolist(), strict=True)
    ]


def chart_indices(equity: np.ndarray, drawdown: np.ndarray, max_points: int) -> np.ndarray:
    """Sorted positions of the bars a chart of at most ``max_points`` points shows (all of them
    when there are no more): see :func:`equity_points`."""
    n = len(equity)
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, (max_points - 2) // 3)
    size = -(-n // buckets)  # bars per bucket, rounded up; the last bucket is padded
    starts = np.arange(buckets) * size

    def pick(values: np.ndarray, arg: Any) -> np.ndarray:
        clean = np.nan_to_num(values, nan=0.0)
        padded = np.concatenate((clean, np.full(buckets * size - n, clean[-1])))
        return np.minimum(arg(padded.reshape(buckets, size), axis=1) + starts, n - 1)

    keep = [np.array([0, n - 1]), pick(equity, np.argmin), pick(equity, np.argmax)]
    keep.append(pick(drawdown, np.argmin))
    return np.unique(np.concatenate(keep))


def _finite(value: float) -> float:
    return float(value) if math.isfinite(value) else 0.0


def _trades(run_dir: Path, max_rows: int = MAX_TRADE_ROWS) -> tuple[list[dict[str, Any]], int]:
    """The first ``max_rows`` trades (in time order) and how many the run has in all."""
    path = run_dir / "trades.csv"
    if not path.exists():
        return [], 0
    frame = pd.read_csv(path, nrows=max_rows)
    total = len(frame)
    if total == max_rows:  # maybe more: count the records (one per line, as pandas writes them)
        with path.open("rb") as fh:
            total = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b"")) - 1
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict(orient="records"), total


def results(run_dir: Path, record: RunRecord | None) -> RunResults:
    """Metrics, the (thinned) equity curve and the (first ``MAX_TRADE_ROWS``) trades of a run."""
    metrics = dict(record.metrics) if record is not None else {}
    clean = {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in metrics.items()
    }
    trades, total = _trades(run_dir)
    return RunResults(
        metrics=clean, equity=equity_points(run_dir), trades=trades, trades_total=total
    )


def escape_formula(cell: str) -> str:
    """A CSV cell a spreadsheet will not evaluate: text starting with ``= + - @`` (or a tab or
    carriage return) gets a leading apostrophe; numbers such as ``-0.5`` stay numbers."""
    if not cell.startswith(_FORMULA_START):
        return cell
    try:
        float(cell)
        return cell
    except ValueError:
        return "'" + cell


def trades_csv(run_dir: Path) -> str:
    """The run's trades as CSV, every cell formula-escaped (header only when there are none)."""
    path = run_dir / "trades.csv"
    if not path.exists():
        return ""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            writer.writerow([escape_formula(cell) for cell in row])
    return out.getvalue()
