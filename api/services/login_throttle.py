"""Failed log-in throttling: too many wrong passwords in a window → 429 with ``Retry-After``.

Counted per (client address, username) — an attacker guessing one account — and per client
address alone with a larger allowance — one address spraying many accounts. A successful log-in
clears its (address, username) count. In memory, per API process: enough for the single-process
``alphaforge serve``; a multi-replica deployment puts a proxy limit in front as well.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from api.errors import TooManyRequests

__all__ = ["LoginThrottle"]

MAX_KEYS = 10_000  # memory bound: the oldest keys are forgotten first
IP_FACTOR = 4  # an address may fail this many times the per-account allowance


class LoginThrottle:
    """Sliding-window counts of failed log-ins."""

    def __init__(
        self,
        max_failures: int = 5,
        window_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def check(self, address: str, username: str) -> None:
        """Raise :class:`TooManyRequests` when this address or account is over its allowance."""
        now = self._clock()
        with self._lock:
            for key, allowance, what in (
                (("user", f"{address}\0{username.lower()}"), self.max_failures, "this account"),
                (("ip", address), self.max_failures * IP_FACTOR, "this address"),
            ):
                times = self._recent(key, now)
                if len(times) >= allowance:
                    wait = max(1, math.ceil(times[0] + self.window_s - now))
                    raise TooManyRequests(
                        f"Too many failed log-ins for {what}; try again in {wait} s", wait
                    )

    def failed(self, address: str, username: str) -> None:
        """Count one failed attempt."""
        now = self._clock()
        with self._lock:
            for key in (("user", f"{address}\0{username.lower()}"), ("ip", address)):
                self._failures.setdefault(key, deque()).append(now)
                self._failures.move_to_end(key)
            while len(self._failures) > MAX_KEYS:
                self._failures.popitem(last=False)

    def succeeded(self, address: str, username: str) -> None:
        """Forget the account's failures from this address."""
        with self._lock:
            self._failures.pop(("user", f"{address}\0{username.lower()}"), None)
