"""Benchmark actors: the same credit-window sender and acking sink, as plain Thespian actors and as
ptr actors, so the difference between the two measures ptr's own overhead."""

from __future__ import annotations

import time
from typing import Any

from actors._thespian import ActorTypeDispatcher
from actors.base import Actor, ReplyTo
from protocols.bench import BenchAck, BenchDone, BenchItem, BenchRun


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
