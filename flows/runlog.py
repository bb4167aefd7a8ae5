"""The run log file: every Prefect log line of one flow run, tagged with its node id.

Prefect's run loggers stamp records with ``flow_run_id`` and ``task_run_name`` (our node id).
A handler on the ``prefect`` logger, filtered to one flow run, writes them to ``run.log`` whatever
the console shows, so the CLI can keep Prefect quiet on screen without losing anything.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["RUN_LOG_FORMAT", "TaggingFormatter", "run_log"]

RUN_LOG_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"


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


@contextmanager
def run_log(path: Path, flow_run_id: str) -> Iterator[logging.Handler]:
    """Append this flow run's Prefect log records to ``path`` inside the ``with`` block."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.addFilter(_RunFilter(flow_run_id))
    handler.setFormatter(TaggingFormatter(RUN_LOG_FORMAT))
    target = logging.getLogger("prefect")
    target.addHandler(handler)
    try:
        yield handler
    finally:
        target.removeHandler(handler)
        handler.close()
