"""What every ptr actor does, whatever its weight: dispatch, let it crash, timers, request/reply.

``ActorBehaviour`` is shared by the process actor (``actors.base.Actor``, a Thespian actor) and the
light actor (``actors.light.LightActor``, an object inside a host process). Each supplies four
primitives: ``send``, ``_arm_wakeup`` (deliver a ``TimerTick`` later), ``_end_self`` (go away
after a clean stop, telling the supervisor) and ``_after_leave`` (go away after an ``ExitNotice``).

Lifecycle: the supervisor sends ``Init``; ``on_start`` runs on it and the actor reports ``Started``
(or ``Ignored``, when ``on_start`` returns ``IGNORE``). If a handler or ``on_start`` raises, the
actor runs ``on_stop``, tells its supervisor why in an ``ExitNotice`` and takes no further message;
the supervisor starts a fresh instance. A ``Shutdown`` from anyone ends the actor the same way, with
the reason it carries.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from actors import clock
from actors.peers import Peer, PeerRetry, PeerSet
from actors.timers import TimerTable, TimerTick
from protocols.errors import ChaosInjectedError, RequestFailedError, RequestTimeoutError
from protocols.light import NameDown
from protocols.supervision import (
    ActorStats,
    ChaosCrash,
    ChaosDelay,
    ChaosDrop,
    ExitNotice,
    ExitReason,
    GetActorStats,
    Heartbeat,
    HeartbeatAck,
    Ignored,
    Init,
    Reply,
    Request,
    Shutdown,
    Started,
    Whereis,
    WhereisReply,
)

log = logging.getLogger("ptr.actor")



_node_cache: tuple[int, str] = (0, "")


def node_name() -> str:
    """This node's name: ``PTR_NODE`` (set by ``ptr node start`` before Thespian forks the node's
    processes) or the host name. Cached per process: a supervisor asks it for every child."""
    global _node_cache
    pid = os.getpid()
    if _node_cache[0] != pid:
        _node_cache = (pid, os.environ.get("PTR_NODE") or socket.gethostname())
    return _node_cache[1]


def set_node_name(name: str) -> None:
    """Name this node; processes forked afterwards (an admin and its actors) inherit the name."""
    global _node_cache
    os.environ["PTR_NODE"] = name
    _node_cache = (os.getpid(), name)


SUPER = hash("SUPER")  # Thespian's ActorTypeDispatcher.SUPER: "not handled here"


class _Ignore:
    __slots__ = ()

    def __repr__(self) -> str:
        return "IGNORE"


IGNORE = _Ignore()
"""Return it from ``on_start`` to decline to start (OTP's ``ignore``): the actor goes away without
``on_stop``, and its supervisor keeps the spec, not running (see ``protocols.supervision.Ignored``)."""


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


_CHAOS_EXEMPT = frozenset({"Init", "Shutdown", "ChaosCrash", "ChaosDelay", "ChaosDrop",
                           "ActorExitRequest", "TimerTick", "Heartbeat", "GetActorStats"})


class _Chaos:
    """An injected fault with an end: delay or drop what the actor receives until ``until``."""

    __slots__ = ("until", "delay_s", "drop", "dropped")

    def __init__(self, until: float, *, delay_s: float = 0.0, drop: bool = False) -> None:
        self.until, self.delay_s, self.drop, self.dropped = until, delay_s, drop, 0

    def admit(self, message: Any) -> bool:
        if time.monotonic() >= self.until:
            return True
        name = type(message).__name__
        if name == "Request":
            name = type(message.body).__name__
        if name in _CHAOS_EXEMPT:
            return True
        if self.drop:
            self.dropped += 1
            return False
        time.sleep(self.delay_s)  # the injected fault: a slow handler
        return True


_DISPATCH: dict[tuple[type, type], Callable[..., Any] | None] = {}


def find_handler(actor_cls: type, msg_cls: type) -> Callable[..., Any] | None:
    """The ``receiveMsg_<Type>`` method for a message type or its nearest base (cached)."""
    key = (actor_cls, msg_cls)
    try:
        return _DISPATCH[key]
    except KeyError:
        pass
    handler = None
    for klass in msg_cls.__mro__:
        handler = getattr(actor_cls, "receiveMsg_" + klass.__name__, None)
        if handler is not None:
            break
    _DISPATCH[key] = handler
    return handler


class ActorBehaviour:
    """The programming model. Write ``receiveMsg_<Type>(self, msg, sender)`` handlers.

    A handler's non-None return value is the reply: sent back in a ``Reply`` when the message came
    in a ``Request``, sent to the sender as is otherwise. If a handler raises, the actor exits with
    reason ``error`` and its supervisor decides. Never write ``except Exception`` to survive.
    """

    __slots__ = ("child_id", "path", "parent", "root", "args", "incarnation", "handled", "_timers",
                 "_requests", "_reply_to", "_init_sender", "_start_deferred", "_exiting", "_stopped",
                 "_chaos", "_peer_sets", "_peers")

    #: Message type name -> the args key listing the registered names allowed to send it. Any
    #: other sender's message of that type is refused and counted (see ``actors.peers``).
    only_from: dict[str, str] = {}

    #: The actor's arguments as a frozen pydantic model (``ActorArgs``): when a class sets it, a
    #: child spec naming the class is checked against it as it is built (a bad value is a
    #: ``SpecError`` naming the child and the field, before anything starts), and ``typed_args()``
    #: gives the values with their one default each.
    Args: type[Any] | None = None

    myAddress: Any

    def _init_behaviour(self) -> None:
        self.child_id = ""
        self.path = ""
        self.parent: Any = None
        self.root: Any = None
        self.args: dict[str, Any] = {}
        self.incarnation = 0
        self.handled = 0
        self._timers: TimerTable | None = None
        self._requests: dict[str, _PendingRequest] | None = None
        self._reply_to: ReplyTo | None = None
        self._init_sender: Any = None
        self._start_deferred = False
        self._exiting = False
        self._stopped = False
        self._chaos: _Chaos | None = None
        self._peer_sets: dict[str, PeerSet] | None = None
        self._peers: dict[str, Peer] | None = None

    # --- primitives each weight supplies ------------------------------------------------------

    def send(self, target: Any, message: Any) -> None:
        raise NotImplementedError

    def _arm_wakeup(self, delay_s: float, tick: TimerTick) -> None:
        raise NotImplementedError

    def _end_self(self) -> None:
        raise NotImplementedError

    def _after_leave(self) -> None:
        raise NotImplementedError

    # --- hooks --------------------------------------------------------------------------------

    def on_start(self) -> Any:
        """Runs on ``Init``. If it raises, the start failed with reason error; if it returns
        ``IGNORE``, the actor declines to start (OTP's ``ignore``)."""

    def on_stop(self, reason: ExitReason) -> None:
        """Runs once when the actor leaves for any reason but ``killed``. Errors here are logged only."""

    # --- delivery -----------------------------------------------------------------------------

    def deliver(self, message: Any, sender: Any) -> None:
        """Handle one message; an exception ends this actor (let it crash)."""
        if self._exiting:
            return
        if self._chaos is not None and not self._chaos.admit(message):
            return
        self._guarded(self._dispatch, message, sender)

    def _guarded(self, step: Callable[..., Any], *args: Any) -> None:
        """Run one step of this actor; if it raises, the actor exits with reason error."""
        try:
            step(*args)
        except Exception as exc:  # the one place where ptr catches: let it crash
            self._crash(ExitReason.from_exception(exc))

    def _dispatch(self, message: Any, sender: Any, admitted: bool = False) -> None:
        mtype = type(message)
        if mtype is Request:
            return self._handle_request(message, sender, admitted)
        if mtype is TimerTick:
            return self._fire_timer(message)
        if self.only_from and not admitted and not self._admits(message, sender, mtype.__name__):
            return None
        handler = find_handler(type(self), mtype)
        self.handled += 1
        if handler is None:
            return self.receive_unhandled(message, sender)
        self._reply_to = None
        result = handler(self, message, sender)
        if result is not None and result != SUPER:
            self.send(sender, result)
        return None

    def receive_unhandled(self, message: Any, sender: Any) -> None:
        """A message no handler takes. Logged and dropped; override to make it a crash."""
        log.warning("%s dropped unhandled %s from %s", self.path or type(self).__name__,
                    type(message).__name__, sender)

    # --- lifecycle ----------------------------------------------------------------------------

    def receiveMsg_Init(self, msg: Init, sender: Any) -> None:
        self._begin(msg.child_id, msg.path, msg.parent, msg.root, msg.args, msg.incarnation, sender)

    def _begin(self, child_id: str, path: str, parent: Any, root: Any, args: Any,
               incarnation: int, init_sender: Any) -> None:
        """Take identity and run ``on_start`` (raises: the start failed)."""
        self.child_id, self.path, self.parent = child_id, path, parent
        self.root = root if root is not None else self.myAddress
        self.args, self.incarnation = args, incarnation
        self._init_sender = init_sender
        if self.on_start() is IGNORE:
            self._ignore_start()
        elif not self._start_deferred:
            self.report_started()

    def _ignore_start(self) -> None:
        """``on_start`` answered ``IGNORE``: say so and go, without ``on_stop`` (it never started)."""
        self._stopped = self._exiting = True
        if self._timers is not None:
            self._timers.clear()
        target = self.parent or self._init_sender
        if target is not None:
            self.send(target, Ignored(child_id=self.child_id, incarnation=self.incarnation))
        self._after_leave()

    def defer_start(self) -> None:
        """Call in ``on_start`` to report ``Started`` later (a supervisor waits for its children)."""
        self._start_deferred = True

    def report_started(self) -> None:
        self.send(self.parent or self._init_sender, self._started_message())

    def _started_message(self) -> Started:
        return Started(child_id=self.child_id, incarnation=self.incarnation,
                       address=self.myAddress, pid=os.getpid(), sid=os.getsid(0), node=node_name())

    def receiveMsg_Shutdown(self, msg: Shutdown, sender: Any) -> None:
        self.begin_shutdown(msg.reason)

    def begin_shutdown(self, reason: ExitReason) -> None:
        """Asked to stop. The default stops at once; a supervisor first stops its children."""
        self.finish_shutdown(reason)

    def finish_shutdown(self, reason: ExitReason) -> None:
        """Stopped: run ``on_stop`` and tell the supervisor the reason (it matters when the
        ``Shutdown`` came from someone else: normal and shutdown are normal exits, OTP)."""
        self._run_on_stop(reason)
        self._exiting = True
        target = self.parent or self._init_sender
        if target is not None:
            self.send(target, ExitNotice(child_id=self.child_id, incarnation=self.incarnation,
                                         reason=reason))
        self._end_self()

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
        if self._timers is not None:
            self._timers.clear()
        target = self.parent or self._init_sender
        if target is not None:
            self.send(target, ExitNotice(child_id=self.child_id, incarnation=self.incarnation,
                                         reason=reason))
        self._after_leave()

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
        if self._timers is None:
            self._timers = TimerTable()
        timer = self._timers.add(delay_s, message, repeat)
        self._arm_wakeup(delay_s, TimerTick(timer.timer_id))
        return timer.timer_id

    def cancel_timer(self, timer_id: int) -> bool:
        """True if the timer was live; its message will not be delivered."""
        return self._timers is not None and self._timers.cancel(timer_id)

    def _fire_timer(self, tick: TimerTick) -> None:
        timer = self._timers.fire(tick) if self._timers is not None else None
        if timer is None:
            return None
        if timer.repeat:
            self._arm_wakeup(timer.delay_s, tick)
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
        if self._requests is None:
            self._requests = {}
        self._requests[cid] = _PendingRequest(on_reply, on_timeout, timer_id, target,
                                              type(body).__name__, timeout_s)
        self.send(target, Request(correlation_id=cid, body=body))
        return cid

    def receiveMsg_Reply(self, msg: Reply, sender: Any) -> None:
        pending = self._requests.pop(msg.correlation_id, None) if self._requests else None
        if pending is None:
            return  # late reply to a request that already timed out
        self.cancel_timer(pending.timer_id)
        if msg.error:
            raise RequestFailedError(f"{pending.kind} to {pending.target} failed: {msg.error}")
        pending.on_reply(msg.body)

    def abandon_request(self, cid: str) -> bool:
        """Forget a request still waiting for its reply (its target is known dead): no callback of
        it runs. True if it was still waiting."""
        pending = self._requests.pop(cid, None) if self._requests else None
        if pending is None:
            return False
        self.cancel_timer(pending.timer_id)
        return True

    def _expire_request(self, cid: str) -> None:
        pending = self._requests.pop(cid, None) if self._requests else None
        if pending is None:
            return
        if pending.on_timeout is not None:
            pending.on_timeout()
            return
        raise RequestTimeoutError(str(pending.target), pending.kind, pending.timeout_s)

    def _handle_request(self, req: Request, sender: Any, admitted: bool = False) -> None:
        body = req.body
        if self.only_from and not admitted and not self._admits(req, sender, type(body).__name__):
            return
        handler = find_handler(type(self), type(body))
        self.handled += 1
        self._reply_to = ReplyTo(sender, req.correlation_id)
        if handler is None:
            self.receive_unhandled(body, sender)
            result = None
        else:
            result = handler(self, body, sender)
        if result is not None and result != SUPER:
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

    def typed_args(self) -> Any:
        """``args`` validated by the class's ``Args`` model (its defaults filled in)."""
        if self.Args is None:
            raise TypeError(f"{type(self).__name__} declares no Args model")
        return self.Args.model_validate(dict(self.args))

    # --- time and peers ----------------------------------------------------------------------

    def clock(self) -> float:
        """This actor's clock, in monotonic seconds: what its backoffs, restart windows and
        deadlines read. Tests replace it (``actors.clock.use_clock(MockClock())``)."""
        return clock.monotonic()

    def peer(self, name: str, on_down: Callable[[Any], None] | None = None, *,
             monitor: bool = True) -> Peer:
        """The handle of a registered peer (one per name): resolved, cached, resolved again after
        the peer restarts; ``on_down(address)`` when the root says it went down. A short-lived
        actor (a room) passes ``monitor=False``: the root keeps every monitor's subscriber."""
        if self._peers is None:
            self._peers = {}
        handle = self._peers.get(name)
        if handle is None:
            handle = self._peers[name] = Peer(self, name, on_down, monitor)
        return handle

    def receiveMsg_NameDown(self, msg: NameDown, sender: Any) -> None:
        """A monitored name went down: its ``Peer`` forgets the address. An actor that overrides
        this and uses peers calls ``peer_went_down(msg)``."""
        self.peer_went_down(msg)

    def peer_went_down(self, msg: NameDown) -> None:
        handle = self._peers.get(msg.name) if self._peers else None
        if handle is not None:
            handle.went_down(msg.address)

    def receiveMsg_PeerRetry(self, msg: PeerRetry, sender: Any) -> None:
        handle = self._peers.get(msg.name) if self._peers else None
        if handle is not None:
            handle.retry()

    # --- who may send what ------------------------------------------------------------------------

    def _admits(self, message: Any, sender: Any, kind: str) -> bool:
        """True if ``sender`` may send ``kind`` now. Otherwise the message is held while the
        allowed peers are resolved again, then handled or refused."""
        key = self.only_from.get(kind)
        if key is None:
            return True
        if self._peer_sets is None:
            self._peer_sets = {}
        peers = self._peer_sets.get(key)
        if peers is None:
            peers = self._peer_sets[key] = PeerSet(self.peer(name)
                                                   for name in self.args.get(key) or ())
        if peers.admits(sender):
            return True

        def recheck() -> None:
            if peers.admits(sender):
                self._dispatch(message, sender, admitted=True)
                return
            peers.refused += 1
            log.warning("%s refused %s from %s: not one of %s (%s)", self.path, kind, sender,
                        key, ", ".join(peers.names) or "none")
            if type(message) is Request:
                self.send(sender, Reply(correlation_id=message.correlation_id,
                                        error=f"refused: {kind} is taken only from {key}"))

        peers.refresh(recheck)
        return False

    def refused_senders(self) -> int:
        """Messages refused because their sender was not an allowed peer (``only_from``)."""
        return sum(p.refused for p in (self._peer_sets or {}).values())

    # --- introspection and fault injection -----------------------------------------------------

    def queued(self) -> int:
        """Messages waiting in this actor's mailbox, or -1 where the transport does not say."""
        return -1

    def stats_detail(self) -> list[str]:
        """Lines ``ptr inspect`` shows under this actor (its own state in words); none by default."""
        return []

    def receiveMsg_GetActorStats(self, msg: GetActorStats, sender: Any) -> ActorStats:
        return ActorStats(path=self.path, actor_class=type(self).__name__, pid=os.getpid(),
                          node=node_name(), handled=self.handled, queued=self.queued(),
                          refused_senders=self.refused_senders(), detail=tuple(self.stats_detail()))

    def receiveMsg_Heartbeat(self, msg: Heartbeat, sender: Any) -> HeartbeatAck:
        return HeartbeatAck(child_id=self.child_id, incarnation=self.incarnation)

    def receiveMsg_ChaosCrash(self, msg: ChaosCrash, sender: Any) -> None:
        raise ChaosInjectedError(f"chaos: crash injected into {self.path}")

    def receiveMsg_ChaosDelay(self, msg: ChaosDelay, sender: Any) -> None:
        self._chaos = _Chaos(time.monotonic() + msg.for_s, delay_s=msg.ms / 1000.0)

    def receiveMsg_ChaosDrop(self, msg: ChaosDrop, sender: Any) -> None:
        self._chaos = _Chaos(time.monotonic() + msg.for_s, drop=True)

    # --- registry -----------------------------------------------------------------------------

    def whereis(self, name: str, on_reply: Callable[[Any], None], *, timeout_s: float = 5.0) -> None:
        """Resolve a registered name through the root supervisor; ``on_reply(address or None)``."""
        self.request(self.root, Whereis(name=name),
                     lambda r: on_reply(r.address if isinstance(r, WhereisReply) else None),
                     timeout_s=timeout_s)
