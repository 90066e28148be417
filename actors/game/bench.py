"""The naive design, for comparison in ``ptr bench game``: every input is its own Thespian message
from an edge process to a room process, which applies it at once.

Measured with the best setting docs/platform.md (Thespian) found for one-message-per-event traffic: a credit
window (``window`` inputs in flight, each acknowledged), since a sender that bursts stalls in
Thespian's send queue and is slower still.
"""

from __future__ import annotations

import time
from typing import Any

from actors.base import Actor, ReplyTo
from actors.game.room import InputCounters, RoomConfig, RoomSim
from protocols.game import InputDatagram, NaiveAck, NaiveDone, NaiveInput, NaiveRun

__all__ = ["NaiveInputSource", "NaiveRoom"]

PLAYERS = tuple(range(1, 11))


class NaiveRoom(Actor):
    """A room that applies each input as it arrives (one Thespian message each) and acks it."""

    def on_start(self) -> None:
        self.sim = RoomSim(RoomConfig(room_id="naive", players=PLAYERS, round_ticks=2**31))
        self.counters = InputCounters()

    def receiveMsg_NaiveInput(self, msg: NaiveInput, sender: Any) -> NaiveAck:
        player = self.sim.player(msg.player_id)
        if player is not None:
            self.sim.step([(player, [InputDatagram(1, msg.seq, msg.dx, msg.dy)])], self.counters)
        return NaiveAck(seq=msg.seq)

    def receiveMsg_NaiveDone(self, msg: NaiveDone, sender: Any) -> NaiveDone:
        return NaiveDone(count=msg.count, applied=self.counters.applied, elapsed_s=0.0)


class NaiveInputSource(Actor):
    """Plays the edge of the naive design: sends inputs one message each, ``window`` in flight."""

    def on_start(self) -> None:
        self.run: NaiveRun | None = None
        self.reply_to: ReplyTo | None = None
        self.sent = self.acked = 0
        self.began = 0.0

    def receiveMsg_NaiveRun(self, msg: NaiveRun, sender: Any) -> None:
        self.run, self.reply_to = msg, self.defer_reply(sender)
        self.sent = self.acked = 0
        self.began = time.perf_counter()
        for _ in range(min(msg.window, msg.count)):
            self._send_next()

    def _send_next(self) -> None:
        assert self.run is not None
        self.sent += 1
        player = PLAYERS[self.sent % len(PLAYERS)]
        self.send(self.run.target, NaiveInput(player_id=player, seq=self.sent, dx=1, dy=0))

    def receiveMsg_NaiveAck(self, msg: NaiveAck, sender: Any) -> None:
        run = self.run
        if run is None:
            return
        self.acked += 1
        if self.sent < run.count:
            self._send_next()
        elif self.acked >= run.count and self.reply_to is not None:
            elapsed = time.perf_counter() - self.began
            self.reply_later(self.reply_to, NaiveDone(count=run.count, applied=self.acked,
                                                      elapsed_s=elapsed))
            self.run = self.reply_to = None
