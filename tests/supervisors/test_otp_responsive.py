"""A supervisor whose child's restart keeps failing stays a supervisor (OTP's try_again_restart):
every attempt counts against the intensity, and between attempts it answers queries, starts other
children and tries other failed children. Bad specs never crash it. Both actor weights."""

from __future__ import annotations

import pytest

from actors.testing.scripted import ScriptedActor
from protocols.errors import SpecError
from protocols.supervision import StartChild
from supervisors.spec import ChildSpec, RestartType, Strategy, SupervisorSpec
from tests.support.harness import LIGHT_HOST, Harness, root_spec, worker

T = RestartType.TRANSIENT
MANY = 1_000_000  # an intensity the failing restarts cannot spend during the test


@pytest.fixture(params=["process", "light"])
def h(make_runtime, request) -> Harness:
    return Harness(make_runtime(root_spec(request.param), base="simple"), request.param)


@pytest.fixture(params=["process", "light"])
def hm(make_runtime, request) -> Harness:
    """On real processes: simpleSystemBase runs every pending message before an outside ``tell``
    returns, so a restart that fails for ever would never let the test speak."""
    request.applymarker(pytest.mark.multiproc)
    return Harness(make_runtime(root_spec(request.param), base="multiproc"), request.param)


def restarts(h: Harness, child_id: str) -> int:
    return h.child(child_id).restarts


def test_a_supervisor_answers_queries_and_start_child_while_a_restart_keeps_failing(
        hm: Harness) -> None:
    h = hm
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("bad", fail_on_restart=True), worker("b")],
                 intensity=MANY, period_s=60)
    h.fault("bad", "error")
    h.wait(lambda: restarts(h, "bad") >= 3, what="several failed restarts")
    seen = restarts(h, "bad")
    assert h.child("bad").status in ("restarting", "starting")

    added = h.rt.start_child(h.child_spec(worker("new")), h.sut)
    assert added.address is not None, "a start_child is answered meanwhile"
    counts = h.rt.count_children(h.sut)
    assert counts.specs == 3 and counts.active == 2
    old_b = h.fault("b", "error")
    h.wait_restarted("b", old_b)
    assert restarts(h, "bad") > seen, "and the failing child is still being tried"

    assert h.rt.terminate_child("bad", h.sut).found, "terminate_child ends the attempts"
    assert h.child("bad").status == "stopped"
    assert h.incarnations() == {"b": 2, "new": 1}


def test_two_children_whose_restarts_keep_failing_are_both_tried(hm: Harness) -> None:
    h = hm
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("x", fail_on_restart=True),
                                        worker("y", fail_on_restart=True)],
                 intensity=MANY, period_s=60)
    h.fault("x", "error")
    h.fault("y", "error")
    h.wait(lambda: restarts(h, "x") >= 5 and restarts(h, "y") >= 5,
           what="both failing children tried again and again")
    for cid in ("x", "y"):
        h.rt.terminate_child(cid, h.sut)


def test_failed_restarts_count_toward_the_intensity_then_the_supervisor_gives_up(
        h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ALL, [worker("a"), worker("bad", fail_on_restart=True),
                                        worker("c")], intensity=4, period_s=60, restart=T)
    h.fault("bad", "error")
    h.wait(lambda: h.children(h.rt.root)["sut"].status == "stopped", what="the supervisor gave up")
    assert h.children(h.rt.root)["sut"].last_exit.text.startswith("reached_max_restart_intensity")
    starts = h.names("start")
    assert starts.count("bad") == 5, "the first start, then four restarts: the fifth is too many"
    assert starts.count("c") == 1, "c is never started after a failed attempt of bad (OTP)"


# --- bad specs never crash a supervisor --------------------------------------------------------------

def test_start_child_naming_an_actor_that_cannot_be_imported_is_a_spec_error(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a")])
    with pytest.raises(SpecError, match="cannot be imported") as err:
        h.rt.start_child(ChildSpec("ghost", "actors.no_such_module.Ghost"), h.sut)
    assert err.value.child_id == "ghost"
    assert set(h.children()) == {"a"} and h.incarnations() == {"a": 1}, "the supervisor lives on"


def test_start_child_with_an_invalid_restart_type_is_a_spec_error(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a")])
    spec = h.child_spec(worker("b"))
    object.__setattr__(spec, "restart", "sometimes")  # as a spec built elsewhere might arrive
    with pytest.raises(SpecError, match="restart type"):
        h.rt.start_child(spec, h.sut)
    reply = h.rt.ask(h.sut, StartChild(spec=spec))
    assert reply.error_kind == "invalid"
    assert h.incarnations() == {"a": 1}


def test_start_child_of_an_actor_of_the_wrong_weight_is_a_spec_error(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a")])
    wrong = (ChildSpec("p", ScriptedActor) if h.weight == "light"
             else ChildSpec("l", "actors.testing.scripted.LightScriptedActor"))
    with pytest.raises(SpecError):
        h.rt.start_child(wrong, h.sut)
    assert h.incarnations() == {"a": 1}


def test_a_static_child_naming_an_unimportable_actor_fails_the_supervisors_start(
        h: Harness) -> None:
    bad_tree = SupervisorSpec(children=[ChildSpec("ghost", "actors.no_such_module.Ghost")])
    child = bad_tree.as_child("bad-tree", host=LIGHT_HOST if h.weight == "light" else None)
    reply = h.rt.ask(h.rt.root, StartChild(spec=child))
    assert reply.error_kind == "invalid" and "'ghost'" in reply.error
    assert "bad-tree" not in h.children(h.rt.root)
