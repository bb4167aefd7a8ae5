"""What the CLI prints: per-node progress lines, the metrics table, where results are."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from rich.console import Console

from flows.events import NodeEvent

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["Progress", "metrics_table", "prefect_ui_url", "print_metrics"]

_MARKS = {
    "completed": ("✓", "green"),
    "cached": ("↺", "cyan"),
    "failed": ("✗", "red"),
    "skipped": ("-", "dim"),
}


class Progress:
    """Prints one line per node as it finishes (called from task threads)."""

    def __init__(self, console: Console, width: int) -> None:
        self.console = console
        self.width = width
        self._lock = threading.Lock()

    def __call__(self, event: NodeEvent) -> None:
        if event.state == "started":
            return
        mark, style = _MARKS[event.state]
        took = f"{event.duration_s:6.2f}s" if event.duration_s is not None else " " * 7
        line = (
            f"  [{style}]{mark}[/] {event.node_id:<{self.width}} {event.node_type:<16} "
            f"[{style}]{event.state:<9}[/] {took}"
        )
        if event.error:
            line += f"  [red]{_escape(event.error)}[/]"
        with self._lock:
            self.console.print(line, highlight=False)


# Fractions shown as percentages (the raw value stays in metrics.json and --json).
_PERCENT = frozenset(
    {
        "total_return",
        "cagr",
        "volatility",
        "max_drawdown",
        "win_rate",
        "avg_trade_return",
        "exposure",
    }
)


# Said in lines under the table, not as table cells.
_PROSE_KEYS = ("ppy_source", "notes", "warnings")


def print_metrics(out: Any, metrics: dict[str, Any], title: str) -> None:
    """The metrics table, then how periods per year were chosen, every warning and every
    note that explains a missing figure — each on its own line."""
    out.print(metrics_table(metrics, title=title))
    if metrics.get("ppy_source"):
        out.print(f"[bold]periods/year[/]  {_fmt(metrics.get('ppy'))}: {metrics['ppy_source']}")
    for warning in metrics.get("warnings") or []:
        out.print(f"[yellow]warning:[/] {warning}")
    for note in metrics.get("notes") or []:
        out.print(f"[dim]note:[/] {note}")


def metrics_table(metrics: dict[str, Any], title: str) -> Table:
    """The primary metrics as a two-column table (None shown as a dash; the prose fields
    ``ppy_source``, ``notes`` and ``warnings`` are left to :func:`print_metrics`)."""
    from rich.table import Table  # only for the human-readable report

    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    from nodes.builtin.metrics import METRIC_KEYS  # the order a researcher reads a result in

    rank = {k: i for i, k in enumerate(METRIC_KEYS)}
    for key in sorted(metrics, key=lambda k: (rank.get(k, len(rank)), k)):
        if key in _PROSE_KEYS:
            continue
        value = metrics[key]
        if key in _PERCENT and isinstance(value, int | float) and not isinstance(value, bool):
            table.add_row(key, f"{value * 100:,.2f} %")
        else:
            table.add_row(key, _fmt(value))
    return table


def prefect_ui_url(flow_run_id: str | None) -> str | None:
    """A link to the flow run in the Prefect UI when a Prefect server is configured."""
    api = os.environ.get("PREFECT_API_URL")
    if not api or not flow_run_id:
        return None
    return f"{api.removesuffix('/').removesuffix('/api')}/runs/flow-run/{flow_run_id}"


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{value:,.0f}"
        return f"{value:,.4f}" if abs(value) < 1e6 else f"{value:,.2f}"
    return str(value)


def _escape(text: str) -> str:
    return text.replace("[", r"\[")
