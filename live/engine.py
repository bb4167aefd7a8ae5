"""The strategy engine: a reconciler that makes the running instances match the database.

Seed 001's model, made robust. Every cycle (:meth:`Engine.reconcile`):

- an instance the database wants (not deleted, mode ``observe`` or ``active``) and this engine
  does not run is claimed (:meth:`live.store.LiveStore.claim`: one engine per instance) and
  loaded in its own :class:`InstanceWorker` thread;
- one whose strategy version or config changed is reloaded (stopped, then loaded again); one
  whose mode changed is switched in place (the sandbox's context gets the new capability; the
  strategy's state is kept);
- one the database no longer wants (mode ``off``, deleted) or whose lease another engine took
  is unloaded;
- the leases of the rest are renewed, and widgets asked for since the last cycle are rendered.

A worker loads its instance (sandbox up, ``init``, the paper book from the database, a warm-up
of ``feed.warmup`` bars of history through ``on_tick`` in observe mode), then feeds it the live
bars: for each bar, the venue fills the orders of earlier bars first, then ``on_tick`` runs and
its intents become orders (active) or recorded intents (observe: the engine never places an
order of an instance that is not active, whatever its sandbox says). Each bar is one database
transaction, and bars at or before the last one processed are skipped: a restarted engine
resumes where it was, without doing a bar twice.

A crash (the sandbox died, timed out or broke the protocol; ``init`` raised; the source failed)
is isolated to its instance: its status becomes ``crashed`` with the reason, and the worker
loads it again after a back-off (1 s, doubling, at most :data:`MAX_BACKOFF_S`), never touching
the other instances. An exception the user's ``on_tick`` raises is an ``error`` event; the
instance runs on.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import pandas as pd

from live.leases import engine_id_for
from live.store import Desired, LiveStore
from live.tables import utcnow
from runners.papertrade.bars import Bar, BarSource
from runners.papertrade.step import step
from runners.papertrade.venue import PaperVenue
from runners.strategyhost import StrategyCrashed, StrategyError, StrategyHost

__all__ = [
    "DEFAULT_WARMUP_BARS",
    "MAX_BACKOFF_S",
    "Engine",
    "HostFactory",
    "InstanceWorker",
    "ReconcileReport",
    "Sibling",
    "SourceFactory",
]

log = logging.getLogger(__name__)

HostFactory = Callable[[Desired], StrategyHost]


class Sibling(Protocol):
    """Another reconciler the engine's loop runs after the instances' (each cycle, its
    failures isolated) and shuts down with it: :class:`live.stream.reconciler.StreamReconciler`."""

    def reconcile(self) -> Any: ...

    def shutdown(self) -> None: ...


SourceFactory = Callable[[Desired], BarSource]

DEFAULT_WARMUP_BARS = 100
MAX_BACKOFF_S = 60.0
HEALTHY_AFTER_S = 60.0  # a load that ran this long resets the back-off
RENDER_WINDOW = timedelta(minutes=5)


@dataclass
class ReconcileReport:
    """What one cycle did (instance ids)."""

    loaded: list[str] = field(default_factory=list)
    reloaded: list[str] = field(default_factory=list)
    unloaded: list[str] = field(default_factory=list)
    switched: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # wanted, but another engine holds them

    def changed(self) -> bool:
        return bool(self.loaded or self.reloaded or self.unloaded or self.switched or self.lost)

    def __str__(self) -> str:
        parts = [
            f"{what} {', '.join(ids)}"
            for what, ids in (("loaded", self.loaded), ("reloaded", self.reloaded),
                              ("unloaded", self.unloaded), ("switched", self.switched),
                              ("lost", self.lost), ("held elsewhere", self.busy))
            if ids
        ]  # fmt: skip
        return "; ".join(parts) or "nothing to do"


class Engine:
    """Reconciles the running instances with the database (see the module doc)."""

    def __init__(
        self,
        store: LiveStore,
        host_factory: HostFactory,
        source_factory: SourceFactory,
        *,
        engine_id: str | None = None,
        lease_s: float = 30.0,
        base_backoff_s: float = 1.0,
        max_backoff_s: float = MAX_BACKOFF_S,
        siblings: Sequence[Sibling] = (),
    ) -> None:
        self.store = store
        self.siblings = list(siblings)  # other reconcilers run by this loop (stream pipelines)
        self.host_factory = host_factory
        self.source_factory = source_factory
        self.engine_id = engine_id or engine_id_for()
        self.lease_s = lease_s
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.workers: dict[str, InstanceWorker] = {}
        self._lock = threading.Lock()

    # -- one cycle ------------------------------------------------------------------------

    def reconcile(self) -> ReconcileReport:
        """Make the running set equal to the database's wish, once."""
        report = ReconcileReport()
        desired = {d.id: d for d in self.store.desired()}
        with self._lock:
            held = self.store.renew(self.engine_id, list(self.workers), self.lease_s)
            for iid in list(self.workers):
                if iid not in held:  # another engine took it (our lease had expired)
                    self._unload(iid, status=None)
                    report.lost.append(iid)
                elif iid not in desired:
                    self._unload(iid, status="stopped", reason=_why_not_wanted(self.store, iid))
                    report.unloaded.append(iid)
            for iid, want in desired.items():
                worker = self.workers.get(iid)
                if worker is not None and worker.desired.load_key != want.load_key:
                    self._unload(iid, status=None)
                    self._load(want)
                    report.reloaded.append(iid)
                elif worker is not None:
                    if worker.mode != want.mode:
                        worker.switch_mode(want.mode)
                        report.switched.append(iid)
                elif self.store.claim(iid, self.engine_id, self.lease_s):
                    self._load(want)
                    report.loaded.append(iid)
                else:
                    report.busy.append(iid)
        self.serve_renders()
        for sibling in self.siblings:
            try:
                sibling.reconcile()
            except Exception:  # isolated: the instances (and the next cycle) go on
                log.exception("engine %s: a %s cycle failed", self.engine_id,
                              type(sibling).__name__)  # fmt: skip
        if report.changed():
            log.info("engine %s: %s", self.engine_id, report)
        return report

    def _load(self, want: Desired) -> None:
        worker = InstanceWorker(want, self)
        self.workers[want.id] = worker
        worker.start()

    def _unload(self, iid: str, *, status: str | None, reason: str | None = None) -> None:
        worker = self.workers.pop(iid)
        worker.shutdown()
        if status is not None:
            self.store.release(iid, self.engine_id, status, reason)

    def serve_renders(self) -> None:
        """Render the widgets of the instances someone asked about (on demand only)."""
        since = utcnow() - RENDER_WINDOW
        for iid in self.store.render_requests(self.engine_id, since):
            worker = self.workers.get(iid)
            if worker is None:
                continue
            self.store.save_widgets(iid, worker.render())

    # -- the service ----------------------------------------------------------------------

    def run(self, stop: threading.Event, cycle_s: float = 1.0) -> None:
        """Reconcile every ``cycle_s`` until ``stop``; then unload everything."""
        log.info("engine %s: started", self.engine_id)
        try:
            while not stop.is_set():
                try:
                    self.reconcile()
                except Exception:  # the database away for a moment: try again next cycle
                    log.exception("engine %s: a reconcile cycle failed", self.engine_id)
                stop.wait(cycle_s)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Unload every instance (stopped, leases released)."""
        with self._lock:
            for iid in list(self.workers):
                self._unload(iid, status="stopped", reason="the engine stopped")
        for sibling in self.siblings:
            try:
                sibling.shutdown()
            except Exception:
                log.exception("engine %s: stopping %s failed", self.engine_id,
                              type(sibling).__name__)  # fmt: skip
        log.info("engine %s: stopped", self.engine_id)


def _why_not_wanted(store: LiveStore, iid: str) -> str:
    row = store.instance(iid)
    if row is None or row.deleted_at is not None:
        return "deleted"
    return "mode off"


class InstanceWorker:
    """One loaded instance: its sandbox, its venue, its bars, in its own thread."""

    def __init__(self, desired: Desired, engine: Engine) -> None:
        self.desired = desired
        self.engine = engine
        self.store = engine.store
        self.mode = desired.mode
        self.host: StrategyHost | None = None
        self.venue: PaperVenue | None = None
        self.stop = threading.Event()
        self.call_lock = threading.Lock()  # one call into the sandbox at a time
        self.thread = threading.Thread(target=self._run, name=f"instance-{desired.id}", daemon=True)
        self.loads = 0
        self.last_bar_ts: datetime | None = desired.last_bar_ts

    @property
    def iid(self) -> str:
        return self.desired.id

    def start(self) -> None:
        self.thread.start()

    def shutdown(self, timeout: float = 30.0) -> None:
        self.stop.set()
        self._stop_host()
        self.thread.join(timeout)

    def switch_mode(self, mode: str) -> None:
        """The new capability, in place: the sandbox's context is told; the state stays."""
        previous, self.mode = self.mode, mode
        with self.call_lock:
            host = self.host
            if host is not None and host.alive:
                try:
                    host.set_mode(mode)
                except (StrategyCrashed, StrategyError) as exc:
                    self._event("error", f"switching to {mode} failed: {exc}")
        self._event("mode", f"mode {previous} → {mode}", {"from": previous, "to": mode})

    def render(self) -> list[dict[str, Any]] | str:
        """``render()``'s widgets, or a sentence why there are none."""
        with self.call_lock:
            host = self.host
            if host is None or not host.alive:
                return "the instance is not running (it is loading, or crashed)"
            try:
                return host.render()
            except StrategyError as exc:
                return f"render() failed: {exc}"
            except StrategyCrashed as exc:
                return f"the sandbox crashed while rendering: {exc.reason}"

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                ended = self._load_and_feed()
            except (StrategyCrashed, StrategyError, Exception) as exc:
                if self.stop.is_set():
                    break
                reason = _reason(exc)
                log.warning("instance %s crashed: %s", self.iid, reason)
                self._stop_host()
                if time.monotonic() - started > HEALTHY_AFTER_S:
                    attempt = 0
                delay = min(self.engine.max_backoff_s, self.engine.base_backoff_s * 2**attempt)
                attempt += 1
                self._event("crash", reason, {"traceback": getattr(exc, "traceback", "")})
                self.store.set_status(
                    self.iid, self.engine.engine_id, "crashed",
                    f"{reason} (restart {attempt} in {delay:g} s)",
                    restarts=self._restarts() + 1,
                )  # fmt: skip
                if self.stop.wait(delay):
                    break
                continue
            self._stop_host()
            if ended:
                self._status("ended", "the feed has no more bars (the replay reached its end)")
                self.stop.wait()
            break

    def _restarts(self) -> int:
        row = self.store.instance(self.iid)
        return row.restarts if row is not None else 0

    def _load_and_feed(self) -> bool:
        """Load, warm up and feed bars until stopped (False) or the feed ends (True)."""
        want = self.desired
        self._status("loading", None, loaded_key=want.load_key)
        # where the database says the instance is, not the snapshot it was loaded from: a
        # reload's snapshot is read before the worker it replaces stopped, and that worker may
        # have stored more bars since (doing one again would store it twice)
        stored = self.store.last_bar_ts(self.iid)
        if stored is not None and (self.last_bar_ts is None or stored > self.last_bar_ts):
            self.last_bar_ts = stored
        cash, orders, positions = self.store.load_book(self.iid)
        self.venue = PaperVenue.restore(
            want.initial_cash if cash is None else cash,
            orders,
            positions,
            fee_bps=want.fee_bps,
            slippage_bps=want.slippage_bps,
            allow_short=bool(want.feed.get("allow_short", False)),
        )
        source = self.engine.source_factory(self._resumed())
        bars = _dedup(source.bars(self.stop), self.last_bar_ts)
        first = next(bars, None)
        host = self.engine.host_factory(want)
        with self.call_lock:
            self.host = host
        if self.stop.is_set():
            return False
        self.loads += 1
        logs = host.start(want.identity, want.config, "observe")
        self._event("status", f"loaded (version {want.strategy_version}, config "
                              f"{want.config_version}, mode {self.mode})")  # fmt: skip
        self._logs(logs, None)
        if first is None:
            return True
        warmup = int(want.feed.get("warmup", DEFAULT_WARMUP_BARS))
        self._warm_up(source.history(first.ts, warmup))
        with self.call_lock:
            host.set_mode(self.mode)
        self._status("running", None)
        for bar in _chain(first, bars):
            if self.stop.is_set():
                return False
            self._process(bar)
        return not self.stop.is_set()

    def _resumed(self) -> Desired:
        return replace(self.desired, last_bar_ts=self.last_bar_ts)

    def _warm_up(self, history: pd.DataFrame) -> None:
        """History through ``on_tick`` in observe mode: the strategy's state, no orders."""
        assert self.venue is not None and self.host is not None
        n = 0
        interval = str(self.desired.feed.get("interval", "1d"))
        for row in history.itertuples(index=False):
            if self.stop.is_set():
                return
            bar = Bar(str(row.symbol), pd.Timestamp(row.ts), float(row.open), float(row.high),
                      float(row.low), float(row.close), float(row.volume), interval)  # fmt: skip
            with self.call_lock:
                self.host.tick(bar.tick(), self.venue.account(bar))
            n += 1
        if n:
            self._event("status", f"warmed up on {n} bar(s) of history (observe mode)")

    def _process(self, bar: Bar) -> None:
        """One live bar (:func:`runners.papertrade.step.step`), stored in one transaction."""
        assert self.venue is not None and self.host is not None
        write = step(self.venue, self.host, bar, self.mode, self.call_lock)
        if not self.store.save_bar(self.iid, self.engine.engine_id, write):
            self.stop.set()  # the lease is gone: another engine has the instance now
            return
        self.last_bar_ts = write.bar_ts

    # -- small helpers --------------------------------------------------------------------

    def _stop_host(self) -> None:
        host = self.host
        if host is not None:
            try:
                host.stop()
            except Exception:
                log.exception("instance %s: stopping its sandbox failed", self.iid)

    def _status(self, status: str, reason: str | None, **extra: Any) -> None:
        self.store.set_status(self.iid, self.engine.engine_id, status, reason, **extra)

    def _event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        try:
            self.store.add_events(self.iid, [(kind, message, data)])
        except Exception:
            log.exception("instance %s: an event could not be stored", self.iid)

    def _logs(self, lines: list[str], bar_ts: datetime | None) -> None:
        if lines:
            self.store.add_events(self.iid, [("log", line, None) for line in lines], bar_ts)


def _dedup(bars: Iterator[Bar], after: datetime | None) -> Iterator[Bar]:
    """Bars strictly after ``after`` and after every bar already yielded (per symbol)."""
    last: dict[str, pd.Timestamp] = {}
    floor = pd.Timestamp(after) if after is not None else None
    for bar in bars:
        seen = last.get(bar.symbol)
        if (floor is not None and bar.ts <= floor) or (seen is not None and bar.ts <= seen):
            continue
        last[bar.symbol] = bar.ts
        yield bar


def _chain(first: Bar, rest: Iterator[Bar]) -> Iterator[Bar]:
    yield first
    yield from rest


def _reason(exc: BaseException) -> str:
    if isinstance(exc, StrategyCrashed):
        return exc.reason
    if isinstance(exc, StrategyError):
        return f"the strategy raised: {exc}"
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return f"the engine could not run it: {text}"
