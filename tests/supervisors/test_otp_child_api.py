"""OTP's child API on a running supervisor: restart_child, delete_child, terminate_child,
count_children, which_child, with OTP's answers. Each test runs over process and light children."""

from __future__ import annotations

import pytest

from protocols.supervision import ExitKind, StartChild
from supervisors.backoff import Backoff
from supervisors.spec import RestartType, Strategy, SupervisorSpec
from tests.support.harness import Harness, root_spec, worker

P, T, TEMP = RestartType.PERMANENT, RestartType.TRANSIENT, RestartType.TEMPORARY


@pytest.fixture(params=["process", "light"])
def h(make_runtime, request) -> Harness:
    return Harness(make_runtime(root_spec(request.param), base="simple"), request.param)


def test_restart_child_brings_back_a_terminated_static_child(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a"), worker("b")])
    assert h.rt.terminate_child("a", h.sut).found
    assert h.child("a").status == "stopped", "terminate_child answers once the child stopped"
    reply = h.rt.restart_child("a", h.sut)
    assert reply.error == "" and reply.address == h.child("a").address
    assert h.incarnations() == {"a": 2, "b": 1}


def test_restart_child_brings_back_a_child_that_exited_without_restart(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a", T)])
    h.fault("a", "normal")
    h.wait(lambda: h.child("a").status == "stopped", what="a transient child left normally")
    assert h.rt.restart_child("a", h.sut).address is not None
    assert h.incarnations() == {"a": 2}


def test_restart_child_answers_running_not_found_and_simple_one_for_one(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a")])
    assert h.rt.restart_child("a", h.sut).error_kind == "running"
    assert h.rt.restart_child("nope", h.sut).error_kind == "not_found"
    h.start_tree(Strategy.SIMPLE_ONE_FOR_ONE, [worker("job")], sut_id="dyn")
    assert h.rt.restart_child("job", h.sut).error_kind == "simple_one_for_one"
    assert h.rt.delete_child("job", h.sut).error == "simple_one_for_one"


def test_restart_child_and_delete_child_answer_restarting_while_a_restart_waits(
        h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("slow", backoff=Backoff(min_s=30, max_s=60))])
    h.fault("slow", "error")
    h.wait(lambda: h.child("slow").status == "restarting")
    assert h.rt.restart_child("slow", h.sut).error_kind == "restarting"
    assert h.rt.delete_child("slow", h.sut).error == "restarting"
    assert h.rt.terminate_child("slow", h.sut).found, "terminate_child cancels the restart"
    assert h.child("slow").status == "stopped"
    assert h.rt.delete_child("slow", h.sut).error == ""
    assert h.children() == {}


def test_restart_child_with_a_failing_start_answers_the_error_and_keeps_the_spec(
        h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a", fail_on_restart=True)], intensity=3)
    h.rt.terminate_child("a", h.sut)
    reply = h.rt.restart_child("a", h.sut)
    assert reply.error_kind == "failed" and reply.reason.error_type == "ScriptedCrash"
    assert h.child("a").status == "stopped", "the spec stays, not running"
    assert h.rt.which_children(h.sut).restart_budget_left == 3, "no restart is counted"


def test_delete_child_forgets_a_stopped_child_and_refuses_a_running_one(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a"), worker("b")])
    assert h.rt.delete_child("a", h.sut).error == "running"
    assert h.rt.delete_child("nope", h.sut).error == "not_found"
    h.rt.terminate_child("a", h.sut)
    assert h.rt.delete_child("a", h.sut).error == ""
    assert set(h.children()) == {"b"}
    assert h.rt.restart_child("a", h.sut).error_kind == "not_found"
    assert h.rt.start_child(h.child_spec(worker("a")), h.sut).address is not None, \
        "a deleted id may be added again"


def test_terminate_child_answers_not_found_and_deletes_a_temporary_childs_spec(
        h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a"), worker("t", TEMP)])
    reply = h.rt.terminate_child("nope", h.sut)
    assert not reply.found and reply.error == "not_found"
    assert h.rt.terminate_child("t", h.sut).found
    assert set(h.children()) == {"a"}


def test_a_terminated_child_stays_stopped_when_a_one_for_one_sibling_restarts(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a"), worker("b")])
    h.rt.terminate_child("b", h.sut)
    old = h.fault("a", "error")
    h.wait_restarted("a", old)
    assert h.child("b").status == "stopped"


def test_count_children_counts_specs_active_supervisors_and_workers(h: Harness) -> None:
    inner = SupervisorSpec(children=[worker("x")]).as_child("inner")
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a"), inner, worker("b")])
    counts = h.rt.count_children(h.sut)
    assert (counts.specs, counts.active, counts.supervisors, counts.workers) == (3, 3, 1, 2)
    h.rt.terminate_child("b", h.sut)
    counts = h.rt.count_children(h.sut)
    assert (counts.specs, counts.active, counts.supervisors, counts.workers) == (3, 2, 1, 2), \
        "a terminated child is a spec, a worker, not active"


def test_count_children_of_simple_one_for_one_has_one_spec(h: Harness) -> None:
    h.start_tree(Strategy.SIMPLE_ONE_FOR_ONE, [worker("job")])
    for n in range(3):
        h.rt.ask(h.sut, StartChild(args={"n": n}))
    counts = h.rt.count_children(h.sut)
    assert (counts.specs, counts.active, counts.supervisors, counts.workers) == (1, 3, 0, 3)


def test_which_child_answers_one_child_or_not_found(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a"), worker("b")])
    reply = h.rt.which_child("b", h.sut)
    assert reply.error == "" and reply.info.status == "running"
    assert reply.info.address == h.child("b").address
    assert h.rt.which_child("nope", h.sut).error == "not_found"
    h.fault("b", "error")
    h.wait(lambda: h.rt.which_child("b", h.sut).info.restarts == 1)
    assert h.rt.which_child("b", h.sut).info.last_exit.exit_kind is ExitKind.ERROR
