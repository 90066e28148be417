"""Restart intensity: at most ``intensity`` restarts within any ``period_s`` (OTP's add_restart).

The clock is injected so tests advance time instead of sleeping.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class RestartWindow:
    """Remembers recent restarts; ``allow`` says whether one more keeps within the limit."""

    def __init__(self, intensity: int, period_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.intensity = intensity
        self.period_s = period_s
        self._clock = clock
        self._recent: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self._recent and self._recent[0] <= now - self.period_s:
            self._recent.popleft()

    def allow(self) -> bool:
        """Record a restart now; False means the limit is exceeded and the supervisor must give up."""
        now = self._clock()
        self._expire(now)
        self._recent.append(now)
        return len(self._recent) <= self.intensity

    @property
    def budget_left(self) -> int:
        self._expire(self._clock())
        return max(0, self.intensity - len(self._recent))
