"""Running a strategy module: one long-lived sandbox per strategy instance (issue 14).

A strategy module (live/README.md; the SDK is ``runners/sandbox/alphaforge_strategy.py``, its
entrypoint ``runners/sandbox/strategy_entry.py``, the user's guide docs/strategies.md) runs in the
same Docker sandbox, under the same policy and limits, as a custom node, but the container lives
as long as the instance is loaded: the host writes one JSON request per line on its stdin and
reads one JSON reply per line from its stdout. Everything that comes back is untrusted and
validated here (runners/strategyreplies.py).

Requests (host → sandbox) and replies (sandbox → host), one line each; every request carries a
``seq`` number its reply echoes (a reply out of step is a bad reply):

- ``{"op": "init", "identity": {...}, "config": {...}, "mode": "observe"|"active"}`` →
  ``{"ok": true, "logs": [...]}``: the module is imported, its one ``Strategy`` subclass
  instantiated with a context and the config (its CONFIG_SCHEMA's top-level defaults filled
  in), ``init()`` called (its return is the state).
- ``{"op": "tick", "tick": {...}, "account": {...}}`` → ``{"ok": true, "intents": [...],
  "logs": [...]}``: ``on_tick(tick)`` called; ``account`` is what the context answers from:
  ``{"cash": float, "positions": {symbol: qty}, "open_orders": [order, ...], "prices":
  {symbol: price}}`` (all optional; the tick's own symbol is priced by the tick). Each intent
  is an order the strategy placed (``{"op": "place", "client_id", "symbol", "side", "qty",
  "type", "limit_price"}``) or a cancel (``{"op": "cancel", "client_id"}``). In observe mode
  ``context.place_order`` raises ``ModeError``; the attempt comes back as an intent with
  ``"refused": "<the error's text>"`` and the reply has ``"mode_error"`` set when the error
  escaped ``on_tick``. Another exception escaping ``on_tick`` is ``{"ok": false, ...}`` with
  the intents recorded before it: :class:`TickReply` ``error`` (the sandbox lives on).
- ``{"op": "render"}`` → ``{"ok": true, "widgets": [...]}`` (``render()``'s widgets).
- ``{"op": "describe"}`` → ``{"ok": true, "name", "config_schema", "doc"}``: the module's
  strategy class, without instantiating it (what a config form needs).
- ``{"op": "mode", "mode": ...}`` → ``{"ok": true}``: observe ↔ active without a restart
  (the strategy keeps its state).
- ``{"op": "stop"}`` → the process exits.

A failing call replies ``{"ok": false, "error": "<one line>", "traceback": "..."}`` (the user's
frames only). A reply that is not one JSON object of at most :data:`MAX_REPLY_BYTES`, a reply
late by more than the op's timeout, or the process ending, is a crash: :class:`StrategyCrashed`
with the reason (out of memory, killed, timed out, bad reply), after which the host is dead
(its sandbox removed).

Hosts: :class:`DockerStrategyHost` (the sandbox) and :class:`ProcessStrategyHost` (a local
process, NOT a sandbox, only when the operator enabled the process runner);
:func:`strategy_host` picks one.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from runners.custom import Limits
from runners.strategyreplies import ReplyError, check_intents, check_logs, check_widgets
from runners.workroot import sandbox_work_root

__all__ = [
    "MAX_REPLY_BYTES",
    "DockerStrategyHost",
    "ProcessStrategyHost",
    "StrategyCrashed",
    "StrategyError",
    "StrategyHost",
    "TickReply",
    "strategy_host",
]

MAX_REPLY_BYTES = 1 << 20


class StrategyCrashed(RuntimeError):
    """The strategy's sandbox is gone or broke the protocol; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StrategyError(RuntimeError):
    """The user's code raised (init, on_tick or render): the sandbox lives on."""

    def __init__(self, message: str, traceback: str = "", logs: list[str] | None = None) -> None:
        super().__init__(message)
        self.traceback = traceback
        self.logs = logs or []  # what the call printed before it failed


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


