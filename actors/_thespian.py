"""Thespian, imported once with the environment ptr needs.

Without ``THESPIAN_BASE_IPADDR`` the IP transports find their address by opening a socket toward a
public address; ptr binds loopback unless the node says otherwise.
"""

from __future__ import annotations

import os

os.environ.setdefault("THESPIAN_BASE_IPADDR", "127.0.0.1")

from thespian.actors import (  # noqa: E402
    ActorAddress,
    ActorExitRequest,
    ActorTypeDispatcher,
    ChildActorExited,
    DeadEnvelope,
    PoisonMessage,
    ThespianWatch,
    WakeupMessage,
    WatchMessage,
)

__all__ = ["ActorAddress", "ActorExitRequest", "ActorTypeDispatcher", "ChildActorExited",
           "DeadEnvelope", "PoisonMessage", "ThespianWatch", "WakeupMessage", "WatchMessage"]
