"""The live side's tables (migration ``api/migrations/versions/0008_live.py``).

- :class:`Strategy` / :class:`StrategyVersion`: a strategy module, a custom node's sibling: an
  owned name and immutable numbered versions (the code, its hash, the ``CONFIG_SCHEMA`` read from
  it, a message).
- :class:`StrategyInstance`: one configured deployment of a strategy (seed 001). Its identity —
  id, strategy and pinned version, account, market, feed, initial cash — never changes; its
  config and mode do (each change a :class:`InstanceChange` row, and an audit event in the app).
  The engine writes the runtime columns: status and reason, the lease (which engine has it
  loaded, until when), restarts, the last bar it processed, the paper account's cash, and the
  widgets it rendered when asked (``render_requested_at``).
- :class:`LiveOrder`, :class:`LivePosition`: the paper venue's book, per instance;
  :class:`LiveBar`: the account at each processed bar's close (the equity curve).
- :class:`LiveEvent`: what an instance did and said (logs, intents, refusals, fills, errors,
  status changes), newest last; bounded per instance by the engine.

Only this module and the migration know the table shapes; the engine reads and writes them
through :class:`live.store.LiveStore`, the API through its services.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlmodel import Field, SQLModel

__all__ = [
    "InstanceChange",
    "LiveBar",
    "LiveEvent",
    "LiveOrder",
    "LivePosition",
    "Strategy",
    "StrategyInstance",
    "StrategyVersion",
    "utcnow",
]

MODES = ("off", "observe", "active")
STATUSES = ("stopped", "loading", "running", "crashed", "ended")


def utcnow() -> datetime:
    """Now, aware UTC."""
    return datetime.now(UTC)


def _ts(nullable: bool = False) -> datetime:
    if nullable:
        return Field(default=None, sa_type=DateTime(timezone=True), nullable=True)
    return Field(default_factory=utcnow, sa_type=DateTime(timezone=True), nullable=False)


class Strategy(SQLModel, table=True):
    """A stored strategy module; ``latest_version`` its highest version number."""

    __tablename__ = "strategies"
    __table_args__ = (
        Index(
            "uq_strategies_owner_name_live",
            "owner_id",
            "name",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    owner_id: int = Field(
        sa_column=Column(Integer, ForeignKey("users.id"), nullable=False, index=True)
    )
    name: str = Field(max_length=64)
    latest_version: int = 1
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    deleted_at: datetime | None = _ts(nullable=True)


class StrategyVersion(SQLModel, table=True):
    """One immutable saved module of a strategy."""

    __tablename__ = "strategy_versions"
    __table_args__ = (Index("uq_strategy_version", "strategy_id", "version", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    strategy_id: int = Field(
        sa_column=Column(Integer, ForeignKey("strategies.id"), nullable=False, index=True)
    )
    version: int
    code: str = Field(sa_type=Text)
    code_hash: str = Field(max_length=64)
    config_schema_json: str = Field(sa_type=Text)
    message: str = Field(default="", max_length=500)
    author_id: int = Field(sa_column=Column(Integer, ForeignKey("users.id"), nullable=False))
    created_at: datetime = _ts()


class StrategyInstance(SQLModel, table=True):
    """A strategy instance: immutable identity, editable config and mode, runtime status."""

    __tablename__ = "strategy_instances"

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    owner_id: int = Field(
        sa_column=Column(Integer, ForeignKey("users.id"), nullable=False, index=True)
    )
    strategy_id: int = Field(
        sa_column=Column(Integer, ForeignKey("strategies.id"), nullable=False, index=True)
    )
    strategy_version: int
    account: str = Field(max_length=64)
    market: str = Field(max_length=32)
    feed_json: str = Field(sa_type=Text)
    initial_cash: float = 100_000.0
    fee_bps: float = 0.0
    slippage_bps: float = 0.0
    # desired state (the user's)
    mode: str = Field(default="off", max_length=8)
    config_json: str = Field(sa_type=Text)
    config_version: int = 1
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    deleted_at: datetime | None = _ts(nullable=True)
    # runtime (the engine's)
    status: str = Field(default="stopped", max_length=16)
    status_reason: str | None = Field(default=None, sa_type=Text)
    status_at: datetime | None = _ts(nullable=True)
    loaded_key: str | None = Field(default=None, max_length=64)
    engine_id: str | None = Field(default=None, max_length=128)
    lease_until: datetime | None = _ts(nullable=True)
    restarts: int = 0
    last_bar_ts: datetime | None = _ts(nullable=True)
    bars_seen: int = 0
    cash: float | None = None
    equity: float | None = None
    render_requested_at: datetime | None = _ts(nullable=True)
    widgets_json: str | None = Field(default=None, sa_type=Text)
    rendered_at: datetime | None = _ts(nullable=True)


class InstanceChange(SQLModel, table=True):
    """One change of an instance's desired state (created, config, mode), by whom."""

    __tablename__ = "strategy_instance_changes"

    id: int | None = Field(default=None, primary_key=True)
    instance_id: str = Field(
        sa_column=Column(
            String(32), ForeignKey("strategy_instances.id"), nullable=False, index=True
        )
    )
    kind: str = Field(max_length=16)
    config_version: int
    config_json: str = Field(sa_type=Text)
    mode: str = Field(max_length=8)
    user_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("users.id"), nullable=True)
    )
    created_at: datetime = _ts()


