"""The engine as a service: the store, the sandbox hosts and the feeds of an installation.

:func:`build_engine` wires :class:`live.engine.Engine` to a database URL (the app's database,
``ALPHAFORGE_DATABASE_URL``), the sandbox (:func:`runners.strategyhost.strategy_host`: Docker,
or the process runner only where the operator enabled it) and the feeds
(:func:`live.feeds.source_factory`), and the deployed stream pipelines
(:class:`live.stream.reconciler.StreamReconciler`, run by the same loop). :func:`run_engine`
runs it until ``stop``: what ``alphaforge engine`` and the ``alphaforge-engine`` Prefect
deployment call.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine as SqlEngine
from sqlmodel import create_engine

from live.engine import Engine
from live.feeds import DatasetReader, source_factory
from live.leases import engine_id_for
from live.sqlwatch import watch_sqlite_writes
from live.store import Desired, LiveStore
from runners.strategyhost import StrategyHost

__all__ = ["build_engine", "run_engine", "sql_engine", "workspace"]

SAMPLE_DATA_DIR = Path(__file__).resolve().parents[1] / "examples" / "data"


def sql_engine(database_url: str) -> SqlEngine:
    """An SQLAlchemy engine for the app's database (SQLite gets a busy timeout)."""
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if database_url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    engine = create_engine(database_url, **kwargs)
    watch_sqlite_writes(engine)
    return engine


def build_engine(
    database_url: str,
    base_dir: Path,
    *,
    runner: str = "auto",
    confine: bool = False,
    datasets: DatasetReader | None = None,
    name: str = "engine",
    tick_timeout_s: float = 10.0,
    binance: dict[str, Any] | None = None,
    binance_futures: dict[str, Any] | None = None,
    streams: bool = True,
    stream_state_dir: Path | None = None,
    stream_base_dir: Path | None = None,
) -> Engine:
    """An engine on ``database_url`` whose instances run in the sandbox (see the module doc);
    with ``streams``, it runs the deployed stream pipelines too (their state under
    ``stream_state_dir``, default ``<data dir>/streams``; relative paths in them resolve
    under ``stream_base_dir``, default the web runs' workspace ``<store>/workspace``)."""
    from runners.strategyhost import strategy_host

    def host(want: Desired) -> StrategyHost:
        return strategy_host(  # type: ignore[no-any-return]
            want.code, instance_id=want.id, choice=runner, tick_timeout_s=tick_timeout_s
        )

    sql = sql_engine(database_url)
    store = LiveStore(sql)
    sources = source_factory(
        base_dir, confine=confine, datasets=datasets, binance=binance,
        binance_futures=binance_futures,
    )  # fmt: skip
    engine_id = engine_id_for(name)
    siblings = []
    if streams:
        from flows.settings import get_settings
        from live.stream.reconciler import StreamReconciler
        from live.stream.store import StreamStore

        settings = get_settings()
        siblings.append(
            StreamReconciler(
                StreamStore(sql),
                engine_id,
                state_root=stream_state_dir or settings.root / "streams",
                base_dir=stream_base_dir or workspace(settings.store_root),
                settings=settings,
            )
        )
    return Engine(store, host, sources, engine_id=engine_id, siblings=siblings)


def workspace(store_root: Path) -> Path:
    """``<store>/workspace``, where deployed stream pipelines' relative paths resolve: the web
    runs' base dir (api/services/runs.py ``web_base_dir``), with ``data/`` holding the bundled
    sample files (so ``csv_ohlcv(path="data/sample_ohlcv.csv")`` resolves on a fresh install)."""
    base = store_root / "workspace"
    target = base / "data"
    target.mkdir(parents=True, exist_ok=True)
    for src in SAMPLE_DATA_DIR.glob("*"):
        dst = target / src.name
        if src.is_file() and (not dst.exists() or dst.stat().st_size != src.stat().st_size):
            shutil.copyfile(src, dst)
    return base


def run_engine(engine: Engine, stop: threading.Event, cycle_s: float = 1.0) -> None:
    """Reconcile until ``stop`` is set, then unload every instance."""
    engine.run(stop, cycle_s)
