"""Leases: which engine process runs a row — a strategy instance (:mod:`live.store`) or a stream
deployment (:mod:`live.stream.store`), one rule for both.

A row's ``engine_id`` names its holder and ``lease_until`` when the lease runs out.
:meth:`Leases.claim` takes a row when nobody holds it, when its holder's lease has run out, or
when its holder is an engine process of this host that no longer exists (:func:`holder_gone`:
a restarted or killed engine's rows are taken back at once instead of waiting for the lease);
the holder renews its leases every cycle (:meth:`Leases.renew`). Every write of a row's runtime
columns is conditional on the writer still holding it (:meth:`Leases.held`), so two engines
never both run one row. An engine id is ``<name>@<host>:<pid>:<process start>`` so that the
"gone" check is exact (a pid the kernel gave to another process has another start time).
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Engine, Update, update
from sqlmodel import Session, SQLModel, col, select

from live.tables import utcnow

__all__ = ["Leases", "as_utc", "engine_id_for", "holder_gone"]


def engine_id_for(name: str = "engine") -> str:
    """This process's engine id: ``<name>@<host>:<pid>:<process start>``."""
    return f"{name}@{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "0"


def holder_gone(engine_id: str | None) -> bool:
    """Whether ``engine_id`` names an engine process of this host that no longer exists."""
    if not engine_id or "@" not in engine_id:
        return engine_id is None
    try:
        host, pid, start = engine_id.rsplit("@", 1)[1].rsplit(":", 2)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False  # another machine's engine: only its lease can tell
    if not os.path.exists(f"/proc/{pid}"):
        return True
    return _start_time(int(pid)) != start  # the pid was reused by another process


def as_utc(value: datetime) -> datetime:
    """``value`` as aware UTC (SQLite hands back naive datetimes)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class Leases:
    """The leases on the rows of ``table`` (a table with ``id``, ``engine_id`` and
    ``lease_until`` columns) through one SQLAlchemy engine."""

    def __init__(self, engine: Engine, table: type[SQLModel]) -> None:
        self.engine = engine
        self.table = table
        model = cast(Any, table)
        self._id, self._holder = col(model.id), col(model.engine_id)

    def held(self, row_id: str, engine_id: str) -> Update:
        """An UPDATE of row ``row_id`` that changes nothing unless ``engine_id`` holds it
        (add ``.values(...)``; its rowcount says whether it did)."""
        return update(self.table).where(self._id == row_id).where(self._holder == engine_id)

    def claim(self, row_id: str, engine_id: str, lease_s: float) -> bool:
        """Take the row's lease for ``engine_id`` (see the module doc); True when held."""
        now = utcnow()
        with Session(self.engine) as session:
            row: Any = session.get(self.table, row_id)
            if row is None:
                return False
            holder = row.engine_id
            leased = row.lease_until is not None and as_utc(row.lease_until) > now
            if holder not in (None, engine_id) and not holder_gone(holder) and leased:
                return False
            # the holder read above, or nobody, still holds it: of two claimers one wins
            result = session.execute(
                update(self.table)
                .where(self._id == row_id)
                .where(self._holder.is_(None) if holder is None else self._holder == holder)
                .values(engine_id=engine_id, lease_until=now + timedelta(seconds=lease_s))
            )
            session.commit()
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def renew(self, engine_id: str, row_ids: list[str], lease_s: float) -> set[str]:
        """Extend the leases ``engine_id`` holds among ``row_ids``; the ids it still holds."""
        if not row_ids:
            return set()
        with Session(self.engine) as session:
            session.execute(
                update(self.table)
                .where(self._id.in_(row_ids))
                .where(self._holder == engine_id)
                .values(lease_until=utcnow() + timedelta(seconds=lease_s))
            )
            session.commit()
            held = session.exec(
                select(self._id).where(self._id.in_(row_ids)).where(self._holder == engine_id)
            ).all()
            return set(held)

    def release(self, row_id: str, engine_id: str, **values: Any) -> None:
        """Give the lease back (nothing when ``engine_id`` no longer holds it), writing
        ``values`` with it (how the row ended); its ``loaded_key`` is cleared."""
        with Session(self.engine) as session:
            session.execute(
                self.held(row_id, engine_id).values(
                    engine_id=None, lease_until=None, loaded_key=None, **values
                )
            )
            session.commit()
