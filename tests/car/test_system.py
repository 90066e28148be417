"""The car system in real processes: sensors on UDP straight into both holders, subscribers of the
pair, sets forwarded to the peer, bad datagrams counted, a holder SIGKILLed under load, history
stored while the database is slow, and PostgreSQL by URL."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from actors.car import CarClient, SensorFleet, default_sensors, load_vspec
from protocols.car import (
    CarStats,
    GetCarStats,
    GetSignals,
    SignalValues,
    encode_client_op,
    encode_sample,
)
from systems.car import HOLDERS, SYSTEM, CarSettings, holder_ports
from systems.runtime import ActorRuntime
from tests.support.services import POSTGRES, require_service

pytestmark = pytest.mark.multiproc

SPEED = "Vehicle.Speed"
VOLUME = "Vehicle.Cabin.Infotainment.Media.Volume"
SPECS = load_vspec()
SENSORS = default_sensors(SPECS)
STRONG_SPEED, WEAK_SPEED = (s.sensor_id for s in SENSORS if s.path == SPEED)


def free_udp_port() -> int:
    """A UDP port free on loopback now (a restarted holder binds the same port again, so the
    sensors' datagrams reach it: a test cannot leave it to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings(tmp_path: Path, **overrides: Any) -> CarSettings:
    values = {"data_dir": str(tmp_path), "udp_port_a": 0, "udp_port_b": 0, **overrides}
    made = SYSTEM.settings(overrides=values)
    assert isinstance(made, CarSettings)
    return made


def stats(rt: ActorRuntime, name: str) -> CarStats:
    answer = rt.ask(name, GetCarStats(), 5)
    assert isinstance(answer, CarStats)
    return answer


@pytest.fixture
def fleet_of() -> Iterator[Any]:
    fleets: list[SensorFleet] = []

    def start(ports: list[tuple[str, int]]) -> SensorFleet:
        fleet = SensorFleet(SPECS, SENSORS, ports).start()
        fleets.append(fleet)
        return fleet
    yield start
    for fleet in fleets:
        fleet.stop()


def test_sensors_reach_both_holders_and_subscribers_get_current_values_then_updates(
        make_runtime: Any, tmp_path: Path) -> None:
    rt = make_runtime(SYSTEM.tree(settings(tmp_path, history=False)), base="multiproc")
    ports = holder_ports(rt, settings(tmp_path))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sender, CarClient(ports) as client:
        for port in ports:
            sender.sendto(encode_sample(STRONG_SPEED, 1, 100.0, 42.0), port)
        rt.wait_for(lambda: all(stats(rt, h).applied == 1 for h in HOLDERS), what="both applied")
        client.subscribe([SPEED, "Vehicle.Cabin.HVAC"], rate_hz=0)
        first = client.updates(2.0)
        seen = {(member, value.path) for _, member, value in first}
        assert ("a", SPEED) in seen or ("b", SPEED) in seen
        speed = next(v for _, _, v in first if v.path == SPEED)
        assert (speed.value, speed.source, speed.state) == (42.0, f"sensor-{STRONG_SPEED}",
                                                            "available")
        for port in ports:
            sender.sendto(encode_sample(STRONG_SPEED, 2, 100.01, 43.5), port)
        update = rt.wait_for(lambda: [v for _, _, v in client.updates(0.5) if v.path == SPEED],
                             what="the update")
        assert update[0].value == 43.5 and update[0].seq == 2

        answer = client.set(VOLUME, 35)
        assert answer["op"] == "ack"
        rt.wait_for(lambda: _value(rt, HOLDERS[1], VOLUME) == 35, what="the set reached b")
        refused = client.set(SPEED, 10.0)
        assert (refused["op"], refused["kind"]) == ("err", "forbidden")
        assert client.set(VOLUME, 900)["kind"] == "invalid"
        assert client.request("get", paths=["Vehicle.Nope"])["kind"] == "not_found"
        assert client.get([VOLUME], holder=1)[0].source == "set"


def _value(rt: ActorRuntime, holder: str, path: str) -> Any:
    answer = rt.ask(holder, GetSignals(paths=[path]), 5)
    assert isinstance(answer, SignalValues)
    return answer.values[0].value


def test_bad_datagrams_are_counted_by_reason_and_the_path_goes_on(make_runtime: Any,
                                                                  tmp_path: Path) -> None:
    rt = make_runtime(SYSTEM.tree(settings(tmp_path, history=False)), base="multiproc")
    port = holder_ports(rt, settings(tmp_path))[0]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        for bad in (b"\xc1garbage", b"", encode_client_op("reboot"), b"\x93\x01\x02\x03",
                    encode_sample(STRONG_SPEED, -1, 1.0, 2.0)):
            sock.sendto(bad, port)
        sock.sendto(encode_sample(4242, 1, 1.0, 1.0), port)               # unknown sensor
        sock.sendto(encode_sample(STRONG_SPEED, 1, 1.0, 999.0), port)     # above max
        sock.sendto(encode_sample(STRONG_SPEED, 2, 1.0, 50.0), port)      # good
        sock.sendto(encode_sample(STRONG_SPEED, 2, 1.0, 60.0), port)      # same sequence
        sock.sendto(encode_sample(STRONG_SPEED, 3, 1.0, 51.0), port)      # good
        got = rt.wait_for(lambda: (s := stats(rt, HOLDERS[0])).received == 10 and s,
                          what="all ten read")
    assert (got.dropped_undecodable, got.dropped_unknown_sensor, got.dropped_out_of_range,
            got.dropped_stale_seq, got.applied) == (5, 1, 1, 1, 2)
    assert _value(rt, HOLDERS[0], SPEED) == 51.0
    assert stats(rt, HOLDERS[0]).incarnation == 1, "no crash, no restart"


def test_a_sigkilled_holder_leaves_no_gap_and_comes_back_with_the_last_values(
        make_runtime: Any, tmp_path: Path, fleet_of: Any) -> None:
    s = settings(tmp_path, history=False, udp_port_a=free_udp_port(), udp_port_b=free_udp_port())
    rt = make_runtime(SYSTEM.tree(s), base="multiproc")
    ports = holder_ports(rt, s)
    fleet = fleet_of(ports)
    with CarClient(ports, renew_s=0.3) as client:
        assert client.set(VOLUME, 17)["op"] == "ack"
        client.subscribe([SPEED], rate_hz=0)
        rt.wait_for(lambda: stats(rt, HOLDERS[1]).applied > 500, what="warm")
        arrivals: list[float] = []
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            arrivals += [at for at, _, v in client.updates(0.1) if v.path == SPEED]
        victim = stats(rt, HOLDERS[0])
        killed_at = time.time()
        os.kill(victim.pid, signal.SIGKILL)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            arrivals += [at for at, _, v in client.updates(0.1) if v.path == SPEED]
        before = [at for at in arrivals if at < killed_at]
        around = [at for at in arrivals if killed_at - 0.05 < at < killed_at + 0.9]
        gaps = [b - a for a, b in itertools.pairwise(around)]
        normal = max(b - a for a, b in itertools.pairwise(before))  # this machine, now
        assert len(around) > 50, "the survivor kept the subscriber fed"
        # 6 periods, or what this (shared) machine shows without a kill, if that is worse
        assert max(gaps) < max(0.06, 2 * normal), \
            f"longest gap {max(gaps) * 1000:.1f} ms around the kill, {normal * 1000:.1f} before"
        back = rt.wait_for(lambda: (s := stats(rt, HOLDERS[0])).incarnation == 2 and s,
                           what="holder-a restarted")
        assert back.pid != victim.pid
        assert back.synced_from_peer > 0, "it took the other member's values"
        assert _value(rt, HOLDERS[0], VOLUME) == 17, "an actuator no sensor repeats came back"
        rt.wait_for(lambda: abs(_value(rt, HOLDERS[0], SPEED) - _value(rt, HOLDERS[1], SPEED))
                    < 3.0, what="the restarted member follows the sensors")
        rt.wait_for(lambda: client.updates(0.05) is not None
                    and stats(rt, HOLDERS[0]).subscribers == 1,
                    what="the subscriber renewed on the restarted member")
    assert fleet.sent > 0


def test_under_the_simulated_car_failover_alerts_and_subscriber_rates_hold(
        make_runtime: Any, tmp_path: Path, fleet_of: Any) -> None:
    """The tree's rules, end to end over UDP: a silenced strong sensor hands the value to the weak
    one, a sensor off by more than the tolerance raises an alert, a 10 Hz subscriber gets 10 Hz."""
    s = settings(tmp_path, history=False)
    rt = make_runtime(SYSTEM.tree(s), base="multiproc")
    ports = holder_ports(rt, s)
    fleet = fleet_of(ports)
    with CarClient(ports[:1]) as slow:  # one member: what it sends, not what a merge keeps
        slow.subscribe([SPEED], rate_hz=10)
        rt.wait_for(lambda: stats(rt, HOLDERS[0]).applied > 300, what="warm")
        slow.updates(0.2)
        times: list[float] = []
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            times += [at for at, _, _ in slow.updates(0.05)]
        assert 8 <= len(times) <= 11, f"{len(times)} updates in 1 s at 10 Hz"
        assert min(b - a for a, b in itertools.pairwise(times)) > 0.08
    with CarClient(ports) as client:
        client.subscribe([SPEED], rate_hz=0)

        fleet.silence(STRONG_SPEED)
        rt.wait_for(lambda: any(v.source == f"sensor-{WEAK_SPEED}" for _, _, v in
                                client.updates(0.1)), what="the weak sensor owns the value")
        assert stats(rt, HOLDERS[0]).failovers >= 1
        fleet.silence(STRONG_SPEED, False)
        rt.wait_for(lambda: client.get([SPEED])[0].source == f"sensor-{STRONG_SPEED}",
                    what="the strong one back")

        fleet.corrupt(WEAK_SPEED, 40.0)
        alert = rt.wait_for(lambda: stats(rt, HOLDERS[1]).active_alerts, what="an alert")
        assert alert[0].path == SPEED and f"sensor-{WEAK_SPEED}" in alert[0].sensors
        fleet.corrupt(WEAK_SPEED, 0.0)
        rt.wait_for(lambda: not stats(rt, HOLDERS[1]).active_alerts, what="the alert cleared")
        assert stats(rt, HOLDERS[1]).alerts == 1


def _count_rows(url: str) -> int:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM car_history")).scalar_one())
    finally:
        engine.dispose()


def test_a_slow_database_sheds_history_by_the_stated_rule_and_live_state_is_untouched(
        make_runtime: Any, tmp_path: Path, fleet_of: Any) -> None:
    s = settings(tmp_path, history_flush_s=0.05, history_window=1, history_buffer_rows=300)
    rt = make_runtime(SYSTEM.tree(s), base="multiproc")
    ports = holder_ports(rt, s)
    db = tmp_path / "car.db"
    fleet_of(ports)
    rt.wait_for(lambda: stats(rt, HOLDERS[0]).history_stored > 500, what="history stored")
    lock = sqlite3.connect(db, timeout=5)
    try:
        lock.execute("BEGIN IMMEDIATE")  # the database is now slow: every write waits
        shed_before = stats(rt, HOLDERS[0]).history_shed
        slow = rt.wait_for(lambda: (x := stats(rt, HOLDERS[0])).history_shed > shed_before + 1000
                           and x, timeout_s=10, what="history shed while the database is slow")
        assert slow.history_buffered <= 300 + 2600 * 0.2, "the buffer stays bounded"
        with CarClient(ports) as client:
            (speed,) = client.get([SPEED])
            assert speed.state == "available" and speed.age_ms < 50, "live state unaffected"
    finally:
        lock.rollback()
        lock.close()
    stored_before = stats(rt, HOLDERS[0]).history_stored
    rt.wait_for(lambda: stats(rt, HOLDERS[0]).history_stored > stored_before + 500,
                what="storing again once the database is fast")
    assert _count_rows(f"sqlite:///{db}") > 1000


def test_history_goes_to_postgresql_by_url(make_runtime: Any, tmp_path: Path,
                                           fleet_of: Any) -> None:
    require_service(*POSTGRES)
    url = "postgresql://postgres@127.0.0.1:5432/test"
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS car_history"))
    engine.dispose()
    s = settings(tmp_path, storage_url=url)
    rt = make_runtime(SYSTEM.tree(s), base="multiproc")
    fleet_of(holder_ports(rt, s))
    rt.wait_for(lambda: all(stats(rt, h).history_stored > 1000 for h in HOLDERS),
                what="both members' history stored")
    rows = _count_rows(url)
    sent = stats(rt, HOLDERS[0]).history_stored
    assert rows >= 1000 and rows < 2 * sent, "each sample once, though both members sent it"
