"""Writing the desired state: strategy modules, their versions and instances.

What the API (with authorization and the audit log around it), the CLI and the tests call to
change what the engine should run. Every function validates before it writes and raises
:class:`LiveInputError` (a sentence naming the field) on bad input; nothing is half-written.

- :func:`save_strategy`: a new module, or a new version of one (``CONFIG_SCHEMA`` read from the
  code without running it, :mod:`nodes.strategycode`); saving the same code again adds nothing.
- :func:`create_instance`: an instance's identity (strategy and pinned version, account, market,
  feed, initial cash, fees) is fixed here, for good; its config is validated against the
  version's schema (defaults filled in) and its mode is off, observe or active.
- :func:`update_instance`: a new config (validated; ``config_version`` + 1), a new mode, or a
  move to another version of the same strategy (the config is validated against that version's
  schema). Each change is an :class:`~live.tables.InstanceChange` row.
- :func:`delete_instance`: marks it deleted (the engine unloads it; its book and events stay).
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from sqlmodel import Session, col, select

from live.sources.binance_markets import MARKETS
from live.tables import (
    MODES,
    InstanceChange,
    Strategy,
    StrategyInstance,
    StrategyVersion,
    utcnow,
)
from nodes.strategycode import (
    ConfigError,
    StrategyCodeError,
    read_module,
    validate_config,
)
from runners.papertrade.bars import interval_seconds

__all__ = [
    "BINANCE_FEEDS",
    "FEED_KINDS",
    "LiveInputError",
    "check_feed",
    "create_instance",
    "delete_instance",
    "save_strategy",
    "update_instance",
]

FEED_KINDS = ("replay", "binance", "binance_futures")
#: The Binance market (live.sources.binance_markets) each Binance feed kind reads.
BINANCE_FEEDS = {"binance": "spot", "binance_futures": "usdm"}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./:-]{0,63}$")


class LiveInputError(ValueError):
    """Input the live side refuses; ``field`` names what was wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# -- strategy modules -----------------------------------------------------------------------


def save_strategy(
    session: Session, owner_id: int, name: str, code: str, message: str = ""
) -> tuple[Strategy, StrategyVersion]:
    """Create ``name`` (owner's) or add a version when the code changed; commits."""
    if not _NAME.match(name):
        raise LiveInputError(
            "name", "1 to 64 lower-case letters, digits or _, starting with a letter"
        )
    try:
        module = read_module(code)
    except StrategyCodeError as exc:
        raise LiveInputError("code", str(exc)) from None
    strategy = session.exec(
        select(Strategy)
        .where(col(Strategy.owner_id) == owner_id)
        .where(col(Strategy.name) == name)
        .where(col(Strategy.deleted_at).is_(None))
    ).first()
    if strategy is not None:
        latest = version_of(session, strategy, strategy.latest_version)
        if latest is not None and latest.code_hash == module.code_hash:
            return strategy, latest
        strategy.latest_version += 1
        strategy.updated_at = utcnow()
    else:
        strategy = Strategy(owner_id=owner_id, name=name, latest_version=1)
    session.add(strategy)
    session.flush()
    version = StrategyVersion(
        strategy_id=strategy.id or 0,
        version=strategy.latest_version,
        code=code,
        code_hash=module.code_hash,
        config_schema_json=json.dumps(module.config_schema),
        message=message[:500],
        author_id=owner_id,
    )
    session.add(version)
    session.commit()
    session.refresh(strategy)
    session.refresh(version)
    return strategy, version


def version_of(session: Session, strategy: Strategy, version: int) -> StrategyVersion | None:
    return session.exec(
        select(StrategyVersion)
        .where(col(StrategyVersion.strategy_id) == strategy.id)
        .where(col(StrategyVersion.version) == version)
    ).first()


def check_live_kind(strategy: Strategy, version: StrategyVersion) -> None:
    """A LiveInputError when ``version`` is a tick strategy (``TickStrategy.on_step``): it runs
    in the ``tick_strategy_backtest`` node on order-book events, not as an instance on bars."""
    try:
        kind = read_module(version.code).kind
    except StrategyCodeError:  # stored code was checked on save; let the host report it
        return
    if kind != "bar":
        raise LiveInputError(
            "strategy",
            f"{strategy.name} v{version.version} is a tick strategy (TickStrategy with "
            "on_step): it runs in a pipeline's tick_strategy_backtest node, not as a live "
            "instance (instances run Strategy modules with on_tick)",
        )


def schema_of(version: StrategyVersion) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(version.config_schema_json)
    return schema


# -- instances ------------------------------------------------------------------------------


def check_feed(feed: Any) -> dict[str, Any]:
    """A feed (where the instance's bars come from), checked: ``{"kind": "replay", "path" or
    "dataset", "interval", "speed", "start", "warmup"}`` or ``{"kind": "binance" (spot) or
    "binance_futures" (USD-M futures), "interval" (one of the market's kline intervals),
    "warmup"}``."""
    if not isinstance(feed, dict):
        raise LiveInputError(
            "feed", "a feed is an object with a kind (" + ", ".join(FEED_KINDS) + ")"
        )
    kind = feed.get("kind")
    if kind not in FEED_KINDS:
        raise LiveInputError("feed.kind", f"must be one of {', '.join(FEED_KINDS)}, not {kind!r}")
    out = dict(feed)
    try:
        interval_seconds(str(out.setdefault("interval", "1d" if kind == "replay" else "1m")))
    except ValueError as exc:
        raise LiveInputError("feed.interval", str(exc)) from None
    if kind in BINANCE_FEEDS:
        try:
            MARKETS[BINANCE_FEEDS[kind]].check_interval(str(out["interval"]))
        except ValueError as exc:
            raise LiveInputError("feed.interval", str(exc)) from None
    for key, lo in (("speed", 0.0), ("warmup", 0.0), ("start", 0.0)):
        if key in out and out[key] is not None and not isinstance(out[key], str):
            value = out[key]
            if not isinstance(value, int | float) or isinstance(value, bool) or value < lo:
                raise LiveInputError(f"feed.{key}", f"must be a number ≥ {lo:g}, not {value!r}")
    if kind == "replay" and not (out.get("path") or out.get("dataset")):
        raise LiveInputError("feed", "a replay feed names a path (CSV/Parquet) or a dataset")
    return out


