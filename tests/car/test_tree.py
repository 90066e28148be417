"""The signal tree as plain objects, on a mock clock: get/set, ownership by strength, failover on a
missed deadline, staleness, plausibility alerts, bad samples, rate-limited subscriptions, and a
member's snapshot taken by its restarted peer."""

from __future__ import annotations

import pytest

from actors.car.tree import AVAILABLE, STALE, UNKNOWN, SignalTree, Subscriptions, UnknownSignalError
from actors.car.vss import default_sensors, load_vspec
from actors.clock import MockClock

SPEED = "Vehicle.Speed"
RPM = "Vehicle.Powertrain.CombustionEngine.Speed"
VOLUME = "Vehicle.Cabin.Infotainment.Media.Volume"
PERIOD = 0.01


@pytest.fixture
def clock() -> MockClock:
    return MockClock()


@pytest.fixture
def tree() -> SignalTree:
    specs = load_vspec()
    return SignalTree(specs, default_sensors(specs, redundancy=2))


def ids(tree: SignalTree, path: str) -> tuple[int, int]:
    """(strong, weak) sensor ids of a signal."""
    strong, weak = tree.signals[path].sensors
    assert strong.strength > weak.strength
    return strong.sensor_id, weak.sensor_id


def test_the_shipped_vspec_loads_with_types_units_ranges_and_periods(tree: SignalTree) -> None:
    speed = tree.signals[SPEED].spec
    assert (speed.type, speed.datatype, speed.unit, speed.min, speed.max, speed.period_s) == \
        ("sensor", "float", "km/h", 0, 300, 0.01)
    assert tree.signals[VOLUME].spec.settable and not speed.settable
    assert len(tree.signals[SPEED].sensors) == 2 and not tree.signals[VOLUME].sensors


def test_get_by_signal_and_by_branch_and_unknown_paths(tree: SignalTree, clock: MockClock) -> None:
    strong, _ = ids(tree, SPEED)
    assert tree.get([SPEED], clock())[0].state == UNKNOWN
    tree.apply(strong, 1, 5.0, 42.5, clock())
    clock.advance(0.004)
    (value,) = tree.get([SPEED], clock())
    assert (value.value, value.source, value.ts, value.state) == \
        (42.5, f"sensor-{strong}", 5.0, AVAILABLE)
    assert value.age_ms == pytest.approx(4.0)
    brakes = tree.get(["Vehicle.Chassis.Axle.Row1.Wheel"], clock())
    assert {v.path.rsplit(".", 1)[1] for v in brakes} == {"FluidPressure", "PadWear"}
    assert len(brakes) == 4
    with pytest.raises(UnknownSignalError):
        tree.get(["Vehicle.NoSuchThing"], clock())
    with pytest.raises(UnknownSignalError):
        tree.get(["Vehicle.Spe"], clock())  # a prefix of a name is not a branch


def test_set_takes_actuators_in_range_and_refuses_the_rest(tree: SignalTree,
                                                           clock: MockClock) -> None:
    signal, kind, _ = tree.set(VOLUME, 30, 1.0, clock())
    assert signal is not None and kind == ""
    value = tree.get([VOLUME], clock())[0]
    assert (value.value, value.source, value.state) == (30, "set", AVAILABLE)
    assert tree.set(VOLUME, 101, 1.0, clock())[1] == "invalid"
    assert tree.set(VOLUME, 2.5, 1.0, clock())[1] == "invalid"  # uint8
    assert tree.set(VOLUME, True, 1.0, clock())[1] == "invalid"
    assert tree.set(SPEED, 10.0, 1.0, clock())[1] == "forbidden"
    assert tree.set("Vehicle.Nope", 1, 1.0, clock())[1] == "not_found"
    assert tree.get([VOLUME], clock())[0].value == 30


def test_the_strongest_live_sensor_owns_the_value(tree: SignalTree, clock: MockClock) -> None:
    strong, weak = ids(tree, SPEED)
    assert tree.apply(weak, 1, 1.0, 50.0, clock()) is not None  # alone: the weak one owns it
    clock.advance(PERIOD)
    assert tree.apply(strong, 1, 1.01, 51.0, clock()) is not None  # stronger: takes over at once
    assert tree.signals[SPEED].source == f"sensor-{strong}"
    for n in range(2, 6):
        clock.advance(PERIOD)
        assert tree.apply(weak, n, 1 + n / 100, 49.0 + n / 10, clock()) is None  # does not own
        assert tree.apply(strong, n, 1 + n / 100, 51.0 + n / 10, clock()) is not None
    assert tree.get([SPEED], clock())[0].value == pytest.approx(51.5)
    assert tree.failovers == 0 and tree.accepted == 10


