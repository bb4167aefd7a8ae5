"""Helpers of the deployed-stream tests: the pipeline text, engines with only the stream
reconciler, and reading the sinks back."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine
from sqlmodel import Session

from live.engine import Engine as LiveEngine
from live.leases import engine_id_for
from live.store import LiveStore
from live.stream.reconciler import StreamReconciler
from live.stream.store import StreamStore
from live.stream.tables import StreamDeployment
from tests.live.stream_support import SAMPLE, pg_rows, read_csv_events

START, LIMIT = 100, 200

TEXT = """pipeline dep_signals

data  = csv_ohlcv(path="data/sample_ohlcv.csv")
fast  = sma(data.close, window=5)
slow  = sma(data.close, window=20)  # windowed: exact across a restart's new warm-up
cross = crossover(fast, slow)

stream {{
    source = replay(speed={speed}, start={start})
    emit cross to csv_append(path="out/cross.csv")
    emit cross to postgres(table="{table}", url="{url}")
}}
"""


def text(url: str, table: str, speed: float = 40) -> str:
    """The test pipeline (on :func:`folder`'s data): 200 sample bars replayed at ``speed``
    bars a second to a CSV file and a PostgreSQL table."""
    return TEXT.format(speed=speed, start=START, table=table, url=url)


def folder(path: Path) -> Path:
    """``path`` (created) with ``data/sample_ohlcv.csv``: the first START + LIMIT sample bars
    (START of them history, LIMIT replayed as live)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "data").mkdir(exist_ok=True)
    pd.read_csv(SAMPLE).head(START + LIMIT).to_csv(path / "data" / "sample_ohlcv.csv", index=False)
    return path


def expected_ts() -> list[pd.Timestamp]:
    """The bars the replay feeds as live: every one must reach each sink once."""
    frame = pd.read_csv(SAMPLE)
    stamps = pd.to_datetime(frame["ts"], utc=True).iloc[START : START + LIMIT]
    return list(stamps)


def stream_engine(db: Engine, folder: Path, name: str, **options: Any) -> LiveEngine:
    """An engine (no strategy instances) whose stream reconciler keeps state under
    ``folder/streams`` and resolves paths in ``folder``."""

    def never(_want: Any) -> Any:
        raise AssertionError("no strategy instance in these tests")

    eid = engine_id_for(name)
    reconciler = StreamReconciler(
        StreamStore(db), eid, state_root=folder / "streams", base_dir=folder, **options
    )
    return LiveEngine(LiveStore(db), never, never, engine_id=eid, siblings=[reconciler])


@contextmanager
def running(engine: LiveEngine, cycle_s: float = 0.2) -> Iterator[threading.Event]:
    """``engine.run`` in a thread until the block ends (then it shuts down)."""
    stop = threading.Event()
    thread = threading.Thread(target=engine.run, args=(stop, cycle_s), daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(60)
        assert not thread.is_alive(), "the engine did not stop"


def row(db: Engine, deployment_id: str) -> StreamDeployment:
    with Session(db) as s:
        found = s.get(StreamDeployment, deployment_id)
        assert found is not None
        return found


def bars_done(db: Engine, deployment_id: str) -> int:
    """The bars the deployment's last health snapshot counted."""
    import json

    health = row(db, deployment_id).health_json
    return int(json.loads(health)["bars"]) if health else 0


def sink_rows(folder: Path, url: str, table: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The CSV sink's events and the PostgreSQL sink's rows (ts, symbol, value)."""
    csv = read_csv_events(folder / "out" / "cross.csv")
    pg = pd.DataFrame(pg_rows(url, f"SELECT ts, symbol, value FROM {table} ORDER BY ts"),
                      columns=["ts", "symbol", "value"])  # fmt: skip
    pg["ts"] = pd.to_datetime(pg["ts"], utc=True)
    return csv, pg
