"""Commands for the scripted actor that drives fault tests (after OTP's supervisor_1.erl)."""

from __future__ import annotations

from typing import Any

from protocols.message import Message


class Ping(Message):
    """Answered with ``Pong``: proves an actor is alive and says which incarnation answers."""

    token: str = ""


class Pong(Message):
    path: str
    incarnation: int
    pid: int
    token: str = ""


class Crash(Message):
    """Raise an exception in the handler: exit reason error."""

    text: str = "scripted crash"


class ExitNormally(Message):
    """Leave with reason normal."""


class ExitProcess(Message):
    """``os._exit(code)``: the process vanishes without a word (reason killed)."""

    code: int = 1


class Hang(Message):
    """Stop answering: block the process in multiproc, ignore everything in one process."""


class SetValue(Message):
    """State that a restart must wipe."""

    value: int


class GetValue(Message):
    pass


class Event(Message):
    """What a scripted actor reports to a recorder: ``start`` or ``stop`` of ``path``."""

    what: str
    path: str
    incarnation: int
    pid: int
    at: float


class GetEvents(Message):
    pass


class Events(Message):
    events: list[Event]


class Forward(Message):
    """Benchmark: send ``count`` copies of ``payload`` to ``target`` with a credit window."""

    target: Any
    count: int
    window: int = 8
    payload: bytes = b""


class RelayPing(Message):
    """Resolve ``name`` through the registry, ping it with a request, answer with its ``Pong``."""

    name: str
    timeout_s: float = 1.0


class ArmTimer(Message):
    """Arm a timer that delivers ``Note(tag)`` after ``delay_s``; cancel it at once if ``cancel``."""

    tag: str
    delay_s: float
    repeat: bool = False
    cancel: bool = False


class CancelTimer(Message):
    tag: str


class Note(Message):
    tag: str


class GetNotes(Message):
    pass


class Flood(Message):
    """Send ``count`` ``Bump`` messages to ``target`` in one handler (then one ``Ping`` to ``last``)."""

    target: Any
    count: int
    last: Any = None


class Bump(Message):
    pass


class GetCount(Message):
    pass
