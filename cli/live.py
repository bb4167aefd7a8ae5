"""The live side from a terminal: ``alphaforge engine``, ``strategy`` and ``instance``.

- ``alphaforge engine`` runs the reconciler (live/engine.py) on the web app's database
  (``ALPHAFORGE_DATABASE_URL``, else the SQLite file in the data dir) until Ctrl-C: it loads,
  reloads and unloads instances as the database says, one sandbox each. Replay feeds' paths
  resolve under ``--feeds-dir`` (default: the examples folder, where ``data/sample_ohlcv.csv``
  is) and may not leave it; ``dataset`` feeds read the instance owner's catalog namespace.
- ``alphaforge strategy save NAME FILE --owner USER`` stores a module (a new version when the
  code changed); ``strategy ls``.
- ``alphaforge instance create|ls|show|mode|config|delete``: what the dashboard does.

Every command reads and writes the same rows as the web app; an unknown owner, strategy or
instance is a usage error naming it.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import click

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FEEDS_DIR = ROOT / "examples"


def _settings() -> Any:
    from api.settings import ApiSettings

    return ApiSettings()


def _db() -> Any:
    from api.db import make_engine, run_migrations

    engine = make_engine(_settings().db_url)
    run_migrations(engine)
    return engine


def _user_id(session: Any, username: str) -> int:
    from sqlmodel import select

    from api.models.user import User

    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise click.UsageError(f"--owner {username}: the web app has no user {username!r}")
    return int(user.id)


def _instance(session: Any, iid: str) -> Any:
    from live.tables import StrategyInstance

    row = session.get(StrategyInstance, iid)
    if row is None or row.deleted_at is not None:
        raise click.UsageError(f"no instance {iid!r} (see `alphaforge instance ls`)")
    return row


def _fail_input(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


# -- engine ---------------------------------------------------------------------------------


@click.command(name="engine")
@click.option("--cycle-s", default=1.0, show_default=True, help="Seconds between reconciles.")
@click.option(
    "--runner",
    type=click.Choice(["auto", "docker", "process"]),
    default="auto",
    show_default=True,
    help="Where strategies run: the Docker sandbox; process only where the operator enabled "
    "it (ALPHAFORGE_ALLOW_PROCESS_RUNNER=1).",
)
@click.option(
    "--feeds-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_FEEDS_DIR,
    show_default=True,
    help="Replay feeds' paths resolve here (and may not leave it).",
)
@click.option("--once", is_flag=True, help="Reconcile once, report, unload and exit.")
def engine_command(cycle_s: float, runner: str, feeds_dir: Path, once: bool) -> None:
    """Run the strategy engine: make the running instances match the database."""
    from live.service import build_engine
    from live.store import Desired

    settings = _settings()
    _db().dispose()  # the schema is up to date

    def datasets(want: Desired, ref: str) -> Any:
        from flows.catalog import open_catalog
        from flows.settings import CoreSettings

        name, _, version = ref.partition("@")
        catalog = open_catalog(CoreSettings())
        info = catalog.resolve(f"u{want.owner_id}", name, version or None)
        return catalog.read(info.version, symbols=[want.market]).reset_index()

    engine = build_engine(
        settings.db_url, feeds_dir, runner=runner, confine=True, datasets=datasets
    )
    import logging

    from flows.logformat import log_handler

    handler = log_handler(settings.log_format)
    for name in ("live.engine", "live.sources.binance"):
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).setLevel(logging.INFO)
    click.echo(f"engine {engine.engine_id}: database {_safe_url(settings.db_url)}")
    if once:
        report = engine.reconcile()
        click.echo(json.dumps(report.__dict__))
        engine.shutdown()
        return
    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    from flows.logformat import log_context

    with log_context(engine_id=engine.engine_id):
        engine.run(stop, cycle_s)
    click.echo("engine stopped: every instance unloaded")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# -- strategy -------------------------------------------------------------------------------


@click.group(name="strategy")
def strategy_group() -> None:
    """Strategy modules (Python files with one Strategy class)."""


@strategy_group.command(name="save")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--owner", required=True, help="The web-app user who owns the module.")
@click.option("--message", default="", help="What changed.")
def strategy_save(name: str, file: Path, owner: str, message: str) -> None:
    """Store FILE as strategy NAME (a new version when its code changed)."""
    from sqlmodel import Session

    from live.instances import LiveInputError, save_strategy, schema_of

    with Session(_db()) as session:
        try:
            strategy, version = save_strategy(
                session, _user_id(session, owner), name, file.read_text(), message
            )
        except LiveInputError as exc:
            raise _fail_input(exc) from None
        fields = ", ".join(sorted(schema_of(version).get("properties") or {})) or "none"
        click.echo(f"{strategy.name} v{version.version} (id {strategy.id}); config: {fields}")


@strategy_group.command(name="backtest")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Bars (CSV or Parquet: ts, open, high, low, close, volume[, symbol]).",
)
@click.option("--symbol", default=None, help="The symbol to trade [default: the only one].")
@click.option("--interval", default="1d", show_default=True)
@click.option("--config", "config_text", help="The config as JSON (defaults from its schema).")
@click.option("--cash", type=float, default=100_000.0, show_default=True)
@click.option("--fee-bps", type=float, default=0.0, show_default=True)
@click.option("--slippage-bps", type=float, default=0.0, show_default=True)
@click.option(
    "--runner", type=click.Choice(["auto", "docker", "process"]), default="auto", show_default=True
)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def strategy_backtest(
    file: Path, data_path: Path, symbol: str | None, interval: str, config_text: str | None,
    cash: float, fee_bps: float, slippage_bps: float, runner: str, as_json: bool,
) -> None:  # fmt: skip
    """Backtest strategy FILE on recorded bars: the engine's own step, in the sandbox."""
    import pandas as pd

    from nodes.strategycode import ConfigError, StrategyCodeError, read_module, validate_config
    from runners.papertrade.backtest import backtest_strategy
    from runners.strategyhost import strategy_host

    code = file.read_text()
    try:
        module = read_module(code)
        config = validate_config(module.config_schema, _config(config_text) or {})
    except (StrategyCodeError, ConfigError) as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    bars = pd.read_parquet(data_path) if data_path.suffix == ".parquet" else pd.read_csv(data_path)
    if "symbol" in bars.columns:
        symbols = sorted(bars["symbol"].astype(str).unique())
        chosen = symbol or (symbols[0] if len(symbols) == 1 else None)
        if chosen not in symbols:
            raise click.UsageError(f"--symbol: one of {', '.join(symbols)}")
        bars = bars[bars["symbol"].astype(str) == chosen]
        symbol = chosen
    host = strategy_host(code, instance_id="backtest", choice=runner)
    result = backtest_strategy(
        host, bars, config=config, symbol=symbol or "ASSET", interval=interval, cash=cash,
        fee_bps=fee_bps, slippage_bps=slippage_bps,
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps({"metrics": result.metrics, "orders": len(result.orders),
                               "rejected": len(result.rejections)}, default=str))  # fmt: skip
        return
    from rich.console import Console

    from cli.output import print_metrics

    out = Console()
    print_metrics(out, result.metrics, title=f"{module.class_name} on {data_path.name}")
    closed = int((~result.trades["is_open"].astype(bool)).sum()) if len(result.trades) else 0
    out.print(f"fills {len(result.orders)}, rejected {len(result.rejections)}, trades {closed}")


