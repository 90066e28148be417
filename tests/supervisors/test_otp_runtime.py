"""What OTP promises about whole systems and real processes: a system whose root cannot start fails
at once with the reason; stopping a system follows OTP's shutdown (the tree's own shutdown times,
the caller's timeout as OTP's shutdown_time); a simple_one_for_one supervisor stops its children
together under one timer; a killed supervisor takes its subtree along and no process is left."""

from __future__ import annotations

import os
import signal
import time

import pytest

from actors.testing.scripted import ScriptedActor
from protocols.errors import ActorSystemError
from protocols.supervision import ExitKind, ExitReason, Shutdown
from supervisors.spec import ChildSpec, RestartType, Strategy, SupervisorSpec
from systems.processes import pid_alive
from systems.runtime import ActorRuntime
from tests.support.harness import ROOT_SPEC, Harness, root_spec, worker

T = RestartType.TRANSIENT


def test_a_system_whose_root_cannot_start_raises_at_once_naming_the_child(
        make_runtime, base: str) -> None:
    spec = SupervisorSpec(children=[ChildSpec("a", ScriptedActor),
                                    ChildSpec("bad", ScriptedActor, args={"fail_on_start": True}),
                                    ChildSpec("c", ScriptedActor)])
    began = time.monotonic()
    with pytest.raises(ActorSystemError, match="failed_to_start_child 'bad'.*ScriptedCrash"):
        make_runtime(spec, base=base)
    assert time.monotonic() - began < 3, "no waiting for a shutdown timeout"


def test_a_system_whose_child_names_an_unimportable_actor_fails_with_a_spec_error(
        make_runtime, base: str) -> None:
    spec = SupervisorSpec(children=[ChildSpec("ghost", "actors.no_such_module.Ghost")])
    with pytest.raises(ActorSystemError, match="SpecError.*cannot be imported.*'ghost'"):
        make_runtime(spec, base=base)


@pytest.mark.multiproc
def test_shutdown_waits_for_the_trees_own_shutdown_times_and_returns_the_roots_reason() -> None:
    """By default (OTP) the caller waits for the tree: here a worker that never finishes stopping
    is killed by its supervisor after its shutdown_ms, then the rest stops in order."""
    spec = SupervisorSpec(children=[ChildSpec("a", ScriptedActor), ChildSpec(
        "slow", ScriptedActor, args={"hang_on_stop": True}, shutdown_ms=1500)])
    rt = ActorRuntime(spec, base="multiproc").start()
    pids = [c.pid for c in rt.which_children().children]
    began = time.monotonic()
    reason = rt.shutdown()
    took = time.monotonic() - began
    assert reason is not None and reason.exit_kind is ExitKind.SHUTDOWN
    assert 1.4 <= took < 10, took
    assert rt.wait_until_gone() == [] and not any(pid_alive(p) for p in pids)


@pytest.mark.multiproc
def test_shutdown_with_a_timeout_kills_what_has_not_stopped_and_says_so() -> None:
    spec = SupervisorSpec(children=[ChildSpec(
        "stuck", ScriptedActor, args={"hang_on_stop": True}, shutdown_ms=None)])
    rt = ActorRuntime(spec, base="multiproc").start()
    began = time.monotonic()
    reason = rt.shutdown(timeout_s=1.0)
    assert reason is not None and reason.exit_kind is ExitKind.KILLED
    assert "1 s" in reason.text
    assert time.monotonic() - began < 15
    assert rt.wait_until_gone() == []


@pytest.fixture(params=["process", "light"])
def weight(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_dynamic_children_stop_in_parallel_under_one_shutdown_timer(make_runtime, weight) -> None:
    """Five children that each need their full 1 s shutdown time: the supervisor stops them
    together, so the whole stop takes about 1 s, not 5 s (OTP's terminate_dynamic_children)."""
    base = "multiproc" if weight == "process" else "simple"
    h = Harness(make_runtime(root_spec(weight), base=base), weight)
    h.start_tree(Strategy.SIMPLE_ONE_FOR_ONE,
                 [worker("job", hang_on_stop=True, shutdown_ms=1000)])
    for _ in range(5):
        assert h.rt.start_child({}, h.sut).address is not None
    pids = [c.pid for c in h.children().values()]
    began = time.monotonic()
    h.stop_tree()
    took = time.monotonic() - began
    assert 0.9 <= took < 2.5, f"took {took:.2f} s"
    if weight == "process":
        assert not any(pid_alive(p) for p in pids)


def test_dynamic_children_that_stop_promptly_all_run_on_stop(make_runtime, weight) -> None:
    h = Harness(make_runtime(root_spec(weight), base="simple"), weight)
    h.start_tree(Strategy.SIMPLE_ONE_FOR_ONE, [worker("job")])
    ids = [h.rt.start_child({}, h.sut).child_id for _ in range(5)]
    h.stop_tree()
    assert sorted(h.names("stop")) == sorted(ids)


@pytest.mark.multiproc
def test_a_transient_child_stopped_from_outside_with_normal_is_not_restarted_on_real_processes(
        make_runtime) -> None:
    h = Harness(make_runtime(ROOT_SPEC, base="multiproc"))
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a", T), worker("b")])
    a = h.child("a")
    h.rt.tell(a.address, Shutdown(reason=ExitReason.normal("by hand")))
    h.wait(lambda: h.child("a").status == "stopped", what="a stopped")
    assert h.child("a").last_exit.exit_kind is ExitKind.NORMAL
    h.wait(lambda: not pid_alive(a.pid), what="its process is gone")


@pytest.mark.multiproc
def test_a_killed_supervisor_takes_its_subtree_along_and_leaves_no_process(make_runtime) -> None:
    """SIGKILL of a supervisor's process: its children die with it (linked death), its parent
    restarts it with fresh children, and the system has as many processes as before, none old."""
    rt = make_runtime(ROOT_SPEC, base="multiproc")
    h = Harness(rt)
    inner = SupervisorSpec(children=[worker("x"), worker("y")]).as_child("inner")
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a"), inner])
    inner_info = h.child("inner")
    old_pids = {inner_info.pid} | {c.pid for c in h.children(inner_info.address).values()}
    before = len(rt.leftover_processes())

    os.kill(inner_info.pid, signal.SIGKILL)

    fresh = h.wait_restarted("inner", inner_info)
    assert fresh.last_exit.exit_kind is ExitKind.KILLED
    h.wait(lambda: not any(pid_alive(p) for p in old_pids), what="the old subtree is gone")
    h.wait(lambda: {c.status for c in h.children(fresh.address).values()} == {"running"})
    assert len(rt.leftover_processes()) == before, "as many processes as before the kill"
    assert not old_pids & set(rt.leftover_processes())
    h.stop_tree()
    rt.shutdown()
    assert rt.wait_until_gone() == []
