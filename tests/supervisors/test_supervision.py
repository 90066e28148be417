"""OTP's supervisor matrix on one process: strategy x restart type x exit reason, and the rest of
the behaviour a supervisor owes its children (intensity, escalation, order, timeouts, backoff)."""

from __future__ import annotations

import time

import pytest

from protocols.scripted import Crash, GetValue, SetValue
from protocols.supervision import ExitKind, StartChild, TerminateChild
from actors.clock import MockClock, use_clock
from supervisors.backoff import Backoff
from supervisors.spec import RestartType, Strategy
from tests.support.harness import Harness, root_spec, worker

P, T, TEMP = RestartType.PERMANENT, RestartType.TRANSIENT, RestartType.TEMPORARY
RESTARTED_SIBLINGS = {
    Strategy.ONE_FOR_ONE: {"b"},
    Strategy.ONE_FOR_ALL: {"a", "b", "c"},
    Strategy.REST_FOR_ONE: {"b", "c"},
}


@pytest.fixture(params=["process", "light"])
def h(make_runtime, request) -> Harness:
    """Every test runs twice: over process children and over light children in a host."""
    return Harness(make_runtime(root_spec(request.param), base="simple"), request.param)


def restarts_after(restart: RestartType, reason: str) -> bool:
    return restart is P or (restart is T and reason != "normal")


@pytest.mark.parametrize("reason", ["error", "normal", "killed"])
@pytest.mark.parametrize("restart", [P, T, TEMP], ids=lambda r: r.value)
@pytest.mark.parametrize("strategy", list(RESTARTED_SIBLINGS), ids=lambda s: s.value)
def test_child_exit_matrix(h: Harness, strategy: Strategy, restart: RestartType,
                           reason: str) -> None:
    h.start_tree(strategy, [worker("a"), worker("b", restart), worker("c")])
    assert h.incarnations() == {"a": 1, "b": 1, "c": 1}

    h.fault("b", reason)

    if restarts_after(restart, reason):
        expected = {cid: 2 if cid in RESTARTED_SIBLINGS[strategy] else 1 for cid in "abc"}
        h.wait(lambda: h.incarnations() == expected, what=f"incarnations {expected}")
        assert h.child("b").restarts == 1
        assert h.child("b").last_exit.exit_kind is ExitKind(reason)
    else:
        h.wait(lambda: "b" not in h.children() or h.child("b").status == "stopped",
               what="b gone")
        assert h.incarnations() == {"a": 1, "c": 1}, "siblings of a child not restarted stay"
        if restart is TEMP:
            assert "b" not in h.children(), "a temporary child's spec is deleted when it exits"
        else:
            assert h.child("b").last_exit.exit_kind is ExitKind.NORMAL


def test_one_for_all_stops_the_others_in_reverse_order_then_starts_all_in_order(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ALL, [worker("a"), worker("b"), worker("c")])
    h.fault("b", "error")
    h.wait(lambda: h.incarnations() == {"a": 2, "b": 2, "c": 2})
    after = [(e.what, e.path.rsplit("/", 1)[1]) for e in h.events()][3:]
    assert after == [("stop", "b"), ("stop", "c"), ("stop", "a"),
                     ("start", "a"), ("start", "b"), ("start", "c")]


def test_rest_for_one_restarts_only_the_younger_siblings(h: Harness) -> None:
    h.start_tree(Strategy.REST_FOR_ONE, [worker("a"), worker("b"), worker("c"), worker("d")])
    h.fault("b", "error")
    h.wait(lambda: h.incarnations() == {"a": 1, "b": 2, "c": 2, "d": 2})
    stops = [e.path.rsplit("/", 1)[1] for e in h.events("stop")]
    assert stops == ["b", "d", "c"], "b stops as it crashes; then d, c in reverse start order"


