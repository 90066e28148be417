"""The ping system's actors: a pinger that asks a ponger, by name, on a timer. The smallest system:
read it first; ``systems/ping.py`` chooses its names, as every system does."""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from actors.base import Actor
from protocols.message import ActorArgs
from protocols.ping import PingAnswer, PingReport, PingRequest, PingStats


class Ponger(Actor):
    def receiveMsg_PingRequest(self, msg: PingRequest, sender: Any) -> PingAnswer:
        return PingAnswer(seq=msg.seq, answered_by=self.path)


class PingerArgs(ActorArgs):
    target: str                                  # the ponger's registered name
    interval_s: float = Field(default=1.0, gt=0)


class Pinger(Actor):
    """Every ``interval_s`` pings ``target`` (a registered name) with a request (1 s timeout)."""

    Args = PingerArgs

    def on_start(self) -> None:
        args: PingerArgs = self.typed_args()
        self.sent = self.answered = 0
        self.last_ms = 0.0
        self.ponger = self.peer(args.target)
        self.start_timer(args.interval_s, PingStats(), repeat=True)

    def receiveMsg_PingStats(self, msg: PingStats, sender: Any) -> PingReport | None:
        if sender != self.myAddress:
            return PingReport(sent=self.sent, answered=self.answered,
                              last_round_trip_ms=self.last_ms, incarnation=self.incarnation)
        self.sent += 1
        began = time.perf_counter()

        def answered(answer: PingAnswer) -> None:
            self.answered += 1
            self.last_ms = (time.perf_counter() - began) * 1000

        self.ponger.request(PingRequest(seq=self.sent), answered, timeout_s=1.0,
                            on_unavailable=lambda: None)  # restarting: the next tick tries again
        return None


__all__ = ["Pinger", "PingerArgs", "Ponger"]
