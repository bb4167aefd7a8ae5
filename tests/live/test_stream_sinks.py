"""Sinks: a failing webhook and a stuck one block neither the others nor the bar loop; failures
are retried, then kept as dead letters and shown in the health; PostgreSQL rows; the status
file; a Prefect event reaches a real Prefect server."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from live.stream import StreamEvent, StreamPipeline, StreamService
from live.stream.sinks import PrefectEventSink, SinkWorker
from tests.live.stream_support import (
    compiled,
    pg_rows,
    read_csv_events,
    stream_db,
    webhook_server,
    workdir,
    write_af,
)

__all__ = ["stream_db"]  # the module's database fixture

PIPELINE = """pipeline sinks

data = csv_ohlcv(path="data/sample_ohlcv.csv")
fast = sma(data.close, window=5)
mom  = rsi(data.close, window=14)

stream {{
    source = replay(speed=0, start=300, limit=30)
    emit fast to csv_append(path="out/fast.csv")
    emit mom to postgres(table="momentum", url="{url}", dedup_key=["ts", "symbol", "node"])
    emit fast to webhook(url="{failing}", retries=2, timeout_s=5)
    emit fast to webhook(url="{stuck}", retries=0, timeout_s=60)
}}
"""


def test_a_failing_or_stuck_sink_blocks_neither_the_others_nor_the_bars(
    tmp_path: Path, stream_db: str
) -> None:
    folder = workdir(tmp_path)
    with webhook_server(500) as failing, webhook_server(gated=True) as stuck:
        text = PIPELINE.format(url=stream_db, failing=failing.url, stuck=stuck.url)
        pipeline = StreamPipeline(
            compiled(write_af(folder, "sinks", text)),
            base_dir=folder,
            state_dir=folder / "state",
            sink_backoff_s=0.01,
        )
        service = StreamService([pipeline])
        service.start()
        try:
            assert service.wait(240)  # every bar evaluated while the stuck receiver holds
            sinks = {s["target"]: s for s in pipeline.health()["sinks"].values()}
            assert stuck.attempts == 0 and sinks[stuck.url]["delivered"] == 0
            assert sinks[stuck.url]["pending"] == 30  # the first POST is held, 29 queued
            assert pipeline.health()["evaluations"] == 30
            # meanwhile the CSV, the table and the failing webhook are all done
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                sinks = {s["target"]: s for s in pipeline.health()["sinks"].values()}
                if sinks[failing.url]["pending"] == 0 and all(
                    s["pending"] == 0 for t, s in sinks.items() if t != stuck.url
                ):
                    break
                time.sleep(0.05)
            assert len(read_csv_events(folder / "out" / "fast.csv")) == 30
            assert pg_rows(stream_db, "SELECT count(*) FROM momentum") == [(30,)]
            failed = sinks[failing.url]
            assert failed["failures"] == 30 and failed["delivered"] == 0
            assert failed["last_error"] == f"RuntimeError: HTTP 500 from {failing.url}"
            assert failing.attempts == 30 * 3  # each event: one try and two retries
            assert stuck.attempts == 0
            # the stuck receiver recovers: its events arrive, in order
            stuck.release.set()
            assert service.drain_sinks(120)
        finally:
            service.stop()
        assert [b["ts"] for b in stuck.bodies] == list(
            read_csv_events(folder / "out" / "fast.csv")["ts"].map(lambda t: t.isoformat())
        )
    health = pipeline.health()
    status = json.loads((folder / "state" / "status.json").read_text())
    assert status["state"] == "ended" and status["evaluations"] == 30
    by_target = {s["target"]: s for s in status["sinks"].values()}
    assert by_target[failing.url]["failures"] == 30 and by_target[stuck.url]["delivered"] == 30
    assert by_target == {s["target"]: s for s in health["sinks"].values()}
    # the events that failed for good are kept, with the reason
    dead = [
        json.loads(line)
        for f in (folder / "state" / "sinks").glob("*.failed.jsonl")
        for line in f.read_text().splitlines()
    ]
    assert len(dead) == 30 and {d["error"] for d in dead} == {
        f"RuntimeError: HTTP 500 from {failing.url}"
    }


def test_postgres_rows_carry_the_events(tmp_path: Path, stream_db: str) -> None:
    folder = workdir(tmp_path)
    text = (
        "pipeline pgrows\n"
        'data = csv_ohlcv(path="data/sample_ohlcv.csv")\n'
        "band = bollinger(data.close, window=20)\n"
        "stream {\n"
        "    source = replay(start=100, limit=10)\n"
        '    emit band.upper to postgres(table="public.bands", url="' + stream_db + '")\n'
        '    emit band.upper to csv_append(path="out/upper.csv")\n'
        "}\n"
    )
    pipeline = StreamPipeline(
        compiled(write_af(folder, "pgrows", text)), base_dir=folder, state_dir=folder / "s"
    )
    StreamService([pipeline]).run_until_end(timeout_s=120)
    rows = pg_rows(
        stream_db,
        'SELECT ts, symbol, pipeline, node, port, "column", value, value_json, depth '
        "FROM public.bands ORDER BY ts",
    )
    csv = read_csv_events(folder / "out" / "upper.csv")
    assert len(rows) == 10 == len(csv)
    for row, (_, line) in zip(rows, csv.iterrows(), strict=True):
        assert row[:6] == (line["ts"].to_pydatetime(), "ASSET", "pgrows", "band", "upper", "")
        assert row[6] == line["value"] == row[7] and row[8] == 0
    # the table's unique index on the dedup key is what refuses a repeated key
    index = pg_rows(stream_db, "SELECT indexdef FROM pg_indexes WHERE tablename = 'bands'")
    assert any("UNIQUE" in i[0] and "(ts, symbol)" in i[0] for i in index)


def _prefect_events(api: str, name: str) -> list[dict[str, Any]]:
    body = {"filter": {"event": {"name": [name]}}, "limit": 50}
    response = httpx.post(f"{api}/events/filter", json=body, timeout=30)
    response.raise_for_status()
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def test_a_prefect_event_reaches_the_server(tmp_path: Path, prefect_api: str) -> None:
    name = f"alphaforge.test.{time.time_ns()}"
    sink = PrefectEventSink(name, ("ts", "symbol"), prefect_api)
    worker = SinkWorker(sink, "prefect", tmp_path, retries=1, backoff_s=0.01)
    worker.start()
    events = [
        StreamEvent(f"2024-01-0{d}T00:00:00+00:00", "BTCUSDT", "p", "signal", "signal", None, v)
        for d, v in ((2, 1.0), (3, -1.0))
    ]
    worker.submit(events)
    worker.submit(events[:1])  # a repeated key is not sent again
    assert worker.wait_idle(60)
    worker.stop()
    assert worker.health()["delivered"] == 2 and worker.health()["duplicates"] == 1
    deadline = time.monotonic() + 60
    got: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(got) < 2:
        got = _prefect_events(prefect_api, name)
        time.sleep(0.5)
    assert sorted((e["payload"]["ts"], e["payload"]["value"]) for e in got) == [
        ("2024-01-02T00:00:00+00:00", 1.0),
        ("2024-01-03T00:00:00+00:00", -1.0),
    ]
    assert {e["resource"]["prefect.resource.id"] for e in got} == {"alphaforge.stream.p.signal"}
    assert {e["id"] for e in got} == {e.key_id(("ts", "symbol")) for e in events}


def test_a_prefect_sink_without_a_server_records_the_failure(tmp_path: Path) -> None:
    with webhook_server(404) as nothing:  # an HTTP server that is no Prefect API
        sink = PrefectEventSink(
            "alphaforge.x", ("ts", "symbol"), nothing.url.replace("/hook", "/api")
        )
        worker = SinkWorker(sink, "prefect", tmp_path, retries=1, backoff_s=0.01)
        worker.start()
        worker.submit([StreamEvent("2024-01-02T00:00:00+00:00", "A", "p", "n", "v", None, 1.0)])
        assert worker.wait_idle(120)
        worker.stop()
    health = worker.health()
    assert health["failures"] == 1 and health["delivered"] == 0 and health["last_error"]


def test_events_pending_at_a_stop_are_delivered_after_the_next_start(tmp_path: Path) -> None:
    from live.stream.sinks import WebhookSink

    events = [
        StreamEvent(f"2024-02-{d:02d}T00:00:00+00:00", "A", "p", "n", "v", None, float(d))
        for d in range(1, 11)
    ]
    with webhook_server(gated=True) as hook:
        worker = SinkWorker(WebhookSink(hook.url, ("ts", "symbol"), 60), "hook", tmp_path)
        worker.start()
        worker.submit(events)
        assert worker.health()["pending"] == 10
        worker.stop(timeout_s=0.5)  # the receiver holds the first POST: nothing delivered
        pending = (tmp_path / "hook.pending.jsonl").read_text().splitlines()
        assert sorted(json.loads(p)["ts"] for p in pending) == [e.ts for e in events]
        hook.release.set()
        again = SinkWorker(WebhookSink(hook.url, ("ts", "symbol"), 60), "hook", tmp_path)
        again.start()
        assert not (tmp_path / "hook.pending.jsonl").exists()
        assert again.wait_idle(60)
        again.stop()
        time.sleep(0.2)  # the first worker's held POST may land as well, once
    # every event arrived; one may have arrived twice (the held POST was answered after the
    # stop), and then with the same Idempotency-Key
    assert sorted(set(b["ts"] for b in hook.bodies)) == [e.ts for e in events]
    assert len(hook.bodies) - len(set(hook.keys)) in (0, 1) and len(set(hook.keys)) == 10
