"""What a ``stream { ... }`` block may name: its sources and sinks, with their params.

The one table of stream sources (``source = replay(...)``) and sinks (``emit x to
csv_append(...)``): the compiler checks a block against it (AF507 an unknown source or sink,
AF508 a param that is unknown, missing or of the wrong kind, AF509 an ``every`` that is not a
whole multiple of the source's interval), and the live side (``live.stream``) builds what it
names from the same table, so a block that compiles names only what the live side can run.

Values are checked in their JSON form (what the IR holds): a duration written ``1h`` is the
string ``"1h"``, a date ``2024-01-02`` the string ``"2024-01-02"``. :func:`check_params`
returns the problems as ``(param or None, message)`` pairs; the compiler places each at the
argument (or the call) it is about.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CALENDARS",
    "DEDUP_FIELDS",
    "DEFAULT_DEDUP_KEY",
    "SINKS",
    "SOURCES",
    "ParamSpec",
    "Spec",
    "canonical",
    "check_params",
    "interval_text",
]

#: The event fields a ``dedup_key`` may name.
DEDUP_FIELDS = ("ts", "symbol", "pipeline", "node", "port", "column")
#: The key a sink de-duplicates events by unless its ``dedup_key`` says otherwise.
DEFAULT_DEDUP_KEY = ("ts", "symbol")
#: How a source's bars are spaced: what the warm-up's gap check expects (docs/stream.md).
CALENDARS = ("24/7", "weekdays", "none")

_INTERVAL = re.compile(r"^\d+[smhdw]$")
_TABLE = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,62}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?)?")
_PIPELINE = re.compile(r"^[A-Za-z_]\w*$")

Check = Callable[[Any], str | None]


@dataclass(frozen=True)
class ParamSpec:
    """One param: ``check`` returns None for a good value, else what it should be."""

    check: Check
    doc: str
    required: bool = False


@dataclass(frozen=True)
class Spec:
    """A source or sink: its params, and pairs of params that exclude each other."""

    doc: str
    params: Mapping[str, ParamSpec] = field(default_factory=dict)
    exclusive: tuple[tuple[str, str], ...] = ()
    #: Aliases: another spelling of a param (``universe`` for ``symbols``).
    aliases: Mapping[str, str] = field(default_factory=dict)


def _string(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else "a non-empty string"


def _number(minimum: float, *, above: bool = False) -> Check:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and (value > minimum if above else value >= minimum):
            return None
        return f"a number {'above' if above else 'of at least'} {minimum:g}"

    return check


def _integer(minimum: int, maximum: int | None = None) -> Check:
    def check(value: Any) -> str | None:
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if is_int and value >= minimum and (maximum is None or value <= maximum):
            return None
        top = f" and at most {maximum}" if maximum is not None else ""
        return f"a whole number of at least {minimum}{top}"

    return check


def _interval(value: Any) -> str | None:
    if isinstance(value, str) and _INTERVAL.match(value.strip()) and int(value[:-1]) > 0:
        return None
    return "a bar interval such as 1m, 15m, 1h or 1d"


def _start(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return None
    if isinstance(value, str) and _DATE.match(value):
        return None
    return "a number of bars held back as history, or a date such as 2023-01-02"


def _symbols(value: Any) -> str | None:
    if isinstance(value, list) and value and all(_string(v) is None for v in value):
        return None
    return 'a non-empty list of symbols such as ["BTCUSDT", "ETHUSDT"]'


def _calendar(value: Any) -> str | None:
    return None if value in CALENDARS else "one of " + ", ".join(f'"{c}"' for c in CALENDARS)


def _dedup_key(value: Any) -> str | None:
    if (
        isinstance(value, list)
        and value
        and all(v in DEDUP_FIELDS for v in value)
        and len(set(value)) == len(value)
    ):
        return None
    return "a list of distinct event fields among " + ", ".join(DEDUP_FIELDS)


def _table(value: Any) -> str | None:
    if isinstance(value, str) and _TABLE.match(value):
        return None
    return "a table name (letters, digits and _, optionally schema.table)"


def _http_url(value: Any) -> str | None:
    if isinstance(value, str) and re.match(r"^https?://[^\s/]+", value):
        return None
    return "an http:// or https:// URL"


def _ws_url(value: Any) -> str | None:
    if isinstance(value, str) and re.match(r"^wss?://[^\s/]+", value):
        return None
    return "a ws:// or wss:// URL"


def _db_url(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith(("postgresql://", "postgresql+psycopg://")):
        return None
    return "a PostgreSQL URL (postgresql+psycopg://user@host:port/db)"


def _pipeline(value: Any) -> str | None:
    if isinstance(value, str) and _PIPELINE.match(value):
        return None
    return "a pipeline name (the `pipeline NAME` of another stream pipeline)"


_CALENDAR_DOC = (
    'How bars are spaced, for the warm-up\'s gap check: "24/7" (every interval), "weekdays" '
    '(no bars on Saturday and Sunday) or "none" (not checked). Default: "24/7" for intervals '
    'under a day, "weekdays" for daily and longer.'
)
_DEDUP = ParamSpec(_dedup_key, 'Event fields that identify an event (default ["ts", "symbol"]).')
_BINANCE = {
    "symbols": ParamSpec(_symbols, "The symbols whose klines are streamed.", required=True),
    "interval": ParamSpec(_interval, "The kline interval (default: the block's `every`)."),
    "ws_url": ParamSpec(_ws_url, "The WebSocket endpoint (default: Binance's)."),
    "rest_url": ParamSpec(_http_url, "The REST endpoint of the warm-up (default: Binance's)."),
    "calendar": ParamSpec(_calendar, _CALENDAR_DOC),
}

#: The sources a stream block may read its bars from.
SOURCES: dict[str, Spec] = {
    "replay": Spec(
        "Recorded bars fed as if live: a catalog dataset, a CSV/Parquet file, or (neither "
        "given) what the pipeline's own data step loads.",
        {
            "dataset": ParamSpec(_string, 'A catalog dataset, "name" or "name@version".'),
            "path": ParamSpec(_string, "A CSV or Parquet file (relative: the .af's folder)."),
            "speed": ParamSpec(
                _number(0), "Bar intervals per second of wall time; 0 (default) waits for none."
            ),
            "start": ParamSpec(
                _start,
                "Where the live part begins: bars per symbol held back as history, or a date.",
            ),
            "symbol": ParamSpec(_string, "Keep this symbol only (or name a file without one)."),
            "interval": ParamSpec(_interval, "The bars' interval (default: `every`, else found)."),
            "limit": ParamSpec(_integer(1), "Replay at most this many rows (symbol x ts)."),
            "calendar": ParamSpec(_calendar, _CALENDAR_DOC),
        },
        exclusive=(("dataset", "path"),),
    ),
    "binance": Spec(
        "Binance spot klines over its public WebSocket, warmed up over REST.", _BINANCE
    ),
    "binance_futures": Spec(
        "Binance USD-M futures klines (the spot source with the futures endpoints).",
        _BINANCE,
        aliases={"universe": "symbols"},
    ),
    "events": Spec(
        "The events other stream pipelines send with `trigger(target=...)`: each one is a "
        "bar whose open, high, low and close are the event's value."
    ),
}

#: The sinks an ``emit`` line may write to.
SINKS: dict[str, Spec] = {
    "csv_append": Spec(
        "Appends one row per event to a CSV file; keys already in the file are skipped.",
        {
            "path": ParamSpec(_string, "The CSV file (relative: the .af's folder).", True),
            "dedup_key": _DEDUP,
        },
    ),
    "postgres": Spec(
        "Inserts one row per event into a PostgreSQL table (created if missing, with a unique "
        "index on the dedup key; a repeated key is skipped by ON CONFLICT DO NOTHING).",
        {
            "table": ParamSpec(_table, "The table (schema.table allowed).", required=True),
            "url": ParamSpec(_db_url, "The database (default: ALPHAFORGE_DATABASE_URL)."),
            "dedup_key": _DEDUP,
        },
    ),
    "webhook": Spec(
        "POSTs each event as JSON, retrying with back-off.",
        {
            "url": ParamSpec(_http_url, "Where events are POSTed.", required=True),
            "retries": ParamSpec(_integer(0, 20), "Retries after a failed POST (default 3)."),
            "timeout_s": ParamSpec(_number(0, above=True), "Seconds per POST (default 10)."),
            "dedup_key": _DEDUP,
        },
    ),
    "prefect_event": Spec(
        "Emits a Prefect event per signal (automations can react to it).",
        {
            "event": ParamSpec(_string, 'The event name (default "alphaforge.stream.signal").'),
            "dedup_key": _DEDUP,
        },
    ),
    "trigger": Spec(
        "Feeds each event to another stream pipeline (whose source is events()), one chain "
        "level deeper; past the depth limit the event is dropped and the error recorded.",
        {"target": ParamSpec(_pipeline, "The stream pipeline to trigger.", required=True)},
    ),
}


def interval_text(value: Any) -> str | None:
    """``value`` as a bar interval's text when it is one (``"1h"``), else None."""
    return value.strip() if _interval(value) is None else None


