"""Helpers the grid tests share (no tests here): a registry with sensors, a gateway server on a free
port, a synchronous HTTPS client with retries."""

from __future__ import annotations

import http.client
import json
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from actors.grid import Authenticator, GatewayServer, GridCA, SensorRegistry, open_log
from actors.storage import DurableLog, make_engine
from protocols.grid import SensorRecord
from systems.runtime import free_port


def reading(sensor_id: str, seq: int, **values: Any) -> dict[str, Any]:
    return {"sensor_id": sensor_id, "seq": seq, "ts": time.time(), "voltage_v": 231.0,
            "current_a": 120.0, "temperature_c": 35.0, **values}


@dataclass
class GridPlace:
    """A data dir with a CA, a registry of sensors and their tokens."""

    root: Path
    database_url: str
    log_url: str
    engine: sa.Engine
    registry: SensorRegistry
    ca: GridCA
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def version_file(self) -> str:
        return str(self.registry.version_file)

    def context(self, cert: Any = None, key: Any = None) -> ssl.SSLContext:
        return self.ca.client_context(cert, key)


def make_place(root: Path, sensors: int = 3, *, database_url: str | None = None,
               log_url: str | None = None) -> GridPlace:
    database_url = database_url or f"sqlite:///{root / 'grid.db'}"
    engine = make_engine(database_url)
    registry = SensorRegistry(engine, root / "grid-registry.version")
    ca = GridCA(root / "grid-ca")
    place = GridPlace(root, database_url, log_url or f"sqlite:///{root / 'grid-log.db'}", engine,
                      registry, ca)
    for i in range(sensors):
        sid = f"s{i}"
        place.tokens[sid] = registry.add(SensorRecord(sensor_id=sid, substation=f"sub{i % 2}",
                                                      kind="cable"))
    return place


def start_gateway(place: GridPlace, gateway_id: str = "gw-t", port: int | None = None,
                  log: DurableLog | None = None,
                  mqtt: dict[str, Any] | None = None) -> GatewayServer:
    server = GatewayServer(gateway_id, "127.0.0.1", port or free_port(),
                           place.ca.server_context(), Authenticator(place.registry),
                           log or open_log(place.log_url), "grid_readings", place.engine, mqtt)
    server.start()
    return server


@dataclass
class Answer:
    status: int
    body: dict[str, Any]


def post(url: str, body: Any, *, sensor_id: str | None, token: str | None,
         context: ssl.SSLContext, raw: bytes | None = None, timeout_s: float = 10) -> Answer:
    host, port = url.split("//")[1].split(":")
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=timeout_s)
    headers = {"Content-Type": "application/json"}
    if sensor_id is not None:
        headers["X-Sensor-Id"] = sensor_id
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        connection.request("POST", "/readings", raw if raw is not None else json.dumps(body),
                           headers)
        response = connection.getresponse()
        return Answer(response.status, json.loads(response.read()))
    finally:
        connection.close()


def log_keys(log: DurableLog, topic: str = "grid_readings") -> list[tuple[str, int]]:
    """Every (sensor, seq) in the log, in offset order."""
    out, offset = [], 1
    while True:
        entries = log.read(topic, offset, 5000)
        if not entries:
            return out
        for entry in entries:
            value = json.loads(entry.payload)
            out.append((value["sensor_id"], value["seq"]))
        offset = entries[-1].offset + 1
