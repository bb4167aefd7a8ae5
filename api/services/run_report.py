"""The one-page HTML report of a run: self-contained (inline CSS and SVG, no script, no
external URL), printable, built from the run's files and its pipeline version."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from api.models.run import MonthlyReturns, RunAnalysis
from api.services import run_market
from api.services.run_files import chart_indices
from api.services.run_svg import Line, line_chart
from dsl.ir import PipelineIR

__all__ = ["ReportContext", "render_report"]

FIRST_TRADES = 25
_SVG_POINTS = 1_200
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_PCT = {"total_return", "cagr", "max_drawdown", "volatility", "win_rate", "exposure"}
_PCT |= {"avg_trade_return"}
_ORDER = (
    "total_return", "cagr", "sharpe", "sortino", "calmar", "max_drawdown", "volatility",
    "num_trades", "win_rate", "profit_factor", "avg_trade_return", "exposure", "turnover",
    "total_fees", "final_equity", "bars", "ppy", "start", "end",
)  # fmt: skip
_TEXT = {"notes", "warnings", "ppy_source", "by_node"}
_LABELS = {
    "total_return": "Total return", "cagr": "CAGR", "max_drawdown": "Max drawdown",
    "num_trades": "Trades (closed)", "avg_trade_return": "Avg trade return",
    "total_fees": "Fees", "final_equity": "Final equity", "ppy": "Periods / year",
}  # fmt: skip


def _label(key: str) -> str:
    """A metric's name as the app shows it (``win_rate`` → "Win rate")."""
    return _LABELS.get(key) or key.replace("_", " ").capitalize()


@dataclass(frozen=True)
class ReportContext:
    """What the report shows about the run besides its files."""

    run_id: int
    status: str
    pipeline_name: str
    pipeline_title: str | None
    version: int
    source: str
    ir_json: str
    ir_hash: str
    created_at: datetime | None
    finished_at: datetime | None
    metrics: dict[str, Any]


def render_report(ctx: ReportContext, run_dir: Path) -> str:
    """The HTML page (a complete document, UTF-8)."""
    info = run_market.analysis(run_dir)
    equity = run_market.read_equity(run_dir)
    title = f"{ctx.pipeline_title or ctx.pipeline_name} — run #{ctx.run_id}"
    body = [
        f"<header><h1>{escape(title)}</h1><p class='muted'>pipeline <code>"
        f"{escape(ctx.pipeline_name)}</code> · version {ctx.version} · {escape(ctx.status)}"
        f" · created {_when(ctx.created_at)} · finished {_when(ctx.finished_at)}"
        f" · IR {escape(ctx.ir_hash[:16])}</p></header>",
        _metrics_section(ctx.metrics, info),
        _charts_section(equity, info),
        _monthly_section(info.monthly, info.monthly_note),
        _trades_section(run_dir),
        _params_section(ctx.ir_json),
        f"<section><h2>Pipeline source</h2><pre>{escape(ctx.source)}</pre></section>",
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(body)
        + "<footer class='muted'>Alpha Forge run report. Metrics as defined in the user guide"
        " (docs/backtest.md); returns are fractions shown as percentages.</footer>"
        "</body></html>\n"
    )


def _when(ts: datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M UTC") if ts else "—"


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = str(value)
        if key in ("start", "end"):
            text = text.replace("T00:00:00+00:00", "").replace("T", " ").replace("+00:00", " UTC")
        return escape(text)
    if not math.isfinite(value):
        return "—"
    if key in _PCT:
        return f"{value * 100:,.2f} %"
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e15):
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) >= 100 else f"{value:,.3f}"