MODES = ("observe", "active")
_STDERR_TAIL = 8192


def new_slot(work_root: Path | None = None) -> Path:
    """A fresh job directory ``strategy-<pid>-<random>`` under the work root (default: the node
    runner's, ``$TMPDIR/alphaforge-sandbox``); the directories a dead process of this host left
    there go first (its sandbox is the sweeper's, its files are ours)."""
    root = Path(work_root or sandbox_work_root())
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    remove_leftover_slots(root)
    return Path(tempfile.mkdtemp(prefix=f"strategy-{os.getpid()}-", dir=root))


def remove_leftover_slots(root: Path) -> list[Path]:
    """Remove the ``strategy-<pid>-*`` directories under ``root`` whose process is gone."""
    removed = []
    for path in root.glob("strategy-*-*"):
        pid = path.name.split("-")[1]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        except PermissionError:
            pass  # another user's live process
    return removed


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"a running strategy's mode is observe or active, got {mode!r}")


class _Replies:
    """What a sandbox writes: stdout cut into reply lines (``lines``: ``("line", bytes)``,
    ``("over", b"")`` for a line over MAX_REPLY_BYTES, ``("eof", b"")``), stderr's tail kept."""

    def __init__(self) -> None:
        self.lines: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._buf = bytearray()
        self._over = False
        self._tail = bytearray()

    def out(self, data: bytes) -> None:
        if self._over:
            return
        start = len(self._buf)
        self._buf += data
        while (nl := self._buf.find(b"\n", start)) >= 0:
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            start = 0
            if len(line) >= MAX_REPLY_BYTES:
                self._overflow()
                return
            self.lines.put(("line", line))
        if len(self._buf) >= MAX_REPLY_BYTES:
            self._overflow()

    def _overflow(self) -> None:
        self._over = True
        self._buf.clear()
        self.lines.put(("over", b""))

    def err(self, data: bytes) -> None:
        self._tail += data
        del self._tail[:-_STDERR_TAIL]

    def eof(self) -> None:
        self.lines.put(("eof", b""))

    @property
    def stderr_tail(self) -> str:
        return self._tail.decode("utf-8", "replace")


class Box(Protocol):
    """A sandbox as the host drives it (runners/docker/strategy.py ``StrategyContainer``,
    runners/process.py ``StrategyProcess``): launch the entrypoint on ``code`` (written into
    ``slot``, a fresh directory that is the box's from then on) with its output
    going to ``sink`` (``out``, ``err``, ``eof``, ``stderr_tail``), write its stdin, kill it, say
    why it ended (once its output ended), remove it and its files."""

    def launch(self, code: str, slot: Path, sink: Any) -> None: ...

    def send(self, data: bytes) -> None: ...

    def kill(self) -> None: ...

    def exit_reason(self) -> str: ...

    def remove(self) -> None: ...


def _default_limits() -> Limits:
    from runners.caps import operator_caps

    return Limits.default(operator_caps())


