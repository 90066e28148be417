"""The root supervisor of a system: a supervisor that also keeps the name registry.

Every supervisor registers its named children here when they report ``Started`` and unregisters
them when they go, so a name always resolves to the current incarnation's address (or to nothing
while it restarts). The registry dies with the root, and so does the whole system.

The root also watches the process that started the system (``owner_pid`` in its args: ``ptr run``,
or a test). When that process is gone, nobody can stop the system any more, so the root stops the
tree (children in reverse start order, as on any shutdown) and then ends every process of the actor
system, the admin and the logger included, within ``OWNER_GRACE_S`` whatever the children do.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass
from typing import Any

from protocols.light import MonitorName, NameDown
from protocols.supervision import (
    ListNodes,
    NodeLost,
    RegisterName,
    RegisterNameReply,
    UnregisterName,
    UnregisterSubtree,
    Whereis,
    WhereisReply,
)
from protocols.supervision import ExitReason
from actors.behaviour import node_name
from actors.os_process import ProcessWatch, pid_alive
from supervisors.supervisor import Supervisor

log = logging.getLogger("ptr.root")

OWNER_CHECK_S = 0.25   # how often the root looks for the process that started the system
OWNER_GRACE_S = 3.0    # after the owner is gone, the longest a graceful stop may take
SUBTREE_RECHECK_S = 0.01
SUBTREE_RECHECK_FOR_S = 1.0


@dataclass(frozen=True)
class SubtreeRecheck:
    doomed: dict[str, int]   # name -> the pid it had when its supervisor died
    left_s: float


@dataclass(frozen=True)
class OwnerCheck:
    pass


@dataclass(frozen=True)
class EndSession:
    pass


def end_actor_system_session() -> None:
    """SIGKILL every process of this actor system: Thespian's admin leads their process group."""
    group = os.getpgid(0)
    if group == os.getsid(0) and group != os.getpid():  # never a test's or ptr's own group
        os.killpg(group, signal.SIGKILL)


