"""ptr's process actor: a Thespian actor (one OS process each on multiprocTCPBase) that crashes
instead of limping on.

Thespian's own failure handling (redeliver once, then PoisonMessage while the actor lives on with
its state) never runs: ``ActorBehaviour.deliver`` catches the exception, reports it to the
supervisor and the actor takes no further message until the supervisor ends it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from actors._thespian import (
    ActorExitRequest,
    ActorTypeDispatcher,
    ChildActorExited,
    DeadEnvelope,
    PoisonMessage,
    ThespianWatch,
    WakeupMessage,
    link_to_parent,
)
from actors.behaviour import ActorBehaviour, ReplyTo
from protocols.errors import RequestFailedError
from actors.timers import TimerTick
from protocols.light import LightAddress, LightBatch
from protocols.supervision import ExitReason

log = logging.getLogger("ptr.actor")

__all__ = ["Actor", "ReplyTo", "RequestFailedError"]

_thespian_send = ActorTypeDispatcher.send


class Actor(ActorBehaviour, ActorTypeDispatcher):
    """Base of every ptr process actor. See ``ActorBehaviour`` for the programming model.

    If a handler raises, the actor exits with reason ``error`` and its supervisor decides. Its
    process dies with its parent's (``link_to_parent``): a killed supervisor takes its subtree along.
    """

    def __init__(self) -> None:
        link_to_parent()
        super().__init__()
        self._init_behaviour()
        self._watch: ThespianWatch | None = None

    # --- Thespian entry point -----------------------------------------------------------------

    def receiveMessage(self, message: Any, sender: Any) -> Any:
        mtype = type(message)
        if mtype is LightBatch:
            for _lid, item_sender, item in message.items:
                self.deliver(item, sender if item_sender is None else item_sender)
        elif mtype is WakeupMessage:
            if isinstance(message.payload, TimerTick):
                self.deliver(message.payload, self.myAddress)
        elif self._exiting:
            if mtype is ActorExitRequest:
                self._run_on_stop(ExitReason.shutdown())
        else:
            self.deliver(message, sender)
        return self._watch

    def send(self, target: Any, message: Any) -> None:
        if type(target) is LightAddress:
            _thespian_send(self, target.host, LightBatch([(target.lid, self.myAddress, message)]))
        else:
            _thespian_send(self, target, message)

    @property
    def can_watch_fds(self) -> bool:
        """True when the transport honours ``ThespianWatch`` (multiprocTCPBase); under
        simpleSystemBase a returned watch is ignored, so an edge polls on a timer instead."""
        transport = getattr(getattr(self, "_myRef", None), "transport", None)
        return hasattr(transport, "set_watch")

    def watch_fds(self, fds: list[int] | None) -> None:
        """Have Thespian wake this actor with a ``WatchMessage`` when one of ``fds`` is readable
        (multiprocTCPBase only): how an edge drains its own socket inside Thespian's loop."""
        self._watch = ThespianWatch(fds) if fds else None

    # --- primitives ---------------------------------------------------------------------------

    def _arm_wakeup(self, delay_s: float, tick: TimerTick) -> None:
        self.wakeupAfter(timedelta(seconds=delay_s), tick)

    def _end_self(self) -> None:
        _thespian_send(self, self.myAddress, ActorExitRequest())

    def _after_leave(self) -> None:
        if self.parent is None:  # no supervisor will end us: go now
            _thespian_send(self, self.myAddress, ActorExitRequest())

    # --- Thespian's system messages -----------------------------------------------------------

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:
        self._run_on_stop(ExitReason.shutdown())

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender: Any) -> None:
        """Only supervisors create children; a plain actor ignores this."""

    def receiveMsg_PoisonMessage(self, msg: PoisonMessage, sender: Any) -> None:
        log.debug("%s: undeliverable %s", self.path, type(msg.poisonMessage).__name__)

    def receiveMsg_DeadEnvelope(self, msg: DeadEnvelope, sender: Any) -> None:
        """Dead letters are not ours to handle."""

    # --- placement ----------------------------------------------------------------------------

    @staticmethod
    def actorSystemCapabilityCheck(capabilities: dict[str, Any],
                                   requirements: dict[str, Any] | None) -> bool:
        """Thespian's placement hook: a child lands only where every requirement is met."""
        return all(capabilities.get(k) == v for k, v in (requirements or {}).items())
