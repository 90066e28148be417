"""A test harness over a running system: start a tree under the root, fault its children, watch it.

The tree under test is started as a dynamic child of the root (``StartChild``), so a recorder that
exists before it can be handed to every worker, and stopping it (``TerminateChild``) shows the
stop order without ending the system.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from actors.system import ActorExitRequest
from actors.testing.scripted import LightScriptedActor, Recorder, ScriptedActor
from protocols.errors import RequestTimeoutError
from protocols.scripted import Crash, Event, ExitNormally, ExitProcess, GetEvents, Ping
from protocols.supervision import ChildInfo, StartChild, StartChildReply, TerminateChild
from protocols.light import KillLight, LightAddress
from supervisors.spec import ChildSpec, RestartType, Strategy, SupervisorSpec, host_spec
from supervisors.supervisor import LightSupervisor
from systems.runtime import ActorRuntime

ROOT_SPEC = SupervisorSpec(intensity=100, period_s=1.0)
LIGHT_HOST = "h1"
LIGHT_ROOT_SPEC = SupervisorSpec(intensity=100, period_s=1.0, children=[host_spec(LIGHT_HOST)])


def root_spec(weight: str) -> SupervisorSpec:
    return LIGHT_ROOT_SPEC if weight == "light" else ROOT_SPEC


def as_light(child: ChildSpec, top: bool = False) -> ChildSpec:
    """The same child as a light actor: scripted workers and supervisors alike, recursively."""
    if child.supervises is not None:
        inner = child.supervises
        light_inner = replace(inner, children=[as_light(c) for c in inner.children])
        return replace(child, actor=LightSupervisor, supervises=light_inner,
                       host=LIGHT_HOST if top else None)
    return replace(child, actor=LightScriptedActor, host=LIGHT_HOST if top else None)


def worker(child_id: str, restart: RestartType = RestartType.PERMANENT, **kwargs: Any) -> ChildSpec:
    options = ("shutdown_ms", "backoff", "name", "significant")
    args = {k: v for k, v in kwargs.items() if k not in options}
    return ChildSpec(id=child_id, actor=ScriptedActor, args=args, restart=restart,
                     shutdown_ms=kwargs.get("shutdown_ms", 2000), backoff=kwargs.get("backoff"),
                     name=kwargs.get("name"), significant=kwargs.get("significant", False))


class Harness:
    def __init__(self, runtime: ActorRuntime, weight: str = "process") -> None:
        self.rt = runtime
        self.weight = weight
        self.recorder = runtime.create_actor(Recorder)
        self.sut: Any = None

    def start_tree(self, strategy: Strategy, children: list[ChildSpec], *, intensity: int = 10,
                   period_s: float = 5.0, sut_id: str = "sut",
                   restart: RestartType = RestartType.PERMANENT, expect_error: bool = False,
                   auto_shutdown: str = "never", significant: bool = False) -> Any:
        reply = self.try_tree(strategy, children, intensity=intensity, period_s=period_s,
                              sut_id=sut_id, restart=restart, auto_shutdown=auto_shutdown,
                              significant=significant)
        assert bool(reply.error) == expect_error, reply
        self.sut = reply.address
        return reply.address

    def try_tree(self, strategy: Strategy, children: list[ChildSpec], *, intensity: int = 10,
                 period_s: float = 5.0, sut_id: str = "sut",
                 restart: RestartType = RestartType.PERMANENT, auto_shutdown: str = "never",
                 significant: bool = False) -> StartChildReply:
        """Start the tree under the root; the root's answer, whatever it is."""
        with_recorder = [self._with_recorder(c) for c in children]
        spec = SupervisorSpec(strategy, with_recorder, intensity=intensity, period_s=period_s,
                              auto_shutdown=auto_shutdown)
        child = spec.as_child(sut_id, restart=restart, significant=significant)
        if self.weight == "light":
            child = as_light(child, top=True)
        reply = self.rt.ask(self.rt.root, StartChild(spec=child), 30)
        assert isinstance(reply, StartChildReply), reply
        return reply

    def child_spec(self, child: ChildSpec) -> ChildSpec:
        """A child to add to the tree under test (``StartChild``): the recorder and the weight."""
        child = self._with_recorder(child)
        return as_light(child) if self.weight == "light" else child

    def _with_recorder(self, child: ChildSpec) -> ChildSpec:
        if child.supervises is not None:
            inner = child.supervises
            return replace(child, supervises=replace(
                inner, children=[self._with_recorder(c) for c in inner.children]))
        return child.with_id(child.id, {"recorder": self.recorder})

    def stop_tree(self, sut_id: str = "sut") -> None:
        """OTP's terminate_child of the tree under test: answered once it has stopped."""
        reply = self.rt.ask(self.rt.root, TerminateChild(child_id=sut_id), 30)
        assert reply.found, reply
        info = self.children(self.rt.root).get(sut_id)
        assert info is None or info.status == "stopped", info

    def names(self, what: str | None = None) -> list[str]:
        """The child ids of the recorded events, in order (``what``: start, stop, ignore)."""
        return [e.path.rsplit("/", 1)[1] for e in self.events(what)]

    def children(self, supervisor: Any = None) -> dict[str, ChildInfo]:
        report = self.rt.which_children(supervisor or self.sut)
        return {c.child_id: c for c in report.children}

    def child(self, child_id: str) -> ChildInfo:
        return self.children()[child_id]

    def incarnations(self) -> dict[str, int]:
        """Incarnation of every running child, as the child itself answers it."""
        out = {}
        for cid, info in self.children().items():
            if info.status == "running":
                try:
                    out[cid] = self.rt.ask(info.address, Ping(), 1).incarnation
                except RequestTimeoutError:  # stopped since the snapshot: not settled yet
                    return {}
        return out

    def events(self, what: str | None = None) -> list[Event]:
        events = self.rt.ask(self.recorder, GetEvents(), 5).events
        return [e for e in events if what is None or e.what == what]

    def fault(self, child_id: str, reason: str) -> ChildInfo:
        info = self.child(child_id)
        if reason == "error":
            self.rt.tell(info.address, Crash())
        elif reason == "normal":
            self.rt.tell(info.address, ExitNormally())
        elif reason == "killed" and isinstance(info.address, LightAddress):
            self.rt.tell(info.address.host, KillLight(lid=info.address.lid))
        elif reason == "killed" and self.rt.base == "multiproc":
            os.kill(info.pid, signal.SIGKILL)
        elif reason == "killed":  # one process: end the actor without letting it say a word
            self.rt.tell(info.address, ActorExitRequest())
        elif reason == "os_exit":
            self.rt.tell(info.address, ExitProcess(code=3))
        else:
            raise ValueError(reason)
        return info

    def wait(self, predicate: Callable[[], Any], timeout_s: float = 15.0,
             what: str = "condition") -> Any:
        return self.rt.wait_for(predicate, timeout_s=timeout_s, what=what)

    def wait_restarted(self, child_id: str, old: ChildInfo, timeout_s: float = 15.0) -> ChildInfo:
        def fresh() -> ChildInfo | None:
            info = self.children().get(child_id)
            if info and info.status == "running" and info.address != old.address:
                return info
            return None
        return self.wait(fresh, timeout_s, what=f"{child_id} restarted")


def elapsed_ms(since: float) -> float:
    return (time.monotonic() - since) * 1000
