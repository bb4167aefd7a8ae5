"""Static SVG line charts for the printable run report (no script, no external resource)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

__all__ = ["Line", "line_chart"]

_W, _H = 920, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 72, 12, 14, 28


@dataclass(frozen=True)
class Line:
    """One series of a chart: label, stroke colour, points (time, value)."""

    label: str
    color: str
    points: list[tuple[datetime, float]]
    fill: bool = False  # shade between the line and zero (drawdown)


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def line_chart(lines: list[Line], fmt: str = "{:,.0f}", height: int = _H, title: str = "") -> str:
    """An SVG chart of ``lines`` on a shared time axis; ``fmt`` formats the value axis."""
    pts = [p for line in lines for p in line.points if math.isfinite(p[1])]
    if not pts:
        return '<p class="muted">No data to chart.</p>'
    t0 = min(p[0] for p in pts).timestamp()
    t1 = max(p[0] for p in pts).timestamp()
    lo = min(p[1] for p in pts)
    hi = max(p[1] for p in pts)
    if any(line.fill for line in lines):
        hi = max(hi, 0.0)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    pad = (hi - lo) * 0.04
    lo, hi = lo - (pad if lo != 0 else 0), hi + pad
    span_t = (t1 - t0) or 1.0
    plot_w, plot_h = _W - _LEFT - _RIGHT, height - _TOP - _BOTTOM

    def x(t: datetime) -> float:
        return _LEFT + (t.timestamp() - t0) / span_t * plot_w

    def y(v: float) -> float:
        return _TOP + (hi - v) / (hi - lo) * plot_h

    out = [
        f'<svg viewBox="0 0 {_W} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for tick in _nice_ticks(lo, hi):
        ty = y(tick)
        out.append(
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" class="grid"/>'
            f'<text x="{_LEFT - 6}" y="{ty + 4:.1f}" text-anchor="end" class="tick">'
            f"{escape(fmt.format(tick))}</text>"
        )
    for i in range(6):
        t = t0 + span_t * i / 5
        tx = _LEFT + plot_w * i / 5
        label = datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d")
        anchor = "start" if i == 0 else "end" if i == 5 else "middle"
        out.append(
            f'<text x="{tx:.1f}" y="{height - 8}" text-anchor="{anchor}" class="tick">'
            f"{label}</text>"
        )
    for line in lines:
        coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in line.points if math.isfinite(v))
        if line.fill and line.points:
            first, last = x(line.points[0][0]), x(line.points[-1][0])
            area = f"{first:.1f},{y(0):.1f} {coords} {last:.1f},{y(0):.1f}"
            out.append(f'<polygon points="{area}" fill="{line.color}" fill-opacity="0.18"/>')
        out.append(
            f'<polyline points="{coords}" fill="none" stroke="{line.color}" '
            'stroke-width="1.4" stroke-linejoin="round"/>'
        )
    out.append("</svg>")
    legend = "".join(
        f'<span class="key"><i style="background:{line.color}"></i>{escape(line.label)}</span>'
        for line in lines
    )
    return f"<figure><figcaption>{escape(title)}{legend}</figcaption>{''.join(out)}</figure>"
