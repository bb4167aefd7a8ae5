"""Where a stream pipeline's events go: CSV, PostgreSQL, a webhook, a Prefect event, another
pipeline; each sink isolated behind its own worker.

A sink (:class:`CsvAppendSink`, :class:`PostgresSink`, :class:`WebhookSink`,
:class:`PrefectEventSink`) delivers a list of events or raises. :class:`SinkWorker` runs one
sink on its own thread and queue: :meth:`SinkWorker.submit` never blocks (the bar loop hands
events over and goes on), a failing or slow sink never holds up the others. Delivery is
retried ``retries`` times with exponential back-off (:data:`BACKOFF_S` doubling, at most
:data:`BACKOFF_MAX_S`); an event still failing after that is written to the sink's dead-letter
file (``<state>/sinks/<id>.failed.jsonl``) and counted as a failure, and the worker goes on
with the next.

**De-duplication.** Each sink knows the keys it delivered (its ``dedup_key`` fields, default
``ts, symbol``): those it recorded (``<id>.keys.jsonl``, appended after each delivery) plus
what the destination says (the CSV file's own rows; a PostgreSQL table has a unique index on
the key and inserts with ON CONFLICT DO NOTHING; a webhook and a Prefect event carry a stable
id made from the key: ``Idempotency-Key`` and the event id). An event whose key was delivered
or is queued is dropped and counted (``duplicates``). Events still queued when the worker is
stopped are kept in ``<id>.pending.jsonl`` and queued again on the next start; every event is
first journaled (``<id>.journal.jsonl``, emptied whenever the queue is) so that a process
killed before delivering what it queued delivers it at its next start.

**Health.** :meth:`SinkWorker.health` is a snapshot: delivered, pending, failures,
duplicates, last ok and last error (time and message).
"""

from __future__ import annotations

import csv
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from live.stream.errors import StreamError
from live.stream.events import EVENT_FIELDS, StreamEvent

__all__ = [
    "BACKOFF_MAX_S",
    "BACKOFF_S",
    "CsvAppendSink",
    "PostgresSink",
    "PrefectEventSink",
    "Sink",
    "SinkWorker",
    "WebhookSink",
]

#: The first retry's wait; each next one waits twice as long ...
BACKOFF_S = 0.25
#: ... up to this.
BACKOFF_MAX_S = 10.0
#: Events delivered in one go by a sink that takes batches.
BATCH_MAX = 500
#: Queued events past this: the oldest go to the dead-letter file.
MAX_PENDING = 100_000
#: Recorded keys kept when the keys file is compacted at start.
KEYS_KEPT = 200_000


class Sink(Protocol):
    """A destination: ``deliver`` raises when the events did not all arrive."""

    kind: str
    target: str
    dedup_key: tuple[str, ...]
    #: Whether ``deliver`` takes many events at once (else one by one).
    batched: bool

    def known_keys(self) -> Iterable[tuple[str, ...]]: ...

    def deliver(self, events: Sequence[StreamEvent]) -> None: ...

    def close(self) -> None: ...


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return value


