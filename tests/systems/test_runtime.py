"""What every ptr actor can do: request/reply with timeouts, cancellable timers, the registry."""

from __future__ import annotations

import pytest

from protocols.errors import NoSuchNameError, RequestTimeoutError
from protocols.scripted import ArmTimer, CancelTimer, GetNotes, Hang, Ping, Pong, RelayPing
from protocols.supervision import ExitKind
from supervisors.spec import Strategy, SupervisorSpec
from tests.support.harness import Harness, root_spec, worker


@pytest.fixture(params=[("simple", "process"), ("multiproc", "process"), ("simple", "light"),
                        ("multiproc", "light")], ids="-".join)
def h(make_runtime, request) -> Harness:
    base, weight = request.param
    if base == "multiproc":
        request.applymarker(pytest.mark.multiproc)
    return Harness(make_runtime(root_spec(weight), base=base), weight)


def test_a_name_resolves_to_the_current_incarnation_after_any_number_of_restarts(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a", name="alpha")], intensity=20)
    for n in range(1, 6):
        assert h.rt.ask("alpha", Ping()).incarnation == n
        old = h.fault("a", "error")
        h.wait_restarted("a", old)
    assert h.rt.whereis("alpha") == h.child("a").address


def test_names_in_nested_supervisors_are_registered_with_the_root(h: Harness) -> None:
    inner = SupervisorSpec(Strategy.ONE_FOR_ONE, [worker("deep", name="deep-one")])
    h.start_tree(Strategy.ONE_FOR_ONE, [inner.as_child("inner", name="inner-sup")])
    assert h.rt.ask("deep-one", Ping()).path.endswith("/sut/inner/deep")
    assert h.rt.which_children("inner-sup").children[0].child_id == "deep"


def test_an_unknown_name_is_a_clear_error(h: Harness) -> None:
    with pytest.raises(NoSuchNameError, match="nobody"):
        h.rt.whereis("nobody", timeout_s=0.2)


def test_a_name_is_unregistered_when_its_actor_stops_for_good(h: Harness) -> None:
    from protocols.supervision import TerminateChild
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a", name="gone-soon")])
    h.rt.ask(h.sut, TerminateChild(child_id="a"))
    h.wait(lambda: h.child("a").status == "stopped")
    with pytest.raises(NoSuchNameError):
        h.rt.whereis("gone-soon", timeout_s=0.2)


def test_an_actor_requests_another_by_name_and_replies_later(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("asker", name="asker"),
                                        worker("target", name="target")])
    pong = h.rt.ask("asker", RelayPing(name="target"))
    assert isinstance(pong, Pong) and pong.path.endswith("/sut/target")


def test_an_unanswered_request_crashes_the_caller_with_a_timeout(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("asker", name="asker"),
                                        worker("target", name="target", simulated_hang=True,
                                               shutdown_ms=200)])
    h.rt.tell("target", Hang())
    old = h.child("asker")
    with pytest.raises(Exception):
        h.rt.ask("asker", RelayPing(name="target", timeout_s=0.2), timeout_s=0.5)
    info = h.wait_restarted("asker", old)
    assert info.last_exit.exit_kind is ExitKind.ERROR
    assert info.last_exit.error_type == "RequestTimeoutError"


def test_ask_from_outside_times_out_with_a_clear_error(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("mute", name="mute", simulated_hang=True,
                                                       shutdown_ms=200)])
    h.rt.tell("mute", Hang())
    with pytest.raises(RequestTimeoutError, match="Ping"):
        h.rt.ask("mute", Ping(), timeout_s=0.3)


def test_a_cancelled_timer_never_fires_and_a_kept_one_does(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("t", name="t")])
    h.rt.tell("t", ArmTimer(tag="cancelled", delay_s=0.02, cancel=True))
    h.rt.tell("t", ArmTimer(tag="kept", delay_s=0.06))
    h.wait(lambda: h.rt.ask("t", GetNotes()), what="the first timer fired")
    assert h.rt.ask("t", GetNotes()) == ["kept"]


def test_a_repeating_timer_fires_until_cancelled(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("t", name="t")])
    h.rt.tell("t", ArmTimer(tag="tick", delay_s=0.01, repeat=True))
    h.wait(lambda: len(h.rt.ask("t", GetNotes())) >= 3, what="three ticks")
    assert h.rt.ask("t", CancelTimer(tag="tick")) is True
    count = len(h.rt.ask("t", GetNotes()))
    h.rt.tell("t", ArmTimer(tag="marker", delay_s=0.05))
    h.wait(lambda: "marker" in h.rt.ask("t", GetNotes()), what="marker after cancel")
    assert h.rt.ask("t", GetNotes()).count("tick") == count, "no tick after cancel"


def test_a_target_crashing_on_a_request_is_request_failed_error_outside_the_tree_too(
        make_runtime, base) -> None:
    """Inside the tree a request whose target crashes raises ``RequestFailedError`` in the
    requester; from outside, ``ActorRuntime.ask`` raises the same exception."""
    from actors.testing.scripted import ScriptedActor
    from protocols.errors import RequestFailedError
    from protocols.scripted import Crash
    from supervisors.spec import ChildSpec, SupervisorSpec
    rt = make_runtime(SupervisorSpec(children=[ChildSpec("victim", ScriptedActor, name="victim")]),
                      base=base)
    with pytest.raises(RequestFailedError, match="victim failed on Crash"):
        rt.ask("victim", Crash(text="on purpose"))