@strategy_group.command(name="ls")
@click.option("--json", "as_json", is_flag=True)
def strategy_ls(as_json: bool) -> None:
    """Every strategy module."""
    from sqlmodel import Session, col, select

    from live.tables import Strategy

    with Session(_db()) as session:
        rows = session.exec(
            select(Strategy).where(col(Strategy.deleted_at).is_(None)).order_by(Strategy.name)
        ).all()
        items = [
            {"id": s.id, "name": s.name, "owner_id": s.owner_id, "version": s.latest_version}
            for s in rows
        ]
    if as_json:
        click.echo(json.dumps(items))
        return
    for item in items:
        click.echo(f"{item['id']:>4}  {item['name']:<24} v{item['version']}")


# -- instance -------------------------------------------------------------------------------


@click.group(name="instance")
def instance_group() -> None:
    """Strategy instances: create, list, show, switch mode, reconfigure, delete."""


FEED_FORMS = (
    "replay:PATH[,speed=N,interval=1d,warmup=N], dataset:NAME[,...], binance:INTERVAL[,warmup=N] "
    "(Binance spot) or binance_futures:INTERVAL[,warmup=N] (Binance USD-M futures)"
)


def _feed(text: str) -> dict[str, Any]:
    """``replay:PATH[,key=value...]``, ``dataset:NAME[,...]``, ``binance:INTERVAL[,...]`` or
    ``binance_futures:INTERVAL[,...]``."""
    kind, _, rest = text.partition(":")
    parts = rest.split(",")
    feed: dict[str, Any]
    if kind == "replay":
        feed = {"kind": "replay", "path": parts[0]}
    elif kind == "dataset":
        feed = {"kind": "replay", "dataset": parts[0]}
    elif kind in ("binance", "binance_futures"):
        feed = {"kind": kind, "interval": parts[0] or "1m"}
    else:
        raise click.BadParameter(FEED_FORMS, param_hint="--feed")
    for item in parts[1:]:
        key, _, value = item.partition("=")
        try:
            feed[key] = json.loads(value)
        except json.JSONDecodeError:
            feed[key] = value
    return feed