class _SandboxHost:
    """The protocol over a sandbox's stdin and stdout, whatever the sandbox (:class:`Box`): one
    call at a time; :meth:`stop` from any thread."""

    kind = ""

    def __init__(
        self,
        code: str,
        box: Box,
        *,
        instance_id: str,
        limits: Limits | None = None,
        tick_timeout_s: float = 10.0,
        init_timeout_s: float = 60.0,
        work_root: Path | None = None,
    ) -> None:
        if not isinstance(code, str) or not code.strip():
            raise ValueError(f"strategy instance {instance_id!r}: the module's code is empty")
        if not instance_id or len(instance_id) > 128:
            raise ValueError(f"a strategy instance id is 1 to 128 characters, got {instance_id!r}")
        if tick_timeout_s <= 0 or init_timeout_s <= 0:
            raise ValueError("the tick and init timeouts must be above 0 seconds")
        self.code = code
        self.box = box
        self.instance_id = instance_id
        self.limits = limits or _default_limits()
        self.tick_timeout_s = tick_timeout_s
        self.init_timeout_s = init_timeout_s
        self.work_root = work_root
        self._replies = _Replies()
        self._lock = threading.Lock()
        self._release_lock = threading.Lock()
        self._seq = 0
        self._launched = False
        self._released = False
        self._stopped = False
        self._dead: str | None = None

    # -- the StrategyHost interface ---------------------------------------------------------

    @property
    def alive(self) -> bool:
        """True from a successful start until a crash or :meth:`stop`."""
        return self._launched and self._dead is None and not self._stopped

    def start(self, identity: dict[str, Any], config: dict[str, Any], mode: str) -> list[str]:
        """Launch the sandbox (unless :meth:`describe` did) and ``init``; returns its logs."""
        _check_mode(mode)
        self._ensure_launched()
        request = {"op": "init", "identity": identity, "config": config, "mode": mode}
        reply = self._call(request, self.init_timeout_s, "init")
        logs = self._checked(check_logs, reply.get("logs"))
        if not reply["ok"]:
            raise StrategyError(self._text(reply, "error"), self._text(reply, "traceback"), logs)
        return logs

    def describe(self) -> dict[str, Any]:
        """The module's strategy class: ``name``, ``config_schema`` (a dict), ``doc``; launches
        the sandbox if needed. StrategyError when the module does not load."""
        self._ensure_launched()
        reply = self._call({"op": "describe"}, self.init_timeout_s, "loading the module")
        if not reply["ok"]:
            logs = self._checked(check_logs, reply.get("logs"))
            raise StrategyError(self._text(reply, "error"), self._text(reply, "traceback"), logs)
        schema = reply.get("config_schema")
        if not isinstance(schema, dict):
            raise StrategyError("CONFIG_SCHEMA must be a dict (a JSON Schema)")
        return {
            "name": self._text(reply, "name"),
            "config_schema": schema,
            "doc": self._text(reply, "doc"),
        }

    def tick(self, tick: dict[str, Any], account: dict[str, Any]) -> TickReply:
        """``on_tick(tick)`` with ``account`` (see the module docstring); StrategyCrashed when
        the sandbox is gone or took longer than the tick timeout."""
        request = {"op": "tick", "tick": tick, "account": account}
        reply = self._call(request, self.tick_timeout_s, "on_tick")
        intents = self._checked(check_intents, reply.get("intents"))
        logs = self._checked(check_logs, reply.get("logs"))
        if reply["ok"]:
            return TickReply(intents, logs, mode_error=self._text(reply, "mode_error") or None)
        error, trace = self._text(reply, "error"), self._text(reply, "traceback")
        return TickReply(intents, logs, error=error or "on_tick failed", traceback=trace)

    def render(self) -> list[dict[str, Any]]:
        """``render()``'s widgets, checked (StrategyError naming the widget otherwise)."""
        reply = self._call({"op": "render"}, self.tick_timeout_s, "render")
        logs = self._checked(check_logs, reply.get("logs"))
        if not reply["ok"]:
            raise StrategyError(self._text(reply, "error"), self._text(reply, "traceback"), logs)
        try:
            return check_widgets(reply.get("widgets"))
        except ReplyError as exc:
            raise StrategyError(str(exc), logs=logs) from None

    def set_mode(self, mode: str) -> None:
        """Switch observe ↔ active; the strategy keeps its state."""
        _check_mode(mode)
        reply = self._call({"op": "mode", "mode": mode}, self.tick_timeout_s, "switching mode")
        if not reply["ok"]:
            raise StrategyError(self._text(reply, "error"), self._text(reply, "traceback"))

    def stop(self) -> None:
        """Stop and remove the sandbox (idempotent; from any thread, also during a call)."""
        if self._stopped:
            return
        self._stopped = True
        if self._launched and self._dead is None:
            with contextlib.suppress(OSError):
                self._send(b'{"op": "stop"}\n')
        self._release()

    # -- the protocol ---------------------------------------------------------------------------

    def _ensure_launched(self) -> None:
        with self._lock:
            if self._stopped:
                raise StrategyCrashed("the strategy host was stopped")
            if self._dead is not None:
                raise StrategyCrashed(self._dead)
            if self._launched:
                return
            try:
                self._launch()
            except BaseException as exc:
                # a host launches once: what failed is what every later call says
                self._dead = exc.reason if isinstance(exc, StrategyCrashed) else repr(exc)
                self._release()
                raise
            self._launched = True

    def _call(self, request: dict[str, Any], timeout: float, what: str) -> dict[str, Any]:
        """Send one request and wait for its reply; every failure is a crash."""
        with self._lock:
            if self._stopped:
                raise StrategyCrashed("the strategy host was stopped")
            if self._dead is not None:
                raise StrategyCrashed(self._dead)
            if not self._launched:
                raise StrategyCrashed("the strategy host was not started")
            self._seq += 1
            line = json.dumps({**request, "seq": self._seq}, default=str) + "\n"
            try:
                self._send(line.encode("utf-8"))
            except OSError:
                raise self._crash(self._ended()) from None
            try:
                kind, data = self._replies.lines.get(timeout=timeout)
            except queue.Empty:
                self._kill()
                reason = f"{what} took longer than {timeout:g} s; the sandbox was stopped"
                raise self._crash(reason) from None
            if kind == "eof":
                raise self._crash(self._ended())
            if kind == "over":
                self._kill()
                raise self._crash(f"bad reply: a line over {MAX_REPLY_BYTES} bytes")
            try:
                reply = json.loads(data)
            except ValueError:
                self._kill()
                raise self._crash(f"bad reply: not JSON: {data[:120]!r}") from None
            if (
                not isinstance(reply, dict)
                or reply.get("seq") != self._seq
                or not isinstance(reply.get("ok"), bool)
            ):
                self._kill()
                raise self._crash(
                    f"bad reply: not the reply to request {self._seq}: {data[:120]!r}"
                )
            return reply

    def _ended(self) -> str:
        return "the strategy host was stopped" if self._stopped else self._exit_reason()

    def _crash(self, reason: str) -> StrategyCrashed:
        """The host is dead from now on: its sandbox released, ``reason`` what every call says."""
        self._dead = self._dead or reason
        self._release()
        return StrategyCrashed(self._dead)

    def _checked(self, check: Any, value: Any) -> Any:
        try:
            return check(value)
        except ReplyError as exc:
            self._kill()
            raise self._crash(f"bad reply: {exc}") from None

    def _text(self, reply: dict[str, Any], key: str) -> str:
        value = reply.get(key)
        if value is None:
            return ""
        if not isinstance(value, str) or len(value) > 64 * 1024:
            self._kill()
            raise self._crash(f"bad reply: {key} is not a short text")
        return value

    def _release(self) -> None:
        with self._release_lock:
            if self._released:
                return
            self._released = True
        self._cleanup()

    def _launch(self) -> None:
        from runners.jobs import SandboxFailure

        try:
            self.box.launch(self.code, new_slot(self.work_root), self._replies)
        except SandboxFailure as exc:
            raise StrategyCrashed(str(exc)) from None

    def _send(self, data: bytes) -> None:
        self.box.send(data)

    def _kill(self) -> None:
        self.box.kill()

    def _exit_reason(self) -> str:
        return self.box.exit_reason()

    def _cleanup(self) -> None:
        self.box.remove()


