"""The engine's second reconciler: makes the running stream pipelines match the database.

:class:`StreamReconciler` runs inside the strategy engine (``Engine.reconcile`` calls it every
cycle, so ``alphaforge engine`` and the ``alphaforge-engine`` deployment run both). Each cycle:

- the deployments the database wants running (:meth:`live.stream.store.StreamStore.desired`)
  are grouped: a deployment whose pipeline ``trigger``\\ s another of the same owner's
  (``trigger(target=<its pipeline name>)``) runs in one :class:`~live.stream.StreamService`
  with it (a service routes triggered events between its pipelines); any other runs alone;
- a group not running here is claimed (every member's lease, or none) and started; one whose
  members or texts changed is stopped and started again; one a member of which is no longer
  wanted (stopped, deleted) or whose lease another engine took is stopped;
- leases are renewed, and each running pipeline's health snapshot (state, counts, last events,
  each sink's health) is written to its row, where the API reads it;
- a pipeline that failed (its source gave up, a sink could not be built) is started again
  after a back-off (1 s, doubling, at most :data:`MAX_BACKOFF_S`); one whose replay ended
  stays ``ended`` (its lease held, so no other engine replays it again).

A deployment's state lives in ``state_root/<deployment id>/`` (the pipeline's ``state.json``
and its sinks' records, live.stream.service): the same folder whichever engine runs it and
whatever its text, so a restarted or replacing engine resumes after the last bar processed and
no event reaches a sink twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsl.ir import PipelineIR
from live.stream.deployments import compile_stream
from live.stream.errors import StreamError
from live.stream.service import StreamPipeline, StreamService
from live.stream.store import Deployed, StreamStore
from nodes.errors import AlphaForgeError

__all__ = ["MAX_BACKOFF_S", "StreamReconciler", "StreamReport"]

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0
#: The pipeline's health ``state`` -> the deployment's status.
_STATUS = {
    "created": "starting",
    "starting": "starting",
    "warming up": "warming",
    "running": "running",
    "failed": "failed",
    "stopped": "stopped",
    "ended": "ended",
}

PipelineFactory = Callable[[Deployed, PipelineIR, Path], StreamPipeline]


@dataclass
class StreamReport:
    """What one cycle did (deployment ids)."""

    loaded: list[str] = field(default_factory=list)
    reloaded: list[str] = field(default_factory=list)
    unloaded: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)

    def changed(self) -> bool:
        return bool(self.loaded or self.reloaded or self.unloaded or self.lost or self.restarted)


@dataclass
class _Group:
    members: dict[str, Deployed]
    service: StreamService | None
    pipelines: dict[str, StreamPipeline]  # deployment id -> its pipeline
    failure: str | None = None  # could not start (no service)
    attempt: int = 0
    retry_at: float | None = None
    health: dict[str, str] = field(default_factory=dict)  # last written, per id

    @property
    def key(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((i, d.load_key) for i, d in self.members.items()))


class StreamReconciler:
    """Runs the deployed stream pipelines this engine holds (see the module doc).

    ``state_root`` holds each deployment's state folder; ``base_dir`` is where relative paths
    in the pipelines resolve (the web runs' workspace); ``settings`` the installation's
    (MLflow, catalog); ``make_pipeline`` replaces how a pipeline is built (tests)."""

    def __init__(
        self,
        store: StreamStore,
        engine_id: str,
        *,
        state_root: Path,
        base_dir: Path,
        settings: Any = None,
        lease_s: float = 30.0,
        base_backoff_s: float = 1.0,
        max_backoff_s: float = MAX_BACKOFF_S,
        stop_timeout_s: float = 10.0,
        make_pipeline: PipelineFactory | None = None,
    ) -> None:
        self.store = store
        self.engine_id = engine_id
        self.state_root = Path(state_root)
        self.base_dir = Path(base_dir)
        self.settings = settings
        self.lease_s = lease_s
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.stop_timeout_s = stop_timeout_s
        self.make_pipeline = make_pipeline or self._pipeline
        self.groups: dict[frozenset[str], _Group] = {}
        self._irs: dict[str, PipelineIR | None] = {}

    @property
    def running(self) -> set[str]:
        """The deployment ids this reconciler runs."""
        return {i for key in self.groups for i in key}

    # -- one cycle ------------------------------------------------------------------------

    def reconcile(self) -> StreamReport:
        """Make the running stream pipelines equal to the database's wish, once."""
        report = StreamReport()
        desired = {d.id: d for d in self.store.desired()}
        wanted = {frozenset(g): g for g in self._groups(desired)}
        held = self.store.renew(self.engine_id, sorted(self.running), self.lease_s)
        for key in list(self.groups):
            group = self.groups[key]
            lost = key - held
            if lost:
                self._unload(key, None)
                for i in key & held:
                    self.store.release(i, self.engine_id, None)
                report.lost.extend(sorted(lost))
            elif key not in wanted or any(
                desired[i].load_key != group.members[i].load_key for i in key
            ):
                gone = [i for i in key if i not in desired]
                self._unload(key, "stopped", released=gone)
                stay = sorted(key - set(gone))
                for i in stay:  # still wanted: re-claimed below, with its new group or text
                    self.store.release(i, self.engine_id, None)
                report.unloaded.extend(gone)
                report.reloaded.extend(stay)
        for key, ids in wanted.items():
            if key in self.groups:
                continue
            claimed = [i for i in ids if self.store.claim(i, self.engine_id, self.lease_s)]
            if len(claimed) < len(ids):
                for i in claimed:
                    self.store.release(i, self.engine_id, None)
                report.busy.extend(i for i in ids if i not in claimed)
                continue
            self._load(key, {i: desired[i] for i in ids})
            if not any(i in report.reloaded for i in ids):
                report.loaded.extend(ids)
        for key in list(self.groups):
            if self._restart_due(key):
                report.restarted.extend(sorted(key))
            self._write_status(self.groups[key])
        if report.changed():
            log.info("engine %s streams: %s", self.engine_id, report)
        return report

    def shutdown(self) -> None:
        """Stop every pipeline (sinks deliver what is queued; the rest is kept as pending) and
        give the leases back."""
        for key in list(self.groups):
            self._unload(key, "stopped", reason="the engine stopped")

    # -- groups ---------------------------------------------------------------------------

    def _ir(self, d: Deployed) -> PipelineIR | None:
        if d.ir_hash not in self._irs:
            try:
                self._irs[d.ir_hash] = compile_stream(d.text)
            except AlphaForgeError:
                self._irs[d.ir_hash] = None
        return self._irs[d.ir_hash]

    def _groups(self, desired: dict[str, Deployed]) -> list[list[str]]:
        """The deployment ids that run together (linked by triggers, per owner)."""
        parent = {i: i for i in desired}

        def root(i: str) -> str:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        by_name = {(d.owner_id, d.pipeline): d.id for d in desired.values()}
        for d in desired.values():
            ir = self._ir(d)
            sinks = ir.stream.sinks if ir is not None and ir.stream is not None else ()
            for sink in sinks:
                if sink.sink != "trigger":
                    continue
                other = by_name.get((d.owner_id, str(sink.params.get("target"))))
                if other is not None:
                    parent[root(d.id)] = root(other)
        out: dict[str, list[str]] = {}
        for i in desired:
            out.setdefault(root(i), []).append(i)
        return [sorted(g) for g in out.values()]

    def _pipeline(self, d: Deployed, ir: PipelineIR, state_dir: Path) -> StreamPipeline:
        return StreamPipeline(ir, base_dir=self.base_dir, state_dir=state_dir,
                              settings=self.settings)  # fmt: skip

    def _load(self, key: frozenset[str], members: dict[str, Deployed]) -> None:
        group = _Group(members=members, service=None, pipelines={})
        self.groups[key] = group
        self._start(group)

    def _start(self, group: _Group) -> None:
        group.failure = None
        group.health = {}
        for i in group.members:
            self.store.set_status(i, self.engine_id, "starting", None,
                                  loaded_key=group.members[i].load_key)  # fmt: skip
        try:
            pipelines = {}
            for i, d in group.members.items():
                ir = compile_stream(d.text)
                pipelines[i] = self.make_pipeline(d, ir, self.state_root / i)
            service = StreamService(list(pipelines.values()))
            service.start()
        except (StreamError, AlphaForgeError, OSError, ValueError) as exc:
            group.failure = str(exc)
            group.service, group.pipelines = None, {}
            self._schedule_retry(group)
            log.warning("engine %s streams: %s failed to start: %s", self.engine_id,
                        ", ".join(group.members), exc)  # fmt: skip
            return
        group.service, group.pipelines = service, pipelines

    def _stop_service(self, group: _Group) -> None:
        if group.service is not None:
            try:
                group.service.stop(self.stop_timeout_s)
            except Exception:  # stopping must not take the engine down
                log.exception("engine %s streams: stopping %s failed", self.engine_id,
                              ", ".join(group.members))  # fmt: skip

    def _unload(
        self,
        key: frozenset[str],
        status: str | None,
        *,
        reason: str | None = None,
        released: list[str] | None = None,
    ) -> None:
        group = self.groups.pop(key)
        self._stop_service(group)
        if status is None:
            return
        self._write_status(group, final=True)
        for i in released if released is not None else sorted(key):
            why = reason or _why_not_wanted(self.store, i)
            self.store.release(i, self.engine_id, status, why)

    # -- failures -------------------------------------------------------------------------

    def _failed(self, group: _Group) -> bool:
        if group.failure is not None:
            return True
        return any(p.health()["state"] == "failed" for p in group.pipelines.values())

    def _schedule_retry(self, group: _Group) -> None:
        delay = min(self.max_backoff_s, self.base_backoff_s * 2**group.attempt)
        group.attempt += 1
        group.retry_at = time.monotonic() + delay

    def _restart_due(self, key: frozenset[str]) -> bool:
        group = self.groups[key]
        if not self._failed(group):
            return False
        if group.retry_at is None:
            self._write_status(group)  # the failure, before the pipelines go
            self._schedule_retry(group)
            return False
        if time.monotonic() < group.retry_at:
            return False
        self._stop_service(group)
        for i in group.members:
            row = self.store.row(i)
            self.store.set_status(i, self.engine_id, "starting", None,
                                  restarts=(row.restarts if row else 0) + 1)  # fmt: skip
        group.retry_at = None
        self._start(group)  # a failure to start schedules the next try (attempt + 1)
        return True

    # -- status -------------------------------------------------------------------------

    def _write_status(self, group: _Group, *, final: bool = False) -> None:
        for i in group.members:
            pipeline = group.pipelines.get(i)
            if pipeline is None:
                failure = group.failure or "not started"
                self.store.set_status(i, self.engine_id, "failed", _retrying(group, failure),
                                      last_error=failure)  # fmt: skip
                continue
            health = pipeline.health()
            text = repr(sorted(health.items(), key=lambda kv: kv[0]))
            if not final and group.health.get(i) == text:
                continue
            group.health[i] = text
            state = str(health.get("state"))
            status = _STATUS.get(state, "running")
            errors = health.get("errors") or []
            extra: dict[str, Any] = {"last_error": errors[-1]} if errors else {}
            reason = _retrying(group, str(health.get("failure"))) if status == "failed" else None
            self.store.set_status(i, self.engine_id, status, reason, health=health, **extra)


def _retrying(group: _Group, reason: str) -> str:
    if group.retry_at is None:
        return reason
    left = max(0.0, group.retry_at - time.monotonic())
    return f"{reason} (restart {group.attempt} in {left:.0f} s)"


def _why_not_wanted(store: StreamStore, deployment_id: str) -> str:
    row = store.row(deployment_id)
    if row is None or row.deleted_at is not None:
        return "deleted"
    if row.desired == "stopped":
        return "stopped by its owner"
    return "stopped"
