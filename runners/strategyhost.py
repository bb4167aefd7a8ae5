"""Running a strategy module: one long-lived sandbox per strategy instance (issue 14).

A strategy module (live/README.md; the SDK is ``runners/sandbox/alphaforge_strategy.py``, its
entrypoint ``runners/sandbox/strategy_entry.py``) runs in the same Docker sandbox, under the same
policy and limits, as a custom node, but the container lives as long as the instance is loaded:
the host writes one JSON request per line on its stdin and reads one JSON reply per line from its
stdout. Everything that comes back is untrusted and validated here.

Requests (host → sandbox) and replies (sandbox → host), one line each:

- ``{"op": "init", "identity": {...}, "config": {...}, "mode": "observe"|"active"}`` →
  ``{"ok": true, "logs": [...]}``: the module is imported, its one ``Strategy`` subclass
  instantiated with a context and the config, ``init()`` called (its return is the state).
- ``{"op": "tick", "tick": {...}, "account": {...}}`` → ``{"ok": true, "intents": [...],
  "logs": [...]}``: ``on_tick(tick)`` called; ``account`` is what the context answers from
  (cash, position, price, open orders). Each intent is an order the strategy placed
  (``{"op": "place", "client_id", "symbol", "side", "qty", "type", "limit_price"}``) or a cancel
  (``{"op": "cancel", "client_id"}``). In observe mode ``context.place_order`` raises
  ``ModeError``; the attempt comes back as an intent with ``"refused": "<the error's text>"``
  and the reply has ``"mode_error"`` set when the error escaped ``on_tick``.
- ``{"op": "mode", "mode": "observe"|"active"}`` → ``{"ok": true}``: the context's capability
  switched in place (the strategy's state is kept; a mode change is never a reload).
- ``{"op": "render"}`` → ``{"ok": true, "widgets": [...]}`` (``render()``'s widgets).
- ``{"op": "stop"}`` → the process exits.

A failing call replies ``{"ok": false, "error": "<one line>", "traceback": "..."}`` (the user's
frames only). A reply that is not one JSON object of at most :data:`MAX_REPLY_BYTES`, a reply
late by more than the op's timeout, or the process ending, is a crash: :class:`StrategyCrashed`
with the reason (out of memory, killed, timed out, bad reply), after which the host is dead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "MAX_REPLY_BYTES",
    "StrategyCrashed",
    "StrategyError",
    "StrategyHost",
    "TickReply",
]

MAX_REPLY_BYTES = 1 << 20


class StrategyCrashed(RuntimeError):
    """The strategy's sandbox is gone or broke the protocol; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StrategyError(RuntimeError):
    """The user's code raised (init, on_tick or render): the sandbox lives on."""

    def __init__(self, message: str, traceback: str = "") -> None:
        super().__init__(message)
        self.traceback = traceback


@dataclass
class TickReply:
    """What one ``on_tick`` produced: intents, the lines it logged, and the error that escaped
    it (``mode_error``: a ``ModeError``, the observe mode's refusal; ``error``: anything else)."""

    intents: list[dict[str, Any]] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    mode_error: str | None = None
    error: str | None = None
    traceback: str = ""


class StrategyHost(Protocol):
    """One running strategy module (a sandbox container, or a process when allowed)."""

    def start(self, identity: dict[str, Any], config: dict[str, Any], mode: str) -> list[str]:
        """Start the sandbox and ``init``; returns the logs. Raises StrategyError (the user's
        init failed) or StrategyCrashed."""
        ...

    def tick(self, tick: dict[str, Any], account: dict[str, Any]) -> TickReply: ...

    def set_mode(self, mode: str) -> None:
        """Switch the context's capability (``observe`` / ``active``) in place."""
        ...

    def render(self) -> list[dict[str, Any]]: ...

    def stop(self) -> None:
        """Stop and remove the sandbox (idempotent)."""
        ...

    @property
    def alive(self) -> bool: ...