class DockerStrategyHost(_SandboxHost):
    """A strategy in its own long-lived Docker sandbox: the sandbox policy's container with
    stdin open, after the start-up self-test passed (as for nodes). The container's mechanics
    (policy check, attach, lease, exit reasons) are runners/docker/strategy.py's. Over a
    timeout the container is killed; any crash, and :meth:`stop`, removes it."""

    kind = "docker"

    def __init__(
        self,
        code: str,
        *,
        instance_id: str,
        limits: Limits | None = None,
        tick_timeout_s: float = 10.0,
        init_timeout_s: float = 60.0,
        work_root: Path | None = None,
        client: Any = None,
        lease_s: float | None = None,
    ) -> None:
        from runners.docker.strategy import StrategyContainer

        limits = limits or _default_limits()
        self.container = StrategyContainer(client, limits, instance_id, lease_s=lease_s)
        super().__init__(
            code,
            self.container,
            instance_id=instance_id,
            limits=limits,
            tick_timeout_s=tick_timeout_s,
            init_timeout_s=init_timeout_s,
            work_root=work_root,
        )

    @property
    def container_id(self) -> str | None:
        """The sandbox container's id once launched."""
        return self.container.container_id


class ProcessStrategyHost(_SandboxHost):
    """The strategy's entrypoint as a local subprocess: NOT a sandbox (no network, filesystem or
    identity isolation; runners/process.py ``StrategyProcess``). Only when the operator enabled
    the development process runner (``ALPHAFORGE_ALLOW_PROCESS_RUNNER=1``, else
    ProcessRunnerDisabled). Tests use it for the protocol and the SDK."""

    kind = "process"

    def __init__(
        self,
        code: str,
        *,
        instance_id: str,
        limits: Limits | None = None,
        tick_timeout_s: float = 10.0,
        init_timeout_s: float = 60.0,
        work_root: Path | None = None,
    ) -> None:
        from runners.process import StrategyProcess

        limits = limits or _default_limits()
        super().__init__(
            code,
            StrategyProcess(limits),
            instance_id=instance_id,
            limits=limits,
            tick_timeout_s=tick_timeout_s,
            init_timeout_s=init_timeout_s,
            work_root=work_root,
        )