class CsvAppendSink:
    """Appends a row per event (columns :data:`EVENT_FIELDS`) to ``path``, a header first
    when the file is new; the file's rows are the keys it already has."""

    kind = "csv_append"
    batched = True

    def __init__(self, path: Path, dedup_key: Sequence[str]) -> None:
        self.path = path
        self.target = str(path)
        self.dedup_key = tuple(dedup_key)

    def known_keys(self) -> Iterable[tuple[str, ...]]:
        if not self.path.is_file():
            return []
        with self.path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = set(self.dedup_key) - set(reader.fieldnames or [])
            if missing:
                raise StreamError(
                    f"csv_append: {self.path} has no column(s) {', '.join(sorted(missing))} "
                    "of the dedup key (not a file this sink wrote?)"
                )
            return [tuple(row[f] or "" for f in self.dedup_key) for row in reader]

    def deliver(self, events: Sequence[StreamEvent]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        with self.path.open("a", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(EVENT_FIELDS)
            for e in events:
                writer.writerow([_cell(getattr(e, f)) for f in EVENT_FIELDS])
            fh.flush()
            os.fsync(fh.fileno())

    def close(self) -> None:
        return None


class PostgresSink:
    """Inserts a row per event into ``table`` (created when missing, with a unique index on
    the dedup key); a key already there is skipped (ON CONFLICT DO NOTHING)."""

    kind = "postgres"
    batched = True

    def __init__(self, url: str, table: str, dedup_key: Sequence[str]) -> None:
        self.url = url
        self.table = table
        self.target = f"{table} @ {_redact(url)}"
        self.dedup_key = tuple(dedup_key)
        self._conn: Any = None
        self._ready = False

    def _connect(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            dsn = self.url.replace("postgresql+psycopg://", "postgresql://", 1)
            self._conn = psycopg.connect(dsn, connect_timeout=10)
            self._ready = False
        if not self._ready:
            self._create(self._conn)
            self._ready = True
        return self._conn

    def _ident(self) -> Any:
        from psycopg import sql

        return sql.Identifier(*self.table.split("."))

    def _create(self, conn: Any) -> None:
        from psycopg import sql

        name = self.table.split(".")[-1]
        index = sql.Identifier(f"{name}_key_{'_'.join(self.dedup_key)}"[:63])
        with conn.transaction():
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} ("
                    " ts timestamptz NOT NULL, symbol text NOT NULL, pipeline text NOT NULL,"
                    " node text NOT NULL, port text NOT NULL, \"column\" text NOT NULL DEFAULT '',"
                    " value double precision, value_json jsonb, depth integer NOT NULL DEFAULT 0,"
                    " emitted_at timestamptz NOT NULL DEFAULT now())"
                ).format(self._ident())
            )
            conn.execute(
                sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({})").format(
                    index, self._ident(), sql.SQL(", ").join(map(sql.Identifier, self.dedup_key))
                )
            )

    def known_keys(self) -> Iterable[tuple[str, ...]]:
        return []  # the unique index is the table's own memory

    def deliver(self, events: Sequence[StreamEvent]) -> None:
        from psycopg import sql
        from psycopg.types.json import Jsonb

        try:
            conn = self._connect()
            stmt = sql.SQL(
                'INSERT INTO {} (ts, symbol, pipeline, node, port, "column", value, value_json,'
                " depth) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
            ).format(self._ident())
            rows = [_row(e, Jsonb) for e in events]
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(stmt, rows)
        except Exception:
            self.close()  # a broken connection is opened again on the next try
            raise

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


class WebhookSink:
    """POSTs each event as JSON to ``url`` (``Idempotency-Key``: the key's stable id); any
    answer but 2xx is a failure."""

    kind = "webhook"
    batched = False

    def __init__(self, url: str, dedup_key: Sequence[str], timeout_s: float = 10.0) -> None:
        import httpx

        self.url = url
        self.target = url
        self.dedup_key = tuple(dedup_key)
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False)

    def known_keys(self) -> Iterable[tuple[str, ...]]:
        return []

    def deliver(self, events: Sequence[StreamEvent]) -> None:
        for e in events:
            response = self._client.post(
                self.url,
                json=e.to_json(),
                headers={"Idempotency-Key": e.key_id(self.dedup_key)},
            )
            if not 200 <= response.status_code < 300:
                raise RuntimeError(f"HTTP {response.status_code} from {self.url}")

    def close(self) -> None:
        self._client.close()


