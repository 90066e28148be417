"""Helpers the smart-home tests share (no tests here): start the system on a temporary data dir,
talk to its edges over real HTTPS, read its database directly."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import sqlalchemy as sa

from actors.edges import client_context
from systems.smart_home import API, HTTP_EDGE, WRITER, analyzer_name
from actors.storage import make_engine
from protocols.smart_home import (
    AnalyzerStats,
    CheckNow,
    HouseConfig,
    SensorConfig,
    WriterStats,
)
from protocols.smart_home import GetWriterStats
from protocols.edges import EdgeInfo, GetEdgeInfo
from systems.runtime import ActorRuntime
from systems.smart_home import SYSTEM, SmartHomeSettings
from tests.support.clients import Answered, call, meanwhile


def small_house(**overrides: Any) -> HouseConfig:
    """Two rooms and one sensor of each kind: every shape and rule, few moving parts."""
    sensors = (
        SensorConfig(sensor_id="heating-living", kind="heating", room="living"),
        SensorConfig(sensor_id="motion-living", kind="motion", room="living"),
        SensorConfig(sensor_id="circuit-kitchen", kind="electricity", room="kitchen",
                     power_limit=3680.0),
        SensorConfig(sensor_id="meteo-garden", kind="meteo", room="outside"),
    )
    return HouseConfig(sensors=sensors, **{"silent_after_s": 3600.0, **overrides})


def home_settings(tmp_path: Path, **overrides: Any) -> SmartHomeSettings:
    values: dict[str, Any] = {"data_dir": str(tmp_path), "http_port": 0, "api_port": 0,
                              "mqtt": False, "simulate": False, "house": small_house()}
    values.update(overrides)
    settings = SYSTEM.settings(overrides=values)
    assert isinstance(settings, SmartHomeSettings)
    return settings


class Home:
    """A running smart home and a client for it."""

    def __init__(self, rt: ActorRuntime, settings: SmartHomeSettings) -> None:
        self.rt = rt
        self.settings = settings
        ingest = rt.ask(HTTP_EDGE, GetEdgeInfo(), 10)
        api = rt.ask(API, GetEdgeInfo(), 10)
        assert isinstance(ingest, EdgeInfo) and isinstance(api, EdgeInfo)
        self.ingest_url, self.api_url = ingest.url, api.url
        tls_dir = settings.tls_dir()
        self.context = client_context(tls_dir) if tls_dir else None
        self.engine = make_engine(settings.database())

    def post(self, path: str, body: Any) -> Answered:
        return meanwhile(self.rt, lambda: call(self.ingest_url + path, body, context=self.context))

    def get(self, path: str) -> Answered:
        return meanwhile(self.rt, lambda: call(self.api_url + path, context=self.context))

    def sql(self, text: str, **params: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(sa.text(text), params))

    def stored(self, table: str = "smart_home_readings") -> int:
        return int(self.sql(f"SELECT count(*) FROM {table}")[0][0])

    def wait_stored(self, count: int, table: str = "smart_home_readings",
                    timeout_s: float = 20) -> None:
        self.rt.wait_for(lambda: self.stored(table) >= count, timeout_s,
                         what=f"{count} rows in {table}")

    def writer_stats(self) -> WriterStats:
        return self.rt.ask(WRITER, GetWriterStats(), 5)

    def check(self, kind: str) -> AnalyzerStats:
        """Let the analyzer of ``kind`` catch up with the broker and run its clock rules now."""
        return self.rt.ask(analyzer_name(kind), CheckNow(), 10)

    def alerts(self, rule: str | None = None) -> list[dict[str, Any]]:
        where = " WHERE rule = :rule" if rule else ""
        rows = self.sql(f"SELECT message_id, rule, sensor_id, value, threshold, text "
                        f"FROM smart_home_alerts{where} ORDER BY ts", rule=rule)
        return [dict(r._mapping) for r in rows]

    def close(self) -> None:
        self.engine.dispose()


def start_home(make_runtime: Callable[..., ActorRuntime], tmp_path: Path, base: str = "simple",
               **overrides: Any) -> Home:
    settings = home_settings(tmp_path, **overrides)
    rt = make_runtime(SYSTEM.tree(settings), base=base, name="smart-home")
    return Home(rt, settings)


_SHAPES: dict[str, dict[str, Any]] = {
    "heating": {"temperature": 20.5, "setpoint": 21.0, "valve": 35.0},
    "meteo": {"temperature": 8.5, "humidity": 81.0, "pressure": 1012.5, "wind": 3.2, "rain": 0.0},
    "motion": {"motion": True},
    "electricity": {"power": 420.0, "energy": 123456.5},
}
SENSOR_OF = {"heating": "heating-living", "meteo": "meteo-garden", "motion": "motion-living",
             "electricity": "circuit-kitchen"}


def reading(kind: str, *, sensor_id: str | None = None, ts: float | None = None,
            message_id: str | None = None, **values: Any) -> dict[str, Any]:
    """A valid reading of ``kind`` (override any field)."""
    return {"kind": kind, "message_id": message_id or uuid.uuid4().hex[:12],
            "sensor_id": sensor_id or SENSOR_OF[kind], "ts": time.time() if ts is None else ts,
            **_SHAPES[kind], **values}


class Publisher:
    """A sensor gateway: publishes JSON with QoS 1 and waits for the broker's PUBACKs."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"pub-{uuid.uuid4().hex[:8]}")
        self.client.connect("127.0.0.1", 1883)
        self.client.loop_start()

    def publish(self, sensor_id: str, payload: Any) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        topic = f"{self.prefix}/readings/{sensor_id}" if sensor_id else f"{self.prefix}/readings"
        info = self.client.publish(topic, data, qos=1)
        info.wait_for_publish(10)
        assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
