"""A simulated national grid: thousands of sensors each sending a reading every period over real
HTTPS (and a share over MQTT), a few with bad credentials, some retrying (duplicates), some with a
skewed clock, and incidents that fire every alert rule. Plain object; ``ptr run grid --simulate``
runs one in the ``ptr`` process against the gateways.

Incidents (after ``incident_after_s``): ``sim-00000`` overheats, ``sim-00001`` sags, ``sim-00002``
swells, ``sim-00003`` carries twice its rating, ``sim-00004`` falls silent.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import Counter
from typing import Any

import aiohttp
import paho.mqtt.client as mqtt

from actors._loop_thread import LoopThread
from actors.grid.ca import GridCA
from actors.grid.registry import SensorRegistry
from protocols.grid import SENSOR_KINDS, SensorRecord

TICK_S = 0.1


class SimSensor:
    __slots__ = ("last", "sensor_id", "seq", "skew_s", "token", "via_mqtt")

    def __init__(self, sensor_id: str, token: str, skew_s: float, via_mqtt: bool) -> None:
        self.sensor_id, self.token, self.seq, self.skew_s = sensor_id, token, 0, skew_s
        self.via_mqtt = via_mqtt
        self.last: dict[str, Any] | None = None


class GridSimulator:
    def __init__(self, url: str, ca_dir: str, registry: SensorRegistry, *, sensors: int = 2000,
                 period_s: float = 10.0, mqtt_share: float = 0.1, mqtt_host: str = "127.0.0.1",
                 mqtt_port: int = 1883, mqtt_prefix: str = "ptr/grid", bad: int = 6,
                 duplicate_rate: float = 0.01, skewed_rate: float = 0.02,
                 incident_after_s: float = 20.0, seed: int = 7) -> None:
        self.url = url.rstrip("/") + "/readings"
        self.context = GridCA(ca_dir).client_context()
        self.period_s = period_s
        self.mqtt_settings = (mqtt_host, mqtt_port, mqtt_prefix) if mqtt_share > 0 else None
        self.duplicate_rate, self.incident_after_s = duplicate_rate, incident_after_s
        self.random = random.Random(seed)
        records = [SensorRecord(sensor_id=f"sim-{i:05d}", substation=f"substation-{i // 40:03d}",
                                kind=SENSOR_KINDS[i % len(SENSOR_KINDS)], rating_a=400.0,
                                max_temp_c=70.0) for i in range(sensors)]
        tokens = registry.add_many(records)
        self.sensors = [SimSensor(r.sensor_id, tokens[r.sensor_id],
                                  self.random.uniform(-300, 300)
                                  if self.random.random() < skewed_rate else 0.0,
                                  i > 4 and self.random.random() < mqtt_share)
                        for i, r in enumerate(records)]
        # bad credentials: unknown sensors, wrong tokens, a revoked sensor
        self.strangers = [SimSensor(f"ghost-{i}", "nope", 0.0, False) for i in range(bad // 3)]
        wrong = [SimSensor(f"sim-{sensors - 1 - i:05d}", "wrong-token", 0.0, False)
                 for i in range(bad // 3)]
        revoked = self.sensors[-(bad // 3) - 1 - len(wrong):-1 - len(wrong)] if bad >= 3 else []
        for sensor in revoked:
            registry.revoke(sensor.sensor_id)
        self.bad = self.strangers + wrong
        self.answers: Counter[str] = Counter()
        self.sent = 0
        self.started_at = 0.0
        self.loop = LoopThread(name="grid-simulator")
        self.client: mqtt.Client | None = None
        self._stop = threading.Event()

    def start(self) -> GridSimulator:
        self.started_at = time.time()
        if self.mqtt_settings is not None and any(s.via_mqtt for s in self.sensors):
            host, port, _prefix = self.mqtt_settings
            self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
            self.client.connect_async(host, port)
            self.client.loop_start()
        self.loop.start()
        asyncio.run_coroutine_threadsafe(self._main(), self.loop.loop)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.loop.stop()
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()

    def stats(self) -> dict[str, Any]:
        return {"sent": self.sent, **self.answers}

    # --- the load ---------------------------------------------------------------------------------

    def reading(self, index: int, sensor: SimSensor, now: float) -> dict[str, Any]:
        sensor.seq += 1
        incident = now - self.started_at >= self.incident_after_s
        value: dict[str, Any] = {"sensor_id": sensor.sensor_id, "seq": sensor.seq,
                                 "ts": now + sensor.skew_s,
                                 "voltage_v": round(self.random.gauss(230, 2), 1),
                                 "current_a": round(self.random.uniform(80, 300), 1),
                                 "temperature_c": round(self.random.uniform(25, 45), 1),
                                 "consumption_kwh": round(self.random.uniform(0.1, 2.0), 3)}
        if incident and index == 0:
            value["temperature_c"] = 92.5
        elif incident and index == 1:
            value["voltage_v"] = 181.0
        elif incident and index == 2:
            value["voltage_v"] = 262.0
        elif incident and index == 3:
            value["current_a"] = 812.0
        sensor.last = value
        return value

    async def _main(self) -> None:
        slots = max(1, round(self.period_s / TICK_S))
        connector = aiohttp.TCPConnector(limit=64, ssl=self.context)
        async with aiohttp.ClientSession(connector=connector) as session:
            tick = 0
            next_at = time.monotonic()
            while not self._stop.is_set():
                now = time.time()
                incident = now - self.started_at >= self.incident_after_s
                for index in range(tick % slots, len(self.sensors), slots):
                    sensor = self.sensors[index]
                    if incident and index == 4:
                        continue  # the silent one
                    retry = sensor.last is not None and self.random.random() < self.duplicate_rate
                    body = sensor.last if retry else self.reading(index, sensor, now)
                    self._send(session, sensor, body)
                if tick % slots == 0:
                    for sensor in self.bad:
                        sensor.seq += 1
                        self._send(session, sensor, {"sensor_id": sensor.sensor_id,
                                                     "seq": sensor.seq, "ts": now})
                tick += 1
                next_at += TICK_S
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def _send(self, session: aiohttp.ClientSession, sensor: SimSensor, body: Any) -> None:
        self.sent += 1
        if sensor.via_mqtt and self.client is not None and self.mqtt_settings is not None:
            topic = f"{self.mqtt_settings[2]}/readings/{sensor.sensor_id}"
            self.client.publish(topic, json.dumps({"token": sensor.token, "readings": [body]}),
                                qos=1)
            self.answers["mqtt_published"] += 1
            return
        asyncio.get_running_loop().create_task(self._post(session, sensor, body))

    async def _post(self, session: aiohttp.ClientSession, sensor: SimSensor, body: Any) -> None:
        headers = {"X-Sensor-Id": sensor.sensor_id, "Authorization": f"Bearer {sensor.token}"}
        try:
            async with session.post(self.url, json=body, headers=headers) as response:
                answer = await response.json()
                self.answers["acked" if response.status == 200 else answer.get("error", "?")] += 1
        except (TimeoutError, aiohttp.ClientError, OSError):
            self.answers["failed"] += 1
