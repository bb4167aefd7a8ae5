"""Strategy modules and instances for the web app (the dashboard), over the live side's tables.

Who may do what follows the one access rule (:mod:`api.services.access`): owners see and act on
their own strategies and instances, admins on all; observers see every one and change none.
Changes go through :mod:`live.instances` (validated there; a :class:`~live.instances.LiveInputError`
becomes a 422 naming the field) and are audited (``strategy.save``, ``instance.create``,
``instance.config``, ``instance.mode``, ``instance.version``, ``instance.delete``). The engine
(``alphaforge engine`` / the ``alphaforge-engine`` deployment) reads the same rows and does
the rest; this service never talks to the engine or the sandbox.

A ``replay`` feed of the web app reads one of the caller's datasets (``dataset``) or a file
under the engine's data folder (``path``, relative, never ``..``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from api.errors import NotFound, Unprocessable
from api.models.common import Page, as_utc, utcnow
from api.models.live import (
    InstanceChangePublic,
    InstanceCreate,
    InstanceEventPublic,
    InstanceOrderPublic,
    InstancePatch,
    InstancePublic,
    PositionPublic,
    StrategyPublic,
    StrategySummary,
    StrategyVersionPublic,
    StreamPublic,
    WidgetsPublic,
)
from api.models.user import User
from api.services import audit
from api.services.access import Level, caps_for, get_owned, username_of, visible
from api.settings import ApiSettings
from live.instances import (
    LiveInputError,
    create_instance,
    delete_instance,
    save_strategy,
    update_instance,
    version_of,
)
from live.tables import (
    InstanceChange,
    LiveEvent,
    LiveOrder,
    LivePosition,
    Strategy,
    StrategyInstance,
    StrategyVersion,
)

__all__ = [
    "add_version",
    "create",
    "delete",
    "events",
    "get",
    "get_strategy",
    "list_instances",
    "list_strategies",
    "orders",
    "save",
    "streams",
    "update",
    "widgets",
]


def _invalid(exc: LiveInputError) -> Unprocessable:
    return Unprocessable(f"{exc.field}: {exc.message}")


# -- strategy modules -----------------------------------------------------------------------


def save(session: Session, user: User, name: str, code: str, message: str) -> StrategyPublic:
    """A new module of the caller's, or a new version of their module ``name``."""
    audit.record(session, user, "strategy.save", "strategy", None, name=name)
    try:
        strategy, _ = save_strategy(session, user.id or 0, name, code, message)
    except LiveInputError as exc:
        session.rollback()
        raise _invalid(exc) from None
    return strategy_public(session, user, strategy)


def add_version(
    session: Session, user: User, strategy_id: int, code: str, message: str
) -> StrategyPublic:
    strategy = get_owned(session, user, Strategy, strategy_id, "strategy", level=Level.EDIT)
    owner = session.get(User, strategy.owner_id)
    assert owner is not None
    audit.record(session, user, "strategy.save", "strategy", strategy.id, name=strategy.name)
    try:
        save_strategy(session, strategy.owner_id, strategy.name, code, message)
    except LiveInputError as exc:
        session.rollback()
        raise _invalid(exc) from None
    session.refresh(strategy)
    return strategy_public(session, user, strategy)


def list_strategies(
    session: Session, user: User, *, offset: int, limit: int
) -> Page[StrategySummary]:
    where = visible(Strategy, user)
    total = session.exec(select(func.count()).select_from(Strategy).where(*where)).one()
    rows = session.exec(
        select(Strategy).where(*where).order_by(col(Strategy.updated_at).desc())
        .offset(offset).limit(limit)
    ).all()  # fmt: skip
    return Page(items=[_summary(session, user, s) for s in rows], total=total)


def get_strategy(session: Session, user: User, strategy_id: int) -> StrategyPublic:
    strategy = get_owned(session, user, Strategy, strategy_id, "strategy")
    return strategy_public(session, user, strategy)


