"""Abuse limits of the lobby beyond the edges' rate limits (``actors.edges.limits``): lockouts after
repeated failures. Plain objects with an injected clock (tests move time, never sleep);
thread-safe, because logins are checked on the actor thread and settled on a hash worker."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from actors import clock
from actors.edges.limits import MAX_KEYS

__all__ = ["Lockout", "LockoutRules"]

@dataclass(frozen=True)
class LockoutRules:
    """``failures`` failed attempts within ``window_s`` lock the key for ``lockout_s``."""

    failures: int
    window_s: float
    lockout_s: float

    def __post_init__(self) -> None:
        if self.failures < 1 or self.window_s <= 0 or self.lockout_s <= 0:
            raise ValueError("a lockout needs failures >= 1, window_s > 0 and lockout_s > 0")


class Lockout:
    """Failures by key: ``locked_for`` says how long a key stays locked; a success clears it."""

    def __init__(self, rules: LockoutRules,
                 clock_fn: Callable[[], float] = clock.monotonic) -> None:
        self.rules = rules
        self.clock = clock_fn
        self._failures: dict[Hashable, list[float]] = {}
        self._locked: dict[Hashable, float] = {}  # key -> locked until
        self._lock = threading.Lock()

    def locked_for(self, key: Hashable) -> float:
        """Seconds ``key`` stays locked (0.0: it may try)."""
        with self._lock:
            until = self._locked.get(key)
            if until is None:
                return 0.0
            left = until - self.clock()
            if left <= 0:
                del self._locked[key]
                return 0.0
            return left

    def failed(self, key: Hashable) -> float:
        """Note a failure; returns the lockout it started (0.0 if none)."""
        rules = self.rules
        with self._lock:
            now = self.clock()
            recent = [t for t in self._failures.get(key, ()) if now - t < rules.window_s]
            recent.append(now)
            if len(recent) >= rules.failures:
                self._failures.pop(key, None)
                self._locked[key] = now + rules.lockout_s
                return rules.lockout_s
            if len(self._failures) >= MAX_KEYS:
                self._forget_old(now)
            self._failures[key] = recent
            return 0.0

    def succeeded(self, key: Hashable) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def _forget_old(self, now: float) -> None:
        window = self.rules.window_s
        for key in [k for k, ts in self._failures.items() if now - ts[-1] >= window]:
            del self._failures[key]
        for key in [k for k, until in self._locked.items() if until <= now]:
            del self._locked[key]
