"""Faults: in broker mode, SIGKILL the writer's and an analyzer's OS processes while a simulated
house sends over HTTPS; every acknowledged reading is in the database afterwards, none twice, and
the restarted analyzer has counted each reading exactly once. A crashed analyzer rebuilds the same
statistics; in direct mode it keeps only what was rolled up."""

from __future__ import annotations

from typing import Any

from actors.smart_home.simulator import HouseSimulator
from protocols.smart_home import GetIngestStats, generated_house
from protocols.supervision import ChaosCrash, ChildInfo
from systems.chaos import Chaos
from tests.support.smart_home import Home, reading, start_home


def _child(home: Home, path: str) -> ChildInfo:
    return Chaos(home.rt).resolve(path)


def _restarted(home: Home, path: str, old: ChildInfo) -> ChildInfo | None:
    try:
        info = _child(home, path)
    except Exception:  # noqa: BLE001 - between the kill and the restart the path is not running
        return None
    return info if info.address != old.address and info.status == "running" else None


def test_broker_mode_loses_no_acknowledged_reading_when_writer_and_analyzer_are_killed(
        make_runtime, tmp_path) -> None:
    house = generated_house(12)  # 49 sensors: 49 HTTPS requests a second
    home = start_home(make_runtime, tmp_path, base="multiproc", house=house)
    simulator = HouseSimulator(house, home.ingest_url, home.settings.tls_dir(),
                               record_acked=True, set_mode=False).start()
    try:
        home.rt.wait_for(lambda: simulator.stats().acked >= 100, 20, what="readings flowing")
        chaos = Chaos(home.rt)
        analyzer = chaos.kill("/smart-home/analyzers/heating")   # SIGKILL: no goodbye, no flush
        writer = chaos.kill("/smart-home/writer")
        for path, old in (("/smart-home/analyzers/heating", analyzer),
                          ("/smart-home/writer", writer)):
            home.rt.wait_for(lambda p=path, o=old: _restarted(home, p, o), 20,
                             what=f"{path} restarted")
        after = simulator.stats().acked
        home.rt.wait_for(lambda: simulator.stats().acked >= after + 100, 20,
                         what="readings acknowledged after the restarts")
    finally:
        simulator.stop()
    stats = simulator.stats()
    assert stats.failed_attempts == 0 and stats.refused == 0   # the kills cost the sensors nothing
    acked = set(simulator.fleet.acked_ids)
    assert len(acked) == stats.acked

    home.rt.wait_for(lambda: home.writer_stats().lag_entries == 0, 20, what="writer caught up")
    rows = home.sql("SELECT sensor_id, message_id FROM smart_home_readings")
    stored = [(sensor, key[len(sensor) + 1:]) for sensor, key in rows]
    assert acked <= set(stored), f"{len(acked - set(stored))} acknowledged readings missing"
    assert len(stored) == len(set(stored))

    heating = home.check("heating")
    assert heating.incarnation == 2 and heating.replayed > 0
    in_db = dict(home.sql("SELECT sensor_id, COUNT(*) FROM smart_home_readings "
                          "WHERE kind = 'heating' GROUP BY sensor_id"))
    assert heating.window_counts == in_db  # the new incarnation counted each stored reading once


def _windows(home: Home, room: str) -> dict[str, Any]:
    stats = home.get(f"/rooms/{room}/stats").json
    return {s["sensor_id"]: (s["windows"], s["last"]) for s in stats["sensors"]}


def test_a_crashed_analyzer_rebuilds_the_same_statistics_and_raises_no_alert_twice(
        make_runtime, tmp_path) -> None:
    home = start_home(make_runtime, tmp_path)
    home.post("/readings/batch", [reading("electricity", power=p) for p in
                                  (100.0, 5000.0, 200.0, 4100.0, 300.0)])
    home.rt.wait_for(lambda: home.check("electricity").readings == 5, what="analyzed")
    home.wait_stored(2, "smart_home_alerts")
    before = _windows(home, "kitchen")
    old = _child(home, "/smart-home/analyzers/electricity")
    home.rt.tell(old.address, ChaosCrash())
    home.rt.wait_for(lambda: _restarted(home, "/smart-home/analyzers/electricity", old),
                     what="analyzer restarted")
    rebuilt = home.check("electricity")
    assert (rebuilt.incarnation, rebuilt.replayed, rebuilt.readings) == (2, 1, 5)
    assert _windows(home, "kitchen") == before
    assert rebuilt.alerts == 2 and len(home.alerts("power_over_limit")) == 2


def test_in_direct_mode_a_crashed_analyzer_keeps_only_the_rolled_up_hours(make_runtime,
                                                                         tmp_path) -> None:
    home = start_home(make_runtime, tmp_path, mode="direct")
    home.post("/readings/batch", [reading("electricity") for _ in range(3)])
    home.rt.wait_for(lambda: home.check("electricity").readings == 3, what="analyzed")
    old = _child(home, "/smart-home/analyzers/electricity")
    home.rt.tell(old.address, ChaosCrash())
    home.rt.wait_for(lambda: _restarted(home, "/smart-home/analyzers/electricity", old),
                     what="analyzer restarted")
    assert home.check("electricity").readings == 0
    assert _windows(home, "kitchen")["circuit-kitchen"][0] == {}
    home.wait_stored(3)  # the readings themselves were stored by the writer


def test_a_restarted_ingest_still_recognises_a_retried_reading(make_runtime, tmp_path) -> None:
    home = start_home(make_runtime, tmp_path)
    batch = [reading("motion", motion=False) for _ in range(7)]
    assert home.post("/readings/batch", batch).status == 200
    old = _child(home, "/smart-home/ingest")
    home.rt.tell(old.address, ChaosCrash())
    home.rt.wait_for(lambda: _restarted(home, "/smart-home/ingest", old), what="ingest restarted")
    assert home.post("/readings/batch", batch).json == {"records": 7}   # the client's retry
    assert home.rt.ask("sh-ingest", GetIngestStats(), 5).duplicates == 7
    assert home.check("motion").readings == 7
