"""Binance USD-M futures recordings -> tick events (:mod:`nodes.ticks`), per symbol.

- **WebSocket stream dumps** (:func:`convert_stream`): one message a line, either the bare
  payload or a combined-stream wrapper ``{"stream": ..., "data": {...}}``, optionally prefixed by
  the local receive time in nanoseconds and a space (how hftbacktest's collector records:
  ``1700000000123456789 {"e": ...}``); without it, ``local_ts`` is the message's event time
  ``E``. ``depthUpdate`` diffs (``T`` = exchange time, ``b``/``a`` = ``[price, qty]`` levels,
  qty 0 removes a level) become depth events; their ``pu`` must equal the previous message's
  ``u`` (else ``SEQUENCE_GAP``). ``trade`` (market trades only: ``X`` absent or ``MARKET``) and
  ``aggTrade`` become trade events; ``m`` true = the buyer was the maker = a sell. Other
  messages are skipped and counted.
- an optional REST **depth snapshot** (``GET /fapi/v1/depth``: ``lastUpdateId``, ``T``,
  ``bids``, ``asks``) starts the book: diffs with ``u < lastUpdateId`` are dropped, and the
  first one kept must have ``U <= lastUpdateId <= u`` (Binance's rule for a local book).
- **data.binance.vision trades CSV** (:func:`convert_trades_csv`): ``id, price, qty,
  quote_qty, time, is_buyer_maker`` (ms; with or without the header line).

Timestamps become nanoseconds. Bad input raises :class:`~nodes.errors.DataError` naming the
file and line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from catalog.ticks.sources import lines, parse_float
from nodes import ticks
from nodes.errors import DataError
from nodes.tickevents import EventBuilder

__all__ = ["convert_stream", "convert_trades_csv"]

_MS = 1_000_000


class _Symbol:
    def __init__(self) -> None:
        self.rows = EventBuilder()
        self.last_u: int | None = None
        self.snapshot_id: int | None = None
        self.synced = True


def convert_stream(
    files: Sequence[str | Path],
    *,
    snapshot: str | Path | None = None,
    symbol: str | None = None,
) -> dict[str, Any]:
    """Events per symbol from WebSocket dump files (in the order given), and ``skipped`` (the
    count of other messages). ``symbol`` keeps one symbol only (and names the snapshot's)."""
    books: dict[str, _Symbol] = {}
    skipped = 0
    if snapshot is not None:
        if symbol is None:
            raise DataError(
                "MISSING_SYMBOL", "give the symbol the snapshot is of", source=str(snapshot)
            )
        _snapshot(books.setdefault(symbol, _Symbol()), Path(snapshot))
    for path in files:
        source = str(path)
        for n, line in lines(path):
            local, msg = _message(line, source, n)
            kind = msg.get("e")
            sym = msg.get("s")
            if kind not in ("depthUpdate", "trade", "aggTrade") or not isinstance(sym, str):
                skipped += 1
                continue
            if symbol is not None and sym != symbol:
                continue
            book = books.setdefault(sym, _Symbol())
            if kind == "depthUpdate":
                _depth(book, msg, local, source, n)
            else:
                _trade(book, msg, local, source, n)
    out = {sym: b.rows.build() for sym, b in sorted(books.items()) if len(b.rows)}
    if not out:
        raise DataError(
            "NO_EVENTS", "no depth or trade messages found", source=", ".join(map(str, files))
        )
    return {"events": out, "skipped": skipped}


def _message(line: str, source: str, n: int) -> tuple[int | None, dict[str, Any]]:
    local: int | None = None
    text = line.strip()
    if text[:1].isdigit():
        head, _, text = text.partition(" ")
        local = int(head) if head.isdigit() else None
        if local is None:
            raise DataError(
                "BAD_LINE", f"expected '<local ns> <json>', got {line[:60]!r}", source=source, row=n
            )
    try:
        msg = json.loads(text)
    except ValueError as exc:
        raise DataError("BAD_JSON", f"not JSON ({exc.args[0]})", source=source, row=n) from None
    if isinstance(msg, dict) and isinstance(msg.get("data"), dict) and "stream" in msg:
        msg = msg["data"]
    if not isinstance(msg, dict):
        raise DataError("BAD_JSON", "a message must be a JSON object", source=source, row=n)
    return local, msg


def _int(msg: dict[str, Any], key: str, source: str, n: int) -> int:
    value = msg.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise DataError(
            "MISSING_FIELD",
            f"{msg.get('e')} message lacks integer field {key!r}",
            source=source,
            row=n,
        )
    return value


def _levels(msg: dict[str, Any], key: str, source: str, n: int) -> list[tuple[float, float]]:
    raw = msg.get(key, [])
    if not isinstance(raw, list):
        raise DataError(
            "MISSING_FIELD", f"field {key!r} must be a list of [price, qty]", source=source, row=n
        )
    out = []
    for level in raw:
        if not isinstance(level, list) or len(level) < 2:
            raise DataError(
                "BAD_LEVEL", f"{key}: {level!r} is not [price, qty]", source=source, row=n
            )
        px = parse_float(level[0], "price", source, n)
        qty = parse_float(level[1], "quantity", source, n)
        if px <= 0 or qty < 0:
            raise DataError(
                "BAD_LEVEL",
                f"{key}: price must be > 0 and qty >= 0, got {level!r}",
                source=source,
                row=n,
            )
        out.append((px, qty))
    return out


def _snapshot(book: _Symbol, path: Path) -> None:
    source = str(path)
    try:
        msg = json.loads("\n".join(line for _, line in lines(path)))
    except ValueError as exc:
        raise DataError(
            "BAD_JSON", f"the snapshot is not JSON ({exc.args[0]})", source=source
        ) from None
    if not isinstance(msg, dict):
        raise DataError("BAD_JSON", "the snapshot must be a JSON object", source=source)
    book.snapshot_id = _int(msg, "lastUpdateId", source, 1)
    ts = _int(msg, "T", source, 1) * _MS
    bids = sorted(_levels(msg, "bids", source, 1), reverse=True)
    asks = sorted(_levels(msg, "asks", source, 1))
    book.rows.snapshot(ts, ts, bids, asks)
    book.synced = False


def _depth(book: _Symbol, msg: dict[str, Any], local: int | None, source: str, n: int) -> None:
    first, last = _int(msg, "U", source, n), _int(msg, "u", source, n)
    exch = _int(msg, "T", source, n) * _MS
    if book.snapshot_id is not None and not book.synced:
        if last < book.snapshot_id:
            return  # older than the snapshot
        if first > book.snapshot_id:
            raise DataError(
                "SEQUENCE_GAP",
                f"first diff after the snapshot starts at U={first}, past its "
                f"lastUpdateId={book.snapshot_id}",
                source=source,
                row=n,
            )
        book.synced = True
    elif book.last_u is not None:
        pu = _int(msg, "pu", source, n)
        if pu != book.last_u:
            raise DataError(
                "SEQUENCE_GAP",
                f"pu={pu} does not follow the previous message's u={book.last_u} "
                "(updates were lost)",
                source=source,
                row=n,
            )
    book.last_u = last
    loc = local if local is not None else _int(msg, "E", source, n) * _MS
    for key, side in (("b", ticks.BUY_EVENT), ("a", ticks.SELL_EVENT)):
        for px, qty in _levels(msg, key, source, n):
            book.rows.add(ticks.DEPTH_EVENT | side, exch, loc, px, qty)


def _trade(book: _Symbol, msg: dict[str, Any], local: int | None, source: str, n: int) -> None:
    if msg.get("e") == "trade" and msg.get("X", "MARKET") != "MARKET":
        return  # insurance-fund and ADL fills are not market trades
    exch = _int(msg, "T", source, n) * _MS
    loc = local if local is not None else _int(msg, "E", source, n) * _MS
    px = parse_float(msg.get("p"), "price", source, n)
    qty = parse_float(msg.get("q"), "quantity", source, n)
    maker = msg.get("m")
    if not isinstance(maker, bool):
        raise DataError(
            "MISSING_FIELD", "trade message lacks boolean field 'm'", source=source, row=n
        )
    side = ticks.SELL_EVENT if maker else ticks.BUY_EVENT
    book.rows.add(ticks.TRADE_EVENT | side, exch, loc, px, qty)


def convert_trades_csv(files: Sequence[str | Path], *, symbol: str | None = None) -> dict[str, Any]:
    """Trade events from data.binance.vision futures trades CSVs. The symbol is ``symbol`` or
    the file name's first part (``BTCUSDT-trades-2024-01-01.csv`` -> ``BTCUSDT``)."""
    out: dict[str, EventBuilder] = {}
    for path in files:
        source = str(path)
        sym = symbol or Path(path).name.split("-")[0].split(".")[0]
        rows = out.setdefault(sym, EventBuilder())
        for n, line in lines(path):
            cells = line.split(",")
            if n == 1 and cells[0].strip().lower() == "id":
                if [c.strip().lower() for c in cells[:6]] != [
                    "id",
                    "price",
                    "qty",
                    "quote_qty",
                    "time",
                    "is_buyer_maker",
                ]:
                    raise DataError(
                        "BAD_HEADER",
                        f"expected id,price,qty,quote_qty,time,is_buyer_maker, got {line!r}",
                        source=source,
                        row=n,
                    )
                continue
            if len(cells) < 6:
                raise DataError(
                    "BAD_LINE", f"expected 6 fields, got {len(cells)}", source=source, row=n
                )
            px = parse_float(cells[1], "price", source, n)
            qty = parse_float(cells[2], "qty", source, n)
            try:
                ts = int(cells[4]) * _MS
            except ValueError:
                raise DataError(
                    "BAD_TIME", f"time {cells[4]!r} is not milliseconds", source=source, row=n
                ) from None
            maker = cells[5].strip().lower()
            if maker not in ("true", "false"):
                raise DataError(
                    "BAD_LINE",
                    f"is_buyer_maker {cells[5]!r} is not true/false",
                    source=source,
                    row=n,
                )
            side = ticks.SELL_EVENT if maker == "true" else ticks.BUY_EVENT
            rows.add(ticks.TRADE_EVENT | side, ts, ts, px, qty)
    events = {sym: rows.build() for sym, rows in sorted(out.items()) if len(rows)}
    if not events:
        raise DataError("NO_EVENTS", "no trades found", source=", ".join(map(str, files)))
    return {"events": events, "skipped": 0}
