"""Cancellable timers on top of Thespian's ``wakeupAfter``, which cannot be cancelled.

Each timer is an id in a table; a wakeup whose id is gone from the table is dropped. A restarted
actor is a new object with an empty table, so timers never outlive the incarnation that set them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TimerTick:
    """The payload of a Thespian wakeup that belongs to a ptr timer."""

    timer_id: int


@dataclass
class Timer:
    timer_id: int
    delay_s: float
    message: Any
    repeat: bool


class TimerTable:
    """The live timers of one actor."""

    def __init__(self) -> None:
        self._next_id = 0
        self._live: dict[int, Timer] = {}

    def add(self, delay_s: float, message: Any, repeat: bool) -> Timer:
        self._next_id += 1
        timer = Timer(self._next_id, delay_s, message, repeat)
        self._live[timer.timer_id] = timer
        return timer

    def cancel(self, timer_id: int) -> bool:
        return self._live.pop(timer_id, None) is not None

    def fire(self, tick: TimerTick) -> Timer | None:
        """The timer a wakeup belongs to, or None if it was cancelled; one-shot timers end here."""
        timer = self._live.get(tick.timer_id)
        if timer is not None and not timer.repeat:
            del self._live[tick.timer_id]
        return timer

    def clear(self) -> None:
        self._live.clear()

    def __len__(self) -> int:
        return len(self._live)
