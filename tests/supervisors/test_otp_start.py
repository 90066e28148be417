"""Starting children as OTP's supervisor does: a supervisor whose child fails to start fails its own
start; start_child answers a failure and keeps nothing; ids and registered names are never taken
twice; a child's start may answer ignore. Each test runs over process and light children."""

from __future__ import annotations

import pytest

from protocols.errors import NoSuchNameError
from protocols.supervision import ExitKind, StartChild
from supervisors.spec import RestartType, Strategy
from tests.support.harness import Harness, root_spec, worker

P, T, TEMP = RestartType.PERMANENT, RestartType.TRANSIENT, RestartType.TEMPORARY


@pytest.fixture(params=["process", "light"])
def h(make_runtime, request) -> Harness:
    return Harness(make_runtime(root_spec(request.param), base="simple"), request.param)


def budget(h: Harness, supervisor=None) -> int:
    return h.rt.which_children(supervisor or h.sut).restart_budget_left


# --- start failures -------------------------------------------------------------------------------

def test_supervisor_start_fails_naming_the_child_after_stopping_the_started_children(
        h: Harness) -> None:
    reply = h.try_tree(Strategy.ONE_FOR_ONE, [worker("a"), worker("b"), worker("bad", fail_on_start=True),
                                              worker("c")])
    assert reply.error_kind == "failed" and reply.address is None
    assert reply.reason.exit_kind is ExitKind.SHUTDOWN
    assert reply.reason.error_type == "failed_to_start_child"
    assert "'bad'" in reply.reason.text and "ScriptedCrash" in reply.reason.text
    assert [(e.what, e.path.rsplit("/", 1)[1]) for e in h.events()] == [
        ("start", "a"), ("start", "b"), ("start", "bad"), ("stop", "bad"),
        ("stop", "b"), ("stop", "a")], "no retry; started children stopped in reverse; c never"
    assert "sut" not in h.children(h.rt.root), "the failed start left nothing in its parent"
    assert budget(h, h.rt.root) == root_spec(h.weight).intensity, "a failed start is no restart"


def test_a_nested_supervisor_that_cannot_start_fails_its_parents_start(h: Harness) -> None:
    from supervisors.spec import SupervisorSpec
    inner = SupervisorSpec(children=[worker("x"), worker("bad", fail_on_start=True)]).as_child("inner")
    reply = h.try_tree(Strategy.ONE_FOR_ONE, [worker("a"), inner, worker("c")])
    assert reply.error_kind == "failed"
    assert "failed_to_start_child 'inner'" in reply.reason.text
    assert "failed_to_start_child 'bad'" in reply.reason.text, "the reason names the whole chain"
    assert h.names("stop") == ["bad", "x", "a"]


