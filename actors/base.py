"""ptr's process actor: a Thespian actor that crashes instead of limping on.

Lifecycle: the supervisor creates the Thespian actor and sends ``Init``; ``on_start`` runs on it and
the actor reports ``Started``. If a handler or ``on_start`` raises, the actor calls ``on_stop``, tells
its supervisor why in an ``ExitNotice`` and drops every later message until the supervisor ends it;
the supervisor then starts a fresh instance (new object, new process, new address). Thespian's own
failure handling (redeliver once, then PoisonMessage while the actor lives on with its state) never
runs, because exceptions are caught here, in exactly one place.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from actors._thespian import (
    ActorExitRequest,
    ActorTypeDispatcher,
    ChildActorExited,
    DeadEnvelope,
    PoisonMessage,
    WakeupMessage,
)
from actors.timers import TimerTable, TimerTick
from protocols.errors import PtrError, RequestTimeoutError
from protocols.supervision import (
    ExitNotice,
    ExitReason,
    Init,
    Reply,
    Request,
    Shutdown,
    Started,
    Whereis,
    WhereisReply,
)

log = logging.getLogger("ptr.actor")

NODE_NAME = os.environ.get("PTR_NODE") or socket.gethostname()


class RequestFailedError(PtrError):
    """The target of a request crashed while handling it; raised in the caller."""


class ReplyTo:
    """Where the answer to the message being handled goes; kept to answer later (deferred reply)."""

    __slots__ = ("address", "correlation_id")

    def __init__(self, address: Any, correlation_id: str | None) -> None:
        self.address = address
        self.correlation_id = correlation_id


class _PendingRequest:
    __slots__ = ("on_reply", "on_timeout", "timer_id", "target", "kind", "timeout_s")

    def __init__(self, on_reply: Callable[[Any], None], on_timeout: Callable[[], None] | None,
                 timer_id: int, target: Any, kind: str, timeout_s: float) -> None:
        self.on_reply = on_reply
        self.on_timeout = on_timeout
        self.timer_id = timer_id
        self.target = target
        self.kind = kind
        self.timeout_s = timeout_s


class _RequestExpired:
    """Timer message: the request with this id got no reply in time."""

    __slots__ = ("correlation_id",)

    def __init__(self, correlation_id: str) -> None:
        self.correlation_id = correlation_id


_DISPATCH: dict[tuple[type, type], Callable[..., Any] | None] = {}


class Actor(ActorTypeDispatcher):
    """Base of every ptr actor. Subclasses write ``receiveMsg_<Type>(self, msg, sender)`` handlers.

    A handler's non-None return value is the reply: sent back in a ``Reply`` when the message came in
    a ``Request``, sent to the sender as is otherwise. If a handler raises, the actor exits with
    reason ``error`` and its supervisor decides. Never write ``except Exception`` in a handler to
    survive: let it crash.
    """

    def __init__(self) -> None:
        super().__init__()
        self.child_id = ""
        self.path = ""
        self.parent: Any = None
        self.root: Any = None
        self.args: dict[str, Any] = {}
        self.incarnation = 0
        self.handled = 0
        self._timers = TimerTable()
        self._requests: dict[str, _PendingRequest] = {}
        self._reply_to: ReplyTo | None = None
        self._init_sender: Any = None
        self._start_deferred = False
        self._exiting = False
        self._stopped = False

    # --- hooks --------------------------------------------------------------------------------

    def on_start(self) -> None:
        """Runs on ``Init``, in the actor's own process. If it raises, the start failed (reason error)."""

    def on_stop(self, reason: ExitReason) -> None:
        """Runs once when the actor leaves for any reason but ``killed``. Errors here are logged only."""

    # --- Thespian entry point -----------------------------------------------------------------

    def receiveMessage(self, message: Any, sender: Any) -> Any:
        if self._exiting:
            if isinstance(message, ActorExitRequest):
                self._run_on_stop(ExitReason.shutdown())
            return None
        try:
            return self._dispatch(message, sender)
        except Exception as exc:  # the one place where ptr catches: let it crash
            self._crash(ExitReason.from_exception(exc))
            return None

    def _dispatch(self, message: Any, sender: Any) -> Any:
        mtype = type(message)
        if mtype is Request:
            return self._handle_request(message, sender)
        if mtype is WakeupMessage:
            return self._handle_wakeup(message)
        key = (type(self), mtype)
        try:
            handler = _DISPATCH[key]
        except KeyError:
            handler = _DISPATCH[key] = _find_handler(type(self), mtype)
        self.handled += 1
        if handler is None:
            return self.receive_unhandled(message, sender)
        self._reply_to = None
        result = handler(self, message, sender)
        if result is not None and result is not self.SUPER:
            self.send(sender, result)
        return None

    def receive_unhandled(self, message: Any, sender: Any) -> None:
        """A message no handler takes. Logged and dropped; override to make it a crash."""
        log.warning("%s dropped unhandled %s from %s", self.path or type(self).__name__,
                    type(message).__name__, sender)

    # --- lifecycle messages -------------------------------------------------------------------

    def receiveMsg_Init(self, msg: Init, sender: Any) -> None:
        self.child_id, self.path, self.parent = msg.child_id, msg.path, msg.parent
        self.root = msg.root if msg.root is not None else self.myAddress
        self.args, self.incarnation = dict(msg.args), msg.incarnation
        self._init_sender = sender
        self.on_start()
        if not self._start_deferred:
            self.report_started()

    def defer_start(self) -> None:
        """Call in ``on_start`` to report ``Started`` later (a supervisor waits for its children)."""
        self._start_deferred = True

    def report_started(self) -> None:
        self.send(self.parent or self._init_sender,
                  Started(child_id=self.child_id, incarnation=self.incarnation,
                          address=self.myAddress, pid=os.getpid(), sid=os.getsid(0),
                          node=NODE_NAME))

    def receiveMsg_Shutdown(self, msg: Shutdown, sender: Any) -> None:
        self.begin_shutdown(msg.reason)

    def begin_shutdown(self, reason: ExitReason) -> None:
        """Asked to stop. The default stops at once; a supervisor first stops its children."""
        self.finish_shutdown(reason)

    def finish_shutdown(self, reason: ExitReason) -> None:
        self._run_on_stop(reason)
        self._exiting = True
        if self.parent is None and self._init_sender is not None:
            self.send(self._init_sender, ExitNotice(child_id=self.child_id,
                                                    incarnation=self.incarnation, reason=reason))
        self.send(self.myAddress, ActorExitRequest())

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:
        self._run_on_stop(ExitReason.shutdown())

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender: Any) -> None:
        """Only supervisors create children; a plain actor ignores this."""

    def receiveMsg_PoisonMessage(self, msg: PoisonMessage, sender: Any) -> None:
        log.debug("%s: undeliverable %s", self.path, type(msg.poisonMessage).__name__)

    def receiveMsg_DeadEnvelope(self, msg: DeadEnvelope, sender: Any) -> None:
        """Dead letters are not ours to handle."""

    def stop(self, text: str = "") -> None:
        """Leave with reason ``normal``: a transient child is not restarted, a permanent one is."""
        self._leave(ExitReason.normal(text))

    def _crash(self, reason: ExitReason) -> None:
        if self._reply_to is not None and self._reply_to.correlation_id is not None:
            self.send(self._reply_to.address, Reply(correlation_id=self._reply_to.correlation_id,
                                                    error=str(reason)))
        log.error("%s crashed: %s\n%s", self.path or type(self).__name__, reason, reason.traceback)
        self._leave(reason)

    def _leave(self, reason: ExitReason) -> None:
        if self._exiting:
            return
        self._run_on_stop(reason)
        self._exiting = True
        self._timers.clear()
        target = self.parent or self._init_sender
        if target is not None:
            self.send(target, ExitNotice(child_id=self.child_id, incarnation=self.incarnation,
                                         reason=reason))
        if self.parent is None:
            self.send(self.myAddress, ActorExitRequest())

    def _run_on_stop(self, reason: ExitReason) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            self.on_stop(reason)
        except Exception:  # the actor is leaving anyway; its reason is already decided
            log.exception("%s: on_stop failed", self.path)

    # --- timers -------------------------------------------------------------------------------

    def start_timer(self, delay_s: float, message: Any, *, repeat: bool = False) -> int:
        """Deliver ``message`` to this actor after ``delay_s`` (and every ``delay_s`` if repeat)."""
        timer = self._timers.add(delay_s, message, repeat)
        self.wakeupAfter(timedelta(seconds=delay_s), TimerTick(timer.timer_id))
        return timer.timer_id

    def cancel_timer(self, timer_id: int) -> bool:
        """True if the timer was live; its message will not be delivered."""
        return self._timers.cancel(timer_id)

    def _handle_wakeup(self, msg: WakeupMessage) -> None:
        if not isinstance(msg.payload, TimerTick):
            return None
        timer = self._timers.fire(msg.payload)
        if timer is None:
            return None
        if timer.repeat:
            self.wakeupAfter(timedelta(seconds=timer.delay_s), msg.payload)
        if isinstance(timer.message, _RequestExpired):
            return self._expire_request(timer.message.correlation_id)
        return self._dispatch(timer.message, self.myAddress)

    # --- request / reply ----------------------------------------------------------------------

    def request(self, target: Any, body: Any, on_reply: Callable[[Any], None], *,
                timeout_s: float = 5.0, on_timeout: Callable[[], None] | None = None) -> str:
        """Send ``body`` in a ``Request``; ``on_reply(answer)`` runs when the reply comes.

        Without ``on_timeout``, no reply within ``timeout_s`` raises ``RequestTimeoutError`` in this
        actor, which crashes it (as an unhandled gen_server:call timeout does in OTP).
        """
        cid = uuid.uuid4().hex
        timer_id = self.start_timer(timeout_s, _RequestExpired(cid))
        self._requests[cid] = _PendingRequest(on_reply, on_timeout, timer_id, target,
                                              type(body).__name__, timeout_s)
        self.send(target, Request(correlation_id=cid, body=body))
        return cid

    def receiveMsg_Reply(self, msg: Reply, sender: Any) -> None:
        pending = self._requests.pop(msg.correlation_id, None)
        if pending is None:
            return  # late reply to a request that already timed out
        self.cancel_timer(pending.timer_id)
        if msg.error:
            raise RequestFailedError(f"{pending.kind} to {pending.target} failed: {msg.error}")
        pending.on_reply(msg.body)

    def _expire_request(self, cid: str) -> None:
        pending = self._requests.pop(cid, None)
        if pending is None:
            return
        if pending.on_timeout is not None:
            pending.on_timeout()
            return
        raise RequestTimeoutError(str(pending.target), pending.kind, pending.timeout_s)

    def _handle_request(self, req: Request, sender: Any) -> None:
        body = req.body
        key = (type(self), type(body))
        try:
            handler = _DISPATCH[key]
        except KeyError:
            handler = _DISPATCH[key] = _find_handler(type(self), type(body))
        self.handled += 1
        self._reply_to = ReplyTo(sender, req.correlation_id)
        if handler is None:
            self.receive_unhandled(body, sender)
            result = None
        else:
            result = handler(self, body, sender)
        if result is not None and result is not self.SUPER:
            self.send(sender, Reply(correlation_id=req.correlation_id, body=result))
        self._reply_to = None

    def defer_reply(self, sender: Any) -> ReplyTo:
        """Keep where the current message's answer goes, to answer later with ``reply_later``."""
        return self._reply_to or ReplyTo(sender, None)

    def reply_later(self, to: ReplyTo, body: Any) -> None:
        if to.correlation_id is None:
            self.send(to.address, body)
        else:
            self.send(to.address, Reply(correlation_id=to.correlation_id, body=body))

    # --- registry -----------------------------------------------------------------------------

    def whereis(self, name: str, on_reply: Callable[[Any], None], *, timeout_s: float = 5.0) -> None:
        """Resolve a registered name through the root supervisor; ``on_reply(address or None)``."""
        self.request(self.root, Whereis(name=name),
                     lambda r: on_reply(r.address if isinstance(r, WhereisReply) else None),
                     timeout_s=timeout_s)

    # --- placement ----------------------------------------------------------------------------

    @staticmethod
    def actorSystemCapabilityCheck(capabilities: dict[str, Any],
                                   requirements: dict[str, Any] | None) -> bool:
        """Thespian's placement hook: a child lands only where every requirement is met."""
        return all(capabilities.get(k) == v for k, v in (requirements or {}).items())


def _find_handler(actor_cls: type, msg_cls: type) -> Callable[..., Any] | None:
    for klass in msg_cls.__mro__:
        handler = getattr(actor_cls, "receiveMsg_" + klass.__name__, None)
        if handler is not None:
            return handler
    return None
