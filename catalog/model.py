"""What a version is, as callers see it, and the rules for names and symbols in paths."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import pandas as pd

from catalog.errors import CatalogError
from nodes.errors import DataError

__all__ = [
    "SymbolInfo",
    "VersionInfo",
    "check_name",
    "encode_symbol",
    "parse_time",
    "symbol_problem",
]

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
HEX_RE = re.compile(r"[0-9a-f]+")
MAX_SYMBOL = 128


@dataclass(frozen=True)
class SymbolInfo:
    """One symbol of a version: how many bars and the first and last bar's time (UTC)."""

    symbol: str
    rows: int
    start: datetime
    end: datetime


@dataclass(frozen=True)
class VersionInfo:
    """One immutable version of a dataset, as its manifest and its name's list describe it.

    ``version`` is the 64-hex content hash; ``name``, ``namespace``, ``created_at`` and
    ``message`` come from the name's list (or, for :meth:`Catalog.info`, from the import that
    first wrote the version). ``columns`` are the value columns (ts and symbol are always there).
    """

    version: str
    name: str
    namespace: str
    created_at: datetime
    message: str
    rows: int
    columns: list[str]
    symbols: list[SymbolInfo]
    start: datetime | None
    end: datetime | None
    sources: list[dict[str, Any]]
    bytes: int
    kind: str = "ohlcv"  # or "ticks": order-book events (catalog/ticks/)

    def short(self) -> str:
        """The first 12 hex digits (what the CLI shows)."""
        return self.version[:12]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times as ISO 8601 text)."""
        return {
            "version": self.version,
            "short": self.short(),
            "namespace": self.namespace,
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "message": self.message,
            "rows": self.rows,
            "columns": list(self.columns),
            "symbols": [
                {
                    "symbol": s.symbol,
                    "rows": s.rows,
                    "start": s.start.isoformat(),
                    "end": s.end.isoformat(),
                }
                for s in self.symbols
            ],
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "sources": list(self.sources),
            "bytes": self.bytes,
            "kind": self.kind,
        }


def check_name(kind: str, value: str) -> str:
    """``value`` if it is a valid namespace or dataset name (letters, digits, ``_``, ``-``;
    starts with a letter; at most 64), else :class:`CatalogError` saying so."""
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        msg = (
            f"invalid {kind} {value!r}: use letters, digits, '_' and '-', start with a letter, "
            "at most 64 characters"
        )
        raise CatalogError(msg)
    return value


def symbol_problem(symbol: str) -> str | None:
    """Why ``symbol`` cannot name a partition (None when it can)."""
    if not symbol.strip():
        return "the symbol is empty"
    if symbol in (".", ".."):
        return f"{symbol!r} is not a symbol"
    if len(symbol) > MAX_SYMBOL:
        return f"the symbol is longer than {MAX_SYMBOL} characters"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in symbol):
        return "the symbol holds a control character"
    return None


def encode_symbol(symbol: str) -> str:
    """The symbol as one safe path segment: percent-encoded except letters, digits and
    ``_.-`` (``BRK/B`` -> ``BRK%2FB``); refuses what cannot be a symbol (DataError)."""
    problem = symbol_problem(symbol)
    if problem:
        raise DataError("BAD_SYMBOL", f"{problem}: {symbol!r}")
    return quote(symbol, safe="_.-")


def parse_time(text: str) -> datetime:
    """A stored ISO 8601 time as a UTC datetime (nanoseconds dropped)."""
    return pd.Timestamp(text).tz_convert("UTC").to_pydatetime(warn=False)  # type: ignore[no-any-return]


def iso(ts: pd.Timestamp | int) -> str:
    """ISO 8601 text of a UTC timestamp (nanosecond precision when it has any)."""
    return pd.Timestamp(ts, tz="UTC").isoformat() if isinstance(ts, int) else ts.isoformat()