def strategy_host(
    code: str,
    *,
    instance_id: str,
    limits: Limits | None = None,
    choice: str = "auto",
    tick_timeout_s: float = 10.0,
    init_timeout_s: float = 60.0,
) -> DockerStrategyHost | ProcessStrategyHost:
    """A (not yet started) host for one strategy instance: ``choice`` ``docker``, ``process``
    (only when the operator enabled it) or ``auto`` (Docker when an engine answers, else the
    process host if enabled, else SandboxUnavailable: user code never runs unsandboxed by
    accident)."""
    kwargs: dict[str, Any] = {
        "instance_id": instance_id,
        "limits": limits,
        "tick_timeout_s": tick_timeout_s,
        "init_timeout_s": init_timeout_s,
    }
    if choice == "process":
        return ProcessStrategyHost(code, **kwargs)
    if choice == "docker":
        return DockerStrategyHost(code, **kwargs)
    kind, client = resolve_auto(choice)
    if kind == "process":
        return ProcessStrategyHost(code, **kwargs)
    return DockerStrategyHost(code, client=client, **kwargs)


def resolve_auto(choice: str) -> tuple[str, Any]:
    """Where ``auto`` runs a strategy: ``("docker", client)`` when an engine answers, else
    ``("process", None)`` where the operator allows the unsandboxed runner; a
    :class:`SandboxUnavailable` otherwise (and a ValueError for a choice that is not auto)."""
    if choice != "auto":
        raise ValueError(f"a strategy host is docker, process or auto, got {choice!r}")
    from docker.errors import DockerException

    from runners.docker.engine import docker_client
    from runners.docker.runner import SandboxUnavailable
    from runners.process import process_runner_enabled

    try:
        client = docker_client(timeout=10)
        client.ping()
    except DockerException as exc:
        if process_runner_enabled():
            return "process", None
        raise SandboxUnavailable(
            f"no Docker engine answers ({exc}); refusing to run a strategy without a sandbox. "
            "On a development machine an operator may set ALPHAFORGE_ALLOW_PROCESS_RUNNER=1."
        ) from None
    return "docker", client
