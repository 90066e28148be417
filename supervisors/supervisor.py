"""The supervisor: OTP's supervisor behaviour as a ptr actor.

It starts its children in order (each must report ``Started`` before the next starts), stops them in
reverse order (each within its shutdown time, then its process is killed), and on a child's exit
applies the restart type (permanent, transient, temporary) and the strategy (one_for_one,
one_for_all, rest_for_one, simple_one_for_one). More than ``intensity`` restarts within ``period_s``
and it stops all its children and exits with reason shutdown, for its own supervisor to handle.

All work is a *plan*, a queue of ``stop id`` / ``start id`` steps run one at a time; a failure while a
plan runs replaces the plan with a new one computed from what should be running, so restarts
converge however faults interleave.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from actors._thespian import ActorExitRequest, ChildActorExited
from actors.base import Actor, ReplyTo
from actors.behaviour import node_name
from actors.light import LightActor
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
    ChildInfo,
    Heartbeat,
    HeartbeatAck,
    NodeLost,
    ChildrenReport,
    ExitKind,
    ExitNotice,
    ExitReason,
    Init,
    RegisterName,
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
    WhichChildren,
)
from supervisors.restart_window import RestartWindow
from supervisors.spec import ChildSpec, RestartType, Strategy, SupervisorSpec

ALIVE = ("starting", "running", "stopping")


@dataclass(frozen=True)
class StopTimeout:
    child_id: str
    incarnation: int


@dataclass(frozen=True)
class BackoffDue:
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


@dataclass(frozen=True)
class HostRetry:
    child_id: str
    incarnation: int


class ChildRecord:
    """What a supervisor knows of one child. Slots: a light supervisor may hold 100,000 of them."""

    __slots__ = ("child_id", "spec", "args", "status", "wanted", "address", "pid", "node",
                 "incarnation", "starts", "started_at", "last_exit", "last_exit_at", "ready_at",
                 "backoff_attempt", "backoff_timer", "stop_timer", "waiting", "last_seen")

    def __init__(self, spec: ChildSpec, child_id: str | None = None,
                 args: Mapping[str, Any] | None = None) -> None:
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
        self.waiting: list[ReplyTo] | None = None
        self.last_seen = 0.0              # last heartbeat answer, for children on other nodes

    @property
    def restarts(self) -> int:
        return max(0, self.starts - 1)


class SupervisorBehaviour:
    """OTP's supervisor over ``args["spec"]`` (a ``SupervisorSpec``), for either actor weight.

    Mixed into a process actor (``Supervisor``) or a light actor (``LightSupervisor``); children of
    either weight: a ``ChildSpec`` with ``host`` runs as a light actor in that named host.
    """

    is_light = False

    def on_start(self) -> None:
        self.spec: SupervisorSpec = self.args["spec"]
        self.window = RestartWindow(self.spec.intensity, self.spec.period_s)
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
        if self.spec.strategy is not Strategy.SIMPLE_ONE_FOR_ONE:
            for child in self.spec.children:
                self.children[child.id] = ChildRecord(child)
                self.plan.append(("start", child.id))
        self.defer_start()
        self.advance()

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
            if rec.ready_at > time.monotonic():
                rec.status = "restarting"
                if rec.backoff_timer is None:
                    rec.backoff_timer = self.start_timer(rec.ready_at - time.monotonic(),
                                                         BackoffDue(cid))
                return
            self._spawn(rec)
            return
        if self.terminating is not None:
            self._terminated()
        elif not self.reported:
            self.reported = True
            self.report_started()

    def _spawn(self, rec: ChildRecord) -> None:
        rec.incarnation += 1
        rec.starts += 1
        rec.status = "starting"
        rec.pid = 0
        rec.address = None
        host = self._host_of(rec)
        if host is None:
            self._spawn_process(rec)
        elif self.is_light and host == self.host_name:
            self._spawn_here(rec)
        else:
            self._spawn_in(host, rec)

    def _host_of(self, rec: ChildRecord) -> str | None:
        """The named host a child runs in, or None for a process child (light inherits its host)."""
        return rec.spec.host or (self.host_name if self.is_light else None)

    def _init_for(self, rec: ChildRecord) -> Init:
        return Init(child_id=rec.child_id, path=f"{self.path}/{rec.child_id}",
                    parent=self.myAddress, root=self.root, args=dict(rec.args),
                    incarnation=rec.incarnation)

    def _spawn_process(self, rec: ChildRecord) -> None:
        raise SpecError("a light supervisor cannot start a process actor", child_id=rec.child_id)

    def _spawn_here(self, rec: ChildRecord) -> None:
        raise NotImplementedError

    def _spawn_in(self, host: str, rec: ChildRecord) -> None:
        """Start a light child in another host: resolve the host by name, then ``SpawnLight``."""
        if host not in self.monitored:
            self.monitored.add(host)
            self.send(self.root, MonitorName(name=host, subscriber=self.myAddress))
        address = self.host_addresses.get(host)
        if address is not None:
            self.send(address, SpawnLight(spec=rec.spec.with_id(rec.child_id, rec.args)
                                          if rec.args is not rec.spec.args else rec.spec,
                                          child_id=rec.child_id,
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
            self._spawn_in(host, rec)

        self.whereis(host, resolved)

    def receiveMsg_HostRetry(self, msg: HostRetry, sender: Any) -> None:
        rec = self.children.get(msg.child_id)
        if rec is not None and rec.incarnation == msg.incarnation and rec.status == "starting":
            self._spawn_in(self._host_of(rec) or "", rec)

    def _on_started(self, rec: ChildRecord, address: Any, pid: int, node: str) -> None:
        rec.status, rec.pid, rec.node = "running", pid, node
        rec.address = address
        if type(address) is LightAddress:
            self.light_children[address] = rec
        rec.started_at = rec.last_seen = time.monotonic()
        if node != node_name() and self.heartbeat_timer is None:
            self.heartbeat_timer = self.start_timer(HEARTBEAT_S, HeartbeatTick(), repeat=True)
        if rec.spec.name:
            self.send(self.root, RegisterName(name=rec.spec.name, address=address,
                                              path=f"{self.path}/{rec.child_id}", pid=pid,
                                              node=node))
        for to in rec.waiting or ():
            self.reply_later(to, StartChildReply(child_id=rec.child_id, address=address))
        rec.waiting = None
        if self.plan and self.plan[0] == ("start", rec.child_id):
            self.plan.popleft()
        self.advance()

    def _begin_stop(self, rec: ChildRecord) -> None:
        rec.status = "stopping"
        shutdown_ms = rec.spec.shutdown_ms
        if shutdown_ms == 0:
            self._kill(rec)
            return
        self.send(rec.address, Shutdown())
        if shutdown_ms is not None:
            rec.stop_timer = self.start_timer(shutdown_ms / 1000.0,
                                              StopTimeout(rec.child_id, rec.incarnation))

    def _kill(self, rec: ChildRecord) -> None:
        """Brutal kill: a light child through its host; a process child by SIGKILL of its own
        process, or through Thespian when it shares ours (simpleSystemBase)."""
        if type(rec.address) is LightAddress:
            self.send(rec.address.host, KillLight(lid=rec.address.lid))
            return
        if rec.pid and rec.pid != os.getpid():
            try:
                os.kill(rec.pid, signal.SIGKILL)
                return
            except ProcessLookupError:
                pass
        self.send(rec.address, ActorExitRequest())

    def receiveMsg_StopTimeout(self, msg: StopTimeout, sender: Any) -> None:
        rec = self.children.get(msg.child_id)
        if rec and rec.incarnation == msg.incarnation and rec.status == "stopping":
            self._kill(rec)

    def receiveMsg_BackoffDue(self, msg: BackoffDue, sender: Any) -> None:
        rec = self.children.get(msg.child_id)
        if rec is not None:
            rec.backoff_timer = None
            self.advance()

    # --- what children say --------------------------------------------------------------------

    def receiveMsg_Started(self, msg: Started, sender: Any) -> None:
        rec = self.children.get(msg.child_id)
        if rec is None or rec.incarnation != msg.incarnation or rec.status != "starting":
            return
        self._on_started(rec, msg.address, msg.pid, msg.node)

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
            if rec.address == address and rec.status == "starting" and rec.spec.requirements:
                self._unplaceable(rec)  # Thespian found no node meeting its requirements
                return
            if rec.address == address and rec.status in ALIVE:
                self._child_down(rec, ExitReason.shutdown() if rec.status == "stopping"
                                 else ExitReason.killed())
                return

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
        now, here, lost = time.monotonic(), node_name(), set()
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
            rec.last_seen = time.monotonic()

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
        was_stopping = rec.status == "stopping"
        if rec.stop_timer is not None:
            self.cancel_timer(rec.stop_timer)
            rec.stop_timer = None
        if rec.spec.name and rec.status != "starting":
            self.send(self.root, UnregisterName(name=rec.spec.name, address=rec.address))
        if reason.exit_kind is ExitKind.KILLED and rec.spec.is_supervisor:
            # a killed supervisor's process took its subtree along: their names are gone too
            self.send(self.root, UnregisterSubtree(path_prefix=f"{self.path}/{rec.child_id}/"))
        if type(rec.address) is LightAddress:
            self.light_children.pop(rec.address, None)
        rec.status, rec.address, rec.pid = "stopped", None, 0
        cid = rec.child_id
        if self.plan and self.plan[0] == ("stop" if was_stopping else "start", cid):
            self.plan.popleft()
        if was_stopping:  # we asked it to go: whatever it says, this is its shutdown
            if rec.spec.restart is RestartType.TEMPORARY or (self._is_dynamic() and not rec.wanted):
                self._forget(rec)
            self.advance()
            return
        rec.last_exit, rec.last_exit_at = reason, time.time()
        for to in rec.waiting or ():
            self.reply_later(to, StartChildReply(child_id=cid, error=str(reason)))
        rec.waiting = None
        if self.terminating is not None:
            self.advance()
            return
        restart = (rec.spec.restart is RestartType.PERMANENT
                   or (rec.spec.restart is RestartType.TRANSIENT and reason.is_abnormal))
        if not restart:
            rec.wanted = False
            if rec.spec.restart is RestartType.TEMPORARY or self._is_dynamic():
                self._forget(rec)
            self.advance()
            return
        if not self.window.allow():
            self._terminate(ExitReason.shutdown("reached_max_restart_intensity"), requested=False)
            return
        self._schedule_backoff(rec)
        self._replan(self._affected_by(rec))

    def _schedule_backoff(self, rec: ChildRecord) -> None:
        policy = rec.spec.backoff
        if policy is None:
            return
        now = time.monotonic()
        if rec.started_at and now - rec.started_at >= policy.reset_after:
            rec.backoff_attempt = 0
        rec.ready_at = now + policy.delay(rec.backoff_attempt, self.rng)
        rec.backoff_attempt += 1

    def _affected_by(self, rec: ChildRecord) -> list[ChildRecord]:
        order = list(self.children.values())
        strategy = self.spec.strategy
        if strategy is Strategy.ONE_FOR_ALL:
            return order
        if strategy is Strategy.REST_FOR_ONE:
            return order[order.index(rec):]
        return [rec]

    def _replan(self, affected: list[ChildRecord]) -> None:
        """Stop the affected children still alive (reverse order), then start whatever should run."""
        self.plan = deque(("stop", r.child_id) for r in reversed(affected) if r.status in ALIVE)
        self.plan.extend(("start", r.child_id) for r in self.children.values()
                         if r.wanted and (r.status != "running" or r in affected))
        self.advance()

    def _forget(self, rec: ChildRecord) -> None:
        self.children.pop(rec.child_id, None)

    def _is_dynamic(self) -> bool:
        return self.spec.strategy is Strategy.SIMPLE_ONE_FOR_ONE

    # --- stopping the supervisor --------------------------------------------------------------

    def begin_shutdown(self, reason: ExitReason) -> None:
        self._terminate(reason, requested=True)

    def _terminate(self, reason: ExitReason, *, requested: bool) -> None:
        if self.terminating is not None:
            return
        self.terminating = reason
        self.shutdown_requested = requested
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
            return StartChildReply(child_id="", error="supervisor is shutting down")
        if self._is_dynamic():
            self.dynamic_seq += 1
            template = self.spec.children[0]
            rec = ChildRecord(template, f"{template.id}-{self.dynamic_seq}",
                              {**template.args, **msg.args} if msg.args else template.args)
        elif isinstance(msg.spec, ChildSpec):
            rec = ChildRecord(msg.spec)
        else:
            return StartChildReply(child_id="", error="StartChild needs a ChildSpec here")
        if rec.child_id in self.children:
            return StartChildReply(child_id=rec.child_id,
                                   error=f"child {rec.child_id!r} already exists")
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
            rec = ChildRecord(template, f"{template.id}-{self.dynamic_seq}", args)
            self.children[rec.child_id] = rec
            self.plan.append(("start", rec.child_id))
            ids.append(rec.child_id)
        self.advance()
        running = sum(1 for cid in ids if cid in self.children
                      and self.children[cid].status == "running")
        return StartChildrenReply(running=running, pending=len(ids) - running,
                                  first_id=f"{template.id}-{first}",
                                  last_id=f"{template.id}-{self.dynamic_seq}")

    def receiveMsg_TerminateChild(self, msg: TerminateChild, sender: Any) -> Any:
        rec = self.children.get(msg.child_id)
        if rec is None:
            return TerminateChildReply(child_id=msg.child_id, found=False)
        rec.wanted = False
        if rec.status in ALIVE:
            self.plan.append(("stop", msg.child_id))
        elif self._is_dynamic():
            self._forget(rec)
        self.advance()
        return TerminateChildReply(child_id=msg.child_id, found=True)

    def receiveMsg_WhichChildren(self, msg: WhichChildren, sender: Any) -> ChildrenReport:
        return ChildrenReport(
            path=self.path, restart_budget_left=self.window.budget_left,
            intensity=self.spec.intensity, period_s=self.spec.period_s,
            children=[ChildInfo(child_id=r.child_id, actor_class=r.spec.actor_name,
                                status=r.status, address=r.address, pid=r.pid, node=r.node,
                                restarts=r.restarts, is_supervisor=r.spec.is_supervisor,
                                last_exit=r.last_exit, last_exit_at=r.last_exit_at,
                                name=r.spec.name or "")
                      for r in self.children.values()])


class Supervisor(SupervisorBehaviour, Actor):
    """A supervisor that is a process actor: its process children are its Thespian children."""

    def _spawn_process(self, rec: ChildRecord) -> None:
        rec.address = self.createActor(rec.spec.actor,
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

    def _spawn_here(self, rec: ChildRecord) -> None:
        address, outcome, reason = self._host.spawn(
            rec.spec.actor, rec.child_id, f"{self.path}/{rec.child_id}", self.myAddress, self.root,
            rec.args, rec.incarnation)
        rec.address = address
        if outcome == "started":
            self._on_started(rec, address, os.getpid(), node_name())
        elif outcome == "failed":
            self._child_down(rec, reason or ExitReason.killed())
