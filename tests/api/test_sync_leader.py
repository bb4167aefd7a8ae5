"""Only one API process runs the status sync: the leader elected on the database (PostgreSQL
advisory lock) or the data dir (SQLite: a file lock); when it goes, another takes over."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from api.db import make_engine
from api.services import prefect_sync
from api.services.prefect_sync import SyncLeader
from api.settings import ApiSettings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.sqlite_too
def test_one_leader_at_a_time_and_a_successor_when_it_goes(db_url: str, tmp_path: Path) -> None:
    settings = ApiSettings(data_dir=tmp_path / "data", database_url=db_url)
    engines = [make_engine(db_url), make_engine(db_url)]  # two processes' pools
    a, b = (SyncLeader(e, settings) for e in engines)
    try:
        assert a.acquire() and a.acquire()  # re-entrant for its holder
        assert not b.acquire() and not b.held
        a.release()
        assert b.acquire() and not a.acquire()
    finally:
        a.release()
        b.release()
        for e in engines:
            e.dispose()


_HOLD = """
import sys, time
from api.db import make_engine
from api.services.prefect_sync import SyncLeader
from api.settings import ApiSettings
url, data = sys.argv[1], sys.argv[2]
leader = SyncLeader(make_engine(url), ApiSettings(data_dir=data, database_url=url))
print("held" if leader.acquire() else "refused", flush=True)
time.sleep(600)
"""


@pytest.mark.sqlite_too
def test_a_killed_leader_process_hands_over(db_url: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, db_url, str(data)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    engine = make_engine(db_url)
    mine = SyncLeader(engine, ApiSettings(data_dir=data, database_url=db_url))
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        assert not mine.acquire()
        proc.kill()
        proc.wait(timeout=10)
        deadline = 50
        while not mine.acquire() and deadline:  # the server notices the dead session
            deadline -= 1
            asyncio.run(asyncio.sleep(0.2))
        assert mine.held
    finally:
        proc.kill()
        mine.release()
        engine.dispose()


def test_a_follower_never_syncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = f"sqlite:///{tmp_path / 'api.db'}"
    settings = ApiSettings(data_dir=tmp_path / "data", database_url=db)
    engine = make_engine(db)
    holder = SyncLeader(engine, settings)
    assert holder.acquire()
    calls: list[int] = []
    monkeypatch.setattr(prefect_sync, "sync_once", lambda *_: calls.append(1) or 0)

    async def two_ticks() -> None:
        task = asyncio.create_task(prefect_sync.run_sync_loop(engine, settings, interval_s=0.05))
        await asyncio.sleep(0.3)
        assert calls == []  # another process (holder) leads
        holder.release()
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(two_ticks())
    assert calls  # once the leader went, this loop took over
    engine.dispose()