class PrefectEventSink:
    """Sends each event to the Prefect server as an event named ``event`` (resource
    ``alphaforge.stream.<pipeline>.<node>``, the event as payload, its id the key's stable id:
    Prefect keeps one event per id), over Prefect's events WebSocket client; a connection
    that fails is a failure of the delivery."""

    kind = "prefect_event"
    batched = True

    def __init__(self, event: str, dedup_key: Sequence[str], api_url: str) -> None:
        self.event = event
        self.api_url = api_url
        self.target = f"{event} @ {api_url}"
        self.dedup_key = tuple(dedup_key)

    def known_keys(self) -> Iterable[tuple[str, ...]]:
        return []

    def build(self, e: StreamEvent) -> Any:
        """The Prefect event of ``e``."""
        from uuid import UUID

        from prefect.events import Event, Resource

        resource = Resource(
            {
                "prefect.resource.id": f"alphaforge.stream.{e.pipeline}.{e.node}",
                "prefect.resource.name": f"{e.pipeline}.{e.node}",
                "alphaforge.symbol": e.symbol,
            }
        )
        return Event(
            event=self.event,
            resource=resource,
            payload=e.to_json(),
            id=UUID(e.key_id(self.dedup_key)),
        )

    def deliver(self, events: Sequence[StreamEvent]) -> None:
        import asyncio

        from prefect.events.clients import PrefectEventsClient

        built = [self.build(e) for e in events]

        async def send() -> None:
            client = PrefectEventsClient(
                api_url=self.api_url, reconnection_attempts=1, checkpoint_every=1
            )
            async with client:
                for event in built:
                    await client.emit(event)

        asyncio.run(send())

    def close(self) -> None:
        return None


def _row(e: StreamEvent, jsonb: Any) -> tuple[Any, ...]:
    """An event as the table's row (ts .. column, value, value_json, depth)."""
    column = e.column or ""
    return (e.ts, e.symbol, e.pipeline, e.node, e.port, column, e.number, jsonb(e.value), e.depth)


