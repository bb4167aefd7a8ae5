"""De-duplication: a source that re-delivers bars on reconnecting, a service restarted on the
same bars, and a restart that lost its state (a crash between delivering and recording): every
sink (CSV, PostgreSQL, webhook) still holds each (ts, symbol) once."""

from __future__ import annotations

import shutil
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from live.stream import StreamPipeline, StreamService
from runners.papertrade.bars import Bar
from runners.papertrade.replay import ReplaySource
from tests.live.stream_support import (
    batch_values,
    compiled,
    pg_rows,
    read_csv_events,
    stream_db,
    webhook_server,
    workdir,
    write_af,
)

__all__ = ["stream_db"]  # the module's database fixture

PIPELINE = """pipeline dedup

data  = csv_ohlcv(path="data/sample_ohlcv.csv")
fast  = sma(data.close, window=5)
slow  = ema(data.close, window=20)
cross = crossover(fast, slow)

stream {{
    source = replay(speed=0)
    emit cross to csv_append(path="out/cross.csv")
    emit cross to postgres(table="signals", url="{url}")
    emit cross to webhook(url="{hook}", retries=1)
}}
"""


class Reconnecting:
    """A replay whose connection "drops" every ``every`` bars and, reconnecting, delivers the
    last ``again`` bars once more (as an exchange's stream does after a reconnect)."""

    recorded = True

    def __init__(self, inner: ReplaySource, every: int, again: int) -> None:
        self.inner = inner
        self.interval = inner.interval
        self.every, self.again = every, again
        self.redelivered = 0

    def history(self, end: pd.Timestamp, count: int) -> pd.DataFrame:
        return self.inner.history(end, count)

    def bars(self, stop: threading.Event) -> Iterator[Bar]:
        recent: deque[Bar] = deque(maxlen=self.again)
        for n, bar in enumerate(self.inner.bars(stop), start=1):
            yield bar
            recent.append(bar)
            if n % self.every == 0:
                self.redelivered += len(recent)
                yield from list(recent)


def _replay(folder: Path, start: int, limit: int) -> ReplaySource:
    frame = pd.read_csv(folder / "data" / "sample_ohlcv.csv")
    return ReplaySource(frame, interval="1d", start=start, limit=limit)


def _run(folder: Path, path: Path, source: object) -> StreamPipeline:
    pipeline = StreamPipeline(
        compiled(path),
        base_dir=folder,
        state_dir=folder / "state",
        source=source,  # type: ignore[arg-type]
        sink_backoff_s=0.01,
    )
    service = StreamService([pipeline])
    service.run_until_end(timeout_s=240)
    return pipeline


def _stamps(folder: Path) -> pd.DatetimeIndex:
    ts = pd.read_csv(folder / "data" / "sample_ohlcv.csv")["ts"]
    return pd.DatetimeIndex(pd.to_datetime(ts, utc=True))


@pytest.fixture
def pg(stream_db: str) -> Iterator[str]:
    """The module's database without the test's table, before and after."""
    drop = "DROP TABLE IF EXISTS signals"
    pg_rows_none(stream_db, drop)
    yield stream_db
    pg_rows_none(stream_db, drop)


def pg_rows_none(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        conn.execute(sql)


def test_bars_redelivered_on_a_reconnect_are_emitted_once(tmp_path: Path, pg: str) -> None:
    stream_db = pg
    folder = workdir(tmp_path)
    with webhook_server() as hook:
        path = write_af(folder, "dedup", PIPELINE.format(url=stream_db, hook=hook.url))
        source = Reconnecting(_replay(folder, 200, 60), every=7, again=3)
        pipeline = _run(folder, path, source)
        health = pipeline.health()
        assert source.redelivered == 8 * 3  # 8 reconnects in 60 bars, 3 bars again each
        assert health["state"] == "ended" and health["duplicates"] == 24
        assert health["bars"] == 60 and health["evaluations"] == 60
        live = _stamps(folder)[200:260]
        events = read_csv_events(folder / "out" / "cross.csv")
        assert list(events["ts"]) == list(live)  # each bar once, in order
        rows = pg_rows(stream_db, "SELECT ts, value FROM signals ORDER BY ts")
        assert [pd.Timestamp(r[0]) for r in rows] == list(live)
        assert sorted(b["ts"] for b in hook.bodies) == [t.isoformat() for t in live]
        # and the values are the batch run's (a re-delivered bar did not enter the frame twice)
        batch = batch_values(
            compiled(path), folder, health["warmup_from"][:10], str(live[-1].date()), ["cross"]
        )
        np.testing.assert_array_equal(
            events["value"].to_numpy(), batch["cross"]["signal"].reindex(live).to_numpy()
        )
        assert [r[1] for r in rows] == list(events["value"])


def test_a_restart_does_not_emit_again(tmp_path: Path, pg: str) -> None:
    stream_db = pg
    folder = workdir(tmp_path)
    with webhook_server() as hook:
        path = write_af(folder, "dedup", PIPELINE.format(url=stream_db, hook=hook.url))
        first = _run(folder, path, _replay(folder, 300, 40))
        assert first.health()["evaluations"] == 40
        state = (folder / "state" / "state.json").read_text()
        # restarted on a source that starts where the first run started: 40 bars again, then
        # 40 new ones; the 40 are recognised by the recorded state and not evaluated
        second = _run(folder, path, _replay(folder, 300, 80))
        health = second.health()
        assert health["duplicates"] == 40 and health["evaluations"] == 40
        assert (folder / "state" / "state.json").read_text() != state
        live = _stamps(folder)[300:380]
        assert list(read_csv_events(folder / "out" / "cross.csv")["ts"]) == list(live)
        assert pg_rows(stream_db, "SELECT count(*), count(DISTINCT ts) FROM signals") == [(80, 80)]
        assert sorted(b["ts"] for b in hook.bodies) == [t.isoformat() for t in live]
        # a restart that finds no state (it crashed after the sinks delivered and before the
        # state was written): every bar is evaluated again, every sink knows its keys
        (folder / "state" / "state.json").unlink()
        third = _run(folder, path, _replay(folder, 300, 80))
        health = third.health()
        assert health["duplicates"] == 0 and health["evaluations"] == 80
        assert {s["kind"]: s["duplicates"] for s in health["sinks"].values()} == {
            "csv_append": 80,
            "postgres": 80,
            "webhook": 80,
        }
        assert len(read_csv_events(folder / "out" / "cross.csv")) == 80
        assert pg_rows(stream_db, "SELECT count(*) FROM signals") == [(80,)]
        assert len(hook.bodies) == 80
        # the sinks' own records lost too: the CSV file and the table's unique index still
        # refuse a key twice; a webhook is sent again, with the same Idempotency-Key
        (folder / "state" / "state.json").unlink()
        shutil.rmtree(folder / "state" / "sinks")
        fourth = _run(folder, path, _replay(folder, 300, 80))
        sinks = {s["kind"]: s for s in fourth.health()["sinks"].values()}
        assert sinks["csv_append"]["duplicates"] == 80 and sinks["csv_append"]["delivered"] == 0
        assert pg_rows(stream_db, "SELECT count(*) FROM signals") == [(80,)]
        assert len(read_csv_events(folder / "out" / "cross.csv")) == 80
        assert len(hook.bodies) == 160 and sorted(hook.keys[:80]) == sorted(hook.keys[80:])
        assert len(set(hook.keys)) == 80
