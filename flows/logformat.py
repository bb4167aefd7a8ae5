"""Structured logs: one JSON object per line when ``ALPHAFORGE_LOG_FORMAT=json``.

The API, ``serve``'s worker and flow-run processes, and the strategy engine all log through
:class:`JsonFormatter` when the format is ``json`` (the default, ``text``, keeps the familiar
lines). Each object has ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, then the
context fields the record carries: what :func:`log_context` bound in this task or thread (the
API binds ``request_id`` per request), and whatever the logger was given as ``extra`` —
Prefect's run loggers add ``flow_run_id`` / ``flow_run_name`` / ``task_run_id`` / ...,
our flows ``run_id`` / ``node`` — and ``exc_info`` as ``exception`` (the formatted traceback).

Prefect's processes are configured by its own logging file: :func:`apply_log_format_env` points
``PREFECT_LOGGING_SETTINGS_PATH`` at ``logging_json.yml`` (Prefect's layout, the console handler
a plain stream handler with this formatter: Prefect's rich console wraps long lines), so every
child ``serve`` starts inherits it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "PREFECT_LOGGING_FILE",
    "JsonFormatter",
    "LogFormat",
    "apply_log_format_env",
    "configure_logging",
    "log_context",
    "log_handler",
    "uvicorn_log_config",
]

LogFormat = Literal["text", "json"]
PREFECT_LOGGING_FILE = Path(__file__).with_name("logging_json.yml")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_CONTEXT: ContextVar[dict[str, Any] | None] = ContextVar("alphaforge_log_context", default=None)
# the attributes every LogRecord has: anything else on a record is context given as `extra`
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's coloured copy of the message
}


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Inside the block (this thread or asyncio task and what it starts), every JSON log line
    carries ``fields`` too (``None`` values are left out)."""
    merged = {**(_CONTEXT.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
    token = _CONTEXT.set(merged)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)  # UUIDs, paths, datetimes, enums


class JsonFormatter(logging.Formatter):
    """A log record as one line of JSON: ts, level, logger, message, then context fields."""

    def format(self, record: logging.LogRecord) -> str:
        ts = dt.datetime.fromtimestamp(record.created, tz=dt.UTC)
        out: dict[str, Any] = {
            "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in (_CONTEXT.get() or {}).items():
            out.setdefault(key, _jsonable(value))
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = _jsonable(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


def log_handler(fmt: LogFormat) -> logging.Handler:
    """A stderr handler writing ``fmt`` (text: time, level, logger, message)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    return handler


def configure_logging(fmt: LogFormat, *, level: int = logging.INFO) -> None:
    """The root logger writes to stderr in ``fmt`` (our handler replaces any before it; the
    level of the root is ``level``)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_alphaforge", False):
            root.removeHandler(handler)
    handler = log_handler(fmt)
    handler._alphaforge = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)


def uvicorn_log_config(fmt: LogFormat) -> dict[str, Any]:
    """uvicorn's ``log_config``: its loggers (server, access) in ``fmt``, on stderr."""
    formatter: dict[str, Any] = (
        {"()": "flows.logformat.JsonFormatter"} if fmt == "json" else {"format": TEXT_FORMAT}
    )
    handler = {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {"main": handler},
        "loggers": {
            "uvicorn": {"handlers": ["main"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["main"], "level": "INFO", "propagate": False},
            "api": {"handlers": ["main"], "level": "INFO", "propagate": False},
            # the SQLite write-lock watch (live.sqlwatch), the flows' own warnings
            "alphaforge": {"handlers": ["main"], "level": "INFO", "propagate": False},
        },
    }


def apply_log_format_env(fmt: LogFormat) -> None:
    """Make the Prefect processes started from here (worker, flow runs, server) log in
    ``fmt``: with ``json``, Prefect's logging file becomes ``logging_json.yml`` unless the
    operator named one (``PREFECT_LOGGING_SETTINGS_PATH``)."""
    if fmt == "json":
        os.environ.setdefault("PREFECT_LOGGING_SETTINGS_PATH", str(PREFECT_LOGGING_FILE))
