"""The ping system's messages: the smallest tree that shows supervision working."""

from __future__ import annotations

from protocols.message import Message


class PingRequest(Message):
    seq: int


class PingAnswer(Message):
    seq: int
    answered_by: str


class PingStats(Message):
    """Ask the pinger how it is doing."""


class PingReport(Message):
    sent: int
    answered: int
    last_round_trip_ms: float
    incarnation: int
