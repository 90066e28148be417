"""The supervisor: OTP's supervisor behaviour as a ptr actor.

It starts its children in order (each must report ``Started`` before the next starts), stops them in
reverse order (each within its shutdown time, then its process is killed), and on a child's exit
applies the restart type (permanent, transient, temporary) and the strategy (one_for_one,
one_for_all, rest_for_one, simple_one_for_one). More than ``intensity`` restarts within ``period_s``
and it stops all its children and exits with reason shutdown, for its own supervisor to handle.

Starts follow OTP's rules by what the start is for (``ChildRecord.start_for``): a child that fails
while the supervisor itself starts makes the supervisor's start fail (children already started are
stopped first, the reason names the child); a ``StartChild`` that fails is answered with the error
and leaves nothing behind; a failed restart counts as a restart and is tried again after whatever
the supervisor already has to do (a ``TryAgain`` to itself, OTP's ``try_again_restart``), so queries
and other starts are answered meanwhile. A child's start may also answer ``ignore``.

All work is a *plan*, a queue of ``stop id`` / ``start id`` steps run one at a time; a crash while a
plan runs puts the stops and starts its strategy asks for into the plan, so restarts converge
however faults interleave. Children of a simple_one_for_one supervisor are stopped together, under
one shutdown timer, when the supervisor stops.
"""

from __future__ import annotations

import os
import random
import select
import signal
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from actors.system import ActorExitRequest, ChildActorExited
from actors.base import Actor, ReplyTo
from actors.behaviour import node_name
from actors.light import LightActor
from actors.os_process import pid_alive
from protocols.errors import SpecError
from protocols.light import (
    ChildGone,
    KillLight,
    LightAddress,
    MonitorName,
    NameDown,
    SpawnLight,
)
from protocols.supervision import (
    ChildCounts,
    ChildError,
    ChildInfo,
    ChildrenReport,
    CountChildren,
    DeleteChild,
    DeleteChildReply,
    ExitKind,
    ExitNotice,
    ExitReason,
    Heartbeat,
    HeartbeatAck,
    Ignored,
    Init,
    NodeLost,
    RegisterName,
    RegisterNameReply,
    RestartChild,
    Shutdown,
    StartChild,
    StartChildReply,
    StartChildren,
    StartChildrenReply,
    Started,
    TerminateChild,
    TerminateChildReply,
    UnregisterName,
    UnregisterSubtree,
    WhichChild,
    WhichChildReply,
    WhichChildren,
)
from supervisors.restart_window import RestartWindow
from supervisors.spec import (
    AutoShutdown,
    ChildSpec,
    RestartType,
    Strategy,
    SupervisorSpec,
    resolve_actor,
)

ALIVE = ("starting", "running", "stopping")   # a process (or light actor) exists
PENDING = ("restarting", "unplaceable")        # no process, but the supervisor will start one


@dataclass(frozen=True)
class StopTimeout:
    child_id: str
    incarnation: int


@dataclass(frozen=True)
class GroupStopTimeout:
    """The one shutdown timer of a simple_one_for_one supervisor's children (OTP)."""


@dataclass(frozen=True)
class BackoffDue:
    child_id: str


@dataclass(frozen=True)
class TryAgain:
    """A restart failed: try it again after the messages already queued (OTP's try_again_restart)."""

    child_id: str


@dataclass(frozen=True)
class PlacementTimeout:
    child_id: str
    incarnation: int


@dataclass(frozen=True)
class PlacementRetry:
    child_id: str


@dataclass(frozen=True)
class HeartbeatTick:
    pass


HEARTBEAT_S = 1.0          # how often a supervisor checks children on other nodes
NODE_TIMEOUT_S = 3.0       # silence after which their node counts as lost (noticed within 4 s)
PLACEMENT_TIMEOUT_S = 5.0  # a child placed by requirements that has not started by then
PLACEMENT_RETRY_S = 1.0    # how often an unplaceable child is tried again
REGISTER_TIMEOUT_S = 10.0  # the root's answer to a name registration
KILL_WAIT_S = 0.5          # the longest a SIGKILLed child's process may take to be gone


@dataclass(frozen=True)
class HostRetry:
    child_id: str
    incarnation: int


class ChildRecord:
    """What a supervisor knows of one child. Slots: a light supervisor may hold 100,000 of them.

    ``start_for`` says what the current (or next) start is for, which decides what its failure
    means: ``init`` (the supervisor's own start), ``add`` (``StartChild``), ``manual``
    (``RestartChild``) or ``restart`` (after an exit).
    """

    __slots__ = ("child_id", "spec", "args", "status", "wanted", "address", "pid", "node",
                 "incarnation", "starts", "started_at", "last_exit", "last_exit_at", "ready_at",
                 "backoff_attempt", "backoff_timer", "stop_timer", "waiting", "last_seen",
                 "start_for", "stop_waiting", "exits")

    def __init__(self, spec: ChildSpec, child_id: str | None = None,
                 args: Mapping[str, Any] | None = None, start_for: str = "init") -> None:
        self.child_id = child_id or spec.id
        self.spec = spec                  # for dynamic children: the shared template
        self.args = spec.args if args is None else args
        self.status = "stopped"           # starting | running | stopping | restarting | stopped
        self.wanted = True                # should it run (False after terminate / no restart)
        self.address: Any = None
        self.pid = 0
        self.node = ""
        self.incarnation = 0
        self.starts = 0
        self.started_at = 0.0
        self.last_exit: ExitReason | None = None
        self.last_exit_at = 0.0
        self.ready_at = 0.0               # backoff: not before this monotonic time
        self.backoff_attempt = 0
        self.backoff_timer: int | None = None
        self.stop_timer: int | None = None
        self.waiting: list[ReplyTo] | None = None       # answers owed when its start ends
        self.last_seen = 0.0              # last heartbeat answer, for children on other nodes
        self.start_for = start_for
        self.stop_waiting: list[ReplyTo] | None = None  # answers owed when it has stopped
        self.exits: dict[str, int] = {}   # exits it was not asked for, by kind, all incarnations

    @property
    def restarts(self) -> int:
        return max(0, self.starts - 1)


