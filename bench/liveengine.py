"""The engine part of ``bench_live.py``: bars per second through the reconciler's instance
workers on a real PostgreSQL database, per strategy host and number of instances.

Each instance is the example SMA module (``examples/strategies/sma_cross.py``, active, so it
places orders on the paper venue) on its own replay of the same one-minute bars. Every worker
loads its host, warms up and processes its first live bar; the replay then holds the next bars
back until every instance has done so, and releases them all at once (``go``): what is timed is
the steady state with every instance running, not the staggered start-up. Measured around the
engine's own calls, without changing them: the strategy host's ``tick`` (the ``on_tick`` round
trip: JSON over the pipe, the strategy's Python) and ``LiveStore.save_bar`` (the bar's one
database transaction), both only after ``go``. Memory per instance: the resident set of each
strategy process (``/proc/<pid>/status`` VmRSS), or each container's memory usage less its
inactive file cache (Docker's stats, as ``docker stats`` shows it).
"""

from __future__ import annotations

import os
import secrets
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
from sqlalchemy import inspect, text
from sqlmodel import Session

from live.engine import Engine
from live.instances import create_instance, save_strategy
from live.service import sql_engine
from live.store import Desired, LiveStore
from runners.papertrade.bars import Bar
from runners.papertrade.replay import ReplaySource
from runners.papertrade.step import BarWrite
from runners.strategyhost import StrategyHost, TickReply, strategy_host

