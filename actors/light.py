"""Light actors: thousands of supervised actors inside one host process-actor.

A ``LightActor`` has the programming model of a process actor (``ActorBehaviour``: handlers, let it
crash, timers, request/reply) but is an object with a mailbox inside a ``LightHost``, a Thespian
actor that schedules them. A send between light actors of one host is a deque append, with no
serialization; a send anywhere else joins the host's outbox for that destination and leaves as one
``LightBatch`` per destination per scheduler turn, in order. Host to host, at most ``WINDOW``
batches are in flight (Thespian's deep send queues stall a sender, see THESPIAN-NOTES.md).

Fairness: an actor handles at most ``FAIR_TURN`` messages before the next runnable one; a turn of
the scheduler yields back to Thespian after ``SLICE_S`` so the host keeps receiving. A light actor
must not block: a handler that blocks stalls every actor of its host. An exception ends only the
light actor that raised. A SIGKILL of the host ends all of its light actors; their supervisors
learn it (reason ``killed``) and restart them by their strategies.
"""

from __future__ import annotations

import heapq
import logging
import os
import time
from collections import deque
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

from actors._thespian import ActorTypeDispatcher, WakeupMessage
from actors.base import Actor
from actors.behaviour import ActorBehaviour
from actors.timers import TimerTick
from protocols.errors import PtrError
from protocols.light import (
    BatchAck,
    ChildGone,
    HostReport,
    HostStatus,
    KillLight,
    LightAddress,
    LightBatch,
    SpawnLight,
)
from protocols.supervision import ExitNotice, ExitReason, Ignored

log = logging.getLogger("ptr.light")

_thespian_send = ActorTypeDispatcher.send

FAIR_TURN = 100
SLICE_S = 0.02
CLOCK_EVERY = 128  # messages between looks at the clock (an actor may take FAIR_TURN in a turn)
BATCH_MAX = 2000
WINDOW = 8


class MailboxOverflowError(PtrError):
    """A light actor's mailbox was full and its policy is ``crash``."""


def address_key(address: Any) -> str:
    """A stable, hashable string for a Thespian address (they are unhashable)."""
    return str(address)