def create_instance(
    session: Session,
    owner_id: int,
    strategy: Strategy,
    *,
    version: int | None = None,
    account: str,
    market: str,
    feed: dict[str, Any],
    config: dict[str, Any] | None = None,
    mode: str = "off",
    initial_cash: float = 100_000.0,
    fee_bps: float = 0.0,
    slippage_bps: float = 0.0,
    user_id: int | None = None,
) -> StrategyInstance:
    """A new instance (see the module doc); commits."""
    pinned = version_of(session, strategy, version or strategy.latest_version)
    if pinned is None:
        raise LiveInputError("version", f"{strategy.name} has no version {version}")
    check_live_kind(strategy, pinned)
    for field, value in (("account", account), ("market", market)):
        if not _LABEL.match(value or ""):
            raise LiveInputError(field, "1 to 64 letters, digits or _ . / : -")
    if mode not in MODES:
        raise LiveInputError("mode", f"must be one of {', '.join(MODES)}, not {mode!r}")
    amounts = (("initial_cash", initial_cash, 1e-9), ("fee_bps", fee_bps, 0.0),
               ("slippage_bps", slippage_bps, 0.0))  # fmt: skip
    for name, amount, lo in amounts:
        if not isinstance(amount, int | float) or not amount >= lo or amount > 1e15:
            raise LiveInputError(name, f"must be a number ≥ {lo:g}, not {amount!r}")
    feed = check_feed(feed)
    if feed["kind"] in BINANCE_FEEDS:
        try:
            MARKETS[BINANCE_FEEDS[feed["kind"]]].check_symbols(market)
        except ValueError as exc:
            raise LiveInputError("market", f"the {feed['kind']} feed: {exc}") from None
    checked = _config(schema_of(pinned), config or {})
    instance = StrategyInstance(
        id=f"si_{secrets.token_hex(6)}",
        owner_id=owner_id,
        strategy_id=strategy.id or 0,
        strategy_version=pinned.version,
        account=account,
        market=market,
        feed_json=json.dumps(feed),
        initial_cash=float(initial_cash),
        fee_bps=float(fee_bps),
        slippage_bps=float(slippage_bps),
        mode=mode,
        config_json=json.dumps(checked),
        config_version=1,
    )
    session.add(instance)
    session.flush()
    _change(session, instance, "created", user_id or owner_id)
    session.commit()
    session.refresh(instance)
    return instance


def update_instance(
    session: Session,
    instance: StrategyInstance,
    *,
    config: dict[str, Any] | None = None,
    mode: str | None = None,
    version: int | None = None,
    user_id: int | None = None,
) -> list[str]:
    """Apply the changes given; returns what changed (``config``, ``mode``, ``version``)."""
    if instance.deleted_at is not None:
        raise LiveInputError("instance", "this instance was deleted")
    changed: list[str] = []
    strategy = session.get(Strategy, instance.strategy_id)
    assert strategy is not None
    target = instance.strategy_version
    if version is not None and version != instance.strategy_version:
        if version_of(session, strategy, version) is None:
            raise LiveInputError("version", f"{strategy.name} has no version {version}")
        target = version
    pinned = version_of(session, strategy, target)
    assert pinned is not None
    if target != instance.strategy_version:
        check_live_kind(strategy, pinned)
    if mode is not None and mode not in MODES:
        raise LiveInputError("mode", f"must be one of {', '.join(MODES)}, not {mode!r}")
    new_config = json.loads(instance.config_json) if config is None else config
    checked = _config(schema_of(pinned), new_config)
    if target != instance.strategy_version:
        instance.strategy_version = target
        changed.append("version")
    if json.dumps(checked, sort_keys=True) != json.dumps(
        json.loads(instance.config_json), sort_keys=True
    ):
        instance.config_json = json.dumps(checked)
        changed.append("config")
    if "config" in changed or "version" in changed:
        instance.config_version += 1
    if mode is not None and mode != instance.mode:
        instance.mode = mode
        changed.append("mode")
    if changed:
        instance.updated_at = utcnow()
        session.add(instance)
        _change(session, instance, "+".join(changed), user_id)
        session.commit()
        session.refresh(instance)
    return changed


def delete_instance(
    session: Session, instance: StrategyInstance, user_id: int | None = None
) -> None:
    """Mark the instance deleted (mode off): the engine unloads it; commits."""
    if instance.deleted_at is not None:
        return
    instance.deleted_at = utcnow()
    instance.mode = "off"
    session.add(instance)
    _change(session, instance, "deleted", user_id)
    session.commit()


def _config(schema: dict[str, Any], config: Any) -> dict[str, Any]:
    try:
        return validate_config(schema, config)
    except ConfigError as exc:
        raise LiveInputError("config", str(exc)) from None


def _change(session: Session, instance: StrategyInstance, kind: str, user_id: int | None) -> None:
    session.add(
        InstanceChange(
            instance_id=instance.id,
            kind=kind[:16],
            config_version=instance.config_version,
            config_json=instance.config_json,
            mode=instance.mode,
            user_id=user_id,
        )
    )