def test_a_missed_deadline_passes_ownership_within_one_period(tree: SignalTree,
                                                              clock: MockClock) -> None:
    strong, weak = ids(tree, SPEED)
    for n in range(1, 4):
        tree.apply(strong, n, float(n), 60.0, clock())
        tree.apply(weak, n, float(n), 60.5, clock())
        clock.advance(PERIOD)
    silenced_at = clock() - PERIOD  # the strong sensor's last datagram
    # the weak sensor keeps sending; the strong one is silent from now on
    seq = 4
    while tree.signals[SPEED].source == f"sensor-{strong}":
        clock.advance(PERIOD / 2)  # the sweep runs twice a period, the weak sensor once
        if seq % 2:
            tree.apply(weak, seq, float(seq), 61.0, clock())
        tree.sweep(clock())
        seq += 1
    took = clock() - silenced_at
    assert 3 * PERIOD < took <= 4 * PERIOD, "within one period of the 3-period deadline"
    value = tree.get([SPEED], clock())[0]
    assert (value.source, value.value, value.state) == (f"sensor-{weak}", 61.0, AVAILABLE)
    assert tree.failovers == 1
    clock.advance(PERIOD)
    assert tree.apply(strong, 100, 100.0, 62.0, clock()) is not None, "the strong one comes back"
    assert tree.signals[SPEED].source == f"sensor-{strong}"


def test_the_sweep_fails_over_to_the_last_value_with_its_true_age(tree: SignalTree,
                                                                  clock: MockClock) -> None:
    strong, weak = ids(tree, RPM)
    tree.apply(strong, 1, 1.0, 2000, clock())
    clock.advance(0.005)
    tree.apply(weak, 1, 1.005, 2010, clock())
    clock.advance(3 * PERIOD - 0.005 + 0.001)  # strong now 31 ms old, weak 26 ms
    assert [s.path for s in tree.sweep(clock())] == [RPM]
    value = tree.get([RPM], clock())[0]
    assert (value.value, value.source) == (2010, f"sensor-{weak}")
    assert value.age_ms == pytest.approx(26.0)
    clock.advance(0.005)  # the weak one misses its deadline too: stale, last value kept
    assert [s.path for s in tree.sweep(clock())] == [RPM]
    value = tree.get([RPM], clock())[0]
    assert (value.value, value.state) == (2010, STALE)
    assert tree.sweep(clock()) == [], "stale once, not on every sweep"
    tree.apply(weak, 2, 2.0, 2020, clock())
    assert tree.get([RPM], clock())[0].state == AVAILABLE


def test_bad_samples_are_counted_by_reason_and_change_nothing(tree: SignalTree,
                                                              clock: MockClock) -> None:
    strong, _ = ids(tree, SPEED)
    tree.apply(strong, 5, 1.0, 10.0, clock())
    assert tree.apply(9999, 1, 1.0, 10.0, clock()) is None
    assert tree.apply(strong, 6, 1.0, 301.0, clock()) is None       # above max
    assert tree.apply(strong, 6, 1.0, True, clock()) is None        # not a number
    assert tree.apply(strong, 6, 1.0, float("nan"), clock()) is None
    assert tree.apply(strong, 5, 1.0, 20.0, clock()) is None        # same sequence again
    assert tree.apply(strong, 4, 1.0, 20.0, clock()) is None        # older
    assert (tree.dropped_unknown_sensor, tree.dropped_out_of_range, tree.dropped_stale_seq) == \
        (1, 3, 2)
    assert tree.get([SPEED], clock())[0].value == 10.0
    clock.advance(1.0)  # silent past its deadline: a restarted sensor may start again from 1
    assert tree.apply(strong, 1, 2.0, 12.0, clock()) is not None


