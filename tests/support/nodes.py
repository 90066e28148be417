"""A convention of nodes for tests: ``Nodes`` starts ``ptr node`` processes that join a runtime's
admin; the fixture ``cluster`` gives a runtime with its nodes, and stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from actors.testing.scripted import ScriptedActor
from protocols.errors import RequestTimeoutError
from protocols.supervision import ChildInfo
from supervisors.spec import ChildSpec, SupervisorSpec
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
    def __init__(self, run_dir: Path, leader_port: int, leader_host: str = "127.0.0.1") -> None:
        # nodes of one system share its cookie (Erlang's distribution cookie)
        self.env = {**os.environ, "PTR_RUN_DIR": str(run_dir), "PTR_COOKIE": cookie_hex()}
        self.leader = f"{leader_host}:{leader_port}"
        self.procs: dict[str, subprocess.Popen[str]] = {}

    def start(self, name: str, role: str | None = None, *,
              capabilities: Mapping[str, str] | None = None, prefix: Sequence[str] = (),
              env: Mapping[str, str] | None = None) -> None:
        """``ptr node start`` joining the leader, with ``role`` (or other ``capabilities``); a
        ``prefix`` runs it elsewhere (``ip netns exec SPACE``), ``env`` adds to its environment."""
        caps = {**({"role": role} if role else {}), **(capabilities or {})}
        proc = subprocess.Popen(
            [*prefix, *PTR, "node", "start", "--join", self.leader, "--name", name,
             *(arg for k, v in caps.items() for arg in ("--capability", f"{k}={v}")),
             "--admin-port", str(free_port())],
            cwd=ROOT, env={**self.env, **(env or {})}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
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

    def stop_all(self) -> list[int]:
        """Stop every node still running; return the sessions of those that had a run file."""
        sids = []
        for name, proc in self.procs.items():
            try:
                sids.append(self.sid(name))
            except Exception:  # noqa: BLE001 - killed already: no run file
                pass
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
        return sids


@pytest.fixture
def cluster(make_runtime, tmp_path: Path) -> Iterator[tuple[ActorRuntime, Nodes]]:
    rt = make_runtime(SPEC, base="multiproc")
    nodes = Nodes(tmp_path / "run", rt.admin_port)
    sids: list[int] = []
    try:
        yield rt, nodes
    finally:
        sids = nodes.stop_all()
    assert_sessions_gone(sids, "a node")


def assert_sessions_gone(sids: list[int], what: str, timeout_s: float = 10.0) -> None:
    """Every process of the sessions ``sids`` (stopped nodes or hosts) exits within the time."""
    deadline = time.monotonic() + timeout_s
    while processes_in_sessions(set(sids)) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the OS process table
    assert processes_in_sessions(set(sids)) == [], f"{what} left processes behind"


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