def get_strategy_version(
    session: Session, user: User, strategy_id: int, version: int
) -> StrategyVersionPublic:
    strategy = get_owned(session, user, Strategy, strategy_id, "strategy")
    row = version_of(session, strategy, version)
    if row is None:
        raise NotFound(f"{strategy.name} has no version {version}")
    return _version(row)


def _summary(session: Session, user: User, s: Strategy) -> StrategySummary:
    count = session.exec(
        select(func.count()).select_from(StrategyInstance)
        .where(col(StrategyInstance.strategy_id) == s.id)
        .where(col(StrategyInstance.deleted_at).is_(None))
    ).one()  # fmt: skip
    return StrategySummary(
        id=s.id or 0,
        name=s.name,
        owner=username_of(session, s.owner_id),
        latest_version=s.latest_version,
        instances=count,
        updated_at=as_utc(s.updated_at),
        can_edit=caps_for(user, s, edit_grant=False).can_edit,
    )


def strategy_public(session: Session, user: User, s: Strategy) -> StrategyPublic:
    latest = version_of(session, s, s.latest_version)
    assert latest is not None
    versions = session.exec(
        select(StrategyVersion.version).where(col(StrategyVersion.strategy_id) == s.id)
        .order_by(col(StrategyVersion.version))
    ).all()  # fmt: skip
    return StrategyPublic(
        **_summary(session, user, s).model_dump(),
        latest=_version(latest),
        versions=list(versions),
    )


def _version(row: StrategyVersion) -> StrategyVersionPublic:
    return StrategyVersionPublic(
        version=row.version,
        code=row.code,
        code_hash=row.code_hash,
        config_schema=json.loads(row.config_schema_json),
        message=row.message,
        created_at=as_utc(row.created_at),
    )


# -- instances ------------------------------------------------------------------------------


def _web_feed(feed: dict[str, Any]) -> dict[str, Any]:
    """The web app's feeds: a dataset of the caller's, or a relative path without ``..``."""
    if feed.get("kind") == "replay" and feed.get("path"):
        path = PurePosixPath(str(feed["path"]))
        if path.is_absolute() or ".." in path.parts:
            raise Unprocessable(
                "feed.path: a replay path is relative to the engine's data folder, without '..'"
            )
    return feed


def create(session: Session, user: User, body: InstanceCreate) -> InstancePublic:
    strategy = get_owned(session, user, Strategy, body.strategy_id, "strategy", level=Level.EDIT)
    audit.record(session, user, "instance.create", "strategy", strategy.id, mode=body.mode,
                 market=body.market, account=body.account)  # fmt: skip
    try:
        instance = create_instance(
            session,
            user.id or 0,
            strategy,
            version=body.version,
            account=body.account,
            market=body.market,
            feed=_web_feed(body.feed),
            config=body.config,
            mode=body.mode,
            initial_cash=body.initial_cash,
            fee_bps=body.fee_bps,
            slippage_bps=body.slippage_bps,
            user_id=user.id,
        )
    except LiveInputError as exc:
        session.rollback()
        raise _invalid(exc) from None
    return public(session, user, instance)


def _instance(session: Session, user: User, iid: str, level: Level) -> StrategyInstance:
    return get_owned(session, user, StrategyInstance, iid, "instance", level=level)  # type: ignore[arg-type]


def get(session: Session, user: User, iid: str) -> InstancePublic:
    return public(session, user, _instance(session, user, iid, Level.READ))


def list_instances(
    session: Session, user: User, *, offset: int, limit: int
) -> Page[InstancePublic]:
    where = visible(StrategyInstance, user)
    total = session.exec(select(func.count()).select_from(StrategyInstance).where(*where)).one()
    rows = session.exec(
        select(StrategyInstance).where(*where).order_by(col(StrategyInstance.created_at).desc())
        .offset(offset).limit(limit)
    ).all()  # fmt: skip
    return Page(items=[public(session, user, r) for r in rows], total=total)


