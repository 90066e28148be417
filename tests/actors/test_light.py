"""Light actors: isolation of faults, host death, mailboxes, fairness, and crossing hosts."""

from __future__ import annotations

import os
import signal

import pytest

from actors.testing.scripted import LightCounter, LightCrashingCounter, LightScriptedActor, RoomyCounter
from protocols.light import HostReport, HostStatus, LightAddress
from protocols.scripted import Flood, GetCount, Ping, RelayPing
from protocols.supervision import ExitKind
from supervisors.spec import ChildSpec, RestartType, Strategy, SupervisorSpec, host_spec
from supervisors.supervisor import LightSupervisor
from tests.support.harness import Harness, worker


def light_tree(*children: ChildSpec, host: str = "h1", **kwargs) -> ChildSpec:
    return SupervisorSpec(Strategy.ONE_FOR_ONE, children, **kwargs).as_child(
        f"sup-{host}", host=host, name=f"sup-{host}")


def counter(child_id: str, cls: type = LightCounter, **kwargs) -> ChildSpec:
    return ChildSpec(child_id, cls, name=child_id, **kwargs)


def host_report(rt, name: str = "h1") -> HostReport:
    return rt.ask(name, HostStatus())


def test_a_crash_in_a_light_actor_leaves_its_siblings_and_host_untouched(make_runtime) -> None:
    rt = make_runtime(SupervisorSpec(children=[host_spec("h1")]), base="multiproc")
    h = Harness(rt, "light")
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a"), worker("b"), worker("c")])
    before = host_report(rt)
    old = h.fault("b", "error")
    h.wait_restarted("b", old)
    assert h.incarnations() == {"a": 1, "b": 2, "c": 1}
    after = host_report(rt)
    assert after.pid == before.pid, "the host process lives on"
    assert after.crashed == before.crashed + 1
    assert {info.pid for info in h.children().values()} == {after.pid}, \
        "the live tree shows light actors with their host's OS pid"


@pytest.mark.multiproc
def test_sigkill_of_a_host_restarts_its_light_actors_under_their_supervisors(make_runtime) -> None:
    """Light children in h1 have two supervisors: a light one inside h1 and a process one outside.
    Killing h1's process ends all of them (reason killed); both supervisors restart them."""
    outside = SupervisorSpec(Strategy.ONE_FOR_ONE, [
        ChildSpec("far", LightScriptedActor, host="h1", name="far")]).as_child("outside")
    inside = light_tree(ChildSpec("near", LightScriptedActor, name="near"))
    rt = make_runtime(SupervisorSpec(children=[host_spec("h1"), inside, outside], intensity=20),
                      base="multiproc")
    host_pid = host_report(rt).pid
    far_before, near_before = rt.whereis("far"), rt.whereis("near")
    assert rt.ask("far", Ping()).pid == host_pid == rt.ask("near", Ping()).pid

    os.kill(host_pid, signal.SIGKILL)

    def both_back():
        try:
            far, near = rt.whereis("far", 0.2), rt.whereis("near", 0.2)
            return far != far_before and near != near_before and rt.ask(far, Ping(), 1) and \
                rt.ask(near, Ping(), 1)
        except Exception:
            return False
    rt.wait_for(both_back, timeout_s=20, what="light actors back in a new host")
    new_pid = host_report(rt).pid
    assert new_pid != host_pid
    assert rt.ask("far", Ping()).pid == new_pid
    outside_info = {c.child_id: c for c in rt.which_children().children}["outside"]
    far_child = rt.which_children(outside_info.address).children[0]
    assert far_child.last_exit.exit_kind is ExitKind.KILLED
    assert far_child.restarts == 1


def test_mailbox_overflow_drop_new_is_counted(make_runtime) -> None:
    rt = make_runtime(SupervisorSpec(children=[host_spec("h1"), light_tree(
        counter("flooder", RoomyCounter), counter("small"))]), base="simple")
    assert rt.ask("flooder", Flood(target=rt.whereis("small"), count=50)) == 50
    rt.wait_for(lambda: rt.ask("small", GetCount()) == 10, what="the ten that fit")
    assert host_report(rt).dropped_overflow == 40
    assert rt.ask("small", GetCount()) == 10


