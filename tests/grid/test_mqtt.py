"""MQTT ingest through the real Mosquitto (127.0.0.1:1883): the same authentication as HTTPS, the
PUBACK only after the log appended, retries stored once, refusals counted per reason."""

from __future__ import annotations

import json
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from actors.grid import fates
from tests.support.grid import log_keys, make_place, reading, start_gateway
from tests.support.services import MOSQUITTO, require_service


def wait_until(predicate, timeout_s: float = 15, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)  # polling the log; nothing to wait on


@pytest.fixture
def mqtt_gateway(tmp_path):
    require_service(*MOSQUITTO)
    place = make_place(tmp_path)
    prefix = f"ptr-test/grid-{uuid.uuid4().hex[:8]}"
    client_id = f"ptr-test-grid-{uuid.uuid4().hex[:8]}"
    server = start_gateway(place, mqtt={"host": "127.0.0.1", "port": 1883, "prefix": prefix,
                                        "client_id": client_id, "session_expiry_s": 5,
                                        "share_group": f"g{uuid.uuid4().hex[:6]}"})
    wait_until(lambda: server.mqtt.connected, what="the MQTT connection")
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    publisher.connect("127.0.0.1", 1883)
    publisher.loop_start()
    try:
        yield place, server, publisher, prefix
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        server.stop()
        server.log.close()
        place.engine.dispose()


def test_mqtt_readings_go_through_the_same_authentication(mqtt_gateway) -> None:
    place, server, publisher, prefix = mqtt_gateway

    def publish(sensor: str, envelope: object) -> None:
        info = publisher.publish(f"{prefix}/readings/{sensor}", json.dumps(envelope), qos=1)
        info.wait_for_publish(10)

    publish("s0", {"token": place.tokens["s0"], "readings": [reading("s0", 1), reading("s0", 2)]})
    publish("s0", {"token": place.tokens["s0"], "readings": [reading("s0", 2), reading("s0", 3)]})
    publish("s1", {"token": place.tokens["s0"], "readings": [reading("s1", 1)]})   # wrong token
    publish("s1", {"readings": [reading("s1", 1)]})                                # no token
    publish("s2", {"token": place.tokens["s2"], "readings": [reading("s0", 9)]})   # mismatch
    publish("zz", {"token": place.tokens["s2"], "readings": [reading("zz", 1)]})   # unknown
    wait_until(lambda: server.mqtt.acked == 6, what="six PUBACKs")
    assert log_keys(server.log) == [("s0", 1), ("s0", 2), ("s0", 3)]
    server.flush_fates()
    assert fates(place.engine) == {"accepted": 3, "duplicate": 1, "refused_wrong_token": 1,
                                   "refused_missing_credentials": 1,
                                   "refused_sensor_mismatch": 1, "refused_unknown_sensor": 1}