def update(session: Session, user: User, iid: str, body: InstancePatch) -> InstancePublic:
    instance = _instance(session, user, iid, Level.EDIT)
    before = (instance.mode, instance.config_version, instance.strategy_version)
    try:
        changed = update_instance(
            session, instance, config=body.config, mode=body.mode, version=body.version,
            user_id=user.id,
        )  # fmt: skip
    except LiveInputError as exc:
        session.rollback()
        raise _invalid(exc) from None
    if changed:
        for what in changed:
            audit.record(session, user, f"instance.{what}", "instance", instance.id,
                         mode=[before[0], instance.mode],
                         config_version=[before[1], instance.config_version],
                         version=[before[2], instance.strategy_version])  # fmt: skip
        session.commit()
        session.refresh(instance)
    return public(session, user, instance)


def delete(session: Session, user: User, iid: str) -> None:
    instance = _instance(session, user, iid, Level.MANAGE)
    audit.record(session, user, "instance.delete", "instance", instance.id)
    delete_instance(session, instance, user.id)


def events(
    session: Session, user: User, iid: str, *, kind: str | None, offset: int, limit: int
) -> Page[InstanceEventPublic]:
    """Newest first."""
    instance = _instance(session, user, iid, Level.READ)
    where: list[Any] = [col(LiveEvent.instance_id) == instance.id]
    if kind:
        where.append(col(LiveEvent.kind).in_(kind.split(",")))
    total = session.exec(select(func.count()).select_from(LiveEvent).where(*where)).one()
    rows = session.exec(
        select(LiveEvent).where(*where).order_by(col(LiveEvent.id).desc())
        .offset(offset).limit(limit)
    ).all()  # fmt: skip
    return Page(
        items=[
            InstanceEventPublic(
                id=r.id or 0,
                at=as_utc(r.at),
                bar_ts=_utc(r.bar_ts),
                kind=r.kind,
                message=r.message,
                data=json.loads(r.data_json) if r.data_json else None,
            )
            for r in rows
        ],
        total=total,
    )


def orders(session: Session, user: User, iid: str, *, limit: int) -> list[InstanceOrderPublic]:
    """Newest first."""
    instance = _instance(session, user, iid, Level.READ)
    rows = session.exec(
        select(LiveOrder).where(col(LiveOrder.instance_id) == instance.id)
        .order_by(col(LiveOrder.id).desc()).limit(limit)
    ).all()  # fmt: skip
    return [
        InstanceOrderPublic(
            client_id=o.client_id,
            symbol=o.symbol,
            side=o.side,
            qty=o.qty,
            type=o.type,
            limit_price=o.limit_price,
            status=o.status,
            reason=o.reason,
            placed_bar_ts=as_utc(o.placed_bar_ts),
            filled_bar_ts=_utc(o.filled_bar_ts),
            fill_price=o.fill_price,
            fee=o.fee,
        )
        for o in rows
    ]


def changes(session: Session, user: User, iid: str) -> list[InstanceChangePublic]:
    """The instance's history of desired states, newest first."""
    instance = _instance(session, user, iid, Level.READ)
    rows = session.exec(
        select(InstanceChange).where(col(InstanceChange.instance_id) == instance.id)
        .order_by(col(InstanceChange.id).desc())
    ).all()  # fmt: skip
    return [
        InstanceChangePublic(
            kind=c.kind,
            config_version=c.config_version,
            config=json.loads(c.config_json),
            mode=c.mode,
            user=username_of(session, c.user_id) if c.user_id else None,
            created_at=as_utc(c.created_at),
        )
        for c in rows
    ]


def widgets(session: Session, user: User, iid: str) -> WidgetsPublic:
    """Ask the engine for a rendering (on demand) and return the last one it made."""
    instance = _instance(session, user, iid, Level.READ)
    instance.render_requested_at = utcnow()
    session.add(instance)
    session.commit()
    session.refresh(instance)
    payload = json.loads(instance.widgets_json) if instance.widgets_json else {}
    return WidgetsPublic(
        widgets=payload.get("widgets") or [],
        error=payload.get("error"),
        rendered_at=_utc(instance.rendered_at),
        requested_at=_utc(instance.render_requested_at),
    )


