"""Custom tick strategies in the sandbox: the host side of ``tick_strategy_backtest`` (issue 15).

hftbacktest runs here, on the host (nodes/builtin/_tickstep.py); the user's ``TickStrategy``
(the SDK runners/sandbox/alphaforge_tick.py) runs in one long-lived sandbox container for the
whole backtest, under the custom nodes' policy (no network, read-only root, every capability
dropped, memory / pids / CPU limits; runners/docker/strategy.py) and its entrypoint
runners/sandbox/tick_strategy_entry.py. The protocol is the strategy host's JSON lines
(runners/strategyhost.py ``_SandboxHost``: a ``seq`` per request, replies checked, any crash
removes the container) with two ops: ``init`` (config and the instrument → ``on_start``) and
``step`` (one state snapshot → ``on_step``'s intents), one message each way per step.

The wall-time limit (``Limits.wall_s``) is a budget for the time the host waits on the sandbox
over the whole backtest (the user's code and the IPC, not hftbacktest's own work): each call
may take what is left of it; past it the container is killed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nodes.errors import NodeError
from runners.custom import Limits
from runners.strategyhost import (
    Box,
    StrategyCrashed,
    StrategyError,
    _default_limits,
    _SandboxHost,
    resolve_auto,
)
from runners.strategyreplies import check_logs

__all__ = ["TickStrategyHost", "TickStrategySession", "new_instance_id", "tick_strategy_session"]

TICK_ENTRY_FILE = "tick_strategy_entry.py"
#: log lines of the strategy copied to the node's log
MAX_LOGGED_LINES = 500


class TickStrategyHost(_SandboxHost):
    """One custom tick strategy in its sandbox (``box``: a Docker ``StrategyContainer`` or, when
    the operator allows it, a local ``StrategyProcess``)."""

    kind = "tick"

    def begin(self, config: dict[str, Any], meta: dict[str, Any]) -> list[str]:
        """Launch and ``init`` (``on_start``); StrategyError when the user's code raised."""
        self._ensure_launched()
        self._t0 = time.monotonic()
        self._used = 0.0
        reply = self._call({"op": "init", "config": config, "meta": meta}, self._left(), "init")
        self._spent()
        logs = self._checked(check_logs, reply.get("logs"))
        if not reply["ok"]:
            raise StrategyError(self._text(reply, "error"), self._text(reply, "traceback"), logs)
        return logs

    def step(self, state: dict[str, Any]) -> tuple[Any, list[str]]:
        """``on_step(state)``: its raw intents (the caller checks them) and its log lines."""
        self._t0 = time.monotonic()
        what = (
            f"on_step (the wall-time limit is {self.limits.wall_s:g} s of strategy time, "
            f"{self._used:.2f} s used before this step)"
        )
        reply = self._call({"op": "step", "state": state}, self._left(), what)
        self._spent()
        logs = self._checked(check_logs, reply.get("logs"))
        if not reply["ok"]:
            raise StrategyError(self._text(reply, "error"), self._text(reply, "traceback"), logs)
        return reply.get("intents"), logs

    def _left(self) -> float:
        left = self.limits.wall_s - self._used
        if left <= 0:
            raise self._crash(f"the wall-time limit of {self.limits.wall_s:g} s is used up")
        return left

    def _spent(self) -> None:
        self._used += time.monotonic() - self._t0


class TickStrategySession:
    """What the node's loop calls once per step: the checked-by-the-caller intents, every
    failure a NodeError naming the strategy and ``where`` (the step and its simulated time)."""

    def __init__(self, host: TickStrategyHost, node: str, log: Callable[[str], None]) -> None:
        self.host = host
        self.node = node
        self.log = log
        self.logged = 0
        self.steps = 0

    def step(self, state: dict[str, Any], where: str) -> Any:
        """``on_step``'s intents for ``state``."""
        try:
            intents, logs = self.host.step(state)
        except StrategyError as exc:
            self._lines([*exc.logs, *exc.traceback.splitlines()])
            raise NodeError(
                f"tick strategy {self.node!r}: on_step raised at {where}: {exc} "
                "(the traceback is in the node's log)"
            ) from None
        except StrategyCrashed as exc:
            raise NodeError(
                f"tick strategy {self.node!r}: its sandbox stopped at {where}: {exc.reason}"
            ) from None
        self.steps += 1
        if logs:
            self._lines(logs)
        return intents

    def _lines(self, lines: list[str]) -> None:
        for line in lines:
            if self.logged < MAX_LOGGED_LINES:
                self.log(f"strategy: {line}")
            elif self.logged == MAX_LOGGED_LINES:
                self.log("strategy: [... further log lines not kept]")
            self.logged += 1


def _box(choice: str, limits: Limits, instance: str) -> tuple[Box, bool]:
    """The sandbox for ``choice`` (``docker``, ``process``, ``auto``): the box and whether it is
    the unsandboxed process box."""
    from runners.docker.strategy import TICK_ENTRY, StrategyContainer

    if choice == "docker":
        return StrategyContainer(None, limits, instance, entry=TICK_ENTRY), False
    if choice == "process":
        from runners.process import StrategyProcess

        return StrategyProcess(limits, entry=TICK_ENTRY_FILE), True
    kind, client = resolve_auto(choice)
    if kind == "process":
        return _box("process", limits, instance)
    return StrategyContainer(client, limits, instance, entry=TICK_ENTRY), False


def new_instance_id() -> str:
    """A fresh instance id (``tick-<hex>``): the sandbox's ``alphaforge.strategy`` label."""
    import secrets

    return f"tick-{secrets.token_hex(4)}"


@contextmanager
def tick_strategy_session(
    code: str,
    *,
    config: dict[str, Any],
    meta: dict[str, Any],
    node: str,
    log: Callable[[str], None],
    choice: str = "auto",
    limits: Limits | None = None,
    work_root: Path | None = None,
) -> Iterator[TickStrategySession]:
    """Start ``code``'s strategy in a sandbox, ``on_start`` it, yield the session; the sandbox
    is removed on the way out, whatever happened."""
    from runners.docker.runner import SandboxUnavailable

    limits = limits or _default_limits()
    where = f"tick strategy {node!r}"
    instance = new_instance_id()
    try:
        box, unsandboxed = _box(choice, limits, instance)
    except SandboxUnavailable as exc:
        raise NodeError(f"{where}: no sandbox to run the strategy in: {exc}") from None
    host = TickStrategyHost(code, box, instance_id=instance, limits=limits, work_root=work_root)
    if unsandboxed:
        log("warning: the tick strategy runs WITHOUT a sandbox (ALPHAFORGE_ALLOW_PROCESS_RUNNER=1)")
    else:
        log(
            f"the tick strategy runs in the Docker sandbox {instance} (one container; "
            f"{limits.memory_mb} MiB, {limits.wall_s:g} s of strategy time, no network)"
        )
    session = TickStrategySession(host, node, log)
    try:
        try:
            logs = host.begin(config, meta)
        except StrategyError as exc:
            session._lines([*exc.logs, *exc.traceback.splitlines()])
            raise NodeError(f"{where}: loading it or on_start raised: {exc}") from None
        except StrategyCrashed as exc:
            raise NodeError(
                f"{where}: its sandbox stopped before the first step: {exc.reason}"
            ) from None
        session._lines(logs)
        yield session
    finally:
        host.stop()
