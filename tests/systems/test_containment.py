"""The runtime's own containment, tried as an attacker and an operator would: every socket of an
actor system is bound to loopback, a frame without the system's cookie is refused before it is
unpickled, a killed supervisor takes its subtree along (OTP links) and its parent restarts it, and a
killed root or ``ptr run`` ends the whole system."""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.testing.scripted import ScriptedActor
from protocols.scripted import Ping
from protocols.supervision import ListNodes
from supervisors.spec import ChildSpec, SupervisorSpec
from systems.processes import (
    orphans_in_sessions,
    pid_alive,
    processes_in_sessions,
    zombie_children,
)
from systems.runfile import RunInfo
from systems.runtime import ActorRuntime, cookie_hex, refused_frames

PTR = [sys.executable, "-m", "systems.cli"]
ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.multiproc

MARKER_NAME = "ptr-pwned-marker"

def tree() -> SupervisorSpec:
    from supervisors.supervisor import Supervisor
    inner = SupervisorSpec(intensity=20, period_s=5, children=[
        ChildSpec("left", ScriptedActor, name="left"),
        ChildSpec("right", ScriptedActor, name="right"),
    ])
    return SupervisorSpec(intensity=20, period_s=5, children=[
        ChildSpec("front", ScriptedActor, name="front"),
        ChildSpec("back", Supervisor, supervises=inner),
    ])


