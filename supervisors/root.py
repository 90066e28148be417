"""The root supervisor of a system: a supervisor that also keeps the name registry.

Every supervisor registers its named children here when they report ``Started`` and unregisters
them when they go, so a name always resolves to the current incarnation's address (or to nothing
while it restarts). The registry dies with the root, and so does the whole system.
"""

from __future__ import annotations

from typing import Any

from protocols.light import MonitorName, NameDown
from protocols.supervision import (
    ListNodes,
    NodeLost,
    RegisterName,
    UnregisterName,
    Whereis,
    WhereisReply,
)
from supervisors.supervisor import Supervisor


class RootSupervisor(Supervisor):
    """The top of a system's tree; started by the runtime, never by another supervisor."""

    def on_start(self) -> None:
        self.names: dict[str, Any] = {}
        self.name_paths: dict[str, str] = {}
        self.monitors: dict[str, list[Any]] = {}
        self.nodes: dict[str, tuple[Any, dict[str, Any]]] = {}
        super().on_start()
        self.notifyOnSystemRegistrationChanges(True)

    def receiveMsg_RegisterName(self, msg: RegisterName, sender: Any) -> None:
        self.names[msg.name] = msg.address
        self.name_paths[msg.name] = msg.path

    def receiveMsg_UnregisterName(self, msg: UnregisterName, sender: Any) -> None:
        if self.names.get(msg.name) == msg.address:
            del self.names[msg.name]
            for subscriber in self.monitors.get(msg.name, ()):
                self.send(subscriber, NameDown(name=msg.name, address=msg.address))

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