class LightActor(ActorBehaviour):
    """Base of every light actor. Same model as ``actors.base.Actor``; lives in a ``LightHost``.

    ``max_mailbox`` bounds the mailbox; past it ``mailbox_overflow`` decides: ``"drop_new"`` counts
    and drops the message (the host's ``dropped_overflow``), ``"crash"`` crashes the receiver so its
    supervisor restarts it with an empty mailbox.
    """

    __slots__ = ("_host", "_lid", "_mailbox", "_scheduled", "_sync", "_sync_started",
                 "_sync_reason", "_sync_ignored")

    max_mailbox: ClassVar[int] = 10_000
    mailbox_overflow: ClassVar[str] = "drop_new"

    def __init__(self) -> None:
        self._init_behaviour()
        self._mailbox: deque[tuple[Any, Any]] | None = None
        self._scheduled = False
        self._sync = False
        self._sync_started = False
        self._sync_reason: ExitReason | None = None
        self._sync_ignored = False

    @property
    def myAddress(self) -> LightAddress:  # noqa: N802 (Thespian's name, kept for one model)
        host = self._host
        return LightAddress(host.myAddress, host.host_key, self._lid)

    @property
    def host(self) -> LightHost:
        return self._host

    def queued(self) -> int:
        return len(self._mailbox) if self._mailbox else 0

    # --- primitives ---------------------------------------------------------------------------

    def send(self, target: Any, message: Any) -> None:
        host = self._host
        if type(target) is LightAddress:
            if target.host_key == host.host_key:
                host.enqueue(target.lid, self.myAddress, message)
            else:
                host.post(target.host_key, target.host, target.lid, self.myAddress, message, True)
        else:
            host.post(address_key(target), target, None, self.myAddress, message, False)

    def _arm_wakeup(self, delay_s: float, tick: TimerTick) -> None:
        self._host.arm(self._lid, delay_s, tick)

    def _end_self(self) -> None:
        host = self._host
        host.remove(self._lid)
        if self.parent is not None:
            self.send(self.parent, ChildGone(address=self.myAddress))

    def _after_leave(self) -> None:
        self._host.remove(self._lid)

    def _crash(self, reason: ExitReason) -> None:
        self._host.stats.crashed += 1
        super()._crash(reason)

    # --- synchronous start inside the host (no Init/Started messages) -------------------------

    def report_started(self) -> None:
        if self._sync:
            self._sync_started = True
        else:
            super().report_started()

    def _leave(self, reason: ExitReason) -> None:
        if self._sync and not self._exiting:  # failed in on_start: the spawner gets the reason
            self._run_on_stop(reason)
            self._exiting = True
            self._sync_reason = reason
            self._host.remove(self._lid)
            return
        super()._leave(reason)

    def _ignore_start(self) -> None:
        if self._sync:  # the spawner learns it from start_in_host's answer
            self._stopped = self._exiting = self._sync_ignored = True
            self._host.remove(self._lid)
            return
        super()._ignore_start()

    def start_in_host(self, child_id: str, path: str, parent: Any, root: Any, args: Any,
                      incarnation: int) -> tuple[str, ExitReason | None]:
        """Start now, without ``Init``/``Started`` messages: ``("started"|"pending"|"failed"|
        "ignored", reason)``. Pending is a deferred start (a supervisor waiting for its children)
        that will report ``Started`` later. A failure in ``on_start`` is the spawner's to handle."""
        self._sync = True
        try:
            self._guarded(self._begin, child_id, path, parent, root, args, incarnation, parent)
        finally:
            self._sync = False
        if self._sync_reason is not None:
            return "failed", self._sync_reason
        if self._sync_ignored:
            return "ignored", None
        return ("started", None) if self._sync_started else ("pending", None)


class _Outbox:
    __slots__ = ("address", "items", "in_flight", "to_host")

    def __init__(self, address: Any, to_host: bool) -> None:
        self.address = address
        self.items: list[tuple[int | None, Any, Any]] = []
        self.in_flight = 0
        self.to_host = to_host


class _Continue:
    """The scheduler yielded with work left: come back after Thespian had its turn."""


class _HostTick:
    """A Thespian wakeup for the host's timer heap."""


class HostStats:
    __slots__ = ("spawned", "delivered", "crashed", "dropped_dead", "dropped_overflow",
                 "batches_out", "batches_in")

    def __init__(self) -> None:
        self.spawned = self.delivered = self.crashed = 0
        self.dropped_dead = self.dropped_overflow = 0
        self.batches_out = self.batches_in = 0

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


