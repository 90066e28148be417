"""Rate limits by key for an edge's clients (an address, an account): a token bucket per key,
``burst`` at once and ``per_s`` a second after that. A plain object with an injected clock (tests
move time, never sleep); thread-safe, for edges that check on one thread and settle on another."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from actors import clock

__all__ = ["MAX_KEYS", "RateLimiter", "RateRules"]

MAX_KEYS = 100_000  # keys kept at most: past that, those with nothing to remember go first


@dataclass(frozen=True)
class RateRules:
    """``burst`` at once, then ``per_s`` a second (a token bucket)."""

    burst: int
    per_s: float

    def __post_init__(self) -> None:
        if self.burst < 1 or self.per_s <= 0:
            raise ValueError("a rate needs burst >= 1 and per_s > 0")


class RateLimiter:
    """One token bucket per key. At ``max_keys`` keys, buckets that have refilled (nothing to
    remember) are forgotten first, then the least recently used."""

    def __init__(self, rules: RateRules, clock_fn: Callable[[], float] = clock.monotonic, *,
                 max_keys: int = MAX_KEYS) -> None:
        self.rules = rules
        self.clock = clock_fn
        self.max_keys = max_keys
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, at), LRU order
        self._lock = threading.Lock()

    def take(self, key: Hashable) -> float:
        """0.0 if ``key`` may go now (one token taken), else the seconds until it may."""
        rules = self.rules
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.pop(key, (float(rules.burst), now))
            tokens = min(float(rules.burst), tokens + (now - at) * rules.per_s)
            if len(self._buckets) >= self.max_keys:
                self._forget(now)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return (1.0 - tokens) / rules.per_s
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0

    def _forget(self, now: float) -> None:
        burst, per_s = float(self.rules.burst), self.rules.per_s
        for key in [k for k, (t, at) in self._buckets.items() if t + (now - at) * per_s >= burst]:
            del self._buckets[key]
        while len(self._buckets) >= self.max_keys:
            del self._buckets[next(iter(self._buckets))]
