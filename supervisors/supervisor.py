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
from dataclasses import dataclass, field
from typing import Any

from actors._thespian import ActorExitRequest, ChildActorExited
from actors.base import Actor, ReplyTo
from protocols.supervision import (
    ChildInfo,
    ChildrenReport,
    ExitNotice,
    ExitReason,
    Init,
    RegisterName,
    Shutdown,
    StartChild,
    StartChildReply,
    Started,
    TerminateChild,
    TerminateChildReply,
    UnregisterName,
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


@dataclass
class ChildRecord:
    spec: ChildSpec
    status: str = "stopped"           # starting | running | stopping | restarting | stopped
    wanted: bool = True               # should it be running (False after terminate / no restart)
    address: Any = None
    pid: int = 0
    node: str = ""
    incarnation: int = 0
    starts: int = 0
    started_at: float = 0.0
    last_exit: ExitReason | None = None
    last_exit_at: float = 0.0
    ready_at: float = 0.0              # backoff: not before this monotonic time
    backoff_attempt: int = 0
    backoff_timer: int | None = None
    stop_timer: int | None = None
    waiting: list[ReplyTo] = field(default_factory=list)

    @property
    def restarts(self) -> int:
        return max(0, self.starts - 1)


class Supervisor(Actor):
    """Supervises the children of ``args["spec"]`` (a ``SupervisorSpec``)."""

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
        if self.spec.strategy is not Strategy.SIMPLE_ONE_FOR_ONE:
            for child in self.spec.children:
                self.children[child.id] = ChildRecord(child)
                self.plan.append(("start", child.id))
        self.defer_start()
        self.advance()

    # --- the plan -----------------------------------------------------------------------------

    def advance(self) -> None:
        """Run plan steps until one must wait for a child's answer or a timer."""
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
        rec.address = self.createActor(rec.spec.actor,
                                       targetActorRequirements=dict(rec.spec.requirements or {}))
        self.send(rec.address, Init(child_id=rec.spec.id, path=f"{self.path}/{rec.spec.id}",
                                    parent=self.myAddress, root=self.root,
                                    args=dict(rec.spec.args), incarnation=rec.incarnation))

    def _begin_stop(self, rec: ChildRecord) -> None:
        rec.status = "stopping"
        shutdown_ms = rec.spec.shutdown_ms
        if shutdown_ms == 0:
            self._kill(rec)
            return
        self.send(rec.address, Shutdown())
        if shutdown_ms is not None:
            rec.stop_timer = self.start_timer(shutdown_ms / 1000.0,
                                              StopTimeout(rec.spec.id, rec.incarnation))

    def _kill(self, rec: ChildRecord) -> None:
        """Brutal kill: SIGKILL the child's own process, or end it through Thespian if it shares ours."""
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
        rec.status, rec.pid, rec.node = "running", msg.pid, msg.node
        rec.address = msg.address
        rec.started_at = time.monotonic()
        if rec.spec.name:
            self.send(self.root, RegisterName(name=rec.spec.name, address=msg.address,
                                              path=f"{self.path}/{rec.spec.id}"))
        for to in rec.waiting:
            self.reply_later(to, StartChildReply(child_id=rec.spec.id, address=msg.address))
        rec.waiting.clear()
        if self.plan and self.plan[0] == ("start", rec.spec.id):
            self.plan.popleft()
        self.advance()

    def receiveMsg_ExitNotice(self, msg: ExitNotice, sender: Any) -> None:
        self.send(sender, ActorExitRequest())  # the child waits for this to go
        rec = self.children.get(msg.child_id)
        if rec is None or rec.incarnation != msg.incarnation or rec.status not in ALIVE:
            return
        self._child_down(rec, msg.reason)

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender: Any) -> None:
        for rec in self.children.values():
            if rec.address == msg.childAddress and rec.status in ALIVE:
                self._child_down(rec, ExitReason.shutdown() if rec.status == "stopping"
                                 else ExitReason.killed())
                return

    # --- deciding what a child's exit means ---------------------------------------------------

    def _child_down(self, rec: ChildRecord, reason: ExitReason) -> None:
        was_stopping = rec.status == "stopping"
        if rec.stop_timer is not None:
            self.cancel_timer(rec.stop_timer)
            rec.stop_timer = None
        if rec.spec.name and rec.status != "starting":
            self.send(self.root, UnregisterName(name=rec.spec.name, address=rec.address))
        rec.status, rec.address, rec.pid = "stopped", None, 0
        cid = rec.spec.id
        if self.plan and self.plan[0] == ("stop" if was_stopping else "start", cid):
            self.plan.popleft()
        if was_stopping:  # we asked it to go: whatever it says, this is its shutdown
            if rec.spec.restart is RestartType.TEMPORARY or (self._is_dynamic() and not rec.wanted):
                self._forget(rec)
            self.advance()
            return
        rec.last_exit, rec.last_exit_at = reason, time.time()
        for to in rec.waiting:
            self.reply_later(to, StartChildReply(child_id=cid, error=str(reason)))
        rec.waiting.clear()
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
        self.plan = deque(("stop", r.spec.id) for r in reversed(affected) if r.status in ALIVE)
        self.plan.extend(("start", r.spec.id) for r in self.children.values()
                         if r.wanted and (r.status != "running" or r in affected))
        self.advance()

    def _forget(self, rec: ChildRecord) -> None:
        self.children.pop(rec.spec.id, None)

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
            spec = template.with_id(f"{template.id}-{self.dynamic_seq}", msg.args)
        elif isinstance(msg.spec, ChildSpec):
            spec = msg.spec
        else:
            return StartChildReply(child_id="", error="StartChild needs a ChildSpec here")
        if spec.id in self.children:
            return StartChildReply(child_id=spec.id, error=f"child {spec.id!r} already exists")
        rec = ChildRecord(spec)
        rec.waiting.append(self.defer_reply(sender))
        self.children[spec.id] = rec
        self.plan.append(("start", spec.id))
        self.advance()
        return None

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
            children=[ChildInfo(child_id=r.spec.id, actor_class=r.spec.actor_name,
                                status=r.status, address=r.address, pid=r.pid, node=r.node,
                                restarts=r.restarts, is_supervisor=r.spec.is_supervisor,
                                last_exit=r.last_exit, last_exit_at=r.last_exit_at,
                                name=r.spec.name or "")
                      for r in self.children.values()])
