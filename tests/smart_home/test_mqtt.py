"""MQTT ingest against the real Mosquitto broker at 127.0.0.1:1883: readings published with QoS 1
are stored, bad ones are counted and dropped, and readings published while the system is down are
delivered when it is back (a persistent session, acknowledged only after the ingest answered).

Each test uses its own topic prefix and client id, and sessions that expire within a minute, so
tests never see each other's messages and leave nothing behind in the broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from systems.smart_home import MQTT_EDGE
from protocols.smart_home import GetMqttStats, MqttStats
from tests.support.services import MOSQUITTO, require_service
from tests.support.smart_home import Home, Publisher, reading, start_home



@pytest.fixture
def topic_prefix() -> str:
    require_service(*MOSQUITTO)
    return f"ptr-test/{uuid.uuid4().hex[:10]}"


@pytest.fixture
def publisher(topic_prefix: str) -> Iterator[Publisher]:
    pub = Publisher(topic_prefix)
    yield pub
    pub.close()


def mqtt_home(make_runtime: Any, tmp_path: Path, prefix: str, client_id: str) -> Home:
    return start_home(make_runtime, tmp_path, mqtt=True, mqtt_prefix=prefix,
                      mqtt_client_id=client_id, mqtt_session_expiry_s=60)


def mqtt_stats(home: Home) -> MqttStats:
    return home.rt.ask(MQTT_EDGE, GetMqttStats(), 5)


def test_readings_published_to_the_broker_are_stored(make_runtime, tmp_path, topic_prefix,
                                                     publisher) -> None:
    home = mqtt_home(make_runtime, tmp_path, topic_prefix, f"ingest-{uuid.uuid4().hex[:8]}")
    home.rt.wait_for(lambda: mqtt_stats(home).connected, what="subscribed")
    sent = [reading(kind) for kind in ("heating", "meteo", "motion", "electricity")]
    for body in sent:
        publisher.publish(body["sensor_id"], body)
    publisher.publish("", [reading("motion", motion=False) for _ in range(10)])  # any sensor
    home.wait_stored(14)
    stored = {r[0] for r in home.sql("SELECT message_id FROM smart_home_readings")}
    assert {f"{b['sensor_id']}/{b['message_id']}" for b in sent} <= stored
    home.rt.wait_for(lambda: mqtt_stats(home).acked == 5, what="PUBACKs after the ingest answered")
    assert mqtt_stats(home).forwarded == 14


def test_bad_mqtt_payloads_are_counted_and_dropped_and_the_edge_lives_on(
        make_runtime, tmp_path, topic_prefix, publisher) -> None:
    home = mqtt_home(make_runtime, tmp_path, topic_prefix, f"ingest-{uuid.uuid4().hex[:8]}")
    home.rt.wait_for(lambda: mqtt_stats(home).connected, what="subscribed")
    publisher.publish("x", b"not json")
    publisher.publish("heating-living", reading("heating", temperature="warm"))
    publisher.publish("ghost", reading("heating", sensor_id="ghost"))  # refused by the ingest
    publisher.publish("heating-living", reading("heating"))
    home.wait_stored(1)
    home.rt.wait_for(lambda: mqtt_stats(home).rejected == 3, what="three rejected")
    stats = mqtt_stats(home)
    assert "unknown sensor 'ghost'" in stats.last_error and stats.incarnation == 1
    assert home.stored() == 1


def test_a_reading_whose_sensor_id_is_not_its_topics_is_rejected(
        make_runtime, tmp_path, topic_prefix, publisher) -> None:
    home = mqtt_home(make_runtime, tmp_path, topic_prefix, f"ingest-{uuid.uuid4().hex[:8]}")
    home.rt.wait_for(lambda: mqtt_stats(home).connected, what="subscribed")
    publisher.publish("motion-living", reading("heating"))          # heating-living's reading
    publisher.publish("heating-living", [reading("heating"), reading("motion")])
    publisher.publish("heating-living", reading("heating", message_id="mine"))
    home.wait_stored(1)
    home.rt.wait_for(lambda: mqtt_stats(home).rejected == 2, what="two rejected")
    assert "1.sensor_id 'motion-living' is not the topic's sensor 'heating-living'" in \
        mqtt_stats(home).last_error
    assert [r[0] for r in home.sql("SELECT message_id FROM smart_home_readings")] == [
        "heating-living/mine"]


def test_readings_published_while_the_system_is_down_arrive_when_it_is_back(
        make_runtime, tmp_path, topic_prefix, publisher) -> None:
    client_id = f"ingest-{uuid.uuid4().hex[:8]}"
    first = mqtt_home(make_runtime, tmp_path, topic_prefix, client_id)
    first.rt.wait_for(lambda: mqtt_stats(first).connected, what="subscribed")
    first.rt.shutdown()                       # the session stays in the broker for 60 s
    for n in range(500):                      # under Mosquitto's 1,000 queued per session
        publisher.publish("circuit-kitchen", reading("electricity", message_id=f"seq-{n}"))
    second = mqtt_home(make_runtime, tmp_path, topic_prefix, client_id)
    second.wait_stored(500)
    keys = {r[0] for r in second.sql("SELECT message_id FROM smart_home_readings")}
    assert keys == {f"circuit-kitchen/seq-{n}" for n in range(500)}
