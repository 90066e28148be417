"""A scripted actor for fault tests, and a recorder that keeps the order of starts and stops.

``args`` of ``ScriptedActor``: ``recorder`` (an address to report ``Event``s to),
``fail_on_start`` (raise in ``on_start``), ``fail_on_restart`` (raise in ``on_start`` of every
incarnation but the first), ``ignore_on_start`` / ``ignore_on_restart`` (answer ``IGNORE``, OTP's
``ignore``, likewise), ``hang_on_stop`` (never finish stopping).
"""

from __future__ import annotations

import os
import time
from typing import Any, ClassVar

from actors.base import Actor
from actors.behaviour import IGNORE
from actors.light import LightActor
from protocols.scripted import (
    Bump,
    Flood,
    GetCount,
    Crash,
    Event,
    Events,
    ExitNormally,
    ExitProcess,
    GetEvents,
    GetValue,
    Hang,
    ArmTimer,
    CancelTimer,
    GetNotes,
    Note,
    Ping,
    Pong,
    RelayPing,
    SetValue,
)
from protocols.supervision import ExitReason

_BOOT_PID = os.getpid()


class ScriptedCrash(RuntimeError):
    """The exception a scripted actor raises on ``Crash``."""


class ScriptedBehaviour:
    """Does what its messages tell it to: answer, crash, exit, hang (either actor weight)."""

    hung = False
    light = False

    def on_start(self) -> Any:
        self.value = 0
        self.notes: list[str] = []
        self.timers: dict[str, int] = {}
        restarted = self.incarnation > 1
        if self.args.get("ignore_on_start") or (restarted and self.args.get("ignore_on_restart")):
            self._record("ignore")
            return IGNORE
        self._record("start")
        if self.args.get("fail_on_start") or (restarted and self.args.get("fail_on_restart")):
            raise ScriptedCrash("scripted failure in on_start")
        return None

    def on_stop(self, reason: ExitReason) -> None:
        self._record("stop")

    def _record(self, what: str) -> None:
        recorder = self.args.get("recorder")
        if recorder is not None:
            self.send(recorder, Event(what=what, path=self.path, incarnation=self.incarnation,
                                      pid=os.getpid(), at=time.monotonic()))

    def receiveMessage(self, message: Any, sender: Any) -> Any:
        if self.hung and not _is_exit(message):
            return None
        return super().receiveMessage(message, sender)

    def receiveMsg_Ping(self, msg: Ping, sender: Any) -> Pong:
        return Pong(path=self.path, incarnation=self.incarnation, pid=os.getpid(), token=msg.token)

    def receiveMsg_Crash(self, msg: Crash, sender: Any) -> None:
        raise ScriptedCrash(msg.text)

    def receiveMsg_ExitNormally(self, msg: ExitNormally, sender: Any) -> None:
        self.stop("scripted")

    def receiveMsg_ExitProcess(self, msg: ExitProcess, sender: Any) -> None:
        os._exit(msg.code)

    def receiveMsg_Hang(self, msg: Hang, sender: Any) -> None:
        if os.getpid() != _BOOT_PID and not self.args.get("simulated_hang") and not self.light:
            time.sleep(3600)  # a real hang in its own process: only SIGKILL ends it
        self.hung = True

    def begin_shutdown(self, reason: ExitReason) -> None:
        if self.args.get("hang_on_stop") or self.hung:
            self.hung = True
            return  # never finishes: the supervisor's shutdown timeout must kill it
        super().begin_shutdown(reason)

    def receiveMsg_SetValue(self, msg: SetValue, sender: Any) -> int:
        self.value = msg.value
        return self.value

    def receiveMsg_GetValue(self, msg: GetValue, sender: Any) -> int:
        return self.value


    def receiveMsg_RelayPing(self, msg: RelayPing, sender: Any) -> None:
        answer_to = self.defer_reply(sender)

        def ping(address: Any) -> None:
            self.request(address, Ping(token="relay"), lambda pong: self.reply_later(answer_to, pong),
                         timeout_s=msg.timeout_s)

        self.whereis(msg.name, ping, timeout_s=msg.timeout_s)

    def receiveMsg_ArmTimer(self, msg: ArmTimer, sender: Any) -> None:
        timer_id = self.start_timer(msg.delay_s, Note(tag=msg.tag), repeat=msg.repeat)
        self.timers[msg.tag] = timer_id
        if msg.cancel:
            self.cancel_timer(timer_id)

    def receiveMsg_CancelTimer(self, msg: CancelTimer, sender: Any) -> bool:
        return self.cancel_timer(self.timers[msg.tag])

    def receiveMsg_Note(self, msg: Note, sender: Any) -> None:
        self.notes.append(msg.tag)

    def receiveMsg_GetNotes(self, msg: GetNotes, sender: Any) -> list[str]:
        return list(self.notes)


class ScriptedActor(ScriptedBehaviour, Actor):
    """The scripted actor as a process actor."""


class LightScriptedActor(ScriptedBehaviour, LightActor):
    """The scripted actor as a light actor (a hang is always simulated: it must not block its host)."""

    light = True

    def deliver(self, message: Any, sender: Any) -> None:
        if self.hung and not _is_exit(message):
            return
        super().deliver(message, sender)


def _is_exit(message: Any) -> bool:
    return type(message).__name__ in ("ActorExitRequest", "Shutdown")


class Recorder(Actor):
    """Collects ``Event``s in arrival order; answers ``GetEvents``."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Event] = []

    def receiveMsg_Event(self, msg: Event, sender: Any) -> None:
        self.events.append(msg)

    def receiveMsg_GetEvents(self, msg: GetEvents, sender: Any) -> Events:
        return Events(events=list(self.events))


class LightCounter(LightActor):
    """Counts ``Bump``s; a mailbox of 10 that drops what does not fit. ``TRACE`` (this process
    only) records ``(path, count)`` as it handles, for fairness tests on one process."""

    max_mailbox = 10
    TRACE: ClassVar[list[tuple[str, int]]] = []

    def on_start(self) -> None:
        self.count = 0

    def receiveMsg_Bump(self, msg: Bump, sender: Any) -> None:
        self.count += 1
        LightCounter.TRACE.append((self.path, self.count))

    def receiveMsg_GetCount(self, msg: GetCount, sender: Any) -> int:
        return self.count

    def receiveMsg_Flood(self, msg: Flood, sender: Any) -> int:
        for _ in range(msg.count):
            self.send(msg.target, Bump())
        if msg.last is not None:
            self.send(msg.last, Bump())
        return msg.count

    def receiveMsg_Ping(self, msg: Ping, sender: Any) -> Pong:
        return Pong(path=self.path, incarnation=self.incarnation, pid=os.getpid(), token=msg.token)


class LightCrashingCounter(LightCounter):
    """The same with policy ``crash``: an overflow restarts it with an empty mailbox."""

    mailbox_overflow = "crash"


class RoomyCounter(LightCounter):
    max_mailbox = 1_000_000