# -- stream pipelines ----------------------------------------------------------------------

STALE_S = 30.0


def streams(settings: ApiSettings) -> list[StreamPublic]:
    """Every stream pipeline that ran with this data dir, from its ``status.json``."""
    root = settings.root / "stream"
    out: list[StreamPublic] = []
    for path in sorted(root.glob("*/status.json")) if root.is_dir() else []:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being rewritten (atomically) or not a status: the next poll reads it
        if not isinstance(data, dict):
            continue
        out.append(_stream(path.parent.name, data))
    return out


def _stream(name: str, data: dict[str, Any]) -> StreamPublic:
    state = str(data.get("state") or "unknown")
    written = data.get("written_at")
    reporting = True
    if state in ("starting", "warming up", "running") and isinstance(written, str | int | float):
        try:
            stamp = (
                datetime.fromtimestamp(float(written), UTC)
                if isinstance(written, int | float)
                else datetime.fromisoformat(written)
            )
            reporting = (utcnow() - as_utc(stamp)).total_seconds() < STALE_S
        except ValueError:
            reporting = False
    return StreamPublic(
        pipeline=str(data.get("pipeline") or name),
        state=state,
        reporting=reporting,
        source=data.get("source"),
        interval=data.get("interval"),
        bars=int(data.get("bars") or 0),
        events=int(data.get("events") or 0),
        duplicates=int(data.get("duplicates") or 0),
        last_bar=data.get("last_bar"),
        started_at=_text(data.get("started_at")),
        ended_at=_text(data.get("ended_at")),
        written_at=_text(written),
        failure=data.get("failure"),
        errors=list(data.get("errors") or [])[-10:],
        gaps=list(data.get("gaps") or [])[-10:],
        sinks={k: v for k, v in (data.get("sinks") or {}).items() if isinstance(v, dict)},
        last_events=[e for e in (data.get("last_events") or []) if isinstance(e, dict)][-20:],
    )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC).isoformat()
    return str(value)


def public(session: Session, user: User, i: StrategyInstance) -> InstancePublic:
    strategy = session.get(Strategy, i.strategy_id)
    assert strategy is not None
    pinned = version_of(session, strategy, i.strategy_version)
    positions = session.exec(
        select(LivePosition).where(col(LivePosition.instance_id) == i.id)
        .order_by(col(LivePosition.symbol))
    ).all()  # fmt: skip
    cash = i.cash if i.cash is not None else i.initial_cash
    equity = i.equity if i.equity is not None else cash
    return InstancePublic(
        id=i.id,
        owner=username_of(session, i.owner_id),
        strategy_id=strategy.id or 0,
        strategy=strategy.name,
        strategy_version=i.strategy_version,
        latest_version=strategy.latest_version,
        account=i.account,
        market=i.market,
        feed=json.loads(i.feed_json),
        initial_cash=i.initial_cash,
        fee_bps=i.fee_bps,
        slippage_bps=i.slippage_bps,
        mode=i.mode,  # type: ignore[arg-type]
        config=json.loads(i.config_json),
        config_version=i.config_version,
        config_schema=json.loads(pinned.config_schema_json) if pinned else {},
        status="deleted" if i.deleted_at is not None else i.status,
        status_reason=i.status_reason,
        status_at=_utc(i.status_at),
        engine=i.engine_id,
        restarts=i.restarts,
        last_bar_ts=_utc(i.last_bar_ts),
        bars_seen=i.bars_seen,
        cash=cash,
        equity=equity,
        pnl=equity - i.initial_cash,
        positions=[
            PositionPublic(
                symbol=p.symbol,
                qty=p.qty,
                avg_price=p.avg_price,
                realized_pnl=p.realized_pnl,
                fees=p.fees,
                last_price=p.last_price,
            )
            for p in positions
            if p.qty or p.realized_pnl
        ],
        created_at=as_utc(i.created_at),
        updated_at=as_utc(i.updated_at),
        can_edit=caps_for(user, i, edit_grant=False).can_edit,  # type: ignore[arg-type]
    )


def _utc(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None
