"""Who says it: ptr's process actor and the tools every actor uses (timers, requests, crashes).

Read ``base.Actor`` first; ``scripted`` is the faulty actor that drives fault tests.
"""

from actors.base import Actor, ReplyTo, RequestFailedError
from actors.timers import TimerTable, TimerTick

__all__ = ["Actor", "ReplyTo", "RequestFailedError", "TimerTable", "TimerTick"]
