"""Who holds SQLite's write lock, and for how long: a watch on an SQLAlchemy engine.

SQLite has one writer at a time. A transaction that wrote and then waits on something slow (a
Prefect or MLflow call, a file copy) before its commit keeps every other writer of the file
waiting, the API's requests included, which fail with "database is locked" after the busy
timeout. :func:`watch_sqlite_writes` times each transaction from its first write to its end
and logs a warning naming where that first write came from (the innermost frames of this
repository) when the lock was held :data:`WRITE_HOLD_WARN_S` or longer, so a slow holder is
found from the log rather than guessed. PostgreSQL engines are left alone.
"""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

__all__ = ["WRITE_HOLD_WARN_S", "watch_sqlite_writes"]

WRITE_HOLD_WARN_S = 5.0
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
_ROOT = str(Path(__file__).resolve().parents[1])
_LOG = logging.getLogger("alphaforge.db")
_T0, _WHERE = "af_write_t0", "af_write_where"


def watch_sqlite_writes(engine: Engine, warn_s: float | None = None) -> None:
    """Log transactions on ``engine`` (SQLite only) that held the write lock ``warn_s`` or more
    (default: :data:`WRITE_HOLD_WARN_S` as it is when the transaction ends)."""
    if engine.dialect.name != "sqlite":
        return

    def before(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        info = conn.connection.info  # the pooled DB-API connection's: lives with its transaction
        if _T0 not in info and statement.lstrip()[:7].upper().startswith(_WRITES):
            info[_T0] = time.monotonic()
            info[_WHERE] = _where()

    def ended(conn: Any) -> None:
        try:
            info = conn.connection.info
        except Exception:  # an invalidated connection: the pool's checkin reports it
            return
        _report(info, warn_s)

    def checked_in(dbapi_conn: Any, record: Any) -> None:  # a transaction the pool rolled back
        _report(record.info, warn_s)

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "commit", ended)
    event.listen(engine, "rollback", ended)
    event.listen(engine.pool, "checkin", checked_in)


def _where() -> str:
    frames = [
        f for f in traceback.extract_stack()[:-2]
        if f.filename.startswith(_ROOT) and "/.venv/" not in f.filename
        and f.filename != __file__
    ]  # fmt: skip
    return " < ".join(f"{Path(f.filename).relative_to(_ROOT)}:{f.lineno} {f.name}"
                      for f in reversed(frames[-4:])) or "outside this repository"  # fmt: skip


def _report(info: dict[str, Any], warn_s: float | None) -> None:
    t0 = info.pop(_T0, None)
    where = info.pop(_WHERE, "")
    if t0 is None:
        return
    held = time.monotonic() - t0
    if held >= (WRITE_HOLD_WARN_S if warn_s is None else warn_s):
        _LOG.warning(
            "SQLite write lock held %.1f s by one transaction (other writers waited): its first "
            "write was at %s",
            held,
            where,
        )
