"""The engine's view of the deployed stream pipelines: what should run, leases, status.

The same lease rules as the strategy instances' (:mod:`live.store`): an engine claims a
deployment when nobody holds it, when its holder's lease ran out, or when its holder is an
engine process of this host that is gone (:func:`live.store.holder_gone`: a killed engine's
deployments are taken back at once); every write of the runtime columns is conditional on the
engine still holding the lease, so two engines never both run one deployment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from live.store import _aware, holder_gone
from live.stream.tables import StreamDeployment
from live.tables import utcnow

__all__ = ["Deployed", "StreamStore"]


@dataclass(frozen=True)
class Deployed:
    """A deployment the database wants running, as the engine loads it."""

    id: str
    owner_id: int
    name: str
    pipeline: str
    text: str
    ir_hash: str
    text_version: int

    @property
    def load_key(self) -> str:
        """What, when it changes, makes the engine reload it (a new text)."""
        return f"t{self.text_version}:{self.ir_hash[:16]}"


class StreamStore:
    """The ``stream_deployments`` table through one SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def desired(self) -> list[Deployed]:
        """Every deployment that is not deleted and should run."""
        with Session(self.engine) as session:
            rows = session.exec(
                select(StreamDeployment)
                .where(col(StreamDeployment.deleted_at).is_(None))
                .where(col(StreamDeployment.desired) == "running")
                .order_by(col(StreamDeployment.id))
            ).all()
            return [
                Deployed(r.id, r.owner_id, r.name, r.pipeline, r.text, r.ir_hash, r.text_version)
                for r in rows
            ]

    def row(self, deployment_id: str) -> StreamDeployment | None:
        with Session(self.engine) as session:
            return session.get(StreamDeployment, deployment_id)

    def claim(self, deployment_id: str, engine_id: str, lease_s: float) -> bool:
        """Take the lease for ``engine_id`` (module doc); True when held."""
        now = utcnow()
        with Session(self.engine) as session:
            row = session.get(StreamDeployment, deployment_id)
            if row is None:
                return False
            holder = row.engine_id
            leased = row.lease_until is not None and _aware(row.lease_until) > now
            if holder not in (None, engine_id) and not holder_gone(holder) and leased:
                return False
            result = session.execute(
                update(StreamDeployment)
                .where(col(StreamDeployment.id) == deployment_id)
                .where(
                    col(StreamDeployment.engine_id).is_(None)
                    if holder is None
                    else col(StreamDeployment.engine_id) == holder
                )
                .values(engine_id=engine_id, lease_until=now + timedelta(seconds=lease_s))
            )
            session.commit()
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def renew(self, engine_id: str, ids: list[str], lease_s: float) -> set[str]:
        """Extend the leases ``engine_id`` holds; the ids it still holds."""
        if not ids:
            return set()
        with Session(self.engine) as session:
            session.execute(
                update(StreamDeployment)
                .where(col(StreamDeployment.id).in_(ids))
                .where(col(StreamDeployment.engine_id) == engine_id)
                .values(lease_until=utcnow() + timedelta(seconds=lease_s))
            )
            session.commit()
            held = session.exec(
                select(StreamDeployment.id)
                .where(col(StreamDeployment.id).in_(ids))
                .where(col(StreamDeployment.engine_id) == engine_id)
            ).all()
            return set(held)

    def release(
        self, deployment_id: str, engine_id: str, status: str | None, reason: str | None = None
    ) -> None:
        """Give the lease back; ``status`` (unless None) says how it ended."""
        values: dict[str, Any] = {"engine_id": None, "lease_until": None, "loaded_key": None}
        if status is not None:
            values.update(status=status, status_reason=reason, status_at=utcnow())
        with Session(self.engine) as session:
            session.execute(
                update(StreamDeployment)
                .where(col(StreamDeployment.id) == deployment_id)
                .where(col(StreamDeployment.engine_id) == engine_id)
                .values(**values)
            )
            session.commit()

    def set_status(
        self,
        deployment_id: str,
        engine_id: str,
        status: str,
        reason: str | None = None,
        *,
        health: dict[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        """The runtime status and health snapshot (only while ``engine_id`` holds it)."""
        values: dict[str, Any] = {"status": status, "status_reason": reason, **extra}
        now = utcnow()
        if health is not None:
            values.update(health_json=json.dumps(health, default=str), health_at=now)
        with Session(self.engine) as session:
            row = session.get(StreamDeployment, deployment_id)
            if row is None or row.engine_id != engine_id:
                return
            if row.status != status or row.status_reason != reason:
                values["status_at"] = now
            session.execute(
                update(StreamDeployment)
                .where(col(StreamDeployment.id) == deployment_id)
                .where(col(StreamDeployment.engine_id) == engine_id)
                .values(**values)
            )
            session.commit()
