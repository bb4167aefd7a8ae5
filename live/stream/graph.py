"""A pipeline's graph evaluated on the live frame, and the new rows of what it emits.

:class:`StreamGraph` takes the IR and its stream block's sinks and evaluates, in this process
(``InProcessRunner.compute``, the same code a batch run and a sweep's trials run), the nodes the
sinks read and what they read, nothing else (a ``backtest`` nobody emits is not run). The
pipeline's **data step** (the one step without inputs that gives ``ohlcv`` bars, upstream of an
emitted node) is not run: its output is the live frame (:class:`live.stream.frame.LiveFrame`),
in the shape the step gives in a batch run. Steps that do not depend on it (another file, a
constant) are run once and kept.

Every node's values are causal (no node reads a later bar; the look-ahead checks of the
runners hold for every built-in), so the values at the newest bar of a frame that holds every
bar since the warm-up began are the batch run's values at that bar over the same bars. Once the
frame is full (``keep`` bars a symbol) the oldest bars go: windowed nodes (SMA, Bollinger,
z-score) still give exactly the batch values; recursive ones (EMA, RSI, ATR) are seeded later
and differ by their seed's weight, ``(1 - alpha) ** bars since``, negligible after a few
windows (docs/stream.md).

:meth:`StreamGraph.rows` picks an emitted port's (or column's) values at one ``ts`` for the
symbols that have a bar there: a series of one symbol is that symbol's value; a wide frame
(a series over a panel, ts × symbol) one value per symbol column; a table (a frame, ``ohlcv``)
the selected column, or the whole row as an object, per symbol row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from dsl.ir import NodeIR, PipelineIR, SinkIR
from live.stream.errors import StreamError
from live.stream.events import json_value
from runners.inprocess import InProcessRunner

__all__ = ["EMITTABLE_TYPES", "StreamGraph"]

#: Port types a stream may emit: values per bar.
EMITTABLE_TYPES = frozenset({"ohlcv", "series", "signal", "frame", "equity"})


class StreamGraph:
    """The part of ``ir`` the ``sinks`` read, evaluated on a live frame (module doc)."""

    def __init__(self, ir: PipelineIR, sinks: Iterable[SinkIR], runner: InProcessRunner) -> None:
        self.ir = ir
        self.runner = runner
        self.sinks = list(sinks)
        nodes = {n.id: n for n in ir.nodes}
        for sink in self.sinks:
            node = nodes[sink.node]
            port_type = (node.outputs or {}).get(sink.port)
            if port_type is not None and port_type not in EMITTABLE_TYPES:
                raise StreamError(
                    f"{ir.name}: `emit {_ref(sink)}`: port {sink.port!r} of {node.id} is "
                    f"{port_type}, not a value per bar (a stream emits series, signals and "
                    "time-indexed tables)"
                )
        self.needed = _upstream(nodes, [s.node for s in self.sinks])
        self.data_node = _data_node(ir, nodes, self.needed)
        custom = [n for n in self.needed if nodes[n].runtime != "builtin"]
        if custom:
            raise StreamError(
                f"{ir.name}: a stream evaluates built-in nodes in this process; "
                f"{', '.join(sorted(custom))} run in a sandbox (not supported in a stream yet)"
            )
        live = _downstream(ir, self.data_node.id)
        self._order = [n for n in ir.nodes if n.id in self.needed and n.id != self.data_node.id]
        self._static_ids = {n.id for n in self._order if n.id not in live}
        self._static: dict[str, dict[str, Any]] | None = None

    @property
    def data_port(self) -> str:
        """The data step's ``ohlcv`` output port."""
        outputs = self.data_node.outputs or {}
        return next(p for p, t in outputs.items() if t == "ohlcv")

    def evaluate(self, frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
        """Every needed node's outputs with the data step's output = ``frame``; raises the
        failing node's error (:class:`StreamError` naming it)."""
        values: dict[str, dict[str, Any]] = {self.data_node.id: {self.data_port: frame}}
        if self._static is None:
            self._static = {}
            for node in self._order:
                if node.id in self._static_ids:
                    self._static[node.id] = self._compute(node, self._static)
        values.update(self._static)
        for node in self._order:
            if node.id not in values:
                values[node.id] = self._compute(node, values)
        return values

    def _compute(self, node: NodeIR, values: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
        upstream = {d: values[d] for d in node.dependencies()}
        try:
            return self.runner.compute(node, upstream)
        except Exception as exc:
            raise StreamError(
                f"{self.ir.name}: node {node.id!r} ({node.type}) failed: {exc}"
            ) from exc

    def rows(
        self,
        values: Mapping[str, dict[str, Any]],
        sink: SinkIR,
        ts: pd.Timestamp,
        symbols: Iterable[str],
    ) -> list[tuple[str, Any]]:
        """``(symbol, JSON value)`` of ``sink``'s port at ``ts`` for each of ``symbols`` that
        has a row there (module doc)."""
        value = values[sink.node][sink.port]
        wanted = list(symbols)
        port_type = (self.ir.node(sink.node).outputs or {}).get(sink.port, "frame")
        if isinstance(value, pd.Series):
            if ts not in value.index:
                return []
            cell = json_value(_last(value.loc[ts]))
            return [(s, cell) for s in wanted]
        if not isinstance(value, pd.DataFrame):
            raise StreamError(
                f"{self.ir.name}: `emit {_ref(sink)}` gave {type(value).__name__}, not a "
                "series or a table"
            )
        if not isinstance(value.index, pd.DatetimeIndex):
            raise StreamError(
                f"{self.ir.name}: `emit {_ref(sink)}`: the table is not indexed by time"
            )
        if port_type in ("series", "signal") and sink.column is None:  # wide: ts × symbol
            if ts not in value.index:
                return []
            row = value.loc[ts]
            row = row.iloc[-1] if isinstance(row, pd.DataFrame) else row
            return [(s, json_value(row[s])) for s in wanted if s in row.index]
        at = value[value.index == ts]
        if at.empty:
            return []
        if "symbol" in at.columns:
            out = []
            for s in wanted:
                mine = at[at["symbol"] == s]
                if not mine.empty:
                    out.append((s, _cell(mine.iloc[-1], sink)))
            return out
        return [(s, _cell(at.iloc[-1], sink)) for s in wanted[:1]]


def _cell(row: pd.Series, sink: SinkIR) -> Any:
    if sink.column is not None:
        if sink.column not in row.index:
            raise StreamError(f"`emit {_ref(sink)}`: no column {sink.column!r}")
        return json_value(row[sink.column])
    return {str(k): json_value(v) for k, v in row.items() if k != "symbol"}


def _last(cell: Any) -> Any:
    return cell.iloc[-1] if isinstance(cell, pd.Series) else cell


def _ref(sink: SinkIR) -> str:
    return f"{sink.node}.{sink.column or sink.port}"


def _upstream(nodes: Mapping[str, NodeIR], wanted: list[str]) -> set[str]:
    todo, seen = list(wanted), set()
    while todo:
        node_id = todo.pop()
        if node_id not in seen:
            seen.add(node_id)
            todo.extend(nodes[node_id].dependencies())
    return seen


def _downstream(ir: PipelineIR, source: str) -> set[str]:
    reached = {source}
    for node in ir.nodes:  # topological order
        if any(d in reached for d in node.dependencies()):
            reached.add(node.id)
    return reached


def _data_node(ir: PipelineIR, nodes: Mapping[str, NodeIR], needed: set[str]) -> NodeIR:
    found = [
        nodes[n]
        for n in sorted(needed)
        if not nodes[n].dependencies() and "ohlcv" in (nodes[n].outputs or {}).values()
    ]
    if len(found) != 1:
        what = (
            "none of the emitted steps reads bars from a data step"
            if not found
            else f"steps {', '.join(n.id for n in found)} all load bars"
        )
        raise StreamError(
            f"{ir.name}: a stream pipeline reads its bars from one data step (its source "
            f"replaces that step's output); {what}"
        )
    return found[0]
