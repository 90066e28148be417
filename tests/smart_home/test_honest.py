"""What a household is told is true: a reused message_id with another reading is a 409 naming it
(alone, in a batch, and after it left the ingest's memory), an identical repeat stays a 200;
counters continue from durable state across restarts of the writer, the ingest and the HTTPS edge;
a restart raises no silence alert for sensors it did not listen to, a truly silent one still fires.

simpleSystemBase: the whole tree in this process, its edges on real sockets and TLS."""

from __future__ import annotations

import time
from typing import Any

from actors.clock import MockClock, use_clock
from actors.smart_home.state import KindAnalysis
from actors.smart_home.store import READINGS, reading_db_row, writers
from actors.storage import RowWriter, make_engine
from protocols.smart_home import GetIngestStats, HouseConfig, SensorConfig
from systems.chaos import Chaos
from systems.smart_home import INGEST
from tests.support.smart_home import Home, home_settings, reading, small_house, start_home

# --- idempotency keys with meaning ----------------------------------------------------------------

def test_a_reused_message_id_with_another_reading_is_a_409_naming_it(make_runtime,
                                                                      tmp_path) -> None:
    home = start_home(make_runtime, tmp_path)
    first = reading("heating", message_id="boot1-7", temperature=20.0)
    assert home.post("/readings", first).json == {"records": 1}
    assert home.post("/readings", first).json == {"records": 1}     # the same reading: a retry
    other = {**first, "temperature": 23.5, "ts": first["ts"] + 1}   # the counter restarted
    answer = home.post("/readings", other)
    assert answer.status == 409, answer
    assert answer.json["refusal"] == "conflict" and "'boot1-7'" in answer.json["error"]
    assert answer.json["fields"][0]["field"] == "message_id"
    home.wait_stored(1)
    assert home.sql("SELECT temperature FROM smart_home_readings")[0][0] == 20.0
    stats = home.rt.ask(INGEST, GetIngestStats(), 5)
    assert (stats.accepted, stats.duplicates, stats.conflicts) == (1, 1, 1)


def test_a_batch_with_two_versions_of_one_id_is_refused_whole_naming_the_index(make_runtime,
                                                                                tmp_path) -> None:
    home = start_home(make_runtime, tmp_path)
    a = reading("motion", message_id="m-1", motion=True)
    b = reading("electricity", message_id="e-1")
    twice = [a, b, {**a, "motion": False}]
    answer = home.post("/readings/batch", twice)
    assert answer.status == 409 and answer.json["fields"][0]["field"] == "2.message_id", answer
    assert home.post("/readings/batch", [a, b, a]).json == {"records": 3}  # a repeat is fine
    home.wait_stored(2)
    assert home.stored() == 2
    # a batch reusing an id accepted earlier refuses the whole batch: nothing of it is stored
    c = reading("heating", message_id="h-1")
    answer = home.post("/readings/batch", [c, {**b, "power": 1.0}])
    assert answer.status == 409 and answer.json["fields"][0]["field"] == "1.message_id"
    assert home.post("/readings", c).json == {"records": 1}  # c was not stored by the refusal
    home.wait_stored(3)


def test_a_reused_id_beyond_the_ingests_memory_is_found_in_the_database(make_runtime,
                                                                        tmp_path) -> None:
    # A week-old reading stored before this ingest ever ran: only the database knows its key.
    settings_home = start_home(make_runtime, tmp_path)
    old = reading("heating", message_id="boot0-1", temperature=19.0, ts=time.time() - 3600)
    row = {"message_id": "heating-living/boot0-1", "sensor_id": "heating-living",
           "kind": "heating", "room": "living", "ts": old["ts"], "received_at": old["ts"],
           "stored_at": old["ts"], "temperature": 19.0, "setpoint": old["setpoint"],
           "valve": old["valve"]}
    engine = make_engine(settings_home.settings.database())
    try:
        full = {c: None for c in READINGS.columns} | row
        RowWriter(engine, READINGS).write_batch([full])
    finally:
        engine.dispose()
    assert settings_home.post("/readings", old).json == {"records": 1}        # same: a retry
    answer = settings_home.post("/readings", {**old, "temperature": 22.0})
    assert answer.status == 409 and "'boot0-1'" in answer.json["error"]
    assert settings_home.rt.ask(INGEST, GetIngestStats(), 5).accepted == 0


# --- counters from durable state ------------------------------------------------------------------

def _restarted(home: Home, path: str, before: Any) -> bool:
    try:
        info = Chaos(home.rt).resolve(path)
    except Exception:  # noqa: BLE001 - between the crash and the restart the path is not running
        return False
    return info.address != before.address and info.status == "running"