def test_redundant_sensors_disagreeing_raise_one_alert_until_they_agree(tree: SignalTree,
                                                                        clock: MockClock) -> None:
    strong, weak = ids(tree, SPEED)  # tolerance 3 km/h
    tree.apply(strong, 1, 1.0, 80.0, clock())
    tree.apply(weak, 1, 1.0, 82.0, clock())
    assert tree.alerts_raised == 0
    for n in range(2, 5):
        clock.advance(PERIOD)
        tree.apply(strong, n, 1.0, 80.0, clock())
        tree.apply(weak, n, 1.0, 90.0, clock())
    assert tree.alerts_raised == 1
    (alert,) = tree.active_alerts()
    assert alert.path == SPEED and set(alert.values) == {80.0, 90.0}
    assert alert.tolerance == 3
    clock.advance(PERIOD)
    tree.apply(weak, 5, 1.0, 81.0, clock())
    assert tree.active_alerts() == []
    clock.advance(1.0)  # a dead sensor's old value is not compared
    tree.apply(strong, 6, 1.0, 10.0, clock())
    assert tree.alerts_raised == 1


def test_subscribers_get_current_values_then_changes_at_most_at_their_rate(
        tree: SignalTree, clock: MockClock) -> None:
    strong, _ = ids(tree, SPEED)
    subs = Subscriptions()
    tree.apply(strong, 1, 1.0, 10.0, clock())
    current = subs.subscribe("slow", tree.resolve([SPEED, RPM]), 10.0, clock(), tag=1)
    assert [(row[0], row[1], row[5]) for row in current] == [(SPEED, 10.0, AVAILABLE),
                                                            (RPM, None, UNKNOWN)]
    subs.subscribe("fast", tree.resolve([SPEED]), 0.0, clock())
    sent: dict[str, list[float]] = {"slow": [], "fast": []}
    for n in range(2, 52):  # 0.5 s of 100 Hz updates
        clock.advance(PERIOD)
        signal = tree.apply(strong, n, float(n), float(n), clock())
        assert signal is not None
        subs.changed(signal)
        for sub, rows in subs.due(clock()):
            assert len(rows) == 1 and rows[0][0] == SPEED
            assert rows[0][1] == float(n), "the latest value, not the first queued"
            sent[str(sub.key)].append(rows[0][1])
    assert len(sent["fast"]) == 50, "rate 0: every change"
    assert 4 <= len(sent["slow"]) <= 5, "10 Hz over 0.5 s"
    assert subs.unsubscribe("fast") and not subs.unsubscribe("fast")
    assert tree.signals[SPEED].watchers == [subs.by_key["slow"]]


def test_a_subscription_expires_with_its_lease_and_the_limit_holds(tree: SignalTree,
                                                                   clock: MockClock) -> None:
    subs = Subscriptions(max_subscribers=2)
    subs.subscribe("a", tree.resolve(["Vehicle.Cabin"]), 0.0, clock(), lease_s=5.0)
    subs.subscribe("b", tree.resolve([SPEED]), 0.0, clock(), lease_s=5.0)
    with pytest.raises(OverflowError):
        subs.subscribe("c", tree.resolve([SPEED]), 0.0, clock())
    clock.advance(3.0)
    subs.subscribe("b", tree.resolve([SPEED]), 0.0, clock(), lease_s=5.0)  # renewed
    clock.advance(3.0)
    assert subs.expire(clock()) == 1 and list(subs.by_key) == ["b"]
    assert all(not s.watchers for p, s in tree.signals.items() if p.startswith("Vehicle.Cabin"))


def test_a_restarted_member_takes_its_peers_values_with_their_age(clock: MockClock) -> None:
    specs = load_vspec()
    live, fresh = (SignalTree(specs, default_sensors(specs)) for _ in range(2))
    strong, _ = ids(live, SPEED)
    live.apply(strong, 7, 3.0, 88.0, clock())
    live.set(VOLUME, 12, 3.0, clock())
    clock.advance(0.02)
    values, sensors = live.snapshot(clock())
    assert fresh.restore(values, sensors, clock()) == 2
    speed, volume = fresh.get([SPEED, VOLUME], clock())
    assert (speed.value, speed.source, speed.state) == (88.0, f"sensor-{strong}", STALE)
    assert speed.age_ms == pytest.approx(20.0)
    assert (volume.value, volume.state) == (12, AVAILABLE)
    assert fresh.apply(strong, 7, 3.0, 1.0, clock()) is None, "the sequence came along"
    assert fresh.apply(strong, 8, 3.1, 89.0, clock()) is not None