def _config(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--config") from None
    if not isinstance(value, dict):
        raise click.BadParameter("a JSON object", param_hint="--config")
    return value


@instance_group.command(name="create")
@click.option("--strategy", "strategy_name", required=True)
@click.option("--owner", required=True, help="The web-app user who owns it.")
@click.option("--market", required=True, help="The symbol it trades (e.g. BTCUSDT).")
@click.option("--account", default="paper", show_default=True)
@click.option("--feed", "feed_text", required=True, help=FEED_FORMS)
@click.option("--config", "config_text", help="The config as JSON.")
@click.option("--mode", type=click.Choice(["off", "observe", "active"]), default="off")
@click.option("--version", type=int, help="Pin this version [default: the latest].")
@click.option("--cash", type=float, default=100_000.0, show_default=True)
@click.option("--fee-bps", type=float, default=0.0, show_default=True)
@click.option("--slippage-bps", type=float, default=0.0, show_default=True)
def instance_create(
    strategy_name: str, owner: str, market: str, account: str, feed_text: str,
    config_text: str | None, mode: str, version: int | None, cash: float, fee_bps: float,
    slippage_bps: float,
) -> None:  # fmt: skip
    """A new instance (its identity is fixed for good); prints its id."""
    from sqlmodel import Session, col, select

    from live.instances import LiveInputError, create_instance
    from live.tables import Strategy

    with Session(_db()) as session:
        uid = _user_id(session, owner)
        strategy = session.exec(
            select(Strategy).where(col(Strategy.owner_id) == uid)
            .where(col(Strategy.name) == strategy_name).where(col(Strategy.deleted_at).is_(None))
        ).first()  # fmt: skip
        if strategy is None:
            raise click.UsageError(f"{owner} has no strategy {strategy_name!r}")
        try:
            row = create_instance(
                session, uid, strategy, version=version, account=account, market=market,
                feed=_feed(feed_text), config=_config(config_text), mode=mode,
                initial_cash=cash, fee_bps=fee_bps, slippage_bps=slippage_bps,
            )  # fmt: skip
        except LiveInputError as exc:
            raise _fail_input(exc) from None
        click.echo(row.id)


@instance_group.command(name="ls")
@click.option("--json", "as_json", is_flag=True)
def instance_ls(as_json: bool) -> None:
    """Every instance: id, strategy, market, account, mode, status, PnL."""
    from sqlmodel import Session, col, select

    from live.tables import Strategy, StrategyInstance

    with Session(_db()) as session:
        rows = session.exec(
            select(StrategyInstance, Strategy)
            .join(Strategy, col(Strategy.id) == col(StrategyInstance.strategy_id))
            .where(col(StrategyInstance.deleted_at).is_(None))
            .order_by(col(StrategyInstance.created_at))
        ).all()
        items = [_row(i, s) for i, s in rows]
    if as_json:
        click.echo(json.dumps(items, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("strategy", "market", "account", "mode", "status", "bars", "PnL")
    table.add_column("id", no_wrap=True)
    table.columns.insert(0, table.columns.pop())
    for it in items:
        table.add_row(it["id"], f"{it['strategy']} v{it['version']}", it["market"],
                      it["account"], it["mode"], it["status"], str(it["bars_seen"]),
                      f"{it['pnl']:+,.2f}")  # fmt: skip
    import sys

    Console(width=None if sys.stdout.isatty() else 160).print(table)


def _row(i: Any, s: Any) -> dict[str, Any]:
    equity = i.equity if i.equity is not None else i.initial_cash
    return {
        "id": i.id, "strategy": s.name, "version": i.strategy_version, "market": i.market,
        "account": i.account, "mode": i.mode, "status": i.status, "reason": i.status_reason,
        "bars_seen": i.bars_seen, "last_bar_ts": i.last_bar_ts, "cash": i.cash,
        "equity": equity, "pnl": equity - i.initial_cash, "config": json.loads(i.config_json),
        "config_version": i.config_version, "restarts": i.restarts,
        "feed": json.loads(i.feed_json),
    }  # fmt: skip


_FEED_TITLES = {"binance": "Binance spot", "binance_futures": "Binance USD-M futures"}


def feed_summary(feed: dict[str, Any]) -> str:
    """Where an instance's bars come from, in a few words (the dashboard's ``feedSummary``)."""
    kind = str(feed.get("kind", "?"))
    interval = str(feed.get("interval") or "")
    warmup = f"warm-up {feed['warmup']}" if feed.get("warmup") is not None else ""
    if kind == "replay":
        where = f"dataset {feed['dataset']}" if feed.get("dataset") else str(feed.get("path", "?"))
        speed = feed.get("speed")
        pace = f"×{speed:g}" if isinstance(speed, int | float) and speed > 0 else "as fast as taken"
        parts = ["replay", where, interval, pace, warmup]
    else:
        parts = [_FEED_TITLES.get(kind, kind), interval, warmup]
    return " · ".join(p for p in parts if p)


@instance_group.command(name="show")
@click.argument("instance_id")
@click.option("--events", default=15, show_default=True, help="How many recent events.")
@click.option("--json", "as_json", is_flag=True)
def instance_show(instance_id: str, events: int, as_json: bool) -> None:
    """One instance: identity, config, status, positions and its latest events."""
    from sqlmodel import Session, col, select

    from live.tables import LiveEvent, LivePosition, Strategy

    with Session(_db()) as session:
        row = _instance(session, instance_id)
        strategy = session.get(Strategy, row.strategy_id)
        item = _row(row, strategy)
        item["positions"] = [
            {
                "symbol": p.symbol,
                "qty": p.qty,
                "avg_price": p.avg_price,
                "realized_pnl": p.realized_pnl,
            }
            for p in session.exec(
                select(LivePosition).where(col(LivePosition.instance_id) == row.id)
            ).all()
        ]
        item["events"] = [
            {"at": e.at, "kind": e.kind, "message": e.message}
            for e in session.exec(
                select(LiveEvent).where(col(LiveEvent.instance_id) == row.id)
                .order_by(col(LiveEvent.id).desc()).limit(events)
            ).all()
        ][::-1]  # fmt: skip
    if as_json:
        click.echo(json.dumps(item, default=str))
        return
    click.echo(f"{item['id']}  {item['strategy']} v{item['version']}  {item['market']} "
               f"({item['account']})")  # fmt: skip
    click.echo(f"feed {feed_summary(item['feed'])}")
    click.echo(f"mode {item['mode']}, status {item['status']}"
               + (f" ({item['reason']})" if item["reason"] else ""))  # fmt: skip
    click.echo(f"config v{item['config_version']}: {json.dumps(item['config'])}")
    click.echo(f"bars {item['bars_seen']}, equity {item['equity']:,.2f}, PnL {item['pnl']:+,.2f}")
    for p in item["positions"]:
        click.echo(f"  {p['symbol']}: {p['qty']:g} @ {p['avg_price']:.4f}, realized "
                   f"{p['realized_pnl']:+,.2f}")  # fmt: skip
    for e in item["events"]:
        click.echo(f"  {e['at']:%H:%M:%S} {e['kind']:<8} {e['message']}")


@instance_group.command(name="mode")
@click.argument("instance_id")
@click.argument("mode", type=click.Choice(["off", "observe", "active"]))
def instance_mode(instance_id: str, mode: str) -> None:
    """Switch an instance's mode (the engine applies it in place)."""
    _update(instance_id, mode=mode)


@instance_group.command(name="config")
@click.argument("instance_id")
@click.argument("config_json")
def instance_config(instance_id: str, config_json: str) -> None:
    """Replace an instance's config (validated; the engine reloads it)."""
    _update(instance_id, config=_config(config_json))


def _update(instance_id: str, **changes: Any) -> None:
    from sqlmodel import Session

    from live.instances import LiveInputError, update_instance

    with Session(_db()) as session:
        row = _instance(session, instance_id)
        try:
            changed = update_instance(session, row, **changes)
        except LiveInputError as exc:
            raise _fail_input(exc) from None
        click.echo(f"{instance_id}: " + (", ".join(changed) + " changed" if changed else
                                         "nothing changed"))  # fmt: skip


@instance_group.command(name="delete")
@click.argument("instance_id")
def instance_delete(instance_id: str) -> None:
    """Delete an instance (the engine unloads it; its book stays readable)."""
    from sqlmodel import Session

    from live.instances import delete_instance

    with Session(_db()) as session:
        delete_instance(session, _instance(session, instance_id))
    click.echo(f"{instance_id}: deleted")
