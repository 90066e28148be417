"""Exit reasons as OTP reads them: from outside (shutdown, normal), through group restarts
(one_for_all, rest_for_one with children stopped by terminate_child), and from significant children
under auto_shutdown. Each test runs over process and light children."""

from __future__ import annotations

import pytest

from actors.testing.scripted import ScriptedActor
from protocols.errors import SpecError
from protocols.supervision import ExitKind, ExitReason, Shutdown
from supervisors.spec import AutoShutdown, ChildSpec, RestartType, Strategy, SupervisorSpec
from tests.support.harness import Harness, root_spec, worker

P, T, TEMP = RestartType.PERMANENT, RestartType.TRANSIENT, RestartType.TEMPORARY


@pytest.fixture(params=["process", "light"])
def h(make_runtime, request) -> Harness:
    return Harness(make_runtime(root_spec(request.param), base="simple"), request.param)


def sut_info(h: Harness):
    return h.children(h.rt.root).get("sut")


# --- exit reasons from outside --------------------------------------------------------------------

@pytest.mark.parametrize("kind", [ExitKind.NORMAL, ExitKind.SHUTDOWN])
def test_a_transient_child_stopped_from_outside_with_a_normal_reason_is_not_restarted(
        h: Harness, kind: ExitKind) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a", T), worker("b")])
    h.rt.tell(h.child("a").address, Shutdown(reason=ExitReason(exit_kind=kind, text="by hand")))
    h.wait(lambda: h.child("a").status == "stopped", what="a stopped")
    assert h.child("a").last_exit.exit_kind is kind, "recorded with its reason, not killed"
    assert h.child("a").restarts == 0 and h.incarnations() == {"b": 1}


def test_a_permanent_child_stopped_from_outside_with_shutdown_is_restarted_with_that_reason(
        h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a")])
    old = h.child("a")
    h.rt.tell(old.address, Shutdown())
    fresh = h.wait_restarted("a", old)
    assert fresh.last_exit.exit_kind is ExitKind.SHUTDOWN


def test_a_supervisor_stopped_by_hand_with_normal_reports_normal_to_its_parent(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a"), worker("b")], restart=T)
    h.rt.tell(h.sut, Shutdown(reason=ExitReason.normal("by hand")))
    h.wait(lambda: sut_info(h).status == "stopped", what="the supervisor stopped")
    assert sut_info(h).last_exit.exit_kind is ExitKind.NORMAL
    assert sut_info(h).restarts == 0, "a transient supervisor that exits normal stays stopped"
    assert h.names("stop") == ["b", "a"], "it stopped its children in reverse order first"


# --- group restarts and terminate_child ------------------------------------------------------------

def test_one_for_all_restart_starts_a_sibling_stopped_with_terminate_child(h: Harness) -> None:
    """OTP's restart_multiple_children starts every non-temporary child of the group, running or
    not: a sibling stopped with terminate_child (or one that ignored) comes back too."""
    h.start_tree(Strategy.ONE_FOR_ALL, [worker("a"), worker("b"), worker("c")])
    h.rt.terminate_child("b", h.sut)
    h.fault("a", "error")
    h.wait(lambda: h.incarnations() == {"a": 2, "b": 2, "c": 2})
    assert h.names("stop") == ["b", "a", "c"], "b by hand, a's crash, then c for the group"
    assert h.names("start")[3:] == ["a", "b", "c"], "the whole group starts again, in order"


def test_rest_for_one_restart_starts_younger_siblings_stopped_with_terminate_child(
        h: Harness) -> None:
    h.start_tree(Strategy.REST_FOR_ONE, [worker("a"), worker("b"), worker("c"), worker("d")])
    h.rt.terminate_child("a", h.sut)   # older than the crash: not part of the group
    h.rt.terminate_child("d", h.sut)   # younger: restarted with the group
    h.fault("b", "error")
    h.wait(lambda: h.incarnations() == {"b": 2, "c": 2, "d": 2})
    assert h.child("a").status == "stopped"


def test_a_group_restart_drops_temporary_siblings_and_starts_a_transient_one_that_left(
        h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ALL, [worker("a"), worker("t", TEMP), worker("tr", T)])
    h.fault("tr", "normal")
    h.wait(lambda: h.child("tr").status == "stopped")
    h.fault("a", "error")
    h.wait(lambda: h.incarnations() == {"a": 2, "tr": 2})
    assert "t" not in h.children(), "a temporary child stopped by a group restart is forgotten"


# --- significant children and auto_shutdown ---------------------------------------------------------

def test_a_permanent_child_cannot_be_significant() -> None:
    with pytest.raises(SpecError, match="permanent"):
        ChildSpec("a", ScriptedActor, significant=True)


def test_a_significant_child_needs_auto_shutdown() -> None:
    child = ChildSpec("a", ScriptedActor, restart=T, significant=True)
    with pytest.raises(SpecError, match="auto_shutdown") as err:
        SupervisorSpec(children=[child])
    assert err.value.child_id == "a"
    SupervisorSpec(children=[child], auto_shutdown=AutoShutdown.ANY_SIGNIFICANT)


def test_start_child_of_a_significant_child_under_auto_shutdown_never_is_a_spec_error(
        h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a")])
    with pytest.raises(SpecError, match="auto_shutdown"):
        h.rt.start_child(h.child_spec(worker("s", T, significant=True)), h.sut)
    assert set(h.children()) == {"a"}


@pytest.mark.parametrize("restart, reason", [(T, "normal"), (TEMP, "normal"), (TEMP, "error")])
def test_any_significant_shuts_the_supervisor_down_when_a_significant_child_ends(
        h: Harness, restart: RestartType, reason: str) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a"), worker("s", restart, significant=True)],
                 auto_shutdown="any_significant", restart=T)
    h.fault("s", reason)
    h.wait(lambda: sut_info(h).status == "stopped", what="the supervisor shut itself down")
    exit_reason = sut_info(h).last_exit
    assert exit_reason.exit_kind is ExitKind.SHUTDOWN and exit_reason.text == "auto_shutdown"
    assert "a" in h.names("stop")


def test_a_significant_transient_child_that_crashes_is_restarted_not_shut_down(
        h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("s", T, significant=True)],
                 auto_shutdown="any_significant")
    old = h.fault("s", "error")
    h.wait_restarted("s", old)
    assert sut_info(h).restarts == 0


def test_all_significant_shuts_down_when_the_last_significant_child_ends(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("s1", TEMP, significant=True), worker("a"),
                                        worker("s2", T, significant=True)],
                 auto_shutdown="all_significant", restart=T)
    h.fault("s1", "normal")
    h.wait(lambda: "s1" not in h.children())
    assert sut_info(h).status == "running", "s2 is still running"
    h.fault("s2", "normal")
    h.wait(lambda: sut_info(h).status == "stopped", what="the last significant child ended")
    assert sut_info(h).last_exit.text == "auto_shutdown"


