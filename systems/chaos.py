"""Fault injection, the same from Python, from pytest and from ``ptr chaos``.

Paths are the tree's own (``/smart-home/analyzers/heating``); a fault goes to whatever incarnation
holds that path now. ``kill`` and ``kill_node`` send SIGKILL, so they act on this machine only.
"""

from __future__ import annotations

import os
import signal

from protocols.errors import ActorSystemError
from protocols.light import KillLight, LightAddress
from protocols.supervision import ChaosCrash, ChaosDelay, ChaosDrop, ChildInfo
from systems.processes import kill_processes, processes_in_sessions
from systems.runtime import ActorRuntime


class Chaos:
    def __init__(self, runtime: ActorRuntime) -> None:
        self.rt = runtime

    def resolve(self, path: str) -> ChildInfo:
        """The child at ``path`` now (``/ROOT/child/grandchild``)."""
        parts = [p for p in path.strip("/").split("/") if p]
        if not parts or parts[0] != self.rt.name:
            raise ActorSystemError(f"{path!r} is not in this system (its paths start /{self.rt.name})")
        supervisor, info = self.rt.root, None
        for depth, part in enumerate(parts[1:], start=1):
            children = {c.child_id: c for c in self.rt.which_children(supervisor).children}
            if part not in children:
                where = "/" + "/".join(parts[:depth])
                raise ActorSystemError(f"no child {part!r} under {where}; there are: "
                                       f"{', '.join(sorted(children)) or 'none'}")
            info = children[part]
            supervisor = info.address
        if info is None:
            raise ActorSystemError("the root itself cannot be targeted; name a child")
        if info.address is None or info.status != "running":
            raise ActorSystemError(f"{path} is {info.status}, not running")
        return info

    def crash(self, path: str) -> ChildInfo:
        """The actor raises (reason error); its supervisor restarts it by its strategy."""
        info = self.resolve(path)
        self.rt.tell(info.address, ChaosCrash())
        return info

    def kill(self, path: str) -> ChildInfo:
        """SIGKILL the actor's process (reason killed); a light actor is killed by its host."""
        info = self.resolve(path)
        if type(info.address) is LightAddress:
            self.rt.tell(info.address.host, KillLight(lid=info.address.lid))
        else:
            os.kill(info.pid, signal.SIGKILL)
        return info

    def delay(self, path: str, ms: float, for_s: float) -> ChildInfo:
        info = self.resolve(path)
        self.rt.tell(info.address, ChaosDelay(ms=ms, for_s=for_s))
        return info

    def drop(self, path: str, for_s: float) -> ChildInfo:
        info = self.resolve(path)
        self.rt.tell(info.address, ChaosDrop(for_s=for_s))
        return info

    def kill_node(self, admin_sid: int) -> list[int]:
        """SIGKILL every process of a node's actor system (its admin and all its actors)."""
        pids = processes_in_sessions({admin_sid})
        kill_processes(pids)
        return pids
