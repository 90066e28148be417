"""Specs are validated when built; the restart window and backoff are plain objects with a clock."""

from __future__ import annotations

import random

import pytest

from actors.testing.scripted import Recorder, ScriptedActor
from protocols.errors import SpecError
from supervisors.spec import resolve_actor
from supervisors import (
    Backoff,
    ChildSpec,
    RestartType,
    RestartWindow,
    Strategy,
    Supervisor,
    SupervisorSpec,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_restart_window_allows_intensity_restarts_per_period() -> None:
    clock = FakeClock()
    window = RestartWindow(intensity=3, period_s=5, clock=clock)
    assert [window.allow() for _ in range(3)] == [True, True, True]
    assert window.budget_left == 0
    assert window.allow() is False, "the fourth restart within 5 s exceeds the intensity"


def test_restart_window_forgets_restarts_older_than_the_period() -> None:
    clock = FakeClock()
    window = RestartWindow(intensity=2, period_s=5, clock=clock)
    window.allow()
    clock.now += 3
    window.allow()
    clock.now += 3  # the first restart is now 6 whole seconds old
    assert window.budget_left == 1
    assert window.allow() is True
    assert window.allow() is False


def test_restart_window_a_restart_exactly_period_ago_still_counts() -> None:
    """OTP's add_restart keeps restarts with ``R >= Now - Period`` in whole seconds."""
    clock = FakeClock()
    window = RestartWindow(intensity=1, period_s=5, clock=clock)
    assert window.allow() is True
    clock.now += 5
    assert window.allow() is False, "the first restart, exactly 5 s ago, still counts"


def test_restart_window_counts_whole_seconds_as_otp() -> None:
    """Restarts at 1000.9 s and 1005.1 s are whole seconds 1000 and 1005: within a 5 s period,
    though 4.2 s apart; at 1000.1 s and 1005.9 s (5.8 s apart) too; 1006.0 s is past it."""
    for first, second, within in [(1000.9, 1005.1, True), (1000.1, 1005.9, True),
                                  (1000.9, 1006.0, False)]:
        clock = FakeClock()
        window = RestartWindow(intensity=1, period_s=5, clock=clock)
        clock.now = first
        window.allow()
        clock.now = second
        assert window.allow() is (not within), (first, second)


def test_intensity_zero_allows_no_restart() -> None:
    assert RestartWindow(0, 5, clock=FakeClock()).allow() is False


def test_backoff_doubles_from_min_and_caps_at_max() -> None:
    policy = Backoff(min_s=0.1, max_s=1.0, jitter=0.0)
    rng = random.Random(1)
    assert [policy.delay(n, rng) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_backoff_jitter_only_lengthens_and_stays_within_its_factor() -> None:
    policy = Backoff(min_s=1.0, max_s=1.0, jitter=0.5)
    rng = random.Random(7)
    delays = [policy.delay(0, rng) for _ in range(200)]
    assert all(1.0 <= d <= 1.5 for d in delays)
    assert len(set(delays)) > 100, "jitter spreads restarts that would otherwise align"


def test_backoff_resets_after_its_quiet_period_default_max() -> None:
    assert Backoff(0.1, 2.0).reset_after == 2.0
    assert Backoff(0.1, 2.0, reset_after_s=9).reset_after == 9


@pytest.mark.parametrize("kwargs, message", [
    ({"min_s": 2, "max_s": 1}, "min_s <= max_s"),
    ({"min_s": 1, "max_s": 2, "jitter": 1.5}, "jitter"),
])
def test_impossible_backoff_is_refused(kwargs, message) -> None:
    with pytest.raises(SpecError, match=message):
        Backoff(**kwargs)


def test_duplicate_child_id_names_the_child() -> None:
    with pytest.raises(SpecError) as err:
        SupervisorSpec(children=[ChildSpec("db", ScriptedActor), ChildSpec("db", ScriptedActor)])
    assert err.value.child_id == "db"
    assert "'db'" in str(err.value)


def test_a_name_registered_twice_anywhere_in_the_tree_is_refused() -> None:
    inner = SupervisorSpec(children=[ChildSpec("x", ScriptedActor, name="shared")])
    with pytest.raises(SpecError, match="shared"):
        SupervisorSpec(children=[ChildSpec("y", ScriptedActor, name="shared"),
                                 inner.as_child("inner")])


def test_simple_one_for_one_takes_exactly_one_template() -> None:
    with pytest.raises(SpecError, match="exactly one"):
        SupervisorSpec(Strategy.SIMPLE_ONE_FOR_ONE,
                       [ChildSpec("a", ScriptedActor), ChildSpec("b", ScriptedActor)])


@pytest.mark.parametrize("kwargs, message", [
    ({"id": ""}, "non-empty"),
    ({"id": "a/b"}, "no '/'"),
    ({"id": "a", "shutdown_ms": -1}, "shutdown_ms"),
    ({"id": "a", "restart": RestartType.TEMPORARY, "backoff": Backoff(0.1, 1)}, "back off"),
    ({"id": "a", "actor": dict}, "not a ptr Actor"),
])
def test_impossible_child_specs_are_refused_when_built(kwargs, message) -> None:
    with pytest.raises(SpecError, match=message):
        ChildSpec(**{"actor": ScriptedActor, **kwargs})


def test_intensity_and_period_are_checked() -> None:
    with pytest.raises(SpecError, match="intensity"):
        SupervisorSpec(intensity=-1)
    with pytest.raises(SpecError, match="period"):
        SupervisorSpec(period_s=0)


def test_defaults_follow_elixir() -> None:
    spec = SupervisorSpec()
    assert (spec.intensity, spec.period_s) == (3, 5.0)
    assert ChildSpec("w", Recorder).shutdown_ms == 5000
    child = spec.as_child("s")
    assert child.shutdown_ms is None and resolve_actor(child.actor) is Supervisor
    assert child.is_supervisor and child.actor_name == "Supervisor"
