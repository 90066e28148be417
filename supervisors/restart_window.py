"""Restart intensity: at most ``intensity`` restarts within ``period_s`` (OTP's ``add_restart``).

Exactly OTP's arithmetic: time is counted in whole seconds of a monotonic clock (Erlang's
``erlang:monotonic_time(1)``), a restart ``period_s`` or fewer whole seconds ago still counts, and
the restart that makes the count exceed ``intensity`` is the one that makes the supervisor give up.
So with intensity 1 and period 5, restarts at 0.9 s and 5.1 s (whole seconds 0 and 5) are two
within the period. The clock is injected so tests advance time instead of sleeping.
"""

from __future__ import annotations

import math
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
        self._recent: deque[int] = deque()  # whole seconds, oldest first

    def _now(self) -> int:
        return math.floor(self._clock())

    def _expire(self, now: int) -> None:
        threshold = now - self.period_s
        while self._recent and self._recent[0] < threshold:
            self._recent.popleft()

    def allow(self) -> bool:
        """Record a restart now; False means the limit is exceeded and the supervisor must give up."""
        now = self._now()
        self._expire(now)
        self._recent.append(now)
        return len(self._recent) <= self.intensity

    @property
    def budget_left(self) -> int:
        self._expire(self._now())
        return max(0, self.intensity - len(self._recent))
