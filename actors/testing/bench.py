"""Benchmark actors: the same credit-window sender and acking sink, as plain Thespian actors and as
ptr actors, so the difference between the two measures ptr's own overhead."""

from __future__ import annotations

import time
from typing import Any

from actors._thespian import ActorTypeDispatcher
from actors.base import Actor, ReplyTo
from actors.light import LightActor
from protocols.bench import (
    BenchAck,
    BenchDone,
    BenchItem,
    BenchRun,
    Blast,
    BlastDone,
    CountNow,
    RestartLoop,
    RestartTimes,
)
from protocols.scripted import Crash, Ping
from protocols.supervision import ChildrenReport, WhichChildren


class _CreditWindow:
    """Sender state shared by both variants: keep ``window`` items in flight until ``count`` acked."""

    def __init__(self, run: BenchRun) -> None:
        self.run = run
        self.sent = 0
        self.acked = 0
        self.began = time.perf_counter()

    def first_batch(self) -> list[BenchItem]:
        return [self._next() for _ in range(min(self.run.window, self.run.count))]

    def on_ack(self) -> BenchItem | None:
        self.acked += 1
        return self._next() if self.sent < self.run.count else None

    def _next(self) -> BenchItem:
        self.sent += 1
        return BenchItem(seq=self.sent)

    @property
    def done(self) -> bool:
        return self.acked >= self.run.count

    def result(self) -> BenchDone:
        return BenchDone(count=self.run.count, elapsed_s=time.perf_counter() - self.began)


class RawSource(ActorTypeDispatcher):
    """Plain Thespian: no supervision, no crash handling."""

    def receiveMsg_BenchRun(self, msg: BenchRun, sender: Any) -> None:
        self.window, self.reply_to = _CreditWindow(msg), sender
        for item in self.window.first_batch():
            self.send(msg.target, item)

    def receiveMsg_BenchAck(self, msg: BenchAck, sender: Any) -> None:
        item = self.window.on_ack()
        if item is not None:
            self.send(self.window.run.target, item)
        elif self.window.done:
            self.send(self.reply_to, self.window.result())


class RawSink(ActorTypeDispatcher):
    def receiveMsg_BenchItem(self, msg: BenchItem, sender: Any) -> None:
        self.send(sender, BenchAck(seq=msg.seq))


class SupervisedSource(Actor):
    """The same sender as a supervised ptr actor."""

    def receiveMsg_BenchRun(self, msg: BenchRun, sender: Any) -> None:
        self.window = _CreditWindow(msg)
        self.reply_to: ReplyTo = self.defer_reply(sender)
        for item in self.window.first_batch():
            self.send(msg.target, item)

    def receiveMsg_BenchAck(self, msg: BenchAck, sender: Any) -> None:
        item = self.window.on_ack()
        if item is not None:
            self.send(self.window.run.target, item)
        elif self.window.done:
            self.reply_later(self.reply_to, self.window.result())


class SupervisedSink(Actor):
    def receiveMsg_BenchItem(self, msg: BenchItem, sender: Any) -> BenchAck:
        return BenchAck(seq=msg.seq)


class LightBenchSink(LightActor):
    """Counts whatever arrives; ``CountNow`` (after everything sent before it, FIFO) answers the
    count since the last ``CountNow`` and starts again from zero."""

    max_mailbox = 50_000_000

    def on_start(self) -> None:
        self.received = 0

    def receiveMsg_int(self, msg: int, sender: Any) -> None:
        self.received += 1

    def receiveMsg_CountNow(self, msg: CountNow, sender: Any) -> int:
        received, self.received = self.received, 0
        return received


class LightBenchSource(LightActor):
    """Sends a blast of ints in one handler; the host batches them per destination."""

    def receiveMsg_Blast(self, msg: Blast, sender: Any) -> None:
        answer = self.defer_reply(sender)
        began = time.perf_counter()
        send, target = self.send, msg.target
        for i in range(msg.count):
            send(target, i)

        def counted(received: int) -> None:
            self.reply_later(answer, BlastDone(count=msg.count, received=received,
                                               elapsed_s=time.perf_counter() - began))

        self.request(target, CountNow(), counted, timeout_s=300)


class LightRestartProbe(LightActor):
    """Crashes a sibling and times, in microseconds, until its replacement answers a ``Ping``."""

    def receiveMsg_RestartLoop(self, msg: RestartLoop, sender: Any) -> None:
        self.loop, self.answer, self.micros = msg, self.defer_reply(sender), []
        self._crash_victim()

    def _crash_victim(self) -> None:
        if len(self.micros) >= self.loop.samples:
            self.reply_later(self.answer, RestartTimes(micros=self.micros))
            return
        self.request(self.loop.supervisor, WhichChildren(), self._before, timeout_s=5)

    def _before(self, report: ChildrenReport) -> None:
        self.old = _address_of(report, self.loop.victim_id)
        self.began = time.perf_counter()
        self.send(self.old, Crash(text="bench"))
        self._check()

    def _check(self) -> None:
        self.request(self.loop.supervisor, WhichChildren(), self._after, timeout_s=5)

    def _after(self, report: ChildrenReport) -> None:
        fresh = _address_of(report, self.loop.victim_id)
        if fresh is None or fresh == self.old:
            self._check()
            return
        self.request(fresh, Ping(), self._answered, timeout_s=5)

    def _answered(self, pong: Any) -> None:
        self.micros.append((time.perf_counter() - self.began) * 1e6)
        self._crash_victim()


def _address_of(report: ChildrenReport, child_id: str) -> Any:
    for child in report.children:
        if child.child_id == child_id and child.status == "running":
            return child.address
    return None
