"""A scripted strategy host for the engine's tests: the sandbox protocol's behaviour (context
modes, intents, refusals, crashes) in this process, for trusted test logic only.

The reconciler is what these tests examine, so its hosts must be cheap and crash on command:
``ScriptedHost`` runs a fixed SMA-cross logic on the ticks, counts every start and stop in a
shared :class:`HostLedger` (how many hosts of each instance are alive: never more than one),
and raises :class:`StrategyCrashed` when the ledger says so. The real sandbox host is tested in
tests/runners and tests/hostile, and with the engine end to end in tests/live/test_live_docker.py.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from typing import Any

from live.store import Desired
from runners.strategyhost import StrategyCrashed, StrategyError, TickReply


class HostLedger:
    """What every scripted host did, shared across engines."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.alive: Counter[str] = Counter()
        self.starts: Counter[str] = Counter()
        self.max_alive: Counter[str] = Counter()
        self.crash_next: set[str] = set()
        self.fail_init: set[str] = set()
        self.ticks: defaultdict[str, list[str]] = defaultdict(list)
        self.modes: defaultdict[str, list[str]] = defaultdict(list)


class ScriptedHost:
    def __init__(self, want: Desired, ledger: HostLedger) -> None:
        self.want = want
        self.ledger = ledger
        self.mode = "observe"
        self.closes: list[float] = []
        self.n = 0
        self._alive = False

    @property
    def iid(self) -> str:
        return self.want.id

    @property
    def alive(self) -> bool:
        return self._alive

    def start(self, identity: dict[str, Any], config: dict[str, Any], mode: str) -> list[str]:
        with self.ledger.lock:
            self.ledger.starts[self.iid] += 1
            self.ledger.alive[self.iid] += 1
            self.ledger.max_alive[self.iid] = max(
                self.ledger.max_alive[self.iid], self.ledger.alive[self.iid]
            )
            self._alive = True
            if self.iid in self.ledger.fail_init:
                self.ledger.fail_init.discard(self.iid)
                raise StrategyError("init failed on purpose")
        self.mode = mode
        self.config = config
        return [f"init {identity['id']} v{identity['version']}"]

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self.ledger.modes[self.iid].append(mode)

    def tick(self, tick: dict[str, Any], account: dict[str, Any]) -> TickReply:
        with self.ledger.lock:
            if self.iid in self.ledger.crash_next:
                self.ledger.crash_next.discard(self.iid)
                self._die()
                raise StrategyCrashed("the sandbox exited with code 137 (killed)")
            self.ledger.ticks[self.iid].append(tick["ts"])
        self.n += 1
        self.closes.append(tick["close"])
        fast, slow = int(self.config.get("fast", 3)), int(self.config.get("slow", 8))
        reply = TickReply(logs=[])
        if len(self.closes) < slow:
            return reply
        f = sum(self.closes[-fast:]) / fast
        s = sum(self.closes[-slow:]) / slow
        pos = account["position"]
        side = "buy" if f > s and pos <= 0 else "sell" if f < s and pos > 0 else None
        if side is None:
            return reply
        qty = 10.0 if side == "buy" else pos
        intent = {"op": "place", "client_id": f"o{self.n}-{tick['ts']}", "side": side,
                  "qty": qty, "type": "market", "symbol": tick["symbol"]}  # fmt: skip
        if self.mode != "active":
            intent["refused"] = "observe mode: orders are recorded, never placed"
            reply.intents.append(intent)
            reply.mode_error = "observe mode: orders are recorded, never placed"
        else:
            reply.intents.append(intent)
        return reply

    def render(self) -> list[dict[str, Any]]:
        return [{"type": "metric", "label": "bars", "value": self.n}]

    def stop(self) -> None:
        if self._alive:
            self._die()

    def _die(self) -> None:
        with self.ledger.lock:
            if self._alive:
                self._alive = False
                self.ledger.alive[self.iid] -= 1