def test_start_child_with_failing_start_returns_error_and_keeps_no_spec(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a")], intensity=5)
    reply = h.rt.start_child(h.child_spec(worker("bad", fail_on_start=True)), h.sut)
    assert reply.error_kind == "failed" and reply.address is None
    assert reply.reason.error_type == "ScriptedCrash"
    assert set(h.children()) == {"a"}, "no spec is kept"
    assert budget(h) == 5, "no restart is counted"
    assert h.incarnations() == {"a": 1}
    assert h.rt.start_child(h.child_spec(worker("bad")), h.sut).address is not None, \
        "the id is free again"


def test_start_child_under_simple_one_for_one_with_failing_start_keeps_nothing(h: Harness) -> None:
    h.start_tree(Strategy.SIMPLE_ONE_FOR_ONE, [worker("job", fail_on_start=True)], intensity=5)
    reply = h.rt.start_child({"n": 1}, h.sut)
    assert reply.error_kind == "failed" and reply.reason.error_type == "ScriptedCrash"
    assert h.children() == {} and budget(h) == 5
    assert h.rt.count_children(h.sut).specs == 1, "the template stays"


def test_start_child_with_an_existing_id_answers_already_started_or_already_present(
        h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a"), worker("b")])
    running = h.rt.start_child(h.child_spec(worker("a")), h.sut)
    assert running.error_kind == "already_started" and running.address == h.child("a").address
    assert h.rt.terminate_child("a", h.sut).found
    present = h.rt.start_child(h.child_spec(worker("a")), h.sut)
    assert present.error_kind == "already_present" and present.address is None
    assert h.child("a").status == "stopped" and h.incarnations() == {"b": 1}


def test_a_name_already_registered_is_refused_already_started_never_moved(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a", name="shared")])
    holder = h.rt.whereis("shared")
    reply = h.rt.start_child(h.child_spec(worker("b", name="shared")), h.sut)
    assert reply.error_kind == "already_started", reply
    assert "/sut/a" in reply.reason.text, "the refusal says who holds the name"
    assert "b" not in h.children()
    assert h.rt.whereis("shared") == holder == h.child("a").address


def test_a_named_simple_one_for_one_template_starts_one_child_only(h: Harness) -> None:
    """OTP: a registered name in the template makes every start_child after the first fail with
    already_started."""
    h.start_tree(Strategy.SIMPLE_ONE_FOR_ONE, [worker("job", name="the-job")])
    first = h.rt.start_child({}, h.sut)
    second = h.rt.start_child({}, h.sut)
    assert first.address is not None and second.error_kind == "already_started"
    assert set(h.children()) == {first.child_id}
    assert h.rt.whereis("the-job") == first.address


def test_a_restarted_named_child_takes_its_name_back(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a", name="named-a")])
    old = h.fault("a", "error")
    fresh = h.wait_restarted("a", old)
    assert h.rt.whereis("named-a") == fresh.address


# --- ignore ---------------------------------------------------------------------------------------

def test_ignore_at_init_keeps_the_spec_not_running_unless_temporary(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a"), worker("ig", ignore_on_start=True),
                                        worker("igt", TEMP, ignore_on_start=True), worker("c")])
    children = h.children()
    assert set(children) == {"a", "ig", "c"}, "a temporary child that ignores is dropped"
    assert children["ig"].status == "stopped" and children["ig"].address is None
    assert h.incarnations() == {"a": 1, "c": 1}
    assert h.names("ignore") == ["ig", "igt"] and h.names("stop") == [], \
        "an ignored start is no failure, and runs no on_stop"


def test_start_child_that_ignores_answers_no_address_and_keeps_the_spec(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a")])
    reply = h.rt.start_child(h.child_spec(worker("ig", ignore_on_start=True)), h.sut)
    assert reply.ignored and reply.error == ""
    assert h.child("ig").status == "stopped"
    again = h.rt.start_child(h.child_spec(worker("ig", ignore_on_start=True)), h.sut)
    assert again.error_kind == "already_present"
    temporary = h.rt.start_child(h.child_spec(worker("igt", TEMP, ignore_on_start=True)), h.sut)
    assert temporary.ignored and "igt" not in h.children()


def test_simple_one_for_one_start_child_that_ignores_adds_no_child(h: Harness) -> None:
    h.start_tree(Strategy.SIMPLE_ONE_FOR_ONE, [worker("job", ignore_on_start=True)])
    reply = h.rt.start_child({}, h.sut)
    assert reply.ignored and h.children() == {}


def test_a_restart_that_ignores_leaves_the_child_not_running(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a", ignore_on_restart=True), worker("b")])
    h.fault("a", "error")
    h.wait(lambda: h.child("a").status == "stopped", what="a ignored its restart")
    assert h.names("ignore") == ["a"] and h.incarnations() == {"b": 1}
    reply = h.rt.restart_child("a", h.sut)
    assert reply.ignored, "restart_child of a child that ignores: ok, undefined"


def test_a_dynamic_child_whose_restart_ignores_is_dropped(h: Harness) -> None:
    h.start_tree(Strategy.SIMPLE_ONE_FOR_ONE, [worker("job", ignore_on_restart=True)])
    cid = h.rt.start_child({}, h.sut).child_id
    h.fault(cid, "error")
    h.wait(lambda: h.children() == {}, what="the dynamic child is dropped")


def test_start_child_needs_a_child_spec(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a")])
    reply = h.rt.ask(h.sut, StartChild(spec={"id": "x"}))
    assert reply.error_kind == "invalid" and "ChildSpec" in reply.error
    with pytest.raises(NoSuchNameError):
        h.rt.whereis("x", 0.05)
