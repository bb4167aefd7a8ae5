"""The run log file: every Prefect log line of one flow run, tagged with its node id.

Prefect's run loggers stamp records with ``flow_run_id`` and ``task_run_name`` (our node id).
A handler on the ``prefect`` logger, filtered to one flow run, writes them to ``run.log`` whatever
the console shows, so the CLI can keep Prefect quiet on screen without losing anything.

``run.log`` is what users read (the web app's log panel, ``alphaforge runs show``): Python
tracebacks never go there. :class:`RunLogHandler` moves each traceback block (and a record's
``exc_info``) to ``operator-details.log`` beside it and leaves one sentence in its place
(:mod:`flows.tracebacks`).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flows.tracebacks import OPERATOR_LOG, TracebackFilter

__all__ = ["RUN_LOG_FORMAT", "RunLogHandler", "TaggingFormatter", "run_log"]

RUN_LOG_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
_TAG = re.compile(r"^\[([^\]\s]{1,100})\] ?")


class _RunFilter(logging.Filter):
    def __init__(self, flow_run_id: str) -> None:
        super().__init__()
        self.flow_run_id = flow_run_id

    def filter(self, record: logging.LogRecord) -> bool:
        return str(getattr(record, "flow_run_id", "")) == self.flow_run_id


class TaggingFormatter(logging.Formatter):
    """``2026-11-21 10:00:00.123 INFO [node] message``: untagged task lines get the node id."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        node = getattr(record, "task_run_name", None)
        if node and not msg.startswith("["):
            msg = f"[{node}] {msg}"
        elif not msg.startswith("["):
            msg = f"[flow] {msg}"
        record_copy = logging.makeLogRecord({**record.__dict__, "msg": msg, "args": None})
        return super().format(record_copy)


class RunLogHandler(logging.FileHandler):
    """Writes ``run.log`` without tracebacks; they go to ``operator-details.log`` beside it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8")
        self.setFormatter(TaggingFormatter(RUN_LOG_FORMAT))
        self.details_path = Path(path).parent / OPERATOR_LOG
        self._filter = TracebackFilter()
        self._details_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            formatter = self.formatter or TaggingFormatter(RUN_LOG_FORMAT)
            msg = record.getMessage()
            node = getattr(record, "task_run_name", None)
            tag = _TAG.match(msg)
            key = tag.group(1) if tag else (node or "flow")
            body = msg[tag.end() :] if tag else msg
            shown, hidden = self._filter.split(key, body)
            if shown is not None:
                shown = _plain(shown)
                if shown is None:  # an engine line users need not read: operators keep it
                    hidden = [*hidden, body]
            exc_text = ""
            if record.exc_info and record.exc_info[0] is not None:
                exc_text = formatter.formatException(record.exc_info)
            elif record.exc_text:
                exc_text = record.exc_text
            if hidden or exc_text or record.stack_info:
                stamp = formatter.formatTime(record)
                details = "\n".join([*hidden, exc_text, record.stack_info or ""]).strip("\n")
                self._write_details(f"{stamp} {record.levelname} [{key}]\n{details}\n")
            if shown is None:
                return
            clean = logging.makeLogRecord(
                {
                    **record.__dict__,
                    "msg": f"[{tag.group(1)}] {shown}" if tag else shown,
                    "args": None,
                    "exc_info": None,
                    "exc_text": None,
                    "stack_info": None,
                }
            )
            super().emit(clean)
        except Exception:
            self.handleError(record)

    def _write_details(self, text: str) -> None:
        with self._details_lock, self.details_path.open("a", encoding="utf-8") as fh:
            fh.write(text)


# Prefect's task engine reports a node's end as a state's repr; the node already said why.
_ENGINE_LINES: tuple[tuple[re.Pattern[str], str | None], ...] = (
    (re.compile(r"^Task run failed with state: "), None),
    (re.compile(r"^Finished in state NotReady\("), "not run: a node it needs did not complete"),
    (re.compile(r"^Finished in state Failed\("), "failed (the reason is above)"),
)


def _plain(message: str) -> str | None:
    """A Prefect engine line as users should read it (None: not at all)."""
    for pattern, replacement in _ENGINE_LINES:
        if pattern.match(message):
            return replacement
    return message


@contextmanager
def run_log(path: Path, flow_run_id: str) -> Iterator[logging.Handler]:
    """Append this flow run's Prefect log records to ``path`` inside the ``with`` block."""
    handler = RunLogHandler(path)
    handler.setLevel(logging.DEBUG)
    handler.addFilter(_RunFilter(flow_run_id))
    target = logging.getLogger("prefect")
    target.addHandler(handler)
    try:
        yield handler
    finally:
        target.removeHandler(handler)
        handler.close()
