"""MQTT without silent loss across an outage of ptr longer than Mosquitto's default queue (1,000
messages for an absent client): with the shipped configuration (``actors/smart_home/
mosquitto.conf``, run here by a broker of this test's own on a free port) all 1,500 readings
published while ptr was down arrive; with the shared broker's default configuration the loss is
not silent: the startup check and the broker's ``$SYS`` dropped counter each raise a stored alert.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from actors.smart_home import mqtt as mqtt_edge
from protocols.smart_home import GetMqttStats, MqttStats
from systems.smart_home import MQTT_EDGE
from tests.support.services import MOSQUITTO, require_service
from tests.support.smart_home import Home, reading, start_home

SNIPPET = Path(mqtt_edge.__file__).with_name("mosquitto.conf")
OUTAGE = 1500  # readings published while ptr is down: more than Mosquitto's default 1,000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[int]:
    """A Mosquitto of this test's own, configured with the shipped snippet."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        require_service(*MOSQUITTO)  # no binary: skip (fail under CI) as for a missing server
        pytest.skip("no mosquitto binary")
    port = _free_port()
    lines = [line for line in SNIPPET.read_text().splitlines()
             if not line.startswith(("sys_interval", "persistence "))]
    config = tmp_path / "mosquitto.conf"
    config.write_text("\n".join([*lines, f"listener {port} 127.0.0.1", "allow_anonymous true",
                                 "persistence false", "sys_interval 1"]) + "\n")
    broker = subprocess.Popen([binary, "-c", str(config)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        require_listening(broker, port)
        yield port
    finally:
        broker.terminate()
        broker.wait(10)


def require_listening(broker: subprocess.Popen[bytes], port: int) -> None:
    for _ in range(100):
        if broker.poll() is not None:
            raise AssertionError(f"mosquitto exited: {broker.stderr.read() if broker.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return
        except OSError:
            try:
                broker.wait(0.05)  # the broker is still starting; an exit is caught above
            except subprocess.TimeoutExpired:
                pass
    raise AssertionError(f"mosquitto did not listen on {port}")


def _publish_outage(port: int, prefix: str) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [client.publish(f"{prefix}/readings/circuit-kitchen",
                                json.dumps(reading("electricity", message_id=f"seq-{n}")),
                                qos=1) for n in range(OUTAGE)]
        for info in infos:
            info.wait_for_publish(20)
            assert info.is_published()        # the broker acknowledged every one
    finally:
        client.disconnect()
        client.loop_stop()


def _home(make_runtime: Any, tmp_path: Path, port: int, prefix: str, client_id: str) -> Home:
    return start_home(make_runtime, tmp_path, mqtt=True, mqtt_port=port, mqtt_prefix=prefix,
                      mqtt_client_id=client_id, mqtt_session_expiry_s=120)


def _stats(home: Home) -> MqttStats:
    return home.rt.ask(MQTT_EDGE, GetMqttStats(), 5)


def test_the_shipped_broker_config_keeps_an_outage_longer_than_the_default_queue(
        make_runtime, tmp_path, own_broker) -> None:
    prefix, client_id = f"ptr-test/{uuid.uuid4().hex[:10]}", f"ingest-{uuid.uuid4().hex[:8]}"
    first = _home(make_runtime, tmp_path, own_broker, prefix, client_id)
    first.rt.wait_for(lambda: _stats(first).connected and _stats(first).queue_probe, 20,
                      what="subscribed and the queue checked")
    assert _stats(first).queue_probe.startswith("ok"), _stats(first).queue_probe
    first.rt.shutdown()                                  # ptr is down
    _publish_outage(own_broker, prefix)
    second = _home(make_runtime, tmp_path, own_broker, prefix, client_id)
    second.wait_stored(OUTAGE, timeout_s=30)
    keys = {r[0] for r in second.sql("SELECT message_id FROM smart_home_readings")}
    assert keys == {f"circuit-kitchen/seq-{n}" for n in range(OUTAGE)}
    assert _stats(second).broker_dropped == 0
    assert not second.alerts()


def test_the_default_broker_config_loses_an_outage_with_alerts_not_silently(
        make_runtime, tmp_path) -> None:
    require_service(*MOSQUITTO)
    prefix, client_id = f"ptr-test/{uuid.uuid4().hex[:10]}", f"ingest-{uuid.uuid4().hex[:8]}"
    state = tmp_path / f"mqtt-{client_id}.json"
    first = _home(make_runtime, tmp_path, 1883, prefix, client_id)
    # the startup check finds Mosquitto's default queue; the $SYS counter is read once (every
    # 10 s on the shared broker) so the outage is measured from there
    first.rt.wait_for(lambda: "only 1000 of 1001" in _stats(first).queue_probe
                      and "dropped" in json.loads(state.read_text()), 30,
                      what="queue checked and the broker's dropped count known")
    first.wait_stored(0)
    first.rt.wait_for(lambda: [a["rule"] for a in first.alerts()] == ["broker_queue_too_small"],
                      20, what="the queue alert stored")
    first.rt.shutdown()
    _publish_outage(1883, prefix)
    second = _home(make_runtime, tmp_path, 1883, prefix, client_id)
    second.wait_stored(1000, timeout_s=30)
    second.rt.wait_for(lambda: _stats(second).broker_dropped >= OUTAGE - 1000, 30,
                       what="the broker's dropped counter")
    second.rt.wait_for(lambda: "broker_dropped_messages" in {a["rule"] for a in second.alerts()},
                       20, what="the dropped alert stored")
    assert second.stored() == 1000                   # what the broker kept, and nothing more
    dropped = next(a for a in second.alerts() if a["rule"] == "broker_dropped_messages")
    assert dropped["value"] >= OUTAGE - 1000 and "mosquitto.conf" in dropped["text"]
