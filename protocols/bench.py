"""Messages of the runtime benchmark; the plain-Thespian and the ptr variants send the same ones."""

from __future__ import annotations

from typing import Any

from protocols.message import Message


class BenchRun(Message):
    """Send ``count`` items to ``target`` keeping ``window`` unacknowledged at most."""

    target: Any
    count: int
    window: int


class BenchItem(Message):
    seq: int


class BenchAck(Message):
    seq: int


class BenchDone(Message):
    count: int
    elapsed_s: float


class Blast(Message):
    """Light benchmark: send ``count`` small messages to ``target``, then ask it for its count."""

    target: Any
    count: int


class CountNow(Message):
    pass


class BlastDone(Message):
    count: int
    received: int
    elapsed_s: float


class RestartLoop(Message):
    """Crash ``victim_id`` under ``supervisor`` ``samples`` times; time each until the fresh one answers."""

    supervisor: Any
    victim_id: str
    samples: int


class RestartTimes(Message):
    micros: list[float]


class StartMany(Message):
    """Light benchmark: start ``count`` children under a simple_one_for_one ``supervisor``."""

    supervisor: Any
    count: int
