"""Checking what a strategy sandbox sends back: intents and widgets (untrusted, issue 14).

:func:`check_intents` accepts exactly the intents the SDK (runners/sandbox/alphaforge_strategy.py)
records; anything else can only come from code that bypassed it, so it raises
:class:`ReplyError`, which the host turns into a crash. :func:`check_widgets` accepts the
widget types the runtime UI knows (metric, line_chart, table, log) with finite numbers and
bounded sizes; a widget outside that is the user's mistake in ``render()``: :class:`ReplyError`
with the widget's index, type and what is wrong, which the host raises as a StrategyError.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "MAX_COLUMNS",
    "MAX_LOG_LINES",
    "MAX_POINTS",
    "MAX_ROWS",
    "MAX_TEXT",
    "MAX_WIDGETS",
    "ReplyError",
    "check_intents",
    "check_logs",
    "check_widgets",
]

MAX_WIDGETS = 50
MAX_POINTS = 5000  # per line chart
MAX_ROWS = 1000  # per table
MAX_COLUMNS = 50
MAX_LOG_LINES = 500  # per log widget
MAX_TEXT = 2000  # characters of a label, a cell, a log line
MAX_INTENTS = 100  # per tick (the SDK's MAX_ORDERS_PER_TICK)
_ID_CHARS = 64


class ReplyError(ValueError):
    """A reply's content is not what the protocol allows; the message says where."""


def _number(value: Any) -> bool:
    """A finite int or float (not a bool; an int too large for a float is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _text(value: Any, what: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise ReplyError(f"{what} must be text, got {type(value).__name__}")
    if len(value) > limit:
        raise ReplyError(f"{what} is {len(value)} characters, over {limit}")
    return value


def _cell(value: Any, what: str) -> Any:
    if value is None or isinstance(value, bool) or _number(value):
        return value
    if isinstance(value, str):
        return _text(value, what)
    if isinstance(value, float):
        raise ReplyError(f"{what} is {value!r}: numbers must be finite")
    raise ReplyError(f"{what} is a {type(value).__name__}: text, a number, a bool or null")


def _list(value: Any, what: str, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise ReplyError(f"{what} must be a list, got {type(value).__name__}")
    if len(value) > limit:
        raise ReplyError(f"{what} has {len(value)} entries, over {limit}")
    return value


def _metric(w: dict[str, Any], where: str) -> dict[str, Any]:
    return {
        "type": "metric",
        "label": _text(w.get("label"), f"{where}: label"),
        "value": _cell(w.get("value"), f"{where}: value"),
    }


def _line_chart(w: dict[str, Any], where: str) -> dict[str, Any]:
    points = []
    for i, p in enumerate(_list(w.get("points"), f"{where}: points", MAX_POINTS)):
        if not isinstance(p, list) or len(p) != 2:
            raise ReplyError(f"{where}: point {i} must be [x, y], got {p!r:.80}")
        x, y = p
        if not (_number(x) or (isinstance(x, str) and len(x) <= 64)):
            raise ReplyError(f"{where}: point {i} has x {x!r:.80}: a finite number or a time")
        if not _number(y):
            raise ReplyError(f"{where}: point {i} has y {y!r:.80}: a finite number")
        points.append([x, y])
    return {
        "type": "line_chart",
        "label": _text(w.get("label"), f"{where}: label"),
        "points": points,
    }


def _table(w: dict[str, Any], where: str) -> dict[str, Any]:
    columns = _list(w.get("columns"), f"{where}: columns", MAX_COLUMNS)
    names = [_text(c, f"{where}: column {i}", 200) for i, c in enumerate(columns)]
    rows = []
    for r, row in enumerate(_list(w.get("rows"), f"{where}: rows", MAX_ROWS)):
        if not isinstance(row, list) or len(row) != len(names):
            got = len(row) if isinstance(row, list) else type(row).__name__
            raise ReplyError(f"{where}: row {r} must be a list of {len(names)} cells, got {got}")
        rows.append([_cell(v, f"{where}: row {r} column {c}") for c, v in enumerate(row)])
    out: dict[str, Any] = {"type": "table", "columns": names, "rows": rows}
    if w.get("label") is not None:
        out["label"] = _text(w["label"], f"{where}: label")
    return out


def _log(w: dict[str, Any], where: str) -> dict[str, Any]:
    lines = _list(w.get("lines"), f"{where}: lines", MAX_LOG_LINES)
    out: dict[str, Any] = {
        "type": "log",
        "lines": [_text(s, f"{where}: line {i}") for i, s in enumerate(lines)],
    }
    if w.get("label") is not None:
        out["label"] = _text(w["label"], f"{where}: label")
    return out


_WIDGETS = {"metric": _metric, "line_chart": _line_chart, "table": _table, "log": _log}


def check_widgets(widgets: Any) -> list[dict[str, Any]]:
    """``render()``'s widgets, checked and normalised (unknown keys dropped)."""
    out = []
    for i, w in enumerate(_list(widgets, "render(): widgets", MAX_WIDGETS)):
        if not isinstance(w, dict):
            raise ReplyError(f"render(): widget {i} must be a dict, got {type(w).__name__}")
        kind = w.get("type")
        if kind not in _WIDGETS:
            known = ", ".join(_WIDGETS)
            raise ReplyError(f"render(): widget {i} has type {kind!r:.40}; known types: {known}")
        out.append(_WIDGETS[kind](w, f"render(): widget {i} ({kind})"))
    return out


def _intent(it: Any, i: int) -> dict[str, Any]:
    where = f"intent {i}"
    if not isinstance(it, dict):
        raise ReplyError(f"{where} is not a dict")
    op = it.get("op")
    out: dict[str, Any] = {"op": op, "client_id": _text(it.get("client_id"), where, _ID_CHARS)}
    if op == "place":
        out["symbol"] = _text(it.get("symbol"), f"{where}: symbol", 32)
        if it.get("side") not in ("buy", "sell"):
            raise ReplyError(f"{where}: side {it.get('side')!r:.40}")
        if not _number(it.get("qty")) or it["qty"] <= 0:
            raise ReplyError(f"{where}: qty {it.get('qty')!r:.40}")
        if it.get("type") not in ("market", "limit"):
            raise ReplyError(f"{where}: type {it.get('type')!r:.40}")
        limit = it.get("limit_price")
        if (it["type"] == "limit") != (limit is not None):
            raise ReplyError(f"{where}: limit_price {limit!r:.40} for a {it['type']} order")
        if limit is not None and (not _number(limit) or limit <= 0):
            raise ReplyError(f"{where}: limit_price {limit!r:.40}")
        out.update(side=it["side"], qty=float(it["qty"]), type=it["type"], limit_price=limit)
    elif op != "cancel":
        raise ReplyError(f"{where}: op {op!r:.40}")
    if it.get("refused") is not None:
        out["refused"] = _text(it["refused"], f"{where}: refused")
    return out


def check_intents(intents: Any) -> list[dict[str, Any]]:
    """A tick's intents as the SDK records them (ReplyError otherwise)."""
    if intents is None:
        return []
    return [_intent(it, i) for i, it in enumerate(_list(intents, "intents", MAX_INTENTS))]


def check_logs(logs: Any) -> list[str]:
    """A reply's log lines (ReplyError unless a short list of text)."""
    if logs is None:
        return []
    lines = _list(logs, "logs", 1000)
    return [_text(s, f"log line {i}", 4 * MAX_TEXT) for i, s in enumerate(lines)]