def _kill_and_wait(pid: int, timeout_s: float) -> None:
    """SIGKILL ``pid`` and wait (a pidfd, no polling) until it has exited or ``timeout_s``."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except OSError:
        fd = -1
    try:
        os.kill(pid, signal.SIGKILL)
        if fd >= 0:
            select.select([fd], [], [], timeout_s)
    except ProcessLookupError:
        pass
    finally:
        if fd >= 0:
            os.close(fd)


def _error_kind(reason: ExitReason) -> ChildError:
    if reason.error_type == "already_started":
        return "already_started"
    if reason.error_type == "SpecError":
        return "invalid"
    return "failed"


def _spec_reason(err: SpecError) -> ExitReason:
    return ExitReason(exit_kind=ExitKind.ERROR, error_type="SpecError", text=str(err))


class SupervisorBehaviour:
    """OTP's supervisor over ``args["spec"]`` (a ``SupervisorSpec``), for either actor weight.

    Mixed into a process actor (``Supervisor``) or a light actor (``LightSupervisor``); children of
    either weight: a ``ChildSpec`` with ``host`` runs as a light actor in that named host.
    """

    is_light = False

    def on_start(self) -> None:
        self.spec: SupervisorSpec = self.args["spec"]
        if not isinstance(self.spec, SupervisorSpec):
            raise SpecError(f"a supervisor needs a SupervisorSpec, got {type(self.spec).__name__}")
        self.window = RestartWindow(self.spec.intensity, self.spec.period_s, clock=self.clock)
        self.rng = random.Random()
        self.children: dict[str, ChildRecord] = {}
        self.plan: deque[tuple[str, str]] = deque()
        self.dynamic_seq = 0
        self.terminating: ExitReason | None = None
        self.shutdown_requested = False
        self.reported = False
        self.host_addresses: dict[str, Any] = {}
        self.light_children: dict[LightAddress, ChildRecord] = {}  # O(1) exits among 100,000
        self.monitored: set[str] = set()
        self.heartbeat_timer: int | None = None
        self.nodes_being_dropped: set[str] = set()
        self._in_advance = False
        self._advance_again = False
        for child in self.spec.children:  # OTP checks the start spec before starting anything
            self._check_runnable(child)
        if self.spec.strategy is not Strategy.SIMPLE_ONE_FOR_ONE:
            for child in self.spec.children:
                self.children[child.id] = ChildRecord(child)
                self.plan.append(("start", child.id))
        self.defer_start()
        self.advance()

    def _check_runnable(self, child: ChildSpec) -> type:
        """The child's actor class, or ``SpecError`` naming the child: what a built spec cannot
        show (an actor named by a string that does not import, a weight its place cannot run)."""
        child.validate()
        self.spec.check_child(child)
        cls = resolve_actor(child.actor, child.id)
        host = child.host or (self.host_name if self.is_light else None)
        if host is None and not issubclass(cls, Actor):
            raise SpecError(f"{cls.__name__} is a light actor: give it a host", child_id=child.id)
        if host is not None and not issubclass(cls, LightActor):
            raise SpecError(f"{cls.__name__} is a process actor; only a LightActor runs in host "
                            f"{host!r}", child_id=child.id)
        return cls

    # --- the plan -----------------------------------------------------------------------------

    def advance(self) -> None:
        """Run plan steps until one must wait for a child's answer or a timer.

        Re-entrant calls (a child started synchronously inside a light host) only ask for another
        round, so 100,000 synchronous starts do not grow the stack.
        """
        if self._in_advance:
            self._advance_again = True
            return
        self._in_advance = True
        try:
            while True:
                self._advance_again = False
                self._advance_once()
                if not self._advance_again:
                    return
        finally:
            self._in_advance = False

    def _advance_once(self) -> None:
        while self.plan:
            op, cid = self.plan[0]
            rec = self.children.get(cid)
            if rec is None:
                self.plan.popleft()
                continue
            if op == "stop":
                if rec.status in ("starting", "running"):
                    self._begin_stop(rec)
                    return
                if rec.status == "stopping":
                    return
                self.plan.popleft()
                continue
            if self.terminating is not None or not rec.wanted or rec.status == "running":
                self.plan.popleft()
                continue
            if rec.status in ("starting", "stopping"):
                return
            if rec.status == "unplaceable":  # waits for its PlacementRetry, not the plan
                self.plan.popleft()
                continue
            if rec.ready_at > self.clock():
                rec.status = "restarting"
                if rec.backoff_timer is None:
                    rec.backoff_timer = self.start_timer(rec.ready_at - self.clock(),
                                                         BackoffDue(cid))
                if self._independent():  # a sibling is not held up by a backoff
                    self.plan.popleft()
                    continue
                return
            self._spawn(rec)
            return
        if self.terminating is not None:
            self._terminated()
        elif not self.reported:
            self.reported = True
            self.report_started()

    def _independent(self) -> bool:
        """Do children restart on their own (one_for_one, simple_one_for_one), not as a group?"""
        return self.spec.strategy in (Strategy.ONE_FOR_ONE, Strategy.SIMPLE_ONE_FOR_ONE)

    def _drop_starts(self, ids: set[str]) -> None:
        if any(op == "start" and cid in ids for op, cid in self.plan):
            self.plan = deque(s for s in self.plan if not (s[0] == "start" and s[1] in ids))

    def _spawn(self, rec: ChildRecord) -> None:
        rec.incarnation += 1
        rec.starts += 1
        rec.status = "starting"
        rec.pid = 0
        rec.address = None
        try:
            actor = resolve_actor(rec.spec.actor, rec.child_id)
        except SpecError as err:  # an actor named by a string that does not import
            self._child_down(rec, _spec_reason(err))
            return
        host = self._host_of(rec)
        if host is None:
            self._spawn_process(rec, actor)
        elif self.is_light and host == self.host_name:
            self._spawn_here(rec, actor)
        else:
            self._spawn_in(host, rec, actor)

    def _host_of(self, rec: ChildRecord) -> str | None:
        """The named host a child runs in, or None for a process child (light inherits its host)."""
        return rec.spec.host or (self.host_name if self.is_light else None)

    def _init_for(self, rec: ChildRecord) -> Init:
        return Init(child_id=rec.child_id, path=f"{self.path}/{rec.child_id}",
                    parent=self.myAddress, root=self.root, args=dict(rec.args),
                    incarnation=rec.incarnation)

    def _spawn_process(self, rec: ChildRecord, actor: type) -> None:
        self._child_down(rec, _spec_reason(SpecError(
            "a light supervisor cannot start a process actor", child_id=rec.child_id)))

    def _spawn_here(self, rec: ChildRecord, actor: type) -> None:
        raise NotImplementedError

    def _spawn_in(self, host: str, rec: ChildRecord, actor: type) -> None:
        """Start a light child in another host: resolve the host by name, then ``SpawnLight``."""
        if host not in self.monitored:
            self.monitored.add(host)
            self.send(self.root, MonitorName(name=host, subscriber=self.myAddress))
        address = self.host_addresses.get(host)
        if address is not None:
            spec = rec.spec
            if rec.args is not spec.args:
                spec = spec.with_id(rec.child_id, rec.args)
            if spec.actor is not actor:
                spec = replace(spec, actor=actor)
            self.send(address, SpawnLight(spec=spec, child_id=rec.child_id,
                                          path=f"{self.path}/{rec.child_id}",
                                          parent=self.myAddress, root=self.root,
                                          incarnation=rec.incarnation))
            return
        incarnation = rec.incarnation

        def resolved(found: Any) -> None:
            current = self.children.get(rec.child_id)
            if current is not rec or rec.incarnation != incarnation or rec.status != "starting":
                return
            if found is None:  # the host itself is (re)starting: try again shortly
                self.start_timer(0.02, HostRetry(rec.child_id, incarnation))
                return
            self.host_addresses[host] = found
            self._spawn_in(host, rec, actor)

        self.whereis(host, resolved)

    def receiveMsg_HostRetry(self, msg: HostRetry, sender: Any) -> None:
        rec = self.children.get(msg.child_id)
        if rec is not None and rec.incarnation == msg.incarnation and rec.status == "starting":
            self._spawn_in(self._host_of(rec) or "", rec, resolve_actor(rec.spec.actor))

    # --- a child has started ------------------------------------------------------------------

    def _on_started(self, rec: ChildRecord, address: Any, pid: int, node: str) -> None:
        """The child's ``on_start`` returned. A named child runs once the root has registered its
        name; a name another child holds fails the start (OTP's ``already_started``)."""
        rec.pid, rec.node, rec.address = pid, node, address
        if type(address) is LightAddress:
            self.light_children[address] = rec
        name = rec.spec.name
        if not name:
            self._running(rec)
            return
        incarnation = rec.incarnation

        def answered(reply: Any) -> None:
            if self.children.get(rec.child_id) is not rec or rec.incarnation != incarnation \
                    or rec.status != "starting":
                return
            if isinstance(reply, RegisterNameReply) and reply.registered:
                self._running(rec)
                return
            text = (f"name {name!r} is registered to {reply.holder_path or reply.holder}"
                    if isinstance(reply, RegisterNameReply) else
                    f"the root did not register name {name!r} within {REGISTER_TIMEOUT_S:g} s")
            self.send(rec.address, Shutdown(reason=ExitReason.shutdown("already_started")))
            self._child_down(rec, ExitReason(exit_kind=ExitKind.ERROR,
                                             error_type="already_started", text=text))

        self.request(self.root, RegisterName(name=name, address=address,
                                             path=f"{self.path}/{rec.child_id}", pid=pid,
                                             node=node),
                     answered, timeout_s=REGISTER_TIMEOUT_S, on_timeout=lambda: answered(None))

    def _running(self, rec: ChildRecord) -> None:
        rec.status = "running"
        rec.start_for = "restart"
        rec.started_at = rec.last_seen = self.clock()
        if rec.node != node_name() and self.heartbeat_timer is None:
            self.heartbeat_timer = self.start_timer(HEARTBEAT_S, HeartbeatTick(), repeat=True)
        for to in rec.waiting or ():
            self.reply_later(to, StartChildReply(child_id=rec.child_id, address=rec.address))
        rec.waiting = None
        if self.plan and self.plan[0] == ("start", rec.child_id):
            self.plan.popleft()
        self.advance()

    def _child_ignored(self, rec: ChildRecord) -> None:
        """The child's start answered ignore: its spec stays, not running (OTP), except a
        temporary or simple_one_for_one child's, which is dropped."""
        rec.status, rec.address, rec.pid = "stopped", None, 0
        rec.wanted = False
        rec.start_for = "restart"
        for to in rec.waiting or ():
            self.reply_later(to, StartChildReply(child_id=rec.child_id))
        rec.waiting = None
        if self.plan and self.plan[0] == ("start", rec.child_id):
            self.plan.popleft()
        if rec.spec.restart is RestartType.TEMPORARY or self._is_dynamic():
            self._forget(rec)
        self.advance()

    # --- stopping a child ---------------------------------------------------------------------

    def _begin_stop(self, rec: ChildRecord, *, own_timer: bool = True) -> None:
        rec.status = "stopping"
        if rec.address is None:  # still being placed: nothing runs yet
            self._child_down(rec, ExitReason.shutdown())
            return
        shutdown_ms = rec.spec.shutdown_ms
        if shutdown_ms == 0:
            self._kill(rec)
            return
        self.send(rec.address, Shutdown())
        if shutdown_ms is not None and own_timer:
            rec.stop_timer = self.start_timer(shutdown_ms / 1000.0,
                                              StopTimeout(rec.child_id, rec.incarnation))

    def _kill(self, rec: ChildRecord) -> None:
        """Brutal kill: a light child through its host; a process child by SIGKILL of its own
        process, or through Thespian when it shares ours (simpleSystemBase) or runs on another
        node. A SIGKILLed child is down once its process is: several children killed at once may
        come back from Thespian as fewer ``ChildActorExited`` (their SIGCHLDs coalesce)."""
        if type(rec.address) is LightAddress:
            self.send(rec.address.host, KillLight(lid=rec.address.lid))
            return
        if rec.pid and rec.pid != os.getpid() and rec.node == node_name():
            _kill_and_wait(rec.pid, KILL_WAIT_S)
            self._child_down(rec, ExitReason.shutdown() if rec.status == "stopping"
                             else ExitReason.killed())
            return
        self.send(rec.address, ActorExitRequest())

    def receiveMsg_StopTimeout(self, msg: StopTimeout, sender: Any) -> None:
        rec = self.children.get(msg.child_id)
        if rec and rec.incarnation == msg.incarnation and rec.status == "stopping":
            self._kill(rec)

    def receiveMsg_GroupStopTimeout(self, msg: GroupStopTimeout, sender: Any) -> None:
        for rec in list(self.children.values()):
            if rec.status == "stopping":
                self._kill(rec)

    def receiveMsg_BackoffDue(self, msg: BackoffDue, sender: Any) -> None:
        rec = self.children.get(msg.child_id)
        if rec is None:
            return
        rec.backoff_timer = None
        if rec.status == "restarting" and rec.wanted and self.terminating is None \
                and ("start", rec.child_id) not in self.plan:
            self.plan.append(("start", rec.child_id))
        self.advance()

    def receiveMsg_TryAgain(self, msg: TryAgain, sender: Any) -> None:
        rec = self.children.get(msg.child_id)
        if rec is not None and rec.status == "restarting" and rec.wanted \
                and self.terminating is None:
            self._replan(self._affected_by(rec))

    # --- what children say --------------------------------------------------------------------

    def receiveMsg_Started(self, msg: Started, sender: Any) -> None:
        rec = self.children.get(msg.child_id)
        if rec is None or rec.incarnation != msg.incarnation or rec.status != "starting" \
                or rec.pid:
            return
        self._on_started(rec, msg.address, msg.pid, msg.node)

    def receiveMsg_Ignored(self, msg: Ignored, sender: Any) -> None:
        if type(sender) is not LightAddress:  # a process child waits for this to go
            self.send(sender, ActorExitRequest())
        rec = self.children.get(msg.child_id)
        if rec is not None and rec.incarnation == msg.incarnation and rec.status == "starting":
            self._child_ignored(rec)

    def receiveMsg_ExitNotice(self, msg: ExitNotice, sender: Any) -> None:
        if type(sender) is not LightAddress:  # a process child waits for this to go
            self.send(sender, ActorExitRequest())
        rec = self.children.get(msg.child_id)
        if rec is None or rec.incarnation != msg.incarnation or rec.status not in ALIVE:
            return
        self._child_down(rec, msg.reason)

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender: Any) -> None:
        self._gone(msg.childAddress)

    def receiveMsg_ChildGone(self, msg: ChildGone, sender: Any) -> None:
        self._gone(msg.address)

    def _gone(self, address: Any) -> None:
        if type(address) is LightAddress:
            light = self.light_children.get(address)
            if light is not None and light.status in ALIVE:
                self._child_down(light, ExitReason.shutdown() if light.status == "stopping"
                                 else ExitReason.killed())
            return
        for rec in self.children.values():
            if rec.address == address and rec.status == "starting" and rec.spec.requirements \
                    and not rec.pid:
                self._unplaceable(rec)  # Thespian found no node meeting its requirements
                return
            if rec.address == address and rec.status in ALIVE:
                self._child_down(rec, ExitReason.shutdown() if rec.status == "stopping"
                                 else ExitReason.killed())
                break
        self._sweep_dead()

    def _sweep_dead(self) -> None:
        """Children whose process died without a ``ChildActorExited`` of their own: Thespian
        reports deaths on SIGCHLD, and signals that arrive together count once."""
        here, me = node_name(), os.getpid()
        dead = [r for r in self.children.values()
                if r.pid and r.pid != me and r.status in ALIVE and r.node == here
                and type(r.address) is not LightAddress and not pid_alive(r.pid)]
        for rec in dead:
            if rec.status in ALIVE:
                self._child_down(rec, ExitReason.shutdown() if rec.status == "stopping"
                                 else ExitReason.killed())

    # --- placement across nodes ---------------------------------------------------------------

    def _unplaceable(self, rec: ChildRecord) -> None:
        """No node can run it now: report it, try again later; a restart it is not."""
        rec.status, rec.address, rec.pid = "unplaceable", None, 0
        if self.plan and self.plan[0] == ("start", rec.child_id):
            self.plan.popleft()
        self.start_timer(PLACEMENT_RETRY_S, PlacementRetry(rec.child_id))
        self.advance()

    def receiveMsg_PlacementTimeout(self, msg: PlacementTimeout, sender: Any) -> None:
        rec = self.children.get(msg.child_id)
        if rec is not None and rec.incarnation == msg.incarnation and rec.status == "starting":
            if rec.address is not None:
                self.send(rec.address, ActorExitRequest())
            self._unplaceable(rec)

    def receiveMsg_PlacementRetry(self, msg: PlacementRetry, sender: Any) -> None:
        rec = self.children.get(msg.child_id)
        if rec is not None and rec.status == "unplaceable" and self.terminating is None:
            rec.status = "stopped"
            self.plan.append(("start", rec.child_id))
            self.advance()

    def receiveMsg_HeartbeatTick(self, msg: HeartbeatTick, sender: Any) -> None:
        now, here, lost = self.clock(), node_name(), set()
        for rec in self.children.values():
            if rec.status != "running" or rec.node == here or type(rec.address) is LightAddress:
                continue
            if now - rec.last_seen > NODE_TIMEOUT_S:
                lost.add(rec.node)
            else:
                self.send(rec.address, Heartbeat())
        for node in lost - self.nodes_being_dropped:
            self.nodes_being_dropped.add(node)
            # the root deregisters the node first, so the restart is not placed there again
            self.request(self.root, NodeLost(node=node), lambda _ack, n=node: self._node_gone(n),
                         timeout_s=5, on_timeout=lambda n=node: self._node_gone(n))

    def receiveMsg_HeartbeatAck(self, msg: HeartbeatAck, sender: Any) -> None:
        rec = self.children.get(msg.child_id)
        if rec is not None and rec.incarnation == msg.incarnation:
            rec.last_seen = self.clock()

    def _node_gone(self, node: str) -> None:
        self.nodes_being_dropped.discard(node)
        for rec in list(self.children.values()):
            if rec.status in ALIVE and rec.node == node and rec.child_id in self.children:
                self._child_down(rec, ExitReason.killed(f"node {node} lost"))

    def receiveMsg_NameDown(self, msg: NameDown, sender: Any) -> None:
        """A host we placed light children in went down: they went with it."""
        self.host_addresses.pop(msg.name, None)
        for rec in list(self.children.values()):
            if rec.status in ALIVE and self._host_of(rec) == msg.name:
                self._child_down(rec, ExitReason.killed(f"host {msg.name} went down"))

    # --- deciding what a child's exit means ---------------------------------------------------

    def _child_down(self, rec: ChildRecord, reason: ExitReason) -> None:
        was = rec.status
        if rec.stop_timer is not None:
            self.cancel_timer(rec.stop_timer)
            rec.stop_timer = None
        if rec.spec.name and rec.address is not None:
            self.send(self.root, UnregisterName(name=rec.spec.name, address=rec.address))
        if reason.exit_kind is ExitKind.KILLED and rec.spec.is_supervisor:
            # a killed supervisor's process took its subtree along: their names are gone too
            self.send(self.root, UnregisterSubtree(path_prefix=f"{self.path}/{rec.child_id}/"))
        if type(rec.address) is LightAddress:
            self.light_children.pop(rec.address, None)
        rec.status, rec.address, rec.pid = "stopped", None, 0
        cid = rec.child_id
        if self.plan and self.plan[0] == ("stop" if was == "stopping" else "start", cid):
            self.plan.popleft()
        if was == "stopping":  # we asked it to go: whatever it says, this is its shutdown
            self._answer_start(rec, ExitReason.shutdown("stopped before it started"))
            for to in rec.stop_waiting or ():
                self.reply_later(to, TerminateChildReply(child_id=cid, found=True))
            rec.stop_waiting = None
            if rec.spec.restart is RestartType.TEMPORARY or (self._is_dynamic() and not rec.wanted):
                self._forget(rec)
            self.advance()
            return
        rec.last_exit, rec.last_exit_at = reason, time.time()
        rec.exits[reason.exit_kind.value] = rec.exits.get(reason.exit_kind.value, 0) + 1
        if was == "starting":
            self._start_failed(rec, reason)
            return
        if self.terminating is not None:
            self.advance()
            return
        restart = (rec.spec.restart is RestartType.PERMANENT
                   or (rec.spec.restart is RestartType.TRANSIENT and reason.is_abnormal))
        if not restart:
            rec.wanted = False
            if rec.spec.restart is RestartType.TEMPORARY or self._is_dynamic():
                self._forget(rec)
            if self._auto_shutdown_due(rec):
                self._terminate(ExitReason.shutdown("auto_shutdown"), requested=False)
                return
            self.advance()
            return
        if not self.window.allow():
            self._give_up(rec, reason)
            return
        self._schedule_backoff(rec)
        self._replan(self._affected_by(rec))

    def _answer_start(self, rec: ChildRecord, reason: ExitReason,
                      kind: ChildError | None = None) -> None:
        """Answer whoever waits for this child's start (``StartChild``, ``RestartChild``)."""
        if not rec.waiting:
            return
        reply = StartChildReply(child_id=rec.child_id, error=f"start failed: {reason}",
                                error_kind=kind or _error_kind(reason), reason=reason)
        for to in rec.waiting:
            self.reply_later(to, reply)
        rec.waiting = None

    def _start_failed(self, rec: ChildRecord, reason: ExitReason) -> None:
        """The child left while starting. What that means depends on what the start was for."""
        cid = rec.child_id
        if self.terminating is not None:
            self._answer_start(rec, reason)
            self.advance()
            return
        if rec.start_for == "init" and not self.reported:
            # OTP: the supervisor's start fails, naming the child, after stopping those started
            self._terminate(ExitReason(exit_kind=ExitKind.SHUTDOWN,
                                       error_type="failed_to_start_child",
                                       text=f"failed_to_start_child {cid!r}: {reason}",
                                       traceback=reason.traceback), requested=False)
            return
        if rec.start_for == "add":  # StartChild: answer the error and keep nothing
            self._answer_start(rec, reason)
            self._drop_starts({cid})
            self._forget(rec)
            self.advance()
            return
        if rec.start_for == "manual":  # RestartChild: answer the error; the spec stays
            self._answer_start(rec, reason)
            rec.wanted = False
            self.advance()
            return
        # a restart that failed: it counts, and is tried again after what is already queued
        self._answer_start(rec, reason)
        if not self.window.allow():
            self._give_up(rec, reason)
            return
        rec.status = "restarting"
        self._drop_starts({r.child_id for r in self._affected_by(rec)})  # the group start aborts
        self._schedule_backoff(rec)
        self.send(self.myAddress, TryAgain(cid))
        self.advance()

    def _auto_shutdown_due(self, rec: ChildRecord) -> bool:
        """A significant child ended by itself and was not restarted: does the supervisor stop?"""
        mode = self.spec.auto_shutdown
        if mode is AutoShutdown.NEVER or not rec.spec.significant:
            return False
        if mode is AutoShutdown.ANY_SIGNIFICANT:
            return True
        if self._is_dynamic():
            return not self.children
        return not any(r.spec.significant and r.status != "stopped"
                       for r in self.children.values())

    def _give_up(self, rec: ChildRecord, reason: ExitReason) -> None:
        """OTP's reached_max_restart_intensity, naming the child whose exit was one too many."""
        last = " ".join(str(reason).split())[:300]
        self._terminate(ExitReason.shutdown(
            f"reached_max_restart_intensity ({self.spec.intensity} restarts in "
            f"{self.spec.period_s:g} s); {rec.child_id!r} exited {last}"), requested=False)

    def _schedule_backoff(self, rec: ChildRecord) -> None:
        policy = rec.spec.backoff
        if policy is None:
            return
        now = self.clock()
        if rec.started_at and now - rec.started_at >= policy.reset_after:
            rec.backoff_attempt = 0
        rec.ready_at = now + policy.delay(rec.backoff_attempt, self.rng)
        rec.backoff_attempt += 1

    def _affected_by(self, rec: ChildRecord) -> list[ChildRecord]:
        strategy = self.spec.strategy
        if strategy is Strategy.ONE_FOR_ALL:
            return list(self.children.values())
        if strategy is Strategy.REST_FOR_ONE:
            order = list(self.children.values())
            return order[order.index(rec):]
        return [rec]

    def _replan(self, affected: list[ChildRecord]) -> None:
        """Restart ``affected`` as OTP does: stop those alive (reverse start order), then start
        every one but the temporary ones, whether it was running or not (a sibling stopped with
        ``TerminateChild``, or ignored, is started again by a group restart). Steps already queued
        for other children keep their place, before the new starts."""
        if len(affected) == 1:
            rec = affected[0]
            rec.wanted, rec.start_for = True, "restart"
            if ("start", rec.child_id) not in self.plan or not self._independent():
                self._drop_starts({rec.child_id})
                self.plan.append(("start", rec.child_id))
            self.advance()
            return
        ids = set()
        for r in affected:
            ids.add(r.child_id)
            r.wanted = r.spec.restart is not RestartType.TEMPORARY
            if r.starts:
                r.start_for = "restart"
            if r.status in PENDING:
                r.status = "stopped"
        stops = [("stop", r.child_id) for r in reversed(affected) if r.status in ALIVE]
        kept = [step for step in self.plan if step[1] not in ids]
        starts = [("start", r.child_id) for r in affected if r.wanted]
        self.plan = deque(stops + kept + starts)
        self.advance()

    def _forget(self, rec: ChildRecord) -> None:
        if self.children.get(rec.child_id) is rec:
            del self.children[rec.child_id]
        if rec.backoff_timer is not None:
            self.cancel_timer(rec.backoff_timer)
            rec.backoff_timer = None

    def _is_dynamic(self) -> bool:
        return self.spec.strategy is Strategy.SIMPLE_ONE_FOR_ONE

    # --- stopping the supervisor --------------------------------------------------------------

    def begin_shutdown(self, reason: ExitReason) -> None:
        self._terminate(reason, requested=True)

    def _terminate(self, reason: ExitReason, *, requested: bool) -> None:
        """Stop every child (reverse start order; a simple_one_for_one supervisor's all at once,
        under one timer), then leave with ``reason``."""
        if self.terminating is not None:
            return
        self.terminating = reason
        self.shutdown_requested = requested
        for rec in self.children.values():
            if rec.status not in ALIVE:
                self._answer_start(rec, ExitReason.shutdown("the supervisor is shutting down"),
                                   "unavailable")
        if self._is_dynamic():
            alive = [r for r in self.children.values() if r.status in ALIVE]
            shutdown_ms = self.spec.children[0].shutdown_ms
            self.plan = deque(("stop", r.child_id) for r in alive)
            for rec in alive:
                if rec.status != "stopping":
                    self._begin_stop(rec, own_timer=False)
            if alive and shutdown_ms:
                self.start_timer(shutdown_ms / 1000.0, GroupStopTimeout())
        else:
            self.plan = deque(("stop", cid) for cid in reversed(list(self.children)))
        self.advance()

    def _terminated(self) -> None:
        if self.shutdown_requested:
            self.finish_shutdown(self.terminating or ExitReason.shutdown())
        else:
            self._leave(self.terminating or ExitReason.shutdown())

    # --- OTP's supervisor API -----------------------------------------------------------------

    def receiveMsg_StartChild(self, msg: StartChild, sender: Any) -> Any:
        if self.terminating is not None:
            return StartChildReply(child_id="", error="supervisor is shutting down",
                                   error_kind="unavailable")
        if self._is_dynamic():
            self.dynamic_seq += 1
            template = self.spec.children[0]
            rec = ChildRecord(template, f"{template.id}-{self.dynamic_seq}",
                              {**template.args, **msg.args} if msg.args else template.args,
                              start_for="add")
        else:
            spec = msg.spec
            if not isinstance(spec, ChildSpec):
                return StartChildReply(child_id="", error_kind="invalid",
                                       error=f"StartChild needs a ChildSpec here, got "
                                             f"{type(spec).__name__}")
            existing = self.children.get(spec.id) if isinstance(spec.id, str) else None
            if existing is not None:
                if existing.status in ALIVE:
                    return StartChildReply(child_id=spec.id, address=existing.address,
                                           error_kind="already_started",
                                           error=f"child {spec.id!r} is already started")
                return StartChildReply(child_id=spec.id, error_kind="already_present",
                                       error=f"child {spec.id!r} is already present")
            try:
                self._check_runnable(spec)
            except SpecError as err:
                return StartChildReply(child_id=str(spec.id), error=str(err),
                                       error_kind="invalid", reason=_spec_reason(err))
            rec = ChildRecord(spec, start_for="add")
        rec.waiting = [self.defer_reply(sender)]
        self.children[rec.child_id] = rec
        self.plan.append(("start", rec.child_id))
        self.advance()
        return None

    def receiveMsg_StartChildren(self, msg: StartChildren, sender: Any) -> StartChildrenReply:
        if not self._is_dynamic() or self.terminating is not None:
            return StartChildrenReply(running=0, pending=0)
        template = self.spec.children[0]
        args = {**template.args, **msg.args} if msg.args else template.args
        first = self.dynamic_seq + 1
        ids = []
        for _ in range(msg.count):
            self.dynamic_seq += 1
            rec = ChildRecord(template, f"{template.id}-{self.dynamic_seq}", args,
                              start_for="add")
            self.children[rec.child_id] = rec
            self.plan.append(("start", rec.child_id))
            ids.append(rec.child_id)
        self.advance()
        running = sum(1 for cid in ids if cid in self.children
                      and self.children[cid].status == "running")
        return StartChildrenReply(running=running, pending=len(ids) - running,
                                  first_id=f"{template.id}-{first}",
                                  last_id=f"{template.id}-{self.dynamic_seq}")

    def receiveMsg_RestartChild(self, msg: RestartChild, sender: Any) -> Any:
        cid = msg.child_id
        refusal = self._refuse_for_static(cid)
        if refusal:
            return StartChildReply(child_id=cid, error_kind=refusal,
                                   error=f"cannot restart {cid!r}: {refusal}")
        rec = self.children[cid]
        rec.wanted, rec.start_for, rec.ready_at = True, "manual", 0.0
        rec.waiting = [self.defer_reply(sender)]
        self.plan.append(("start", cid))
        self.advance()
        return None

    def receiveMsg_DeleteChild(self, msg: DeleteChild, sender: Any) -> DeleteChildReply:
        cid = msg.child_id
        refusal = self._refuse_for_static(cid)
        if not refusal:
            self._drop_starts({cid})
            self._forget(self.children[cid])
        return DeleteChildReply(child_id=cid, error=refusal)

    def _refuse_for_static(self, cid: str) -> ChildError:
        """Why ``RestartChild``/``DeleteChild`` cannot act on ``cid`` now ("" if they can)."""
        if self._is_dynamic():
            return "simple_one_for_one"
        if self.terminating is not None:
            return "unavailable"
        rec = self.children.get(cid)
        if rec is None:
            return "not_found"
        if rec.status in ALIVE:
            return "running"
        if rec.status in PENDING or ("start", cid) in self.plan:
            return "restarting"
        return ""

    def receiveMsg_TerminateChild(self, msg: TerminateChild, sender: Any) -> Any:
        rec = self.children.get(msg.child_id)
        if rec is None:
            return TerminateChildReply(child_id=msg.child_id, found=False, error="not_found")
        rec.wanted = False
        if rec.backoff_timer is not None:
            self.cancel_timer(rec.backoff_timer)
            rec.backoff_timer = None
        if rec.status in ALIVE:
            if rec.stop_waiting is None:
                rec.stop_waiting = []
            rec.stop_waiting.append(self.defer_reply(sender))
            if rec.status != "stopping":
                self.plan.appendleft(("stop", msg.child_id))
                self.advance()
            return None
        rec.status = "stopped"
        self._drop_starts({msg.child_id})
        if rec.spec.restart is RestartType.TEMPORARY or self._is_dynamic():
            self._forget(rec)
        self.advance()
        return TerminateChildReply(child_id=msg.child_id, found=True)

    def _info(self, r: ChildRecord) -> ChildInfo:
        return ChildInfo(child_id=r.child_id, actor_class=r.spec.actor_name, status=r.status,
                         address=r.address, pid=r.pid, node=r.node, restarts=r.restarts,
                         is_supervisor=r.spec.is_supervisor, last_exit=r.last_exit,
                         last_exit_at=r.last_exit_at, name=r.spec.name or "",
                         significant=r.spec.significant, exits=dict(r.exits),
                         restart_in_s=max(0.0, r.ready_at - self.clock())
                         if r.status == "restarting" else 0.0)

    def receiveMsg_WhichChildren(self, msg: WhichChildren, sender: Any) -> ChildrenReport:
        return ChildrenReport(
            path=self.path, restart_budget_left=self.window.budget_left,
            intensity=self.spec.intensity, period_s=self.spec.period_s,
            children=[self._info(r) for r in self.children.values()])

    def receiveMsg_WhichChild(self, msg: WhichChild, sender: Any) -> WhichChildReply:
        rec = self.children.get(msg.child_id)
        if rec is None:
            return WhichChildReply(child_id=msg.child_id, error="not_found")
        return WhichChildReply(child_id=msg.child_id, info=self._info(rec))

    def receiveMsg_CountChildren(self, msg: CountChildren, sender: Any) -> ChildCounts:
        supervisors = sum(1 for r in self.children.values() if r.spec.is_supervisor)
        return ChildCounts(
            specs=1 if self._is_dynamic() else len(self.children),
            active=sum(1 for r in self.children.values() if r.status == "running"),
            supervisors=supervisors, workers=len(self.children) - supervisors)


