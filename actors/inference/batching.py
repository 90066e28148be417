"""Dynamic batching rules (Triton's dynamic batcher, BentoML's adaptive batching), plain Python.

``BatchPolicy.wait_s(pending, oldest_age_s, now)`` says how long the dispatcher may still hold the
images waiting for an idle worker before it sends them as one batch: 0 means send now.

* A full batch (``max_size`` waiting) leaves at once.
* Nothing waits longer than ``max_delay_s`` (from the oldest image's arrival).
* Adaptive: the dispatcher waits only while more images are expected before the delay runs out,
  from the arrival rate of the last ``window_s`` (a sliding count). Under a light load (fewer than
  one arrival expected in the time left) a lone image leaves at once, with batch-1 latency; under
  a heavy one it waits just long enough to fill the batch. Workers that are all busy make batches
  by themselves: images pile up, and the next free worker takes ``max_size`` at once.
"""

from __future__ import annotations

from collections import deque

__all__ = ["BatchPolicy"]


class BatchPolicy:
    """Batch size and delay rules; arrivals are reported with ``arrived``. Times are seconds on
    the caller's clock (the actor's, which tests replace)."""

    def __init__(self, max_size: int, max_delay_s: float, *, adaptive: bool = True,
                 window_s: float = 1.0) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be >= 1, got {max_size}")
        if max_delay_s < 0 or window_s <= 0:
            raise ValueError("max_delay_s must be >= 0 and window_s > 0")
        self.max_size = max_size
        self.max_delay_s = max_delay_s
        self.adaptive = adaptive
        self.window_s = window_s
        self._arrivals: deque[tuple[float, int]] = deque()
        self._in_window = 0

    def arrived(self, count: int, now: float) -> None:
        """``count`` images joined the queue at ``now``."""
        if count > 0:
            self._arrivals.append((now, count))
            self._in_window += count
        self._expire(now)

    def rate(self, now: float) -> float:
        """Arrivals per second over the last ``window_s``."""
        self._expire(now)
        return self._in_window / self.window_s

    def wait_s(self, pending: int, oldest_age_s: float, now: float) -> float:
        """0: send up to ``max_size`` now; otherwise how long to hold them for more."""
        if pending <= 0:
            return 0.0
        if pending >= self.max_size or oldest_age_s >= self.max_delay_s:
            return 0.0
        remaining = self.max_delay_s - oldest_age_s
        if not self.adaptive:
            return remaining
        rate = self.rate(now)
        if rate * remaining < 1.0:
            return 0.0   # no other image is expected in time: waiting would only add latency
        return min(remaining, (self.max_size - pending) / rate)

    def _expire(self, now: float) -> None:
        horizon = now - self.window_s
        while self._arrivals and self._arrivals[0][0] <= horizon:
            self._in_window -= self._arrivals.popleft()[1]
