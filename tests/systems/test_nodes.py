"""Across nodes: children land on nodes whose capabilities meet their requirements; a lost node is
noticed within 5 s and its children restart on another node, or are reported unplaceable.

Every node is a real Thespian admin on its own loopback port: the leader is this test's runtime,
the others are ``ptr node start`` processes, killed with SIGKILL like a machine that dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from actors.testing.scripted import ScriptedActor
from protocols.errors import RequestTimeoutError
from protocols.scripted import Ping
from protocols.supervision import ChildInfo
from supervisors.spec import ChildSpec, SupervisorSpec
from systems import inspect
from systems.processes import processes_in_sessions
from systems.runfile import find_node
from systems.runtime import ActorRuntime, cookie_hex, free_port

PTR = [sys.executable, "-m", "systems.cli"]
ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.multiproc

SPEC = SupervisorSpec(intensity=20, period_s=5, children=[
    ChildSpec("core", ScriptedActor, name="core"),
    ChildSpec("edge", ScriptedActor, name="edge", requirements={"role": "edge"}),
])


class Nodes:
    def __init__(self, run_dir: Path, leader_port: int) -> None:
        # nodes of one system share its cookie (Erlang's distribution cookie)
        self.env = {**os.environ, "PTR_RUN_DIR": str(run_dir), "PTR_COOKIE": cookie_hex()}
        self.leader_port = leader_port
        self.procs: dict[str, subprocess.Popen[str]] = {}

    def start(self, name: str, role: str) -> None:
        proc = subprocess.Popen(
            [*PTR, "node", "start", "--join", f"127.0.0.1:{self.leader_port}", "--name", name,
             "--capability", f"role={role}", "--admin-port", str(free_port())],
            cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"node {name}: admin port" in line, proc.stderr.read() if proc.stderr else line
        self.procs[name] = proc

    def sid(self, name: str) -> int:
        old = os.environ.get("PTR_RUN_DIR")
        os.environ["PTR_RUN_DIR"] = self.env["PTR_RUN_DIR"]
        try:
            return find_node(name).admin_sid
        finally:
            if old is None:
                os.environ.pop("PTR_RUN_DIR")
            else:
                os.environ["PTR_RUN_DIR"] = old

    def kill(self, name: str) -> None:
        """The node's machine dies: every process of its actor system, and its ptr process."""
        sid = self.sid(name)
        for pid in processes_in_sessions({sid}):
            os.kill(pid, signal.SIGKILL)
        self.procs[name].kill()
        self.procs[name].wait(10)

    def stop_all(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)


@pytest.fixture
def cluster(make_runtime, tmp_path: Path) -> Iterator[tuple[ActorRuntime, Nodes]]:
    rt = make_runtime(SPEC, base="multiproc")
    nodes = Nodes(tmp_path / "run", rt.admin_port)
    sids: list[int] = []
    try:
        yield rt, nodes
    finally:
        for name in nodes.procs:
            try:
                sids.append(nodes.sid(name))
            except Exception:
                pass
        nodes.stop_all()
    deadline = time.monotonic() + 10
    while processes_in_sessions(set(sids)) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the OS process table
    assert processes_in_sessions(set(sids)) == [], "a node left processes behind"


def edge_child(rt: ActorRuntime) -> ChildInfo:
    return {c.child_id: c for c in rt.which_children().children}["edge"]


def wait(rt: ActorRuntime, predicate: Callable[[ChildInfo], bool], what: str,
         timeout_s: float = 20) -> ChildInfo:
    def check() -> ChildInfo | None:
        try:
            child = edge_child(rt)
        except RequestTimeoutError:
            return None
        return child if predicate(child) else None
    return rt.wait_for(check, timeout_s=timeout_s, interval_s=0.1, what=what)


def test_placement_by_capability_and_failover_to_another_node(cluster) -> None:
    rt, nodes = cluster
    assert edge_child(rt).status == "unplaceable", "no node has role=edge yet: reported, not fatal"
    core = {c.child_id: c for c in rt.which_children().children}["core"]
    assert core.status == "running" and core.node != "edge-1"

    nodes.start("edge-1", "edge")
    on_first = wait(rt, lambda c: c.status == "running" and c.node == "edge-1", "placed on edge-1")
    assert rt.ask("edge", Ping()).pid == on_first.pid
    nodes.start("edge-2", "edge")
    nodes.start("core-2", "core")

    views = {v.path: v for v in inspect.live_tree(rt)}
    assert views["/root/edge"].node == "edge-1" and views["/root/core"].node == core.node
    assert {"edge-1", "edge-2", "core-2"} <= set(inspect.nodes(rt)), "inspect lists the nodes"

    killed_at = time.time()
    nodes.kill("edge-1")
    moved = wait(rt, lambda c: c.status == "running" and c.node == "edge-2", "failed over")
    assert moved.last_exit is not None and moved.last_exit.text == "node edge-1 lost"
    assert moved.last_exit_at - killed_at < 5.0, "a lost node is noticed within 5 s"
    assert rt.ask("edge", Ping()).pid == moved.pid

    nodes.kill("edge-2")
    wait(rt, lambda c: c.status == "unplaceable", "no edge node left: unplaceable")
    assert {c.child_id: c for c in rt.which_children().children}["core"].status == "running"
