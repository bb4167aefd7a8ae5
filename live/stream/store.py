"""The engine's view of the deployed stream pipelines: what should run, leases, status.

The same lease rules as the strategy instances' (:mod:`live.leases`): an engine claims a
deployment when nobody holds it, when its holder's lease ran out, or when its holder is an
engine process of this host that is gone (a killed engine's deployments are taken back at
once); every write of the runtime columns is conditional on the engine still holding the
lease, so two engines never both run one deployment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from live.leases import Leases
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
        self.leases = Leases(engine, StreamDeployment)

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
        return self.leases.claim(deployment_id, engine_id, lease_s)

    def renew(self, engine_id: str, ids: list[str], lease_s: float) -> set[str]:
        """Extend the leases ``engine_id`` holds; the ids it still holds."""
        return self.leases.renew(engine_id, ids, lease_s)

    def release(
        self, deployment_id: str, engine_id: str, status: str | None, reason: str | None = None
    ) -> None:
        """Give the lease back; ``status`` (unless None) says how it ended."""
        values: dict[str, Any] = {}
        if status is not None:
            values.update(status=status, status_reason=reason, status_at=utcnow())
        self.leases.release(deployment_id, engine_id, **values)

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
            session.execute(self.leases.held(deployment_id, engine_id).values(**values))
            session.commit()