class LightHost(Actor):
    """A process actor that runs light actors. Register it under a name; children name that host."""

    def on_start(self) -> None:
        self.host_key = address_key(self.myAddress)
        self.lights: dict[int, LightActor] = {}
        self.next_lid = 0
        self.runnable: deque[LightActor] = deque()
        self.timer_heap: list[tuple[float, int, int, TimerTick]] = []
        self.timer_seq = 0
        self.wakeup_due = float("inf")
        self.outboxes: dict[str, _Outbox] = {}
        self.stats = HostStats()
        self._running = False

    # --- Thespian entry point -----------------------------------------------------------------

    def receiveMessage(self, message: Any, sender: Any) -> Any:
        mtype = type(message)
        if mtype is LightBatch:
            self.stats.batches_in += 1
            enqueue = self.enqueue
            for lid, item_sender, item in message.items:
                if lid is None:
                    self.deliver(item, sender if item_sender is None else item_sender)
                else:
                    enqueue(lid, sender if item_sender is None else item_sender, item)
            if message.ack_to is not None:
                _thespian_send(self, message.ack_to, BatchAck(self.host_key))
        elif mtype is BatchAck:
            box = self.outboxes.get(message.host_key)
            if box is not None:
                box.in_flight -= 1
                self._flush(box)
        elif mtype is _Continue:
            pass
        elif mtype is WakeupMessage and isinstance(message.payload, _HostTick):
            self._fire_timers()
        else:
            self._timers_due()
            return super().receiveMessage(message, sender)
        self._timers_due()
        if self.runnable:
            self.run()
        self.flush_all()
        return self._watch

    def deliver(self, message: Any, sender: Any) -> None:
        super().deliver(message, sender)
        if self.runnable and not self._running:
            self.run()
        if self.outboxes:
            self.flush_all()

    # --- light actors' lifecycle --------------------------------------------------------------

    def spawn(self, actor_class: type, child_id: str, path: str, parent: Any, root: Any,
              args: Mapping[str, Any], incarnation: int) -> tuple[LightAddress, str,
                                                                   ExitReason | None]:
        """Create and start a light actor now; returns its address and ``start_in_host``'s result."""
        if not (isinstance(actor_class, type) and issubclass(actor_class, LightActor)):
            reason = ExitReason(exit_kind="error", error_type="SpecError",
                                text=f"{actor_class!r} is not a LightActor")
            return LightAddress(self.myAddress, self.host_key, 0), "failed", reason
        self.next_lid += 1
        lid = self.next_lid
        actor = actor_class()
        actor._host = self
        actor._lid = lid
        self.lights[lid] = actor
        self.stats.spawned += 1
        address = LightAddress(self.myAddress, self.host_key, lid)
        outcome, reason = actor.start_in_host(child_id, path, parent, root, args, incarnation)
        return address, outcome, reason

    def receiveMsg_SpawnLight(self, msg: SpawnLight, sender: Any) -> None:
        spec = msg.spec
        address, outcome, reason = self.spawn(spec.actor, msg.child_id, msg.path, msg.parent,
                                              msg.root, spec.args, msg.incarnation)
        if outcome == "started":
            self.send(msg.parent, self.lights[address.lid]._started_message())
        elif outcome == "failed":
            self.send(msg.parent, ExitNotice(child_id=msg.child_id, incarnation=msg.incarnation,
                                             reason=reason))
        elif outcome == "ignored":
            self.send(msg.parent, Ignored(child_id=msg.child_id, incarnation=msg.incarnation))

    def receiveMsg_KillLight(self, msg: KillLight, sender: Any) -> None:
        self.kill(msg.lid)

    def kill(self, lid: int) -> None:
        """Brutal kill: gone at once, no ``on_stop``; its supervisor hears ``ChildGone``."""
        actor = self.lights.pop(lid, None)
        if actor is None:
            return
        actor._exiting = True
        actor._mailbox = None
        if actor.parent is not None:
            self.send(actor.parent, ChildGone(address=LightAddress(self.myAddress, self.host_key,
                                                                    lid)))

    def remove(self, lid: int) -> None:
        self.lights.pop(lid, None)

    def finish_shutdown(self, reason: ExitReason) -> None:
        for lid in list(self.lights):  # whatever is left dies with its host
            self.lights.pop(lid)._exiting = True
        super().finish_shutdown(reason)

    # --- mailboxes and the scheduler ----------------------------------------------------------

    def enqueue(self, lid: int, sender: Any, message: Any) -> None:
        actor = self.lights.get(lid)
        if actor is None:
            self.stats.dropped_dead += 1
            return
        box = actor._mailbox
        if box is None:
            box = actor._mailbox = deque()
        elif len(box) >= actor.max_mailbox:
            self._overflow(actor, message)
            return
        box.append((sender, message))
        if not actor._scheduled:
            actor._scheduled = True
            self.runnable.append(actor)

    def _overflow(self, actor: LightActor, message: Any) -> None:
        self.stats.dropped_overflow += 1
        if self.stats.dropped_overflow in (1, 10, 100, 1000) or self.stats.dropped_overflow % 10000 == 0:
            log.warning("%s: mailbox full (%d), dropped %s (%d dropped so far)", actor.path,
                        actor.max_mailbox, type(message).__name__, self.stats.dropped_overflow)
        if actor.mailbox_overflow == "crash" and not actor._exiting:
            actor._mailbox = None
            actor._crash(ExitReason.from_exception(MailboxOverflowError(
                f"mailbox of {actor.path} exceeded {actor.max_mailbox}")))

    def run(self) -> None:
        """Run runnable light actors until none is left or the time slice is spent."""
        if self._running:
            return
        self._running = True
        runnable = self.runnable
        deadline = time.perf_counter() + SLICE_S
        delivered = 0
        check_at = CLOCK_EVERY  # look at the clock every CLOCK_EVERY messages, however turns go
        try:
            while runnable:
                actor = runnable.popleft()
                box = actor._mailbox
                budget = FAIR_TURN
                while box and budget and not actor._exiting:
                    sender, message = box.popleft()
                    actor.deliver(message, sender)
                    budget -= 1
                delivered += FAIR_TURN - budget
                if box and not actor._exiting:
                    runnable.append(actor)
                else:
                    actor._scheduled = False
                    if not box:
                        actor._mailbox = None  # an idle actor keeps no deque
                if delivered >= check_at:
                    check_at = delivered + CLOCK_EVERY
                    if time.perf_counter() > deadline:
                        break
        finally:
            self._running = False
            self.stats.delivered += delivered
        if runnable:
            _thespian_send(self, self.myAddress, _Continue())

    # --- outboxes -----------------------------------------------------------------------------

    def post(self, key: str, address: Any, lid: int | None, sender: Any, message: Any,
             to_host: bool) -> None:
        box = self.outboxes.get(key)
        if box is None:
            box = self.outboxes[key] = _Outbox(address, to_host)
        box.items.append((lid, sender, message))

    def flush_all(self) -> None:
        for box in self.outboxes.values():
            if box.items:
                self._flush(box)

    def _flush(self, box: _Outbox) -> None:
        while box.items and (not box.to_host or box.in_flight < WINDOW):
            chunk = box.items[:BATCH_MAX]
            del box.items[:BATCH_MAX]
            _thespian_send(self, box.address,
                           LightBatch(chunk, self.myAddress if box.to_host else None))
            self.stats.batches_out += 1
            if box.to_host:
                box.in_flight += 1

    # --- timers of light actors ---------------------------------------------------------------

    def arm(self, lid: int, delay_s: float, tick: TimerTick) -> None:
        """Light timers are due on this host's clock (``self.clock()``, which a test may replace
        with a ``MockClock``): a real wakeup looks at them after ``delay_s``, and so does every
        message the host handles, so a timer whose time a mock clock has passed fires on the
        host's next message, not only at its real wakeup."""
        due = self.clock() + delay_s
        self.timer_seq += 1
        heapq.heappush(self.timer_heap, (due, self.timer_seq, lid, tick))
        if due < self.wakeup_due:
            self.wakeup_due = due
            self.wakeupAfter(timedelta(seconds=max(0.0, delay_s)), _HostTick())

    def _timers_due(self) -> None:
        heap = getattr(self, "timer_heap", None)  # None until on_start has run
        if heap and heap[0][0] <= self.clock():
            self._fire_timers()

    def _fire_timers(self) -> None:
        now = self.clock()
        heap = self.timer_heap
        self.wakeup_due = float("inf")
        while heap and heap[0][0] <= now:
            _, _, lid, tick = heapq.heappop(heap)
            actor = self.lights.get(lid)
            if actor is not None:
                self.enqueue(lid, actor.myAddress, tick)
        if heap:
            self.wakeup_due = heap[0][0]
            self.wakeupAfter(timedelta(seconds=max(0.0, heap[0][0] - now)), _HostTick())

    def receiveMsg_HostStatus(self, msg: HostStatus, sender: Any) -> HostReport:
        return HostReport(pid=os.getpid(), lights=len(self.lights), **self.stats.as_dict())


__all__ = ["FAIR_TURN", "LightActor", "LightHost", "MailboxOverflowError",
           "address_key"]
