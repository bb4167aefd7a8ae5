"""Tardis-style CSV <-> tick events (:mod:`nodes.ticks`), per symbol.

Two layouts, told apart by their header line:

- ``incremental_book_L2``: ``exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,
  amount`` — ``side`` ``bid``/``ask``, ``amount`` the level's new size (0 removes it). A run of
  consecutive ``is_snapshot=true`` rows is a full book: it becomes, per side, a
  DEPTH_CLEAR_EVENT up to its deepest level then DEPTH_SNAPSHOT_EVENT rows (hftbacktest's
  layout); other rows are DEPTH_EVENTs.
- ``trades``: ``exchange,symbol,timestamp,local_timestamp,id,side,price,amount`` — ``side`` the
  taker's (``buy``/``sell``; ``unknown`` gives a trade with neither flag).

Timestamps are microseconds since the epoch (Tardis' unit) and become nanoseconds. Files may be
gzip. :func:`write_csv` writes events back in these layouts (the canonical CSV of a tick
dataset): converting its output again gives the same events.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog.ticks.sources import lines, parse_float
from nodes import ticks
from nodes.errors import DataError
from nodes.lazy import lazy_module
from nodes.tickevents import EventBuilder

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_module("numpy", globals(), "np")

__all__ = ["BOOK_HEADER", "TRADES_HEADER", "convert", "write_csv"]

BOOK_HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"
TRADES_HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
_US = 1_000


class _Book:
    def __init__(self) -> None:
        self.rows = EventBuilder()
        self.snap: list[tuple[int, int, bool, float, float]] = []

    def flush(self) -> None:
        if not self.snap:
            return
        exch, local = self.snap[0][0], self.snap[0][1]
        bids = sorted(((px, q) for _, _, bid, px, q in self.snap if bid), reverse=True)
        asks = sorted((px, q) for _, _, bid, px, q in self.snap if not bid)
        self.rows.snapshot(exch, local, bids, asks)
        self.snap = []


def convert(files: Sequence[str | Path], *, symbol: str | None = None) -> dict[str, Any]:
    """Events per symbol from Tardis CSVs (book and trades files, in the order given);
    ``symbol`` keeps one symbol only."""
    books: dict[str, _Book] = {}
    for path in files:
        source = str(path)
        layout = None
        for n, line in lines(path):
            if layout is None:
                header = line.strip().lower()
                if header not in (BOOK_HEADER, TRADES_HEADER):
                    raise DataError(
                        "BAD_HEADER",
                        f"expected a Tardis header ({BOOK_HEADER} or {TRADES_HEADER}), "
                        f"got {line[:100]!r}",
                        source=source,
                        row=n,
                    )
                layout = "book" if header == BOOK_HEADER else "trades"
                continue
            cells = line.split(",")
            if len(cells) != 8:
                raise DataError(
                    "BAD_LINE", f"expected 8 fields, got {len(cells)}", source=source, row=n
                )
            sym = cells[1]
            if symbol is not None and sym != symbol:
                continue
            book = books.setdefault(sym, _Book())
            exch, local = (
                _us(cells[2], "timestamp", source, n),
                _us(cells[3], "local_timestamp", source, n),
            )
            px = parse_float(cells[6], "price", source, n)
            qty = parse_float(cells[7], "amount", source, n)
            if layout == "book":
                _book_row(book, cells, exch, local, px, qty, source, n)
            else:
                book.flush()
                side = {"buy": ticks.BUY_EVENT, "sell": ticks.SELL_EVENT, "unknown": 0}.get(
                    cells[5]
                )
                if side is None:
                    raise DataError(
                        "BAD_SIDE",
                        f"side {cells[5]!r} is not buy/sell/unknown",
                        source=source,
                        row=n,
                    )
                book.rows.add(ticks.TRADE_EVENT | side, exch, local, px, qty)
        for book in books.values():
            book.flush()
    events = {sym: b.rows.build() for sym, b in sorted(books.items()) if len(b.rows)}
    if not events:
        raise DataError(
            "NO_EVENTS", "no book or trade rows found", source=", ".join(map(str, files))
        )
    return {"events": events, "skipped": 0}


def _us(text: str, what: str, source: str, n: int) -> int:
    try:
        return int(text) * _US
    except ValueError:
        raise DataError(
            "BAD_TIME", f"{what} {text!r} is not microseconds", source=source, row=n
        ) from None


def _book_row(
    book: _Book, cells: list[str], exch: int, local: int, px: float, qty: float, source: str, n: int
) -> None:
    if cells[5] not in ("bid", "ask"):
        raise DataError("BAD_SIDE", f"side {cells[5]!r} is not bid/ask", source=source, row=n)
    bid = cells[5] == "bid"
    if cells[4] not in ("true", "false"):
        raise DataError(
            "BAD_LINE", f"is_snapshot {cells[4]!r} is not true/false", source=source, row=n
        )
    if cells[4] == "true":
        book.snap.append((exch, local, bid, px, qty))
        return
    book.flush()
    book.rows.add(
        ticks.DEPTH_EVENT | (ticks.BUY_EVENT if bid else ticks.SELL_EVENT), exch, local, px, qty
    )


def _fmt(value: float) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def write_csv(
    data: np.ndarray,
    symbol: str,
    book_path: Path,
    trades_path: Path,
    *,
    exchange: str = "alphaforge",
) -> None:
    """Write one symbol's events (exchange-flagged rows; timestamps truncated to microseconds)
    as a Tardis ``incremental_book_L2`` file and a ``trades`` file."""
    rows = data[(data["ev"] & ticks.EXCH_EVENT) != 0]
    book = [BOOK_HEADER]
    trades = [TRADES_HEADER]
    for i, row in enumerate(rows):
        ev = int(row["ev"])
        kind = ev & ticks.KIND_MASK
        exch, local = int(row["exch_ts"]) // _US, int(row["local_ts"]) // _US
        px, qty = _fmt(row["px"]), _fmt(row["qty"])
        if kind == ticks.TRADE_EVENT:
            side = "buy" if ev & ticks.BUY_EVENT else "sell" if ev & ticks.SELL_EVENT else "unknown"
            trades.append(f"{exchange},{symbol},{exch},{local},{i},{side},{px},{qty}")
        elif kind in (ticks.DEPTH_EVENT, ticks.DEPTH_SNAPSHOT_EVENT):
            snap = "true" if kind == ticks.DEPTH_SNAPSHOT_EVENT else "false"
            side = "bid" if ev & ticks.BUY_EVENT else "ask"
            book.append(f"{exchange},{symbol},{exch},{local},{snap},{side},{px},{qty}")
        # DEPTH_CLEAR_EVENT rows are implied by a snapshot
    Path(book_path).write_text("\n".join(book) + "\n", encoding="utf-8")
    Path(trades_path).write_text("\n".join(trades) + "\n", encoding="utf-8")
