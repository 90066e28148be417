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