def wait(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"{what} not reached within {timeout_s} s"
        time.sleep(0.02)  # polling the OS process table or a port, with a deadline
    return value


def listening(pids: list[int]) -> list[tuple[str, str, int]]:
    """(protocol, address, port) of every listening TCP socket and bound UDP socket of ``pids``."""
    out = subprocess.run(["ss", "-lntupH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        if any(f"pid={pid}," in line for pid in pids):
            cols = line.split()
            address, _, port = cols[4].rpartition(":")
            found.append((cols[0], address.strip("[]"), int(port)))
    return found


class Evil:
    """A pickle that, once loaded, creates the marker file: what an attacker would send."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def send_raw_frame(port: int, payload: bytes) -> bytes:
    """One frame in Thespian's wire format (``LENGTH>`` then the bytes), as a stranger sends it."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"%d>" % len(payload) + payload)
        try:
            return s.recv(100)
        except OSError:
            return b""


@pytest.fixture
def system(make_runtime: Callable[..., ActorRuntime]) -> ActorRuntime:
    return make_runtime(tree(), base="multiproc", name="contained")


def test_every_socket_of_the_actor_system_binds_loopback(system: ActorRuntime) -> None:
    pids = system.leftover_processes()
    sockets = listening(pids)
    assert len(sockets) >= 6  # admin, logger, root, front, back, left, right listen
    assert {address for _, address, _ in sockets} == {"127.0.0.1"}, sockets


def test_a_crafted_pickle_sent_to_every_port_changes_nothing_and_is_counted(
        system: ActorRuntime, tmp_path: Path) -> None:
    marker = tmp_path / MARKER_NAME
    ports = [port for proto, _, port in listening(system.leftover_processes()) if proto == "tcp"]
    before = refused_frames()
    payload = pickle.dumps(("sender", Evil(marker)))
    for port in ports:
        send_raw_frame(port, payload)
    # (one of the ports is this test's own endpoint of the system: it reads while it listens)
    system.wait_for(lambda: refused_frames() - before >= len(ports), 10, what="frames refused")
    assert refused_frames() - before == len(ports)
    assert not marker.exists()
    assert system.ask("left", Ping(), 5).pid  # the system never noticed


def test_a_node_with_another_cookie_cannot_join(make_runtime: Callable[..., ActorRuntime],
                                                tmp_path: Path) -> None:
    spec = SupervisorSpec(intensity=20, period_s=5, children=[
        ChildSpec("edge", ScriptedActor, name="edge", requirements={"role": "edge"})])
    rt = make_runtime(spec, base="multiproc", name="leader")
    before = refused_frames()
    procs = []

    def node(name: str, cookie: str) -> None:
        # the member advertises (so binds) another address: a node's own interface, not all
        env = {**os.environ, "PTR_RUN_DIR": str(tmp_path / name), "PTR_COOKIE": cookie,
               "THESPIAN_BASE_IPADDR": "127.0.0.2" if name == "member" else "127.0.0.1"}
        proc = subprocess.Popen(
            [*PTR, "node", "start", "--join", f"127.0.0.1:{rt.admin_port}", "--name", name,
             "--capability", "role=edge", "--for", "60"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        assert f"node {name}: admin port" in proc.stdout.readline()  # type: ignore[union-attr]

    try:
        node("stranger", os.urandom(32).hex())  # meets the child's requirements, lacks the cookie
        wait(lambda: refused_frames() > before, 15, "the stranger's frames refused")
        node("member", cookie_hex())
        wait(lambda: rt.which_children().children[0].status == "running", 20, "edge placed")
        assert rt.which_children().children[0].node == "member"
        assert set(rt.ask(rt.root, ListNodes(), 5)) == {"member"}
        member = RunInfo(**json.loads((tmp_path / "member" / "node-member.json").read_text()))
        addresses = {address for _, address, _ in listening(member.processes())}
        assert addresses == {"127.0.0.2"}, addresses
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)


def test_a_killed_supervisor_takes_its_subtree_along_and_is_restarted(system: ActorRuntime) -> None:
    back = next(c for c in system.which_children().children if c.child_id == "back")
    workers = {c.child_id: c.pid for c in system.which_children(back.address).children}
    os.kill(back.pid, signal.SIGKILL)
    wait(lambda: not any(pid_alive(p) for p in workers.values()), 5, "the subtree died")
    assert not orphans_in_sessions(system.session_ids)
    left = wait(lambda: _answers(system, "left"), 5, "left restarted")
    assert left not in workers.values()
    restarted = next(c for c in system.which_children().children if c.child_id == "back")
    assert restarted.restarts == 1 and str(restarted.last_exit).startswith("killed")
    assert system.ask("front", Ping(), 5).pid  # the sibling was never touched


def _answers(rt: ActorRuntime, name: str) -> int:
    try:
        return int(rt.ask(name, Ping(), 0.5).pid)
    except Exception:  # noqa: BLE001 - between the kill and the restart the name does not answer
        return 0


def test_the_first_fork_of_the_admin_is_reaped(
        make_runtime: Callable[..., ActorRuntime]) -> None:
    """Thespian's first fork of its admin exits at once and nobody waits for it: starting a
    runtime leaves no zombie child of its own (one an earlier test left is not its to reap)."""
    before = zombie_children()
    make_runtime(tree(), base="multiproc", name="contained")
    assert zombie_children() <= before


# --- ptr run, killed ------------------------------------------------------------------------

class PtrRun:
    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.env = {**os.environ, "PTR_RUN_DIR": str(tmp_path / "run")}
        self.proc = subprocess.Popen([*PTR, "run", *args], cwd=ROOT, env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.header = self.proc.stdout.readline()
        assert "running on multiproc" in self.header, self.proc.stderr.read()  # type: ignore
        self.root_pid = int(self.header.split("root pid ")[1].rstrip(")\n"))
        self.sid = os.getsid(self.root_pid)

    def processes(self) -> list[int]:
        return processes_in_sessions({self.sid})

    def run_info(self) -> RunInfo:
        import json
        return RunInfo(**json.loads((Path(self.env["PTR_RUN_DIR"]) / "ping.json").read_text()))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=30)
        for pid in self.processes():
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def ptr_run(tmp_path: Path) -> Iterator[Callable[..., PtrRun]]:
    runs: list[PtrRun] = []

    def start(*args: str) -> PtrRun:
        runs.append(PtrRun(tmp_path, *args))
        return runs[-1]

    yield start
    for run in runs:
        run.close()


def test_a_killed_root_ends_the_system_and_ptr_run_says_why(ptr_run: Callable[..., PtrRun]) -> None:
    run = ptr_run("ping", "--set", "interval_s=0.1")
    assert len(run.processes()) >= 4
    os.kill(run.root_pid, signal.SIGKILL)
    wait(lambda: not run.processes(), 5, "no process of the system")
    _, err = run.proc.communicate(timeout=10)
    assert run.proc.returncode == 3
    assert err.strip().splitlines()[-1].startswith(
        f"ptr: error: ping is gone: the root supervisor's process (pid {run.root_pid}) died")
    assert "Traceback" not in err


def test_a_killed_ptr_run_ends_the_system(ptr_run: Callable[..., PtrRun]) -> None:
    """The root sees its owner gone, stops the tree in order, then ends the admin and the logger."""
    run = ptr_run("ping", "--set", "interval_s=0.1")
    assert run.processes()
    run.proc.kill()
    wait(lambda: not run.processes(), 5, "no process of the system")


def test_ptr_run_names_a_running_instance_and_ptr_stop_ends_it(
        ptr_run: Callable[..., PtrRun], tmp_path: Path) -> None:
    run = ptr_run("ping", "--set", "interval_s=0.1")
    again = subprocess.run([*PTR, "run", "ping", "--for", "1"], cwd=ROOT, env=run.env,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1 and "Traceback" not in again.stderr
    assert f"ping is already running (ptr pid {run.proc.pid}" in again.stderr
    assert "stop it with: ptr stop ping" in again.stderr
    stop = subprocess.run([*PTR, "stop", "ping"], cwd=ROOT, env=run.env, capture_output=True,
                          text=True, timeout=60)
    assert stop.returncode == 0, stop.stderr
    assert stop.stdout.strip() == "stopped ping"  # it stopped by itself: nothing had to be killed
    out, _ = run.proc.communicate(timeout=10)
    assert run.proc.returncode == 0 and "stopped; 0 actor processes left" in out
    assert not run.processes()


def test_ptr_stop_ends_a_system_whose_ptr_run_is_gone(ptr_run: Callable[..., PtrRun]) -> None:
    run = ptr_run("ping", "--set", "interval_s=0.1")
    info = run.run_info()
    os.kill(run.proc.pid, signal.SIGSTOP)  # a hung ptr run: the watchdog cannot see it die
    try:
        stop = subprocess.run([*PTR, "stop", "ping", "--timeout", "1"], cwd=ROOT, env=run.env,
                              capture_output=True, text=True, timeout=60)
    finally:
        if pid_alive(run.proc.pid):
            os.kill(run.proc.pid, signal.SIGCONT)
    assert stop.returncode == 0, stop.stderr
    assert "killed" in stop.stdout
    assert not processes_in_sessions({info.admin_sid})


def test_a_port_held_by_another_process_is_named_before_anything_starts(tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        out = subprocess.run([*PTR, "run", "game", "--set", f"lobby_port={port}", "--for", "1"],
                             cwd=ROOT, env={**os.environ, "PTR_RUN_DIR": str(tmp_path)},
                             capture_output=True, text=True, timeout=60)
    finally:
        holder.close()
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1
    assert f"port {port} (lobby_port) is held by pid {os.getpid()} over tcp" in out.stderr


def test_a_root_that_gives_up_ends_ptr_run_with_the_reason(ptr_run: Callable[..., PtrRun]) -> None:
    run = ptr_run("ping", "--set", "interval_s=0.1")
    for _ in range(4):  # the root's intensity is 3 restarts in 5 s
        crash = subprocess.run([*PTR, "chaos", "crash", "/ping/ponger"], cwd=ROOT, env=run.env,
                               capture_output=True, text=True, timeout=60)
        if crash.returncode != 0:
            break  # the root gave up after the previous one: nothing left to crash
    _, err = run.proc.communicate(timeout=30)
    assert run.proc.returncode == 3
    last = err.strip().splitlines()[-1]
    assert last.startswith("ptr: error: ping is gone: the root supervisor exited: shutdown"), last
    assert "systems/cli.py" not in err  # the crashes' tracebacks are the actors' log, not ptr's
    assert not run.processes()