def test_children_start_in_order_and_stop_in_reverse(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a"), worker("b"), worker("c")])
    h.stop_tree()
    order = [(e.what, e.path.rsplit("/", 1)[1]) for e in h.events()]
    assert order == [("start", "a"), ("start", "b"), ("start", "c"),
                     ("stop", "c"), ("stop", "b"), ("stop", "a")]


def test_a_restart_wipes_state(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a")])
    address = h.child("a").address
    assert h.rt.ask(address, SetValue(value=42)) == 42
    old = h.fault("a", "error")
    fresh = h.wait_restarted("a", old)
    assert h.rt.ask(fresh.address, GetValue()) == 0


def test_the_crash_reason_carries_type_text_and_traceback(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a")])
    old = h.child("a")
    h.rt.tell(old.address, Crash(text="disk on fire"))
    info = h.wait_restarted("a", old)
    assert info.last_exit.error_type == "ScriptedCrash"
    assert info.last_exit.text == "disk on fire"
    assert "receiveMsg_Crash" in info.last_exit.traceback


def test_restart_intensity_exceeded_escalates_to_the_parent(h: Harness) -> None:
    """Past `intensity` restarts in `period_s`, the supervisor stops its children and exits with
    reason shutdown; the root (permanent child) restarts it, with fresh children."""
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a"), worker("b"), worker("c")], intensity=2,
                 period_s=60)
    first_sut = h.sut
    for n in range(2):
        old = h.fault("c", "error")
        h.wait_restarted("c", old)
    assert h.rt.which_children(h.sut).restart_budget_left == 0
    h.fault("c", "error")  # the third restart within the period is one too many

    def sut_restarted():
        info = h.children(h.rt.root).get("sut")
        return info if info and info.status == "running" and info.address != first_sut else None
    sut = h.wait(sut_restarted, what="sut restarted by the root")
    assert sut.restarts == 1
    assert sut.last_exit.exit_kind is ExitKind.SHUTDOWN
    assert sut.last_exit.text.startswith("reached_max_restart_intensity")
    h.sut = sut.address
    assert h.incarnations() == {"a": 1, "b": 1, "c": 1}, "a restarted supervisor starts afresh"
    stops = [e.path.rsplit("/", 1)[1] for e in h.events("stop")]
    assert stops[-3:] == ["c", "b", "a"], "c's crash, then escalation stops b and a in reverse"


def test_intensity_zero_means_the_first_failure_escalates(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a")], intensity=0)
    first = h.sut
    h.fault("a", "error")
    h.wait(lambda: h.children(h.rt.root)["sut"].address not in (None, first) and
           h.children(h.rt.root)["sut"].status == "running")


def test_a_child_whose_restart_fails_every_time_exhausts_the_intensity(h: Harness) -> None:
    """OTP: every failed restart attempt counts as a restart (a child failing in the supervisor's
    own start fails that start instead: see test_otp_start_failures)."""
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("bad", restart=T, fail_on_restart=True)],
                 intensity=3, period_s=60, sut_id="doomed", restart=TEMP)
    h.fault("bad", "error")
    h.wait(lambda: "doomed" not in h.children(h.rt.root), what="doomed supervisor gave up")
    assert len(h.events("start")) == 4, "one start and three restarts, then it gives up"


def test_a_hung_child_cannot_block_shutdown(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a"), worker("stuck", hang_on_stop=True,
                                                          shutdown_ms=200), worker("c")])
    began = time.monotonic()
    h.stop_tree()
    assert time.monotonic() - began < 5
    stops = [e.path.rsplit("/", 1)[1] for e in h.events("stop") if not e.path.endswith("stuck")]
    assert stops == ["c", "a"], "the hung child is killed after its timeout, then a stops"


def test_brutal_kill_does_not_wait_for_on_stop(h: Harness) -> None:
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("a", shutdown_ms=0, hang_on_stop=True)])
    h.stop_tree()
    assert [e.what for e in h.events()][0] == "start"


def test_simple_one_for_one_adds_children_on_demand(h: Harness) -> None:
    h.start_tree(Strategy.SIMPLE_ONE_FOR_ONE, [worker("job", restart=T)])
    assert h.children() == {}
    ids = []
    for n in range(3):
        reply = h.rt.ask(h.sut, StartChild(args={"n": n}), 10)
        assert reply.error == "" and reply.address is not None
        ids.append(reply.child_id)
    assert ids == ["job-1", "job-2", "job-3"]
    old = h.fault("job-2", "error")
    h.wait_restarted("job-2", old)
    assert h.incarnations() == {"job-1": 1, "job-2": 2, "job-3": 1}
    h.fault("job-3", "normal")
    h.wait(lambda: "job-3" not in h.children(), what="a transient dynamic child that exits "
           "normally is deleted")
    assert h.rt.ask(h.sut, TerminateChild(child_id="job-1"), 5).found
    h.wait(lambda: set(h.children()) == {"job-2"})


def test_backoff_spaces_restarts_exponentially(h: Harness) -> None:
    """On a mock clock that moves only when the test says so, the supervisor's wait before each
    restart is exactly min * 2**n, capped at max (a constant delay would fail: 0.05, 0.1, 0.2,
    0.4, 0.4), and the child comes back once the clock has moved that far."""
    policy = Backoff(min_s=0.05, max_s=0.4, jitter=0.0, reset_after_s=30)
    with use_clock(MockClock()) as clock:
        h.start_tree(Strategy.ONE_FOR_ONE, [worker("flaky", backoff=policy)], intensity=10,
                     period_s=1)
        waits = []
        for _ in range(5):
            old = h.fault("flaky", "error")
            waiting = h.wait(lambda: (c := h.child("flaky")).status == "restarting" and c,
                             what="waiting out its backoff")
            waits.append(round(waiting.restart_in_s, 6))
            assert h.child("flaky").status == "restarting", "not before the clock has moved"
            clock.advance(waiting.restart_in_s + 1.0)  # past the wait, and out of the window
            h.wait_restarted("flaky", old)
    assert waits == [0.05, 0.1, 0.2, 0.4, 0.4]


def test_backoff_status_is_restarting_while_waiting(h: Harness) -> None:
    policy = Backoff(min_s=30, max_s=60, jitter=0.0)
    h.start_tree(Strategy.ONE_FOR_ONE, [worker("slow", backoff=policy), worker("b")])
    h.fault("slow", "error")
    h.wait(lambda: h.child("slow").status == "restarting")
    assert h.child("b").status == "running", "a sibling is not held up by a backoff"