def _metrics_section(metrics: dict[str, Any], info: RunAnalysis) -> str:
    keys = [k for k in _ORDER if k in metrics]
    keys += sorted(k for k in metrics if k not in _ORDER and k not in _TEXT)
    bench = info.benchmark
    versus = (
        {"total_return": bench.total_return, "cagr": bench.cagr, "max_drawdown": bench.max_drawdown}
        if bench
        else {}
    )
    rows = []
    for key in keys:
        cell = _fmt(key, versus[key]) if key in versus else ""
        rows.append(
            f"<tr><th title='{escape(key)}'>{escape(_label(key))}</th>"
            f"<td class='num'>{_fmt(key, metrics[key])}</td>"
            f"<td class='num muted'>{cell}</td></tr>"
        )
    notes = [*map(str, metrics.get("notes") or []), *map(str, metrics.get("warnings") or [])]
    if metrics.get("ppy_source"):
        notes.append(f"Periods per year: {metrics['ppy_source']}")
    notes.append(bench.note if bench else info.benchmark_note or "")
    items = "".join(f"<li>{escape(n)}</li>" for n in notes if n)
    head = (
        "<tr><th>metric</th><th class='num'>strategy</th><th class='num'>buy &amp; hold</th></tr>"
    )
    return (
        "<section><h2>Metrics</h2><div class='cols'><table class='metrics'>"
        f"<thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"
        f"<div><h3>Notes</h3><ul class='notes'>{items}</ul></div></div></section>"
    )


def _thin(frame: pd.DataFrame) -> np.ndarray:
    eq = frame["equity"].to_numpy(dtype="float64")
    return chart_indices(eq, frame["drawdown"].to_numpy(dtype="float64"), _SVG_POINTS)