def _crash(home: Home, path: str) -> None:
    chaos = Chaos(home.rt)
    before = chaos.resolve(path)
    chaos.crash(path)
    home.rt.wait_for(lambda: _restarted(home, path, before), 20, what=f"{path} restarted")


def test_counters_continue_across_restarts_of_the_writer_ingest_and_edge(make_runtime,
                                                                         tmp_path) -> None:
    home = start_home(make_runtime, tmp_path, house=small_house(
        indoor_range=(12.0, 28.0)))
    batch = [reading("heating", temperature=35.0 if i == 0 else 20.0, ts=time.time() - 10 + i)
             for i in range(10)]
    assert home.post("/readings/batch", batch).json == {"records": 10}
    home.check("heating")
    home.rt.wait_for(lambda: home.writer_stats().alerts == 1
                     and home.writer_stats().readings == 10, 20, what="stored and alerted")
    for path in ("/smart-home/writer", "/smart-home/ingest", "/smart-home/http"):
        _crash(home, path)
    home = Home(home.rt, home.settings)  # the edge has a new port after its restart
    stats = home.writer_stats()
    assert (stats.readings, stats.alerts) == (10, 1), stats    # not 0 after the writer's restart
    assert home.rt.ask(INGEST, GetIngestStats(), 5).accepted == 10
    assert home.post("/readings", reading("heating")).json == {"records": 1}
    home.rt.wait_for(lambda: home.writer_stats().readings == 11, 20, what="one more stored")
    assert home.rt.ask(INGEST, GetIngestStats(), 5).accepted == 11
    assert home.stored() == 11 and home.writer_stats().alerts == home.stored("smart_home_alerts")


# --- silence after a restart -----------------------------------------------------------------------

def _house() -> HouseConfig:
    return HouseConfig(sensors=(SensorConfig(sensor_id="t1", kind="heating", room="a"),
                                SensorConfig(sensor_id="t2", kind="heating", room="a")),
                       silent_after_s=10)


def test_silence_is_judged_only_once_up_for_the_window_from_last_seen_in_the_store() -> None:
    now = 1_000_000.0
    analysis = KindAnalysis("heating", _house(), started_at=now)
    analysis.load_last_seen({"t1": (now - 79, "a1"), "t2": (now - 79, "b1")})     # heard 79 s before the restart
    assert analysis.check_silence(now, up_s=0.0) == []            # down for 79 s is not silence
    assert analysis.check_silence(now + 9, up_s=9.0) == []
    analysis.ingest(reading("heating", sensor_id="t1", message_id="x", ts=now + 5), now + 5, [],
                    [])                                           # t1 speaks again
    fired = analysis.check_silence(now + 10, up_s=10.0)           # t2 did not: truly silent
    assert [(a["alert_id"], a["text"]) for a in fired] == [
        ("sensor_silent:t2:b1", "t2: silent for 89 s (limit 10 s)")]


def test_a_restarted_smart_home_raises_no_silence_alert_until_up_for_the_window(
        make_runtime, tmp_path) -> None:
    # Readings heard 79 s ago by an earlier run are in the database; the system starts now.
    house = small_house(silent_after_s=10.0)
    long_ago = time.time() - 79
    settings = home_settings(tmp_path, house=house)
    engine = make_engine(settings.database())
    try:
        tables = writers(engine)
        rows = []
        for sensor in house.sensors:
            r = reading(sensor.kind, sensor_id=sensor.sensor_id, message_id="old", ts=long_ago)
            rows.append(reading_db_row(r, sensor.room, long_ago, long_ago))
        tables["readings"].write_batch(rows)
    finally:
        engine.dispose()
    with use_clock(MockClock()) as clock:
        home = start_home(make_runtime, tmp_path, house=house)
        for kind in ("heating", "meteo", "motion", "electricity"):
            assert home.check(kind).alerts == 0                   # up for 0 s by the clock
        assert home.post("/readings", reading("heating")).json == {"records": 1}
        clock.advance(10)                                         # up for the window now
        fired = {kind: home.check(kind).alerts for kind in ("heating", "meteo", "motion",
                                                             "electricity")}
    assert fired == {"heating": 0, "meteo": 1, "motion": 1, "electricity": 1}


# --- acknowledged means durable ---------------------------------------------------------------------

def test_the_broker_fsyncs_every_append_before_the_answer(tmp_path) -> None:
    from actors.smart_home.store import open_broker
    for setting, pragma in (("FULL", 2), ("NORMAL", 1)):
        settings = home_settings(tmp_path / setting, broker_synchronous=setting)
        broker = open_broker(settings.broker())
        try:
            with broker.engine.connect() as connection:  # type: ignore[attr-defined]
                assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == pragma
                assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        finally:
            broker.close()
    assert home_settings(tmp_path).broker_synchronous == "FULL"   # the default
