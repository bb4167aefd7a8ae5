"""The engine's view of the database: desired instances, leases, status, the paper book.

The database is the source of truth (seed 001, "declarative control"): a user (through the API)
writes what should run — instances, their mode and config — and the engine
(:mod:`live.engine`) reads it with :meth:`LiveStore.desired` and writes back what runs.

Leases keep an instance loaded by one engine at a time (:mod:`live.leases`, the rule the stream
deployments share): :meth:`LiveStore.claim` takes an instance when nobody holds it, when the
holder's lease has expired, or when the holder is an engine process of this host that no longer
exists (a restarted engine takes its instances back at once instead of waiting for the lease);
the holder renews its leases every cycle, and writes only while it holds the instance.

Each processed bar is one transaction (:meth:`LiveStore.save_bar`): the orders that filled or
were placed, the positions, the cash, the last bar's time and the events. A restart resumes
after ``last_bar_ts`` with the book as it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, delete, or_, update
from sqlmodel import Session, col, select

from live.leases import Leases, as_utc
from live.tables import (
    LiveBar,
    LiveEvent,
    LiveOrder,
    LivePosition,
    Strategy,
    StrategyInstance,
    StrategyVersion,
    utcnow,
)
from runners.papertrade.step import BarWrite
from runners.papertrade.venue import Order, Position

__all__ = ["Desired", "LiveStore"]

MAX_EVENTS = 2000  # per instance: older ones are deleted
MAX_MESSAGE = 4000


@dataclass(frozen=True)
class Desired:
    """One instance the database wants loaded, with everything a load needs."""

    id: str
    owner_id: int
    strategy_name: str
    strategy_version: int
    code: str
    code_hash: str
    account: str
    market: str
    feed: dict[str, Any]
    initial_cash: float
    fee_bps: float
    slippage_bps: float
    mode: str
    config: dict[str, Any]
    config_version: int
    last_bar_ts: datetime | None = None

    @property
    def load_key(self) -> str:
        """What, when it changes, makes the engine reload the instance (the mode does not:
        it is the context's capability, switched in place)."""
        return f"v{self.strategy_version}:c{self.config_version}:{self.code_hash[:12]}"

    @property
    def identity(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "strategy": self.strategy_name,
            "version": self.strategy_version,
            "account": self.account,
            "market": self.market,
        }


class LiveStore:
    """The live tables through one SQLAlchemy engine (PostgreSQL or SQLite)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.leases = Leases(engine, StrategyInstance)

    # -- what should run ------------------------------------------------------------------

    def desired(self) -> list[Desired]:
        """Every instance that is not deleted and whose mode is not ``off``."""
        with Session(self.engine) as session:
            rows = session.exec(
                select(StrategyInstance, Strategy, StrategyVersion)
                .join(Strategy, col(Strategy.id) == col(StrategyInstance.strategy_id))
                .join(
                    StrategyVersion,
                    (col(StrategyVersion.strategy_id) == col(StrategyInstance.strategy_id))
                    & (col(StrategyVersion.version) == col(StrategyInstance.strategy_version)),
                )
                .where(col(StrategyInstance.deleted_at).is_(None))
                .where(col(StrategyInstance.mode) != "off")
                .order_by(col(StrategyInstance.id))
            ).all()
            return [_desired(i, s, v) for i, s, v in rows]

    def instance(self, instance_id: str) -> StrategyInstance | None:
        with Session(self.engine) as session:
            return session.get(StrategyInstance, instance_id)

    def last_bar_ts(self, instance_id: str) -> datetime | None:
        """The last bar the instance stored (UTC), or None."""
        row = self.instance(instance_id)
        return as_utc(row.last_bar_ts) if row is not None and row.last_bar_ts else None

    # -- leases ---------------------------------------------------------------------------

    def claim(self, instance_id: str, engine_id: str, lease_s: float) -> bool:
        """Take the instance's lease for ``engine_id`` (:mod:`live.leases`); True when held."""
        return self.leases.claim(instance_id, engine_id, lease_s)

    def renew(self, engine_id: str, instance_ids: list[str], lease_s: float) -> set[str]:
        """Extend the leases ``engine_id`` holds; returns the ids it still holds."""
        return self.leases.renew(engine_id, instance_ids, lease_s)

    def release(self, instance_id: str, engine_id: str, status: str, reason: str | None) -> None:
        """Give the lease back and say how the instance ended (stopped, crashed ...)."""
        self.leases.release(
            instance_id, engine_id, status=status, status_reason=reason, status_at=utcnow()
        )

    # -- status and events ----------------------------------------------------------------

    def set_status(
        self, instance_id: str, engine_id: str, status: str, reason: str | None = None, **extra: Any
    ) -> None:
        """The instance's runtime status (only while ``engine_id`` holds it)."""
        with Session(self.engine) as session:
            session.execute(
                self.leases.held(instance_id, engine_id).values(
                    status=status, status_reason=reason, status_at=utcnow(), **extra
                )
            )
            session.commit()

    def add_events(
        self,
        instance_id: str,
        events: list[tuple[str, str, dict[str, Any] | None]],
        bar_ts: datetime | None = None,
    ) -> None:
        with Session(self.engine) as session:
            self._events(session, instance_id, events, bar_ts)
            session.commit()

    def _events(
        self,
        session: Session,
        instance_id: str,
        events: list[tuple[str, str, dict[str, Any] | None]],
        bar_ts: datetime | None,
    ) -> None:
        for kind, message, data in events:
            session.add(
                LiveEvent(
                    instance_id=instance_id,
                    bar_ts=bar_ts,
                    kind=kind,
                    message=message[:MAX_MESSAGE],
                    data_json=json.dumps(data, default=str) if data is not None else None,
                )
            )

    def trim_events(self, instance_id: str, keep: int = MAX_EVENTS) -> None:
        """Delete all but the newest ``keep`` events of the instance."""
        with Session(self.engine) as session:
            cut = session.exec(
                select(LiveEvent.id)
                .where(col(LiveEvent.instance_id) == instance_id)
                .order_by(col(LiveEvent.id).desc())
                .offset(keep)
                .limit(1)
            ).first()
            if cut is not None:
                session.execute(
                    delete(LiveEvent)
                    .where(col(LiveEvent.instance_id) == instance_id)
                    .where(col(LiveEvent.id) <= cut)
                )
                session.commit()

    # -- the paper book -------------------------------------------------------------------

    def load_book(self, instance_id: str) -> tuple[float | None, list[Order], list[Position]]:
        """The instance's cash (None: never traded), open orders and positions."""
        with Session(self.engine) as session:
            row = session.get(StrategyInstance, instance_id)
            orders = session.exec(
                select(LiveOrder)
                .where(col(LiveOrder.instance_id) == instance_id)
                .where(col(LiveOrder.status) == "open")
                .order_by(col(LiveOrder.id))
            ).all()
            positions = session.exec(
                select(LivePosition).where(col(LivePosition.instance_id) == instance_id)
            ).all()
            return (
                row.cash if row is not None else None,
                [_order(o) for o in orders],
                [
                    Position(p.symbol, p.qty, p.avg_price, p.realized_pnl, p.fees, p.last_price)
                    for p in positions
                ],
            )

    def save_bar(self, instance_id: str, engine_id: str, write: BarWrite) -> bool:
        """One processed bar, in one transaction; False (nothing written) when ``engine_id``
        no longer holds the instance."""
        with Session(self.engine) as session:
            result = session.execute(
                self.leases.held(instance_id, engine_id).values(
                    last_bar_ts=write.bar_ts,
                    bars_seen=col(StrategyInstance.bars_seen) + 1,
                    cash=write.cash,
                    equity=write.equity,
                )
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                session.rollback()
                return False
            for order in write.orders:
                self._save_order(session, instance_id, order)
            for pos in write.positions:
                row = session.get(LivePosition, (instance_id, pos.symbol))
                if row is None:
                    row = LivePosition(instance_id=instance_id, symbol=pos.symbol)
                row.qty, row.avg_price, row.realized_pnl = pos.qty, pos.avg_price, pos.realized_pnl
                row.fees, row.last_price = pos.fees, pos.last_price
                session.add(row)
            self._events(session, instance_id, write.events, write.bar_ts)
            session.add(
                LiveBar(
                    instance_id=instance_id,
                    bar_ts=write.bar_ts,
                    close=write.close,
                    equity=write.equity,
                    cash=write.cash,
                    position=write.position,
                )
            )
            session.commit()
            return True

    def _save_order(self, session: Session, instance_id: str, order: Order) -> None:
        row = session.exec(
            select(LiveOrder)
            .where(col(LiveOrder.instance_id) == instance_id)
            .where(col(LiveOrder.client_id) == order.client_id)
        ).first()
        if row is None:
            row = LiveOrder(
                instance_id=instance_id,
                client_id=order.client_id,
                symbol=order.symbol,
                side=order.side,
                qty=order.qty,
                type=order.type,
                limit_price=order.limit_price,
                placed_bar_ts=pd.Timestamp(order.placed_bar_ts).to_pydatetime(),
            )
        row.status, row.reason, row.fill_price, row.fee = (
            order.status, order.reason, order.fill_price, order.fee,
        )  # fmt: skip
        if order.filled_bar_ts:
            row.filled_bar_ts = pd.Timestamp(order.filled_bar_ts).to_pydatetime()
        session.add(row)

    # -- rendering on demand --------------------------------------------------------------

    def render_requests(self, engine_id: str, since: datetime) -> list[str]:
        """Instances this engine holds whose widgets were asked for after ``since`` and not
        rendered since the request."""
        with Session(self.engine) as session:
            return list(
                session.exec(
                    select(StrategyInstance.id)
                    .where(col(StrategyInstance.engine_id) == engine_id)
                    .where(col(StrategyInstance.render_requested_at) > since)
                    .where(
                        or_(
                            col(StrategyInstance.rendered_at).is_(None),
                            col(StrategyInstance.rendered_at)
                            < col(StrategyInstance.render_requested_at),
                        )
                    )
                ).all()
            )

    def save_widgets(self, instance_id: str, widgets: list[dict[str, Any]] | str) -> None:
        """The widgets ``render()`` returned (or a sentence why there are none)."""
        payload = json.dumps(
            {"widgets": [], "error": widgets} if isinstance(widgets, str) else {"widgets": widgets}
        )
        with Session(self.engine) as session:
            session.execute(
                update(StrategyInstance)
                .where(col(StrategyInstance.id) == instance_id)
                .values(widgets_json=payload, rendered_at=utcnow())
            )
            session.commit()


def _desired(i: StrategyInstance, s: Strategy, v: StrategyVersion) -> Desired:
    return Desired(
        id=i.id,
        owner_id=i.owner_id,
        strategy_name=s.name,
        strategy_version=i.strategy_version,
        code=v.code,
        code_hash=v.code_hash,
        account=i.account,
        market=i.market,
        feed=json.loads(i.feed_json),
        initial_cash=i.initial_cash,
        fee_bps=i.fee_bps,
        slippage_bps=i.slippage_bps,
        mode=i.mode,
        config=json.loads(i.config_json),
        config_version=i.config_version,
        last_bar_ts=as_utc(i.last_bar_ts) if i.last_bar_ts is not None else None,
    )


def _order(o: LiveOrder) -> Order:
    return Order(
        client_id=o.client_id,
        symbol=o.symbol,
        side=o.side,
        qty=o.qty,
        type=o.type,
        limit_price=o.limit_price,
        placed_bar_ts=pd.Timestamp(as_utc(o.placed_bar_ts)).isoformat(),
        status=o.status,
        reason=o.reason,
    )