def check_params(spec: Spec, params: Mapping[str, Any], what: str) -> list[tuple[str | None, str]]:
    """Problems with ``params`` of the source or sink ``what`` (``replay``): unknown names,
    wrong values, missing required params, mutually exclusive pairs; each with the param it
    is about (None: the call as a whole)."""
    problems: list[tuple[str | None, str]] = []
    known = sorted({*spec.params, *spec.aliases})
    for key, value in params.items():
        name = spec.aliases.get(key, key)
        param = spec.params.get(name)
        if param is None:
            listed = ", ".join(known) if known else "none"
            problems.append((key, f"{what} has no param `{key}` (its params: {listed})"))
            continue
        expected = param.check(value)
        if expected is not None:
            problems.append((key, f"{what}: `{key}` must be {expected}"))
    given = {spec.aliases.get(k, k) for k in params}
    for name, param in spec.params.items():
        if param.required and name not in given:
            doc = param.doc[0].lower() + param.doc[1:].rstrip(".")
            problems.append((None, f"{what} needs `{name}=`: {doc}"))
    for a, b in spec.exclusive:
        if a in given and b in given:
            problems.append((b, f"{what} takes `{a}` or `{b}`, not both"))
    return problems


def canonical(spec: Spec, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with aliases replaced by the names they stand for."""
    return {spec.aliases.get(k, k): v for k, v in params.items()}