class Supervisor(SupervisorBehaviour, Actor):
    """A supervisor that is a process actor: its process children are its Thespian children."""

    def _spawn_process(self, rec: ChildRecord, actor: type) -> None:
        rec.address = self.createActor(actor,
                                       targetActorRequirements=dict(rec.spec.requirements or {}))
        self.send(rec.address, self._init_for(rec))
        if rec.spec.requirements:  # placed by capability, maybe on a node that just died
            self.start_timer(PLACEMENT_TIMEOUT_S, PlacementTimeout(rec.child_id, rec.incarnation))


class LightSupervisor(SupervisorBehaviour, LightActor):
    """A supervisor that is a light actor: starts its light children synchronously in its host."""

    is_light = True

    @property
    def host_name(self) -> str:
        return self._host.child_id

    def _spawn_here(self, rec: ChildRecord, actor: type) -> None:
        address, outcome, reason = self._host.spawn(
            actor, rec.child_id, f"{self.path}/{rec.child_id}", self.myAddress, self.root,
            rec.args, rec.incarnation)
        rec.address = address
        if outcome == "started":
            self._on_started(rec, address, os.getpid(), node_name())
        elif outcome == "failed":
            self._child_down(rec, reason or ExitReason.killed())
        elif outcome == "ignored":
            self._child_ignored(rec)
