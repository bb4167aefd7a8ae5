"""Stream pipelines run as a service: warm-up, one evaluation per closed bar, sinks, chaining.

:class:`StreamPipeline` is one ``.af`` pipeline's ``stream { ... }`` block running;
:class:`StreamService` runs several together (``trigger`` sinks route events between them)
and is the API a deployment or the CLI (``alphaforge stream``) calls: :meth:`~StreamService.
start`, :meth:`~StreamService.wait` (until a replay's sources end), :meth:`~StreamService.stop`,
:meth:`~StreamService.health`, or :meth:`~StreamService.run_until_end` for all three.

**A pipeline's life.** The source starts first (a reader thread queues its bars); the first
bar's ``ts`` is where the warm-up ends: ``history(first_ts, warmup)`` (live.stream.warmup says
how many bars) fills the frame, and each symbol's first live bar is checked to follow its last
warm-up bar without a missing bar (else :class:`StreamError`, the pipeline fails). Then bars
are grouped by ``ts``: a group is evaluated once, when every symbol the pipeline knows has its
bar there, when a later bar arrives, or when the source ends; on a live (not recorded) source
a group waits ``after`` (the block's ``every 1h after 2m``) past its bar's close, or, without
``after``, at most :data:`STRAGGLER_S` past the close for missing symbols. A replay never waits
for ``after`` (its bars are complete when they come). With ``every`` a multiple of the bars'
interval, only the bars that close on an ``every`` boundary (UTC epoch) are evaluated; the
others only join the frame.

An evaluation runs the graph on the frame (live.stream.graph), takes the emitted ports' values
at the group's ``ts`` for the group's symbols, and hands the events to every sink's worker
(live.stream.sinks: a failing sink never blocks the others or the bar loop).

**De-duplication.** The pipeline records the last processed ``ts`` per symbol
(``<state>/state.json``, written after every group): a bar at or before it (a reconnect's
re-delivery, a restart's replay) joins the frame if it is not there but is not evaluated
again; a restarted replay resumes after the earliest of those. Sinks de-duplicate the events
they get by key as well (live.stream.sinks), so a crash between a delivery and the state's
write does not deliver twice either.

**Chaining.** ``emit x to trigger(target="other")`` hands each event to ``other`` (a
pipeline whose source is ``events()``), one level deeper: an event computed on bars has depth
0, what ``other`` computes from it depth 1, and so on. An event that would go deeper than
``max_depth`` (:data:`MAX_CHAIN_DEPTH` by default) is dropped and the error recorded in the
sending pipeline's health: a loop of triggers stops there.

**State and health.** Under ``state_dir/<pipeline>/``: ``state.json`` (last processed bars),
``status.json`` (the health snapshot, rewritten at most every second and at the end) and
``sinks/`` (each sink's delivered keys, pending and dead-letter events).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from dsl.ir import PipelineIR, SinkIR
from dsl.streamspec import DEFAULT_DEDUP_KEY
from live.stream.errors import StreamError
from live.stream.events import StreamEvent
from live.stream.frame import LiveFrame
from live.stream.graph import StreamGraph
from live.stream.sinks import (
    BACKOFF_S,
    CsvAppendSink,
    PostgresSink,
    PrefectEventSink,
    Sink,
    SinkWorker,
    WebhookSink,
)
from live.stream.sources import build_source, is_recorded, source_params
from live.stream.warmup import default_calendar, missing_bars, warmup_bars
from runners.inprocess import InProcessRunner
from runners.papertrade.bars import Bar, BarSource, interval_seconds

__all__ = [
    "MAX_CHAIN_DEPTH",
    "STRAGGLER_S",
    "StreamPipeline",
    "StreamService",
    "default_keep",
    "load_pipeline",
]

#: How deep a chain of triggers may go (docs/stream.md).
MAX_CHAIN_DEPTH = 8
LAST_EVENTS = 20  # the events a health snapshot (status.json, the dashboard) keeps
#: A live group missing a symbol's bar is evaluated at most this long after its close.
STRAGGLER_S = 30.0
#: Messages kept in the health's ``errors`` and ``gaps`` lists.
_KEPT = 20
_END = object()


def default_keep(warmup: int) -> int:
    """Bars a symbol the frame keeps: the warm-up plus at least as many again, and 1000."""
    return warmup + max(warmup, 1000)


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _sink_name(sink: SinkIR) -> str:
    digest = hashlib.sha256(
        json.dumps(
            [sink.node, sink.port, sink.column, sink.sink, sink.params], sort_keys=True
        ).encode()
    ).hexdigest()[:8]
    return f"{sink.sink}.{sink.node}.{sink.column or sink.port}.{digest}"


class StreamPipeline:
    """One pipeline's stream block, run (see the module doc).

    ``base_dir`` resolves relative paths (the ``.af`` file's folder); ``state_dir`` is this
    pipeline's own state folder; ``runner`` evaluates the nodes (default: in this process,
    with the settings' MLflow and catalog); ``source`` replaces the block's source (a test's
    or a deployment's own); ``keep`` bounds the frame (bars a symbol, default
    :func:`default_keep`); ``sink_retries`` / ``sink_backoff_s`` are the sinks' retry policy
    (a webhook's ``retries=`` wins); ``on_event`` sees every event the pipeline emits (once,
    however many sinks it goes to); ``clock`` is the wall clock (epoch seconds) a live group's
    ``after`` and ``straggler_s`` (:data:`STRAGGLER_S`) are measured on.
    """

    def __init__(
        self,
        ir: PipelineIR,
        *,
        base_dir: Path,
        state_dir: Path,
        runner: InProcessRunner | None = None,
        settings: Any = None,
        source: BarSource | None = None,
        keep: int | None = None,
        sink_retries: int = 3,
        sink_backoff_s: float = BACKOFF_S,
        on_event: Callable[[StreamEvent], None] | None = None,
        clock: Callable[[], float] = time.time,
        straggler_s: float = STRAGGLER_S,
    ) -> None:
        if ir.stream is None:
            raise StreamError(f"{ir.name}: the pipeline has no stream block")
        self.ir = ir
        self.stream = ir.stream
        self.name = ir.name
        self.base_dir = Path(base_dir)
        self.state_dir = Path(state_dir)
        self.settings = settings
        self.on_event = on_event
        self.clock = clock
        self.straggler_s = straggler_s
        self.plan = source_params(self.stream, self.name)
        self.events_mode = self.plan.kind == "events"
        self.runner = runner or _default_runner(self.base_dir, settings)
        self.graph = StreamGraph(ir, self.stream.sinks, self.runner)
        self._given_source = source
        self._keep = keep
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._service: StreamService | None = None
        self._status_written = 0.0
        self._inbox: queue.Queue[StreamEvent | None] = queue.Queue()
        self.frame = LiveFrame(keep or default_keep(0))
        self.interval: str | None = self.plan.interval
        self.warmup = 0
        self._last: dict[str, pd.Timestamp] = {}
        self.triggers: dict[str, str] = {}  # sink name -> target pipeline
        self.workers: dict[str, SinkWorker] = {}
        self._sinks: list[tuple[str, SinkIR]] = []
        self._stats: dict[str, Any] = {
            "pipeline": self.name,
            "state": "created",
            "source": self.stream.source,
            "interval": self.interval,
            "warmup_bars": None,
            "warmup_from": None,
            "first_live": None,
            "last_bar": None,
            "bars": 0,
            "duplicates": 0,
            "evaluations": 0,
            "events": 0,
            "chain_dropped": 0,
            "last_events": [],
            "gaps": [],
            "errors": [],
            "started_at": None,
            "ended_at": None,
        }
        for sink in self.stream.sinks:
            name = _sink_name(sink)
            self._sinks.append((name, sink))
            if sink.sink == "trigger":
                self.triggers[name] = str(sink.params["target"])
                continue
            retries = int(sink.params.get("retries", sink_retries))  # type: ignore[arg-type]
            self.workers[name] = SinkWorker(
                self._make_sink(sink),
                name,
                self.state_dir / "sinks",
                retries=retries,
                backoff_s=sink_backoff_s,
                on_error=self._error,
            )

    # -- construction -----------------------------------------------------------------------

    def _make_sink(self, sink: SinkIR) -> Sink:
        p = sink.params
        key = tuple(p.get("dedup_key") or DEFAULT_DEDUP_KEY)  # type: ignore[arg-type]
        where = f"{self.name}: emit {sink.node} to {sink.sink}"
        if sink.sink == "csv_append":
            path = Path(str(p["path"]))
            return CsvAppendSink(path if path.is_absolute() else self.base_dir / path, key)
        if sink.sink == "postgres":
            url = str(p.get("url") or os.environ.get("ALPHAFORGE_DATABASE_URL") or "")
            if not url.startswith(("postgresql://", "postgresql+psycopg://")):
                raise StreamError(
                    f"{where}: no PostgreSQL database: give `url=` or set "
                    "ALPHAFORGE_DATABASE_URL to a postgresql+psycopg:// URL"
                )
            return PostgresSink(url, str(p["table"]), key)
        if sink.sink == "webhook":
            return WebhookSink(str(p["url"]), key, float(p.get("timeout_s", 10.0)))  # type: ignore[arg-type]
        if sink.sink == "prefect_event":
            api = os.environ.get("PREFECT_API_URL") or getattr(
                self.settings, "prefect_api_url", None
            )
            if not api:
                raise StreamError(
                    f"{where}: no Prefect server to send events to: set "
                    "ALPHAFORGE_PREFECT_API_URL (or PREFECT_API_URL)"
                )
            return PrefectEventSink(str(p.get("event") or "alphaforge.stream.signal"), key, api)
        raise StreamError(f"{where}: unknown sink `{sink.sink}`")

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, service: StreamService) -> None:
        """Start the sinks and the pipeline's thread (the source is built first, here: a
        source that cannot be built raises now)."""
        self._service = service
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._last = self._load_state()
        source = None if self.events_mode else self._source()
        with self._lock:
            self._stats["started_at"] = _now()
            self._stats["state"] = "starting"
        for worker in self.workers.values():
            worker.start()
        target = self._run_events if source is None else (lambda: self._run_bars(source))
        self._thread = threading.Thread(target=self._guarded, args=(target,), daemon=True,
                                        name=f"stream-{self.name}")  # fmt: skip
        self._thread.start()

    def _source(self) -> BarSource:
        every_s = self.stream.every_seconds
        interval_s = interval_seconds(self.interval) if self.interval else every_s
        emitted = [s.node for s in self.stream.sinks]
        self.warmup = warmup_bars(self.ir, emitted, interval_s or 86400, self.stream.warmup_seconds)
        if self._given_source is not None:
            source = self._given_source
            self.interval = source.interval
        else:
            resume = min(self._last.values()) if self._last else None
            source, self.interval = build_source(
                self.plan,
                where=self.name,
                base_dir=self.base_dir,
                warmup=self.warmup,
                data_step=self._data_step,
                after=resume,
                catalog=self.runner.catalog,
            )
        if interval_s is None:  # a replay that found its interval: the duration in bars now
            self.warmup = warmup_bars(
                self.ir, emitted, interval_seconds(self.interval), self.stream.warmup_seconds
            )
        self.frame = LiveFrame(self._keep or default_keep(self.warmup))
        with self._lock:
            self._stats["interval"] = self.interval
            self._stats["warmup_bars"] = self.warmup
        return source

    def _data_step(self) -> pd.DataFrame:
        out = self.runner.compute(self.graph.data_node, {})
        return out[self.graph.data_port]  # type: ignore[no-any-return]

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the pipeline's thread, then the sinks (each delivers what it has queued for
        up to ``timeout_s``; the rest is kept as pending)."""
        self._stop.set()
        self._inbox.put(None)
        if self._thread is not None:
            self._thread.join(timeout_s)
        for worker in self.workers.values():
            worker.stop(timeout_s)
        with self._lock:
            if self._stats["state"] in ("running", "starting", "warming up"):
                self._stats["state"] = "stopped"
            self._stats["ended_at"] = self._stats["ended_at"] or _now()
        self.write_status(force=True)

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the pipeline's thread to end; False if it is still running."""
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        """Whether the pipeline's thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def close_inbox(self) -> None:
        """An events pipeline ends once its inbox is empty (nothing can trigger it any more)."""
        self._inbox.put(None)

    def deliver(self, event: StreamEvent) -> None:
        """Queue a triggered event (the service counts it in flight)."""
        self._inbox.put(event)

    def health(self) -> dict[str, Any]:
        """The pipeline's health snapshot, its sinks' included."""
        with self._lock:
            out = {k: (list(v) if isinstance(v, list) else v) for k, v in self._stats.items()}
        out["sinks"] = {name: w.health() for name, w in self.workers.items()}
        out["triggers"] = dict(self.triggers)
        return out

    def write_status(self, *, force: bool = False) -> None:
        """Rewrite ``status.json`` (at most once a second unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._status_written < 1.0:
            return
        self._status_written = now
        self.state_dir.mkdir(parents=True, exist_ok=True)
        _write_json(self.state_dir / "status.json", {**self.health(), "written_at": _now()})

    # -- the loops --------------------------------------------------------------------------

    def _guarded(self, body: Callable[[], None]) -> None:
        try:
            body()
        except Exception as exc:  # the pipeline fails; the service and its other pipelines go on
            message = str(exc) if isinstance(exc, StreamError) else f"{type(exc).__name__}: {exc}"
            self._error(message)
            with self._lock:
                self._stats["state"] = "failed"
                self._stats["failure"] = message
        else:
            with self._lock:
                if self._stats["state"] != "failed":
                    self._stats["state"] = "stopped" if self._stop.is_set() else "ended"
        finally:
            with self._lock:
                self._stats["ended_at"] = _now()
            self.write_status(force=True)
            if self._service is not None:
                self._service._pipeline_ended()

    def _run_bars(self, source: BarSource) -> None:
        bars: queue.Queue[Any] = queue.Queue()

        def read() -> None:
            try:
                for bar in source.bars(self._stop):
                    bars.put(bar)
            except Exception as exc:  # the source gave up: the pipeline fails with its reason
                bars.put(_Failure(exc))
            finally:
                bars.put(_END)

        reader = threading.Thread(target=read, daemon=True, name=f"source-{self.name}")
        reader.start()
        with self._lock:
            self._stats["state"] = "warming up"
        first = self._next(bars, None)
        if first is _END or first is None:
            return
        self._warm_up(source, first)
        with self._lock:
            self._stats["state"] = "running"
        recorded = is_recorded(source)
        interval_s = interval_seconds(self.interval or "1d")
        expected = set(self.frame.symbols) | set(getattr(source, "symbols", None) or [])
        seen: set[str] = set()
        pending: dict[pd.Timestamp, dict[str, Bar]] = {}
        item: Any = first
        while True:
            if isinstance(item, Bar):
                self._take(item, pending, seen, interval_s)
                for ts in sorted(t for t in pending if t < item.ts):
                    self._evaluate(ts, pending.pop(ts), interval_s)
                group = pending.get(item.ts)
                if group is not None and recorded and expected <= set(group):
                    self._evaluate(item.ts, pending.pop(item.ts), interval_s)
            if not recorded:
                for ts in sorted(pending):
                    if self.clock() >= self._due(ts, pending[ts], expected, interval_s):
                        self._evaluate(ts, pending.pop(ts), interval_s)
            expected |= seen
            self.write_status()
            timeout = None
            if pending and not recorded:
                due = min(self._due(t, g, expected, interval_s) for t, g in pending.items())
                timeout = max(0.05, min(due - self.clock(), 5.0))
            item = self._next(bars, timeout)
            if item is _END:
                break
        for ts in sorted(pending):  # a live source that ended: still `after` its close
            if not recorded:
                self._stop.wait(
                    max(0.0, self._due(ts, pending[ts], expected, interval_s) - self.clock())
                )
            self._evaluate(ts, pending.pop(ts), interval_s)

    def _next(self, bars: queue.Queue[Any], timeout: float | None) -> Any:
        """The next bar, None on a timeout, _END when the source ended or stop was set."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._stop.is_set():
                return _END
            wait = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if wait <= 0:
                return None
            try:
                item = bars.get(timeout=wait)
            except queue.Empty:
                continue
            if isinstance(item, _Failure):
                raise StreamError(f"{self.name}: the source failed: {item.exc}") from item.exc
            return item

    def _due(
        self, ts: pd.Timestamp, group: dict[str, Bar], expected: set[str], interval_s: int
    ) -> float:
        close = ts.timestamp() + interval_s
        if self.stream.after_seconds is not None:
            return close + self.stream.after_seconds
        return close if expected <= set(group) else close + self.straggler_s

    def _warm_up(self, source: BarSource, first: Bar) -> None:
        history = source.history(first.ts, self.warmup) if self.warmup > 0 else None
        if history is not None and len(history):
            self.frame.add_history(history)
            calendar = self._calendar()
            interval_s = interval_seconds(self.interval or "1d")
            for symbol, rows in history.groupby("symbol", sort=True):
                stamps = pd.to_datetime(rows["ts"], utc=True).sort_values().tolist()
                for a, b in itertools.pairwise(stamps):
                    missing = missing_bars(a, b, interval_s, calendar)
                    if missing:
                        self._gap(f"warm-up: {symbol}: no bar at {_list(missing)}")
        with self._lock:
            self._stats["first_live"] = first.ts.isoformat()
            if history is not None and len(history):
                self._stats["warmup_from"] = pd.Timestamp(history["ts"].min()).isoformat()

    def _calendar(self) -> str:
        return self.plan.calendar or default_calendar(interval_seconds(self.interval or "1d"))

    def _take(
        self,
        bar: Bar,
        pending: dict[pd.Timestamp, dict[str, Bar]],
        seen: set[str],
        interval_s: int,
    ) -> None:
        prev = self.frame.last_ts(bar.symbol)
        if bar.symbol not in seen:
            seen.add(bar.symbol)
            if prev is not None and prev < bar.ts:
                missing = missing_bars(prev, bar.ts, interval_s, self._calendar())
                if missing:
                    raise StreamError(
                        f"{self.name}: the warm-up of {bar.symbol} ends at {prev.isoformat()} "
                        f"but its first live bar is {bar.ts.isoformat()}: no bar at "
                        f"{_list(missing)} (a gap between history and live bars; the values "
                        "would not be a batch run's)"
                    )
        elif prev is not None and prev < bar.ts:
            missing = missing_bars(prev, bar.ts, interval_s, self._calendar())
            if missing:
                self._gap(f"live: {bar.symbol}: no bar at {_list(missing)}")
        done = self._last.get(bar.symbol)
        group = pending.get(bar.ts)
        if (done is not None and bar.ts <= done) or (group is not None and bar.symbol in group):
            self.frame.add(bar)  # data the frame may lack after a restart; never evaluated again
            with self._lock:
                self._stats["duplicates"] += 1
            return
        self.frame.add(bar)
        pending.setdefault(bar.ts, {})[bar.symbol] = bar
        with self._lock:
            self._stats["bars"] += 1
            self._stats["last_bar"] = bar.ts.isoformat()

    def _evaluate(self, ts: pd.Timestamp, group: dict[str, Bar], interval_s: int) -> None:
        every = self.stream.every_seconds
        symbols = sorted(group)
        if every is None or int(ts.timestamp() + interval_s) % every == 0:
            self._emit(ts, symbols, depth=0)
        for symbol in symbols:
            self._last[symbol] = max(ts, self._last.get(symbol, ts))
        _write_json(
            self.state_dir / "state.json",
            {"last": {s: t.isoformat() for s, t in sorted(self._last.items())}},
        )

    def _emit(self, ts: pd.Timestamp, symbols: list[str], depth: int) -> None:
        try:
            values = self.graph.evaluate(self.frame.frame())
        except StreamError as exc:
            self._error(f"{ts.isoformat()}: {exc}")
            return
        with self._lock:
            self._stats["evaluations"] += 1
        shown: set[tuple[str, str, str | None, str]] = set()
        for name, sink in self._sinks:
            stamp, pipe = ts.isoformat(), self.name
            events = [
                StreamEvent(stamp, symbol, pipe, sink.node, sink.port, sink.column, value, depth)
                for symbol, value in self.graph.rows(values, sink, ts, symbols)
            ]
            if not events:
                continue
            new = [e for e in events if (e.node, e.port, e.column, e.symbol) not in shown]
            shown.update((e.node, e.port, e.column, e.symbol) for e in new)
            with self._lock:  # an event sent to several sinks is one event
                self._stats["events"] += len(new)
                recent = self._stats["last_events"] + [e.to_json() for e in new]
                self._stats["last_events"] = recent[-LAST_EVENTS:]
            if self.on_event is not None:
                for e in new:
                    self.on_event(e)
            if name in self.triggers:
                assert self._service is not None
                self._service.trigger(self, self.triggers[name], events)
            else:
                self.workers[name].submit(events)

    def _run_events(self) -> None:
        with self._lock:
            self._stats["state"] = "running"
        interval = self.interval or "1d"
        while True:
            try:
                event = self._inbox.get(timeout=0.5)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            if event is None:
                if self._stop.is_set() or self._inbox.empty():
                    return
                continue
            try:
                self._on_event(event, interval)
            finally:
                assert self._service is not None
                self._service._done()
            self.write_status()

    def _on_event(self, event: StreamEvent, interval: str) -> None:
        value = event.number
        if value is None:
            self._error(
                f"event from {event.pipeline}.{event.node} at {event.ts} for {event.symbol} is "
                f"not a number ({event.value!r}): an events() source takes numbers"
            )
            return
        ts = pd.Timestamp(event.ts)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        bar = Bar(event.symbol, ts, value, value, value, value, 0.0, interval)
        self.frame.add(bar, replace=True)
        with self._lock:
            self._stats["bars"] += 1
            self._stats["last_bar"] = ts.isoformat()
        self._emit(ts, [event.symbol], depth=event.depth)

    # -- records ------------------------------------------------------------------------------

    def _load_state(self) -> dict[str, pd.Timestamp]:
        path = self.state_dir / "state.json"
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return {s: pd.Timestamp(t) for s, t in (data.get("last") or {}).items()}
        except (ValueError, AttributeError) as exc:
            raise StreamError(f"{self.name}: {path} is not a stream state file: {exc}") from None

    def _error(self, message: str) -> None:
        with self._lock:
            errors: list[str] = self._stats["errors"]
            errors.append(f"{_now()} {message}")
            del errors[:-_KEPT]

    def _gap(self, message: str) -> None:
        with self._lock:
            gaps: list[str] = self._stats["gaps"]
            gaps.append(message)
            del gaps[:-_KEPT]

    def _chain_dropped(self, message: str) -> None:
        with self._lock:
            self._stats["chain_dropped"] += 1
        self._error(message)


class StreamService:
    """Stream pipelines run together (see the module doc); ``max_depth`` bounds chains of
    triggers."""

    def __init__(
        self, pipelines: Sequence[StreamPipeline], *, max_depth: int = MAX_CHAIN_DEPTH
    ) -> None:
        if not pipelines:
            raise StreamError("a stream service needs at least one pipeline")
        self.pipelines: dict[str, StreamPipeline] = {}
        for p in pipelines:
            if p.name in self.pipelines:
                raise StreamError(f"two stream pipelines are named {p.name!r}")
            self.pipelines[p.name] = p
        for p in pipelines:
            for target in p.triggers.values():
                other = self.pipelines.get(target)
                if other is None:
                    raise StreamError(
                        f"{p.name}: trigger(target={target!r}): no stream pipeline of that "
                        f"name runs here (the pipelines: {', '.join(self.pipelines)}); run both "
                        "in one service (alphaforge stream A.af B.af)"
                    )
                if not other.events_mode:
                    raise StreamError(
                        f"{p.name}: trigger(target={target!r}): {target} reads "
                        f"{other.stream.source}(...) bars; a triggered pipeline's source is "
                        "events()"
                    )
        self.max_depth = max_depth
        self._cond = threading.Condition()
        self._in_flight = 0
        self._started = False

    def start(self) -> None:
        """Start every pipeline (a source or sink that cannot be built raises here, and the
        pipelines started before it are stopped)."""
        started: list[StreamPipeline] = []
        try:
            for p in self.pipelines.values():
                p.start(self)
                started.append(p)
        except BaseException:
            for p in started:
                p.stop(5.0)
            raise
        self._started = True

    def trigger(self, sender: StreamPipeline, target: str, events: Iterable[StreamEvent]) -> None:
        """Hand ``events`` to pipeline ``target``, one level deeper; past ``max_depth`` an
        event is dropped and the error recorded in ``sender``'s health."""
        pipeline = self.pipelines[target]
        for e in events:
            if e.depth + 1 > self.max_depth:
                sender._chain_dropped(
                    f"chain depth {e.depth + 1} > {self.max_depth}: {sender.name} -> {target} "
                    f"dropped the event of {e.node} at {e.ts} for {e.symbol} (a loop of triggers?)"
                )
                continue
            with self._cond:
                self._in_flight += 1
            pipeline.deliver(replace(e, depth=e.depth + 1))

    def _done(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    def _pipeline_ended(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _settled(self) -> bool:
        bars_done = all(not p.alive for p in self.pipelines.values() if not p.events_mode)
        return bars_done and self._in_flight == 0

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait until every bar source has ended (a replay) and no triggered event is in
        flight, then end the events pipelines; False on timeout."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while not self._settled():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(0.2 if left is None else min(left, 0.2))
        for p in self.pipelines.values():
            if p.events_mode:
                p.close_inbox()
        for p in self.pipelines.values():
            p.join(None if deadline is None else max(0.1, deadline - time.monotonic()))
        return True

    def drain_sinks(self, timeout_s: float = 60.0) -> bool:
        """Wait until every sink has delivered (or given up on) what it was given."""
        deadline = time.monotonic() + timeout_s
        return all(
            w.wait_idle(max(0.1, deadline - time.monotonic()))
            for p in self.pipelines.values()
            for w in p.workers.values()
        )

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop every pipeline and its sinks (pending events are kept for the next start)."""
        for p in self.pipelines.values():
            p._stop.set()
        for p in self.pipelines.values():
            p.stop(timeout_s)

    def run_until_end(
        self, timeout_s: float | None = None, drain_s: float = 60.0
    ) -> dict[str, Any]:
        """Start, wait for the sources to end (a replay), let the sinks deliver, stop; the
        health at the end."""
        self.start()
        try:
            self.wait(timeout_s)
            self.drain_sinks(drain_s)
        finally:
            self.stop()
        return self.health()

    def health(self) -> dict[str, Any]:
        """Every pipeline's health (its sinks' included) and the chain's depth limit."""
        return {
            "max_depth": self.max_depth,
            "pipelines": {name: p.health() for name, p in self.pipelines.items()},
        }

    @property
    def failed(self) -> list[str]:
        """The pipelines that failed."""
        return [n for n, p in self.pipelines.items() if p.health()["state"] == "failed"]


def load_pipeline(
    path: Path,
    *,
    state_root: Path,
    settings: Any = None,
    **options: Any,
) -> StreamPipeline:
    """A stream pipeline from an ``.af`` file (compiled; StreamError with the diagnostics if
    it does not compile or has no stream block); its state under ``state_root/<name>``."""
    from dsl import compile_source

    text = Path(path).read_text(encoding="utf-8")
    result = compile_source(text, filename=str(path))
    if not result.ok or result.ir is None:
        raise StreamError(f"{path} does not compile:\n{result.format(str(path))}")
    ir = result.ir
    return StreamPipeline(
        ir,
        base_dir=Path(path).resolve().parent,
        state_dir=Path(state_root) / ir.name,
        settings=settings,
        **options,
    )


def _default_runner(base_dir: Path, settings: Any) -> InProcessRunner:
    from flows.catalog import catalog_source
    from flows.settings import get_settings

    settings = settings or get_settings()
    return InProcessRunner(
        base_dir=base_dir,
        mlflow_uri=settings.mlflow_uri,
        catalog=catalog_source(settings, None, None),
    )


def _list(stamps: list[pd.Timestamp]) -> str:
    return ", ".join(s.isoformat() for s in stamps)