def test_mailbox_overflow_crash_restarts_with_an_empty_mailbox(make_runtime) -> None:
    rt = make_runtime(SupervisorSpec(children=[host_spec("h1"), light_tree(
        counter("flooder", RoomyCounter), counter("fragile", LightCrashingCounter))]),
        base="simple")
    old = rt.whereis("fragile")
    rt.ask("flooder", Flood(target=old, count=50))
    rt.wait_for(lambda: rt.whereis("fragile") != old, what="fragile restarted")
    sup = rt.which_children(rt.whereis("sup-h1")).children
    fragile = {c.child_id: c for c in sup}["fragile"]
    assert fragile.last_exit.error_type == "MailboxOverflowError"
    assert rt.ask("fragile", GetCount()) == 0


def test_a_busy_actor_cannot_starve_its_neighbours(make_runtime) -> None:
    rt = make_runtime(SupervisorSpec(children=[host_spec("h1"), light_tree(
        counter("flooder", RoomyCounter), counter("busy", RoomyCounter),
        counter("quiet", RoomyCounter))]), base="simple")
    LightCounter.TRACE.clear()
    rt.ask("flooder", Flood(target=rt.whereis("busy"), count=5000, last=rt.whereis("quiet")))
    rt.wait_for(lambda: rt.ask("busy", GetCount()) == 5000, what="busy drained")
    order = [path.rsplit("/", 1)[1] for path, _ in LightCounter.TRACE]
    assert order.index("quiet") <= 100, "quiet runs after at most one fair turn of busy"


@pytest.mark.multiproc
def test_light_actors_in_two_hosts_talk_by_name(make_runtime) -> None:
    rt = make_runtime(SupervisorSpec(children=[
        host_spec("h1"), host_spec("h2"),
        light_tree(ChildSpec("asker", LightScriptedActor, name="asker"), host="h1"),
        light_tree(ChildSpec("target", LightScriptedActor, name="target"), host="h2")]),
        base="multiproc")
    pong = rt.ask("asker", RelayPing(name="target"))
    assert pong.path.endswith("/target")
    assert pong.pid == host_report(rt, "h2").pid != host_report(rt, "h1").pid
    assert isinstance(rt.whereis("target"), LightAddress)


def test_a_light_child_must_be_a_light_actor() -> None:
    from protocols.errors import SpecError
    from actors.testing.scripted import ScriptedActor
    with pytest.raises(SpecError, match="only a LightActor"):
        ChildSpec("x", ScriptedActor, host="h1")


def test_thousands_of_light_children_start_and_answer(make_runtime) -> None:
    template = ChildSpec("s", LightCounter, restart=RestartType.TRANSIENT)
    sensors = SupervisorSpec(Strategy.SIMPLE_ONE_FOR_ONE, [template]).as_child(
        "sensors", host="h1", name="sensors")
    rt = make_runtime(SupervisorSpec(children=[host_spec("h1"), sensors]), base="simple")
    from protocols.supervision import StartChild
    addresses = [rt.ask("sensors", StartChild()).address for _ in range(2000)]
    assert len(set(addresses)) == 2000
    assert host_report(rt).lights == 2001, "2,000 sensors and their supervisor"
    assert rt.ask(addresses[-1], Ping()).path.endswith("/sensors/s-2000")
    assert LightSupervisor.__name__ == rt.which_children().children[1].actor_class


def test_light_timers_follow_the_actor_clock_so_a_mock_clock_fires_them(make_runtime) -> None:
    """A light actor's 60 s timer, on a mock clock: not due while the mock is a second short, due
    on the host's next message once the mock has moved 60 s (no real minute is waited)."""
    from actors.clock import MockClock, use_clock
    from protocols.scripted import ArmTimer, GetNotes

    with use_clock(MockClock()) as clock:
        rt = make_runtime(SupervisorSpec(children=[host_spec("h1"), light_tree(
            ChildSpec("timed", LightScriptedActor, name="timed"))]), base="simple")
        rt.tell("timed", ArmTimer(tag="minute", delay_s=60))
        clock.advance(59)
        assert rt.ask("timed", GetNotes()) == [] and rt.ask("timed", GetNotes()) == []
        clock.advance(1)
        rt.wait_for(lambda: rt.ask("timed", GetNotes()) == ["minute"], timeout_s=5,
                    what="the timer fired on the mock clock")