def _redact(url: str) -> str:
    """A database URL without its password."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"


class SinkWorker:
    """One sink on its own thread and queue, with retries, de-duplication and a health
    snapshot (module doc). ``files`` is the folder of its keys, pending and dead-letter files;
    ``name`` names it there and in the health."""

    def __init__(
        self,
        sink: Sink,
        name: str,
        files: Path,
        *,
        retries: int = 3,
        backoff_s: float = BACKOFF_S,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.sink = sink
        self.name = name
        self.retries = retries
        self.backoff_s = backoff_s
        self.on_error = on_error
        files.mkdir(parents=True, exist_ok=True)
        self._keys_file = files / f"{name}.keys.jsonl"
        self._pending_file = files / f"{name}.pending.jsonl"
        self._failed_file = files / f"{name}.failed.jsonl"
        self._journal_file = files / f"{name}.journal.jsonl"
        self._queue: deque[StreamEvent] = deque()
        self._queued: set[tuple[str, ...]] = set()
        self._delivered: set[tuple[str, ...]] = set()
        self._lock = threading.Condition()
        self._closing = False
        self._abandon = threading.Event()
        self._busy = 0
        self._inflight: list[StreamEvent] = []
        self._thread: threading.Thread | None = None
        self.stats: dict[str, Any] = {
            "kind": sink.kind,
            "target": sink.target,
            "delivered": 0,
            "failures": 0,
            "duplicates": 0,
            "dead_letters": 0,
            "last_ok": None,
            "last_error": None,
            "last_error_at": None,
        }

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Load the keys it delivered and the events left pending, then start the thread."""
        self._delivered = self._load_keys()
        self._delivered.update(tuple(k) for k in self.sink.known_keys())
        # what was queued when the process died (the journal) or stopped (pending)
        left = _read_jsonl(self._journal_file) + _read_jsonl(self._pending_file)
        self._journal_file.unlink(missing_ok=True)
        if left:
            self.submit([StreamEvent.from_json(p) for p in left])
            self._pending_file.unlink(missing_ok=True)
        self._thread = threading.Thread(target=self._run, name=f"sink-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Deliver what is queued for up to ``timeout_s``, then keep the rest in the pending
        file and end the thread. A delivery still hanging then (a receiver that does not
        answer) is left to its thread, and its events are kept as pending too: the next start
        sends them again unless the delivery recorded their keys meanwhile."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        hanging: list[StreamEvent] = []
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                self._abandon.set()
                with self._lock:
                    self._lock.notify_all()
                self._thread.join(5.0)
                if self._thread.is_alive():
                    with self._lock:
                        hanging = list(self._inflight)
        with self._lock:
            left = hanging + list(self._queue)
            self._queue.clear()
            self._queued.clear()
        if left:
            _append_jsonl(self._pending_file, [e.to_json() for e in left])
        self._journal_file.unlink(missing_ok=True)  # what it held is delivered or pending
        self.sink.close()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until nothing is queued or being delivered; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.2))
        return True

    # -- the bar loop's side ----------------------------------------------------------------

    def submit(self, events: Iterable[StreamEvent]) -> int:
        """Queue the events whose key is neither delivered nor queued; never blocks on the
        sink (the events are journaled first, on disk, so that a process killed before
        delivering them delivers them at its next start). Returns how many were queued."""
        queued = 0
        with self._lock:
            fresh: list[StreamEvent] = []
            for e in events:
                key = e.key(self.sink.dedup_key)
                if key in self._delivered or key in self._queued:
                    self.stats["duplicates"] += 1
                    continue
                fresh.append(e)
                self._queued.add(key)
                queued += 1
            _append_jsonl(self._journal_file, [e.to_json() for e in fresh])
            self._queue.extend(fresh)
            while len(self._queue) > MAX_PENDING:
                old = self._queue.popleft()
                self._queued.discard(old.key(self.sink.dedup_key))
                self._dead([old], f"more than {MAX_PENDING} events pending")
            if queued:
                self._lock.notify_all()
        return queued

    def health(self) -> dict[str, Any]:
        """A snapshot: counts, pending, last ok and last error."""
        with self._lock:
            return {**self.stats, "pending": len(self._queue) + self._busy}

    # -- the worker's side ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    self._lock.wait()
                if not self._queue or self._abandon.is_set():
                    return
                size = BATCH_MAX if self.sink.batched else 1
                batch = [self._queue.popleft() for _ in range(min(size, len(self._queue)))]
                self._busy = len(batch)
                self._inflight = batch
            try:
                self._deliver(batch)
            finally:
                with self._lock:
                    for e in batch:
                        self._queued.discard(e.key(self.sink.dedup_key))
                    self._busy = 0
                    self._inflight = []
                    if not self._queue:  # all delivered (or dead-lettered): nothing to replay
                        self._journal_file.unlink(missing_ok=True)
                    self._lock.notify_all()

    def _deliver(self, batch: list[StreamEvent]) -> None:
        wait = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                self.sink.deliver(batch)
            except Exception as exc:  # any failure of the destination: retried, then recorded
                message = f"{type(exc).__name__}: {exc}".strip()
                with self._lock:
                    self.stats["last_error"] = message[:500]
                    self.stats["last_error_at"] = _now()
                if attempt == self.retries:
                    with self._lock:
                        self.stats["failures"] += len(batch)
                        self._dead(batch, message)
                    if self.on_error is not None:
                        self.on_error(f"sink {self.name}: {message}")
                    return
                if self._abandon.wait(wait):  # stopping: back to the queue (kept as pending)
                    with self._lock:
                        self._queue.extendleft(reversed(batch))
                    return
                wait = min(wait * 2, BACKOFF_MAX_S)
                continue
            keys = [e.key(self.sink.dedup_key) for e in batch]
            _append_jsonl(self._keys_file, [list(k) for k in keys])
            with self._lock:
                self._delivered.update(keys)
                self.stats["delivered"] += len(batch)
                self.stats["last_ok"] = _now()
            return

    def _dead(self, events: list[StreamEvent], why: str) -> None:
        self.stats["dead_letters"] += len(events)
        _append_jsonl(self._failed_file, [{**e.to_json(), "error": why[:500]} for e in events])

    def _load_keys(self) -> set[tuple[str, ...]]:
        rows = _read_jsonl(self._keys_file)
        if len(rows) > KEYS_KEPT:
            rows = rows[-KEYS_KEPT:]
            tmp = self._keys_file.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
            os.replace(tmp, self._keys_file)
        return {tuple(r) for r in rows}


def _read_jsonl(path: Path) -> list[Any]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a crash mid-write
    return out


def _append_jsonl(path: Path, rows: list[Any]) -> None:
    if not rows:
        return
    with path.open("a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r, default=str) + "\n" for r in rows))
        fh.flush()
        os.fsync(fh.fileno())
