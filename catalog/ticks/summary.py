"""What a tick version holds, from its manifest alone: per symbol the events (book rows and
trades), the time range, the price range and the tick / lot size. Shown by ``alphaforge ticks
ls / show`` and by the web app's Datasets page; no tick file is opened.

Versions imported before the price range was recorded have ``px_min`` / ``px_max`` None.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from catalog.errors import CatalogError
from catalog.model import parse_time

__all__ = ["SymbolTicks", "TickSummary", "tick_summary"]


@dataclass(frozen=True)
class SymbolTicks:
    """One symbol of a tick version. ``depth`` counts every book row (diffs, clears and
    snapshot levels), ``trades`` the trade rows; times are exchange times (UTC)."""

    symbol: str
    events: int
    depth: int
    trades: int
    start: datetime
    end: datetime
    tick_size: float | None
    lot_size: float | None
    px_min: float | None
    px_max: float | None


@dataclass(frozen=True)
class TickSummary:
    """A tick version in figures: its events, time range and symbols."""

    version: str
    events: int
    start: datetime | None
    end: datetime | None
    symbols: list[SymbolTicks]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times as ISO 8601 text)."""
        out = asdict(self)
        out["start"] = self.start.isoformat() if self.start else None
        out["end"] = self.end.isoformat() if self.end else None
        for s in out["symbols"]:
            s["start"], s["end"] = s["start"].isoformat(), s["end"].isoformat()
        return out


def _size(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def tick_summary(manifest: Mapping[str, Any]) -> TickSummary:
    """The summary of a tick version's manifest (CatalogError for a bar version)."""
    if manifest.get("kind") != "ticks":
        raise CatalogError(
            f"version {str(manifest.get('version', ''))[:12]} is not a tick dataset (it holds bars)"
        )
    symbols = []
    for s in manifest["symbols"]:
        events, trades = int(s["rows"]), int(s.get("trades", 0))
        symbols.append(
            SymbolTicks(
                symbol=str(s["symbol"]),
                events=events,
                depth=events - trades,
                trades=trades,
                start=parse_time(s["start"]),
                end=parse_time(s["end"]),
                tick_size=_size(s.get("tick_size")),
                lot_size=_size(s.get("lot_size")),
                px_min=_size(s.get("px_min")),
                px_max=_size(s.get("px_max")),
            )
        )
    return TickSummary(
        version=str(manifest["version"]),
        events=int(manifest["rows"]),
        start=parse_time(manifest["start"]) if manifest.get("start") else None,
        end=parse_time(manifest["end"]) if manifest.get("end") else None,
        symbols=symbols,
    )
