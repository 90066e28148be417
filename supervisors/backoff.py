"""Exponential backoff between restarts, as Akka's BackoffSupervisor: min, max, jitter, reset."""

from __future__ import annotations

import random
from dataclasses import dataclass

from actors.clock import backoff_delay
from protocols.errors import SpecError


@dataclass(frozen=True)
class Backoff:
    """Delay before restart ``n`` (0-based) is ``min(max_s, min_s * 2**n) * (1 + U(0, jitter))``.

    The attempt count goes back to zero once the child has run ``reset_after_s`` without failing
    (default: ``max_s``), so a child that crashes once a day restarts at once each time.
    """

    min_s: float
    max_s: float
    jitter: float = 0.2
    reset_after_s: float | None = None

    def __post_init__(self) -> None:
        for field_name in ("min_s", "max_s", "jitter", "reset_after_s"):
            value = getattr(self, field_name)
            if (value is not None or field_name != "reset_after_s") and (
                    not isinstance(value, (int, float)) or isinstance(value, bool)):
                raise SpecError(f"backoff {field_name} must be a number, got {value!r}")
        if not 0 <= self.min_s <= self.max_s:
            raise SpecError(f"backoff needs 0 <= min_s <= max_s, got {self.min_s}, {self.max_s}")
        if not 0 <= self.jitter <= 1:
            raise SpecError(f"backoff jitter must be within [0, 1], got {self.jitter}")

    def delay(self, attempt: int, rng: random.Random) -> float:
        base = backoff_delay(self.min_s, self.max_s, attempt)
        return base * (1 + rng.uniform(0, self.jitter)) if self.jitter else base

    @property
    def reset_after(self) -> float:
        return self.max_s if self.reset_after_s is None else self.reset_after_s
