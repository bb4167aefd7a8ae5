"""A finished run's results in its directory: metrics.json, equity.parquet, trades.csv.

The primary metrics come from the last node (in topological order) with a ``metrics`` output;
the equity curve and trades come from the backtest behind them (the same node, or the node that
feeds its ``equity`` / ``trades`` inputs). The bars that backtest traded (its ``ohlcv`` input) are
copied to ``prices.parquet`` and ``market.json`` names the backtest and data nodes, so the API can
draw the price chart and the buy-and-hold benchmark of exactly the data the run used. The
result fingerprint is the sha256 of the primary metrics and the trades CSV: re-running a stored
definition must give the same fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsl.ir import NodeIR, PipelineIR
from runners.io import read_value

__all__ = ["RunResults", "write_results"]


@dataclass
class RunResults:
    """What :func:`write_results` wrote and the numbers the run record and tracker need."""

    metrics: dict[str, Any] = field(default_factory=dict)
    primary_node: str | None = None
    by_node: dict[str, dict[str, Any]] = field(default_factory=dict)
    equity_path: Path | None = None
    trades_path: Path | None = None
    prices_path: Path | None = None
    fingerprint: str | None = None

    def files(self) -> list[Path]:
        """The result files that exist (for the tracker's artifacts)."""
        return [p for p in (self.equity_path, self.trades_path) if p is not None]


def write_results(
    ir: PipelineIR, outputs: Mapping[str, Mapping[str, str]], run_dir: Path
) -> RunResults:
    """Write the run's result files from the nodes' output artifacts (node id -> port -> path)."""
    res = RunResults()
    primary: NodeIR | None = None
    for node in ir.nodes:
        for port, type_name in node.outputs.items():
            if type_name != "metrics" or port not in outputs.get(node.id, {}):
                continue
            name = node.id if port == "metrics" else f"{node.id}.{port}"
            res.by_node[name] = read_value(outputs[node.id][port])
            primary = node
            res.metrics = res.by_node[name]
    res.primary_node = primary.id if primary else None
    (run_dir / "metrics.json").write_text(
        json.dumps({**res.metrics, "by_node": res.by_node}, indent=2, sort_keys=True) + "\n"
    )
    trades_csv = ""
    if primary is not None:
        equity = _source_of(ir, primary, "equity", outputs)
        if equity is not None:
            res.equity_path = run_dir / "equity.parquet"
            shutil.copyfile(equity, res.equity_path)
            res.prices_path = _write_prices(ir, primary, outputs, run_dir)
        trades = _source_of(ir, primary, "trades", outputs)
        if trades is not None:
            trades_csv = read_value(trades).to_csv(index=False)
            res.trades_path = run_dir / "trades.csv"
            res.trades_path.write_text(trades_csv)
    res.fingerprint = result_fingerprint(res.metrics, trades_csv)
    return res


def result_fingerprint(metrics: Mapping[str, Any], trades_csv: str) -> str:
    """sha256 of the canonical primary metrics JSON and the trades CSV text."""
    payload = json.dumps(dict(metrics), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{payload}\n{trades_csv}".encode()).hexdigest()


def _source_of(
    ir: PipelineIR, node: NodeIR, port_type: str, outputs: Mapping[str, Mapping[str, str]]
) -> str | None:
    """The artifact of type ``port_type`` that ``node`` produced or read, if any."""
    found = _producer_of(ir, node, port_type, outputs)
    return outputs[found[0]][found[1]] if found is not None else None


def _producer_of(
    ir: PipelineIR, node: NodeIR, port_type: str, outputs: Mapping[str, Mapping[str, str]]
) -> tuple[str, str] | None:
    """(node id, port) of the ``port_type`` artifact that ``node`` produced or read, if any."""
    for port, type_name in node.outputs.items():
        if type_name == port_type and port in outputs.get(node.id, {}):
            return node.id, port
    for _, b in node.bindings():
        upstream = ir.node(b.node)
        produced = b.port in outputs.get(b.node, {})
        if upstream.outputs.get(b.port) == port_type and b.column is None and produced:
            return b.node, b.port
    return None


def _write_prices(
    ir: PipelineIR, primary: NodeIR, outputs: Mapping[str, Mapping[str, str]], run_dir: Path
) -> Path | None:
    """Copy the bars the equity curve's backtest traded to ``prices.parquet`` (and name the
    nodes in ``market.json``); None when that node read no whole ``ohlcv`` frame."""
    producer = _producer_of(ir, primary, "equity", outputs)
    if producer is None:
        return None
    backtest = ir.node(producer[0])
    data = _producer_of(ir, backtest, "ohlcv", outputs)
    if data is None or data[0] == backtest.id:
        return None
    path = Path(outputs[data[0]][data[1]])
    if path.suffix != ".parquet":
        return None
    shutil.copyfile(path, run_dir / "prices.parquet")
    market = {"backtest_node": backtest.id, "backtest_type": backtest.type, "data_node": data[0]}
    (run_dir / "market.json").write_text(json.dumps(market, indent=2, sort_keys=True) + "\n")
    return run_dir / "prices.parquet"