class RootSupervisor(Supervisor):
    """The top of a system's tree; started by the runtime, never by another supervisor."""

    def on_start(self) -> None:
        self.names: dict[str, Any] = {}
        self.name_paths: dict[str, str] = {}
        self.name_pids: dict[str, int] = {}  # where known (this node): the OS process of each name
        self.monitors: dict[str, list[Any]] = {}
        self.nodes: dict[str, tuple[Any, dict[str, Any]]] = {}
        owner_pid = int(self.args.get("owner_pid") or 0)
        self.owner = ProcessWatch(owner_pid) if owner_pid else None
        self.owner_gone = False
        super().on_start()
        self.notifyOnSystemRegistrationChanges(True)
        if self.owner is not None:
            self.start_timer(OWNER_CHECK_S, OwnerCheck(), repeat=True)

    # --- the process that started the system --------------------------------------------------

    def receiveMsg_OwnerCheck(self, msg: OwnerCheck, sender: Any) -> None:
        if self.owner is None or self.owner_gone or self.owner.alive():
            return
        self.owner_gone = True
        log.warning("%s: the process that started this system (pid %d) is gone; stopping it",
                    self.path, self.owner.pid)
        self.start_timer(OWNER_GRACE_S, EndSession())
        self.begin_shutdown(ExitReason.shutdown(f"owner process {self.owner.pid} is gone"))

    def receiveMsg_EndSession(self, msg: EndSession, sender: Any) -> None:
        end_actor_system_session()

    def finish_shutdown(self, reason: ExitReason) -> None:
        super().finish_shutdown(reason)
        if self.owner_gone:
            end_actor_system_session()

    def receiveMsg_RegisterName(self, msg: RegisterName, sender: Any) -> RegisterNameReply:
        """Register a name for the child at ``msg.path``, unless another child holds it (OTP's
        ``already_started``): a name is never silently moved. The same path (a new incarnation of
        the same child, a restarted subtree) takes its name back; so does anyone a name whose
        process is known to be gone."""
        holder = self.names.get(msg.name)
        if holder is not None and holder != msg.address \
                and self.name_paths.get(msg.name) != msg.path:
            pid = self.name_pids.get(msg.name, 0)
            if not pid or pid_alive(pid):
                return RegisterNameReply(name=msg.name, registered=False, holder=holder,
                                         holder_path=self.name_paths.get(msg.name, ""))
        self.names[msg.name] = msg.address
        self.name_paths[msg.name] = msg.path
        self.name_pids[msg.name] = msg.pid if msg.node == node_name() else 0
        return RegisterNameReply(name=msg.name, registered=True)

    def receiveMsg_UnregisterName(self, msg: UnregisterName, sender: Any) -> None:
        if self.names.get(msg.name) == msg.address:
            del self.names[msg.name]
            for subscriber in self.monitors.get(msg.name, ()):
                self.send(subscriber, NameDown(name=msg.name, address=msg.address))

    def receiveMsg_UnregisterSubtree(self, msg: UnregisterSubtree, sender: Any) -> None:
        """A supervisor's process died and took its subtree along (linked death): every name
        registered below it goes down as soon as its process is gone, and its monitors hear of it.
        A process killed by its parent's death may take a few milliseconds to go: those still there
        are looked at again every ``SUBTREE_RECHECK_S`` for ``SUBTREE_RECHECK_FOR_S``. A name the
        restarted subtree registered meanwhile has another process, and stays."""
        self._subtree_down({name: self.name_pids.get(name, 0)
                            for name, path in self.name_paths.items()
                            if path.startswith(msg.path_prefix) and name in self.names},
                           SUBTREE_RECHECK_FOR_S)

    def _subtree_down(self, doomed: dict[str, int], left_s: float) -> None:
        dying = {}
        for name, pid in doomed.items():
            if not pid or name not in self.names or self.name_pids.get(name) != pid:
                continue  # not a local process, gone already, or registered again since
            if pid_alive(pid):
                dying[name] = pid
                continue
            address = self.names.pop(name)
            for subscriber in self.monitors.get(name, ()):
                self.send(subscriber, NameDown(name=name, address=address))
        if dying and left_s > 0:
            self.start_timer(SUBTREE_RECHECK_S, SubtreeRecheck(dying, left_s - SUBTREE_RECHECK_S))

    def receiveMsg_SubtreeRecheck(self, msg: SubtreeRecheck, sender: Any) -> None:
        self._subtree_down(msg.doomed, msg.left_s)

    def receiveMsg_MonitorName(self, msg: MonitorName, sender: Any) -> None:
        """Erlang's monitor, by name: tell the subscriber each time the name goes down."""
        subscribers = self.monitors.setdefault(msg.name, [])
        if msg.subscriber not in subscribers:
            subscribers.append(msg.subscriber)

    def receiveMsg_Whereis(self, msg: Whereis, sender: Any) -> WhereisReply:
        return WhereisReply(name=msg.name, address=self.names.get(msg.name))

    # --- nodes of the convention --------------------------------------------------------------

    def receiveMsg_ActorSystemConventionUpdate(self, msg: Any, sender: Any) -> None:
        """Thespian tells the root which admins join and leave the convention."""
        caps = dict(msg.remoteCapabilities or {})
        node = str(caps.get("ptr.node") or msg.remoteAdminAddress)
        if msg.remoteAdded:
            self.nodes[node] = (msg.remoteAdminAddress, caps)
        else:
            self.nodes.pop(node, None)

    def receiveMsg_NodeLost(self, msg: NodeLost, sender: Any) -> bool:
        """A supervisor lost a node: stop Thespian from placing actors there (it would keep trying
        for about 20 minutes otherwise)."""
        known = self.nodes.pop(msg.node, None)
        if known is not None:
            self.deRegisterRemoteSystem(known[0])
        return True

    def receiveMsg_ListNodes(self, msg: ListNodes, sender: Any) -> dict[str, dict[str, Any]]:
        return {name: caps for name, (_, caps) in self.nodes.items()}