class LiveOrder(SQLModel, table=True):
    """An order of an active instance on the paper venue."""

    __tablename__ = "live_orders"
    __table_args__ = (Index("uq_live_order_client", "instance_id", "client_id", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    instance_id: str = Field(
        sa_column=Column(
            String(32), ForeignKey("strategy_instances.id"), nullable=False, index=True
        )
    )
    client_id: str = Field(max_length=64)
    symbol: str = Field(max_length=32)
    side: str = Field(max_length=4)
    qty: float
    type: str = Field(default="market", max_length=8)
    limit_price: float | None = None
    status: str = Field(default="open", max_length=16)
    reason: str | None = Field(default=None, sa_type=Text)
    placed_bar_ts: datetime = Field(sa_type=DateTime(timezone=True))
    filled_bar_ts: datetime | None = _ts(nullable=True)
    fill_price: float | None = None
    fee: float | None = None
    created_at: datetime = _ts()


class LivePosition(SQLModel, table=True):
    """An instance's position in one symbol on the paper venue."""

    __tablename__ = "live_positions"

    instance_id: str = Field(
        sa_column=Column(String(32), ForeignKey("strategy_instances.id"), primary_key=True)
    )
    symbol: str = Field(sa_column=Column(String(32), primary_key=True))
    qty: float = 0.0
    avg_price: float = 0.0
    realized_pnl: float = 0.0
    fees: float = 0.0
    last_price: float | None = None


class LiveBar(SQLModel, table=True):
    """An instance's account at the close of each bar it processed (its equity curve)."""

    __tablename__ = "live_bars"

    instance_id: str = Field(
        sa_column=Column(String(32), ForeignKey("strategy_instances.id"), primary_key=True)
    )
    bar_ts: datetime = Field(sa_column=Column(DateTime(timezone=True), primary_key=True))
    close: float
    equity: float
    cash: float
    position: float


class LiveEvent(SQLModel, table=True):
    """Something an instance did or said."""

    __tablename__ = "live_events"

    id: int | None = Field(default=None, primary_key=True)
    instance_id: str = Field(
        sa_column=Column(
            String(32), ForeignKey("strategy_instances.id"), nullable=False, index=True
        )
    )
    at: datetime = _ts()
    bar_ts: datetime | None = _ts(nullable=True)
    kind: str = Field(max_length=16)
    message: str = Field(sa_type=Text)
    data_json: str | None = Field(default=None, sa_type=Text)