def _charts_section(equity: pd.DataFrame | None, info: RunAnalysis) -> str:
    if equity is None or len(equity) == 0:
        return "<section><h2>Equity</h2><p class='muted'>No equity curve in this run.</p></section>"
    idx = _thin(equity)
    stamps = pd.DatetimeIndex(equity.index)[idx].to_pydatetime()
    eq = equity["equity"].to_numpy(dtype="float64")[idx].tolist()
    dd = equity["drawdown"].to_numpy(dtype="float64")[idx].tolist()
    lines = [Line("strategy", "#2563eb", list(zip(stamps, eq, strict=True)))]
    dd_lines = [Line("strategy", "#dc2626", list(zip(stamps, dd, strict=True)), fill=True)]
    if info.benchmark is not None:
        b_pts = [(p.ts, p.equity) for p in info.benchmark.equity]
        lines.append(Line("buy & hold", "#9ca3af", b_pts[:: max(1, len(b_pts) // _SVG_POINTS)]))
        b_dd = [(p.ts, p.drawdown) for p in info.benchmark.equity]
        dd_lines.append(Line("buy & hold", "#9ca3af", b_dd[:: max(1, len(b_dd) // _SVG_POINTS)]))
    note = f"<p class='muted'>{escape(info.benchmark_note)}</p>" if info.benchmark_note else ""
    return (
        "<section><h2>Equity and drawdown</h2>"
        + line_chart(lines, "{:,.0f}", title="Equity")
        + line_chart(dd_lines, "{:.0%}", height=170, title="Drawdown")
        + note
        + "</section>"
    )


def _shade(value: float | None) -> str:
    if value is None:
        return ""
    alpha = min(abs(value) / 0.10, 1.0) * 0.55 + 0.08
    rgb = "22,163,74" if value >= 0 else "220,38,38"
    return f" style='background:rgba({rgb},{alpha:.2f})'"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def _monthly_section(rows: list[MonthlyReturns], note: str | None) -> str:
    if not rows:
        return (
            f"<section><h2>Monthly returns</h2><p class='muted'>{escape(note or '')}</p></section>"
        )
    head = "".join(f"<th>{m}</th>" for m in _MONTHS)
    body = "".join(
        f"<tr><th>{r.year}</th>"
        + "".join(f"<td class='num'{_shade(m)}>{_pct(m)}</td>" for m in r.months)
        + f"<td class='num total'{_shade(r.total)}>{_pct(r.total)}</td></tr>"
        for r in rows
    )
    return (
        "<section><h2>Monthly returns</h2><table class='monthly'>"
        f"<thead><tr><th>year</th>{head}<th>year</th></tr></thead><tbody>{body}</tbody></table>"
        "<p class='muted'>Month-end equity over the previous month-end (the first month: over "
        "the starting equity); a year compounds its months.</p></section>"
    )


def _trades_section(run_dir: Path) -> str:
    path = run_dir / "trades.csv"
    if not path.exists():
        return "<section><h2>Trades</h2><p class='muted'>No trades file in this run.</p></section>"
    trades = pd.read_csv(path)
    if trades.empty:
        return "<section><h2>Trades</h2><p class='muted'>No trades.</p></section>"
    closed = trades[~trades["is_open"].astype(bool)] if "is_open" in trades else trades
    pnl = closed["pnl"] if "pnl" in closed else pd.Series(dtype="float64")
    summary = [
        ("trades (closed)", f"{len(closed):,}"),
        ("open at the end", f"{len(trades) - len(closed):,}"),
        ("winners", f"{int((pnl > 0).sum()):,}"),
        ("losers", f"{int((pnl < 0).sum()):,}"),
        ("total PnL (closed)", f"{pnl.sum():,.2f}"),
        ("best / worst trade", f"{pnl.max():,.2f} / {pnl.min():,.2f}" if len(pnl) else "—"),
    ]
    if "bars_held" in closed and len(closed):
        summary.append(("mean bars held", f"{closed['bars_held'].mean():,.1f}"))
    facts = "".join(f"<tr><th>{k}</th><td class='num'>{v}</td></tr>" for k, v in summary)
    first = trades.head(FIRST_TRADES)
    cols = list(first.columns)
    head = "".join(f"<th>{escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{_cell(c, v)}</td>" for c, v in zip(cols, row, strict=True))
        + "</tr>"
        for row in first.itertuples(index=False)
    )
    return (
        f"<section><h2>Trades</h2><table class='facts'>{facts}</table>"
        f"<h3>First {len(first)} of {len(trades):,} trades</h3>"
        f"<table class='trades'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        "</section>"
    )


def _cell(col: str, value: Any) -> str:
    if isinstance(value, float):
        if col == "return":
            return f"{value * 100:.2f}%"
        return f"{value:,.4f}" if "price" in col else f"{value:,.2f}"
    return escape(str(value).replace("+00:00", ""))


def _params_section(ir_json: str) -> str:
    try:
        ir = PipelineIR.from_json(ir_json)
    except ValueError:
        return ""
    rows = "".join(
        f"<tr><th><code>{escape(n.id)}</code></th><td>{escape(n.type)}</td>"
        f"<td><code>{escape(json.dumps(n.params, sort_keys=True))}</code></td></tr>"
        for n in ir.nodes
    )
    return (
        "<section><h2>Nodes and params</h2><table class='params'><thead><tr><th>node</th>"
        f"<th>type</th><th>params</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#111827;
margin:0 auto;max-width:980px;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px;border-bottom:1px solid
#e5e7eb;padding-bottom:4px}h3{font-size:13px;margin:12px 0 6px}
.muted{color:#6b7280;font-size:12px}code,pre{font-family:ui-monospace,Menlo,Consolas,monospace}
pre{background:#f3f4f6;padding:10px;border-radius:6px;font-size:12px;white-space:pre-wrap}
table{border-collapse:collapse;font-size:12px}th,td{padding:3px 8px;border-bottom:1px solid
#f0f0f0;text-align:left}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.cols{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:24px}
.notes{margin:0;padding-left:18px;font-size:12px;color:#374151}
.monthly td{min-width:44px}.monthly .total{font-weight:600}
.trades{width:100%}figure{margin:8px 0}figcaption{font-size:12px;font-weight:600}
.key{font-weight:400;margin-left:14px}.key i{display:inline-block;width:14px;height:3px;
margin-right:4px;vertical-align:middle}
svg .grid{stroke:#eef0f3}svg .tick{font-size:10px;fill:#6b7280}
footer{margin-top:28px}
@media print{body{padding:0;font-size:11px}section{break-inside:avoid}pre{white-space:pre-wrap}}
"""
