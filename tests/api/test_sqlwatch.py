"""The SQLite write-lock watch (live.sqlwatch) names a transaction that held the lock too long."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import create_engine

import live.sqlwatch
from api.db import make_engine
from live.sqlwatch import watch_sqlite_writes

HOLD_S = 0.3


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setattr(live.sqlwatch, "WRITE_HOLD_WARN_S", HOLD_S / 2)
    engine = make_engine(f"sqlite:///{tmp_path / 'app.db'}")  # the API's engine, watched
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    return engine


def _held_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "SQLite write lock held" in r.getMessage()]


def _write_then_wait(engine: Engine, wait_s: float, end: str, read_s: float = 0.0) -> None:
    conn = engine.connect()
    conn.execute(text("SELECT count(*) FROM t"))  # a read does not take the lock
    time.sleep(read_s)
    conn.execute(text("INSERT INTO t VALUES (1)"))
    time.sleep(wait_s)  # e.g. a Prefect call made before the commit
    if end == "commit":
        conn.commit()
    elif end == "rollback":
        conn.rollback()
    conn.close()  # "close": the pool rolls it back


@pytest.mark.parametrize("end", ["commit", "rollback", "close"])
def test_a_write_held_across_a_slow_call_is_logged_with_where_it_wrote(
    engine: Engine, caplog: pytest.LogCaptureFixture, end: str
) -> None:
    caplog.set_level(logging.WARNING, logger="alphaforge.db")
    _write_then_wait(engine, HOLD_S, end)
    [message] = _held_warnings(caplog)
    held = float(message.split("held ", 1)[1].split(" s", 1)[0])
    assert HOLD_S - 0.05 <= held < HOLD_S + 5
    # the first write's place: this file's helper, then its caller
    assert "tests/api/test_sqlwatch.py" in message and "_write_then_wait" in message
    assert message.index("_write_then_wait") < message.index("test_a_write_held")
    # the next transaction starts its own clock: a quick write is not reported
    caplog.clear()
    _write_then_wait(engine, 0.0, "commit")
    assert _held_warnings(caplog) == []


def test_reads_and_quick_writes_are_not_reported(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="alphaforge.db")
    _write_then_wait(engine, 0.0, "commit", read_s=HOLD_S)  # a long read, then a quick write
    with engine.connect() as conn:
        conn.execute(text("SELECT * FROM t"))
        time.sleep(HOLD_S)
    assert _held_warnings(caplog) == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1


def test_postgresql_engines_are_not_watched() -> None:
    from sqlalchemy import event

    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    watch_sqlite_writes(engine)
    assert not event.contains(engine, "commit", lambda conn: None)
    assert not engine.dispatch.before_cursor_execute
