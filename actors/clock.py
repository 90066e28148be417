"""The clock every actor reads (``ActorBehaviour.clock()``), and a mock of it for tests.

By default it is ``time.monotonic``. A test replaces it for the whole process with
``use_clock(MockClock())`` (as Trio's ``MockClock``): restart windows, backoffs and the rest of
what actors compute from the time then follow the mock, which moves only when the test says so.
Timers still wait real time: a test advances the mock by what an actor computed, then waits for the
event. Only simpleSystemBase runs every actor in the test's process, so only there does a mock
reach the actors.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["MockClock", "backoff_delay", "monotonic", "use_clock"]

_current: Callable[[], float] = time.monotonic


def monotonic() -> float:
    """Seconds of the clock actors read now (monotonic; only differences mean anything)."""
    return _current()


def backoff_delay(first_s: float, max_s: float, attempt: int) -> float:
    """Exponential backoff: ``first_s * 2**attempt`` (attempt 0-based), capped at ``max_s``. The
    one formula behind a supervisor's restart backoff, a store's retry and a peer's lookup."""
    return min(max_s, first_s * 2.0 ** min(attempt, 62))


class MockClock:
    """A monotonic clock that stands still until ``advance`` moves it."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock does not go back")
        self.now += seconds


@contextmanager
def use_clock(clock: Callable[[], float]) -> Iterator[Callable[[], float]]:
    """Within the block, every actor of this process reads ``clock``."""
    global _current
    previous, _current = _current, clock
    try:
        yield clock
    finally:
        _current = previous