def test_terminate_child_of_a_significant_child_does_not_shut_down(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a"), worker("s", T, significant=True)],
                 auto_shutdown="any_significant")
    h.rt.terminate_child("s", h.sut)
    assert sut_info(h).status == "running" and h.incarnations() == {"a": 1}


def test_a_significant_child_stopped_by_a_group_restart_does_not_shut_down(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ALL, [worker("a"), worker("s", T, significant=True)],
                 auto_shutdown="any_significant")
    h.fault("a", "error")
    h.wait(lambda: h.incarnations() == {"a": 2, "s": 2})
    assert sut_info(h).status == "running"


def test_auto_shutdown_escalates_through_a_significant_supervisor(h: Harness) -> None:
    inner = SupervisorSpec(children=[worker("job", TEMP, significant=True)],
                           auto_shutdown=AutoShutdown.ANY_SIGNIFICANT).as_child(
        "inner", restart=T, significant=True)
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a"), inner], auto_shutdown="any_significant",
                 restart=T)
    job = h.children(h.child("inner").address)["job"]
    h.rt.tell(job.address, Shutdown(reason=ExitReason.normal()))
    h.wait(lambda: sut_info(h).status == "stopped", what="the outer supervisor shut down")
    assert sut_info(h).last_exit.text == "auto_shutdown"
    assert h.names("stop") == ["job", "a"]


def test_all_significant_simple_one_for_one_shuts_down_when_its_last_child_ends(
        h: Harness) -> None:
    h.start_tree(Strategy.SIMPLE_ONE_FOR_ONE, [worker("job", T, significant=True)],
                 auto_shutdown="all_significant", restart=T)
    first, second = (h.rt.start_child({}, h.sut).child_id for _ in range(2))
    h.fault(first, "normal")
    h.wait(lambda: set(h.children()) == {second})
    assert sut_info(h).status == "running"
    h.fault(second, "normal")
    h.wait(lambda: sut_info(h).status == "stopped")
