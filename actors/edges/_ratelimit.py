"""A logger wrapper that writes at most one record per interval, so a flood of bad input at an edge
cannot turn into a flood of log lines (and a full disk) while still being visible."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    """Logs the first event of each interval and counts the rest; the next record says how many.

    The clock is injected so tests advance time instead of sleeping. Not thread-safe: each edge owns
    one and uses it from its loop thread.
    """

    def __init__(self, logger: logging.Logger, *, interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._clock = clock
        self._next_at = float("-inf")
        self.suppressed = 0

    def log(self, level: int, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless another record went out less than ``interval_s`` ago.

        Returns whether a record was written. The formatting is skipped for suppressed events, which
        is what keeps the cost of a garbage flood at one counter increment.
        """
        now = self._clock()
        if now < self._next_at:
            self.suppressed += 1
            return False
        self._next_at = now + self._interval_s
        if self.suppressed:
            msg = f"{msg} (%d similar suppressed)"
            args = (*args, self.suppressed)
            self.suppressed = 0
        self._logger.log(level, msg, *args)
        return True

    def warning(self, msg: str, *args: object) -> bool:
        return self.log(logging.WARNING, msg, *args)