ROOT = Path(__file__).resolve().parents[1]
CODE = (ROOT / "examples" / "strategies" / "sma_cross.py").read_text()
CONFIG = {"fast": 5, "slow": 20, "qty": 1}
WARMUP = 25
PG_ADMIN_DSN = os.environ.get(
    "AF_BENCH_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
PG_URL_BASE = os.environ.get("AF_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")


@contextmanager
def scratch_database() -> Iterator[str]:
    """A new, migrated PostgreSQL database (dropped afterwards) with one user (id 1)."""
    from api.db import make_engine, run_migrations

    name = f"af_bench_live_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG_URL_BASE}/{name}"
    try:
        engine = make_engine(url)
        run_migrations(engine)
        engine.dispose()
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _reset(url: str) -> None:
    """Empty every table; one user (id 1) to own the instances."""
    engine = sql_engine(url)
    tables = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        conn.execute(text(
            "INSERT INTO users (username, password_hash, role, is_active, must_change_password, "
            "created_at) VALUES ('bench', 'x', 'developer', true, false, now())"
        ))  # fmt: skip
    engine.dispose()


@dataclass
class Recorder:
    """What the timed calls saw after ``go``: durations (s) and save completion times."""

    go: threading.Event = field(default_factory=threading.Event)
    ticks: list[float] = field(default_factory=list)
    saves: list[float] = field(default_factory=list)
    saved_at: list[float] = field(default_factory=list)
    first_bars: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class TimedHost:
    """A strategy host whose ``tick`` is timed; everything else passes through."""

    def __init__(self, inner: Any, rec: Recorder) -> None:
        self.inner = inner
        self.rec = rec

    @property
    def alive(self) -> bool:
        return bool(self.inner.alive)

    def start(self, identity: dict[str, Any], config: dict[str, Any], mode: str) -> list[str]:
        return list(self.inner.start(identity, config, mode))

    def tick(self, tick: dict[str, Any], account: dict[str, Any]) -> TickReply:
        t0 = time.perf_counter()
        reply: TickReply = self.inner.tick(tick, account)
        if self.rec.go.is_set():
            elapsed = time.perf_counter() - t0
            with self.rec.lock:
                self.rec.ticks.append(elapsed)
        return reply

    def set_mode(self, mode: str) -> None:
        self.inner.set_mode(mode)

    def render(self) -> list[dict[str, Any]]:
        return list(self.inner.render())

    def stop(self) -> None:
        self.inner.stop()


class TimedStore(LiveStore):
    """The engine's store with ``save_bar`` timed (the per-bar transaction)."""

    def __init__(self, engine: Any, rec: Recorder) -> None:
        super().__init__(engine)
        self.rec = rec

    def save_bar(self, instance_id: str, engine_id: str, write: BarWrite) -> bool:
        t0 = time.perf_counter()
        ok = super().save_bar(instance_id, engine_id, write)
        done = time.perf_counter()
        with self.rec.lock:
            if self.rec.go.is_set():
                self.rec.saves.append(done - t0)
                self.rec.saved_at.append(done)
            else:
                self.rec.first_bars += 1
        return ok


class GatedReplay:
    """A replay whose first live bar comes at once and the rest after ``go``."""

    recorded = True

    def __init__(self, inner: ReplaySource, go: threading.Event) -> None:
        self.inner = inner
        self.go = go
        self.interval = inner.interval

    def history(self, end: pd.Timestamp, count: int) -> pd.DataFrame:
        return self.inner.history(end, count)

    def bars(self, stop: threading.Event) -> Iterator[Bar]:
        it = self.inner.bars(stop)
        first = next(it, None)
        if first is None:
            return
        yield first
        while not self.go.wait(0.1):
            if stop.is_set():
                return
        yield from it


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _memory_mb(hosts: list[Any]) -> tuple[list[float], list[float]]:
    """Per host: the strategy process's RSS, and (Docker) its container's charged memory."""
    rss: list[float] = []
    charged: list[float] = []
    for host in hosts:
        inner = host.inner
        if inner.kind == "process":
            rss.append(_rss_mb(inner.box.proc.pid))
            continue
        api = inner.container.client.api
        rss.append(_rss_mb(api.inspect_container(inner.container_id)["State"]["Pid"]))
        mem = api.stats(inner.container_id, stream=False).get("memory_stats", {})
        detail = mem.get("stats", {})
        cache = detail.get("total_inactive_file", detail.get("inactive_file", 0))
        charged.append((mem.get("usage", 0) - cache) / 2**20)
    return rss, charged


def _wait(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench_live: {what} did not happen within {timeout:g} s")
        time.sleep(0.02)


def run_engine(url: str, bars: pd.DataFrame, kind: str, n: int, live: int) -> dict[str, Any]:
    """``n`` instances on host ``kind`` (process or docker), ``live`` bars each after the
    first; the figures of the steady state."""
    _reset(url)
    rec = Recorder()
    frame = bars.head(WARMUP + 1 + live)
    db = sql_engine(url)
    store = TimedStore(db, rec)

    def host(want: Desired) -> StrategyHost:
        inner = strategy_host(want.code, instance_id=want.id, choice=kind, tick_timeout_s=60,
                              init_timeout_s=120)  # fmt: skip
        return TimedHost(inner, rec)

    def source(want: Desired) -> GatedReplay:
        return GatedReplay(ReplaySource(frame, interval="1m", start=WARMUP), rec.go)

    engine = Engine(store, host, source, lease_s=600)
    with Session(db) as s:
        strategy, _ = save_strategy(s, 1, "sma_cross", CODE)
        for _ in range(n):
            create_instance(s, 1, strategy, account="paper", market="ASSET", config=CONFIG,
                            feed={"kind": "replay", "path": "bench", "interval": "1m",
                                  "warmup": WARMUP}, mode="active", fee_bps=5,
                            slippage_bps=2)  # fmt: skip
    started = time.perf_counter()
    try:
        engine.reconcile()
        _wait(lambda: rec.first_bars >= n, 60 + 10 * n, f"{n} {kind} instances loading")
        load_s = time.perf_counter() - started
        rss, charged = _memory_mb([w.host for w in engine.workers.values()])
        t0 = time.perf_counter()
        rec.go.set()
        _wait(lambda: len(rec.saved_at) >= n * live, 120 + n * live * 0.05, "the bars")
        wall = max(rec.saved_at) - t0
    finally:
        engine.shutdown()
        db.dispose()
    return {
        "host": kind,
        "instances": n,
        "bars": n * live,
        "load_s": load_s,
        "bars_per_s": n * live / wall,
        "tick_ms": _percentiles(rec.ticks),
        "save_ms": _percentiles(rec.saves),
        "rss_mb_median": statistics.median(rss),
        "rss_mb_max": max(rss),
        "cgroup_mb_median": statistics.median(charged) if charged else float("nan"),
    }


def _percentiles(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    if not ms:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}

    def at(q: float) -> float:
        return ms[min(len(ms) - 1, int(q * len(ms)))]

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "mean": statistics.fmean(ms)}
