"""The restart tests again on real OS processes (multiprocTCPBase), with real faults: an exception,
``os._exit``, SIGKILL of the child's process, and a child that hangs for real."""

from __future__ import annotations

import os
import time

import pytest

from actors.os_process import pid_alive as alive
from protocols.scripted import GetValue, Hang, Ping, SetValue
from protocols.supervision import ExitKind
from supervisors.spec import Strategy
from tests.support.harness import ROOT_SPEC, Harness, worker

pytestmark = pytest.mark.multiproc


@pytest.fixture
def h(make_runtime) -> Harness:
    return Harness(make_runtime(ROOT_SPEC, base="multiproc"))


@pytest.mark.parametrize("fault, kind", [("error", ExitKind.ERROR), ("os_exit", ExitKind.KILLED),
                                         ("killed", ExitKind.KILLED)])
def test_a_real_fault_restarts_the_child_in_a_new_process_with_fresh_state(
        h: Harness, fault: str, kind: ExitKind) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a", name="worker-a"), worker("b")])
    old = h.child("a")
    sibling = h.child("b")
    assert old.pid != os.getpid() and old.pid != sibling.pid, "each actor is its own process"
    assert h.rt.ask("worker-a", SetValue(value=7)) == 7

    h.fault("a", fault)
    fresh = h.wait_restarted("a", old)

    assert fresh.pid != old.pid
    assert fresh.last_exit.exit_kind is kind
    assert h.rt.ask("worker-a", GetValue()) == 0, "the name reaches the fresh incarnation"
    assert h.rt.ask("worker-a", Ping()).incarnation == 2
    assert h.child("b").pid == sibling.pid, "one_for_one leaves the sibling's process alone"
    h.wait(lambda: not alive(old.pid), what="the old process is gone")


def test_one_for_all_after_sigkill_replaces_every_process(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ALL, [worker("a"), worker("b"), worker("c")])
    before = {cid: info.pid for cid, info in h.children().items()}
    h.fault("b", "killed")
    h.wait(lambda: h.incarnations() == {"a": 2, "b": 2, "c": 2})
    after = {cid: info.pid for cid, info in h.children().items()}
    assert not set(before.values()) & set(after.values())
    h.wait(lambda: not any(alive(pid) for pid in before.values()), what="old processes gone")


def test_a_child_hung_for_real_is_killed_after_its_shutdown_timeout(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a"), worker("stuck", shutdown_ms=300)])
    stuck = h.child("stuck")
    h.rt.tell(stuck.address, Hang())
    began = time.monotonic()
    h.stop_tree()
    assert time.monotonic() - began < 5, "a hung child cannot block its supervisor's shutdown"
    h.wait(lambda: not alive(stuck.pid), what="the hung process was killed")
    assert [e.path.rsplit("/", 1)[1] for e in h.events("stop")] == ["a"], \
        "the hung child never ran on_stop: it was killed; then a stopped normally"


def test_the_whole_system_leaves_no_process(make_runtime) -> None:
    rt = make_runtime(ROOT_SPEC, base="multiproc")
    h = Harness(rt)
    h.start_tree(Strategy.ONE_FOR_ONE, [worker(f"w{i}") for i in range(4)])
    pids = [info.pid for info in h.children().values()]
    assert rt.leftover_processes(), "while it runs, the system's processes are visible"
    rt.shutdown()
    assert rt.wait_until_gone() == []
    assert not any(alive(p) for p in pids)


def test_stopping_a_system_whose_actor_hangs_for_ever_still_leaves_no_process(make_runtime) -> None:
    """A child with an infinite shutdown time that really hangs: the tree cannot stop gracefully,
    Thespian's own shutdown gives up on it, and ptr kills what is left of the system's session."""
    rt = make_runtime(ROOT_SPEC, base="multiproc")
    h = Harness(rt)
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("stuck", shutdown_ms=None)])
    stuck = h.child("stuck")
    h.rt.tell(stuck.address, Hang())
    began = time.monotonic()
    rt.shutdown(timeout_s=1.0)
    assert rt.leftover_processes() == [], "nothing of the system outlives shutdown()"
    assert not alive(stuck.pid)
    assert time.monotonic() - began < 30
