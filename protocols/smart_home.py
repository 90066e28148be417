"""What the smart home says: one JSON shape per sensor kind, alerts, the house, and the requests its
actors answer.

A reading is a JSON object whose ``kind`` says its shape (``heating``, ``meteo``, ``motion``,
``electricity``); every shape carries ``message_id`` (chosen by the sensor and kept when it retries,
so a retried reading is stored once), ``sensor_id`` and ``ts`` (Unix seconds, the sensor's clock).
Validation is strict: ``"21.5"`` is not a number and ``1`` is not a boolean, because a sensor that
sends the wrong type has a bug its owner should hear about (400 naming the field), not a guess.

The smart home's exceptions, under the framework's (``protocols.errors``)::

    PtrError
    └── MqttDeliveryError         the ingest did not take a batch of MQTT messages: the MQTT edge
                                  restarts, so the broker sends them again

Pure data: nothing here imports Thespian, the database or the network.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from protocols.errors import PtrError
from protocols.message import Message, WireBody
from protocols.message import BulkMessage



class MqttDeliveryError(PtrError):
    """The ingest did not take a batch of MQTT messages: the edge restarts so the broker resends."""


SensorKind = Literal["heating", "meteo", "motion", "electricity"]
KINDS: tuple[SensorKind, ...] = ("heating", "meteo", "motion", "electricity")

METRICS: dict[str, tuple[str, ...]] = {
    "heating": ("temperature", "setpoint", "valve"),
    "meteo": ("temperature", "humidity", "pressure", "wind", "rain"),
    "motion": ("motion",),
    "electricity": ("power", "energy"),
}
"""The numeric fields of each kind, in a fixed order: what analyzers keep statistics of and what the
readings table has columns for (a boolean ``motion`` counts as 1.0 or 0.0, so its mean is the share
of readings that saw motion)."""

ALL_METRICS: tuple[str, ...] = tuple(dict.fromkeys(m for ms in METRICS.values() for m in ms))

UNITS: dict[str, str] = {"temperature": "°C", "setpoint": "°C", "valve": "%", "humidity": "%",
                         "pressure": "hPa", "wind": "m/s", "rain": "mm/h", "motion": "",
                         "power": "W", "energy": "Wh"}

AlertRule = Literal["temperature_out_of_range", "motion_while_away", "power_over_limit",
                    "sensor_silent", "broker_dropped_messages", "broker_session_lost",
                    "broker_queue_too_small"]
HouseMode = Literal["home", "away"]

_ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"


WireModel = WireBody
"""What crosses the smart home's edges as JSON: the one strict wire base of ``protocols.message``."""


# --- readings: one shape per kind ---------------------------------------------------------------

class _Reading(WireModel):
    message_id: str = Field(min_length=1, max_length=128, pattern=_ID_PATTERN)
    sensor_id: str = Field(min_length=1, max_length=64, pattern=_ID_PATTERN)
    ts: float = Field(description="when the sensor measured, Unix seconds")


class HeatingReading(_Reading):
    """A room's heating: measured temperature, the thermostat's setpoint, radiator valve opening."""

    kind: Literal["heating"]
    temperature: float = Field(ge=-50, le=100, description="°C")
    setpoint: float = Field(ge=0, le=40, description="°C")
    valve: float = Field(ge=0, le=100, description="% open")


class MeteoReading(_Reading):
    """The weather station outside."""

    kind: Literal["meteo"]
    temperature: float = Field(ge=-60, le=60, description="outdoor °C")
    humidity: float = Field(ge=0, le=100, description="relative %")
    pressure: float = Field(ge=850, le=1100, description="hPa at sea level")
    wind: float = Field(ge=0, le=100, description="m/s")
    rain: float = Field(ge=0, le=500, description="mm/h")


class MotionReading(_Reading):
    """A room's presence detector: was there motion during the last second."""

    kind: Literal["motion"]
    motion: bool


class ElectricityReading(_Reading):
    """One circuit's meter: instantaneous power and the cumulative energy counter."""

    kind: Literal["electricity"]
    power: float = Field(ge=0, le=100_000, description="W")
    energy: float = Field(ge=0, description="Wh since the meter was installed")


Reading = Annotated[Union[HeatingReading, MeteoReading, MotionReading, ElectricityReading],
                    Field(discriminator="kind")]
"""Any reading; the ``kind`` field picks the shape. ``list[Reading]`` is a batch."""



class ReadingBody(RootModel[Reading]):
    """One reading as an HTTP or MQTT body (``list[ReadingBody]`` is a batch); ``.root`` is the
    typed reading. A named wrapper so that a refusal says "invalid reading"."""

    model_config = ConfigDict(frozen=True)
    kind: ClassVar[str] = "reading"




class ModeChange(WireModel):
    """``POST /mode``: the house is occupied (``home``) or not (``away``)."""

    mode: HouseMode


class ModeSet(Message):
    """The answer to a ``ModeChange``: persisted, and in effect for alerts from now on."""

    mode: str
    ts: float


# --- alerts ---------------------------------------------------------------------------------------

class Alert(WireModel):
    """A rule fired. ``alert_id`` is derived from what triggered it (rule, sensor, reading), so the
    same event seen twice (an analyzer replaying after a restart) is stored once."""

    alert_id: str
    rule: AlertRule
    sensor_id: str
    room: str
    kind: SensorKind
    ts: float
    value: float | None = None
    threshold: float | None = None
    text: str


# --- the house ------------------------------------------------------------------------------------

class SensorConfig(WireModel):
    """One installed sensor. ``power_limit`` (W) is a circuit's breaker rating times its voltage;
    ``temperature_range`` overrides the house's default range for this sensor."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)

    sensor_id: str = Field(min_length=1, max_length=64, pattern=_ID_PATTERN)
    kind: SensorKind
    room: str = Field(min_length=1, max_length=64, pattern=_ID_PATTERN)
    power_limit: float | None = Field(default=None, gt=0)
    temperature_range: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SensorConfig:
        if self.power_limit is not None and self.kind != "electricity":
            raise ValueError(f"{self.sensor_id}: only electricity sensors have a power_limit")
        if self.kind == "electricity" and self.power_limit is None:
            raise ValueError(f"{self.sensor_id}: an electricity sensor needs its power_limit (W)")
        bounds = self.temperature_range
        if bounds is not None and bounds[0] >= bounds[1]:
            raise ValueError(f"{self.sensor_id}: temperature_range must be (low, high)")
        return self


class HouseConfig(WireModel):
    """The installed sensors and the alert thresholds; settings carry it, so a TOML file can
    describe another house. Sensor ids are unique; rooms are whatever the sensors name."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)

    sensors: tuple[SensorConfig, ...]
    indoor_range: tuple[float, float] = (12.0, 28.0)
    outdoor_range: tuple[float, float] = (-20.0, 38.0)
    silent_after_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _unique(self) -> HouseConfig:
        seen: set[str] = set()
        for sensor in self.sensors:
            if sensor.sensor_id in seen:
                raise ValueError(f"sensor id {sensor.sensor_id!r} is installed twice")
            seen.add(sensor.sensor_id)
        for name, (low, high) in (("indoor_range", self.indoor_range),
                                  ("outdoor_range", self.outdoor_range)):
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(f"{name} must be (low, high)")
        return self

    def rooms(self) -> list[str]:
        return sorted({s.room for s in self.sensors})

    def by_id(self) -> dict[str, SensorConfig]:
        return {s.sensor_id: s for s in self.sensors}

    def of_kind(self, kind: str) -> list[SensorConfig]:
        return [s for s in self.sensors if s.kind == kind]

    def temperature_range(self, sensor: SensorConfig) -> tuple[float, float]:
        if sensor.temperature_range is not None:
            return sensor.temperature_range
        return self.outdoor_range if sensor.kind == "meteo" else self.indoor_range


ROOMS = ("living", "kitchen", "bedroom", "kids", "office", "bathroom")
CIRCUITS = (  # (sensor id, room, breaker rating in W at 230 V)
    ("circuit-kitchen", "kitchen", 3680.0),    # 16 A sockets
    ("circuit-oven", "kitchen", 4600.0),       # 20 A dedicated
    ("circuit-washer", "bathroom", 2300.0),    # 10 A
    ("circuit-living", "living", 3680.0),
    ("circuit-office", "office", 3680.0),
    ("circuit-lighting", "hall", 2300.0),
    ("circuit-heatpump", "utility", 4600.0),
    ("circuit-ev", "garage", 7400.0),          # 32 A wallbox
)


def default_house() -> HouseConfig:
    """The embedded house: six rooms with heating and motion each, a weather station, eight circuits
    (21 sensors, so 21 readings a second)."""
    sensors = [SensorConfig(sensor_id=f"heating-{room}", kind="heating", room=room)
               for room in ROOMS]
    sensors += [SensorConfig(sensor_id=f"motion-{room}", kind="motion", room=room)
                for room in ROOMS]
    sensors.append(SensorConfig(sensor_id="meteo-garden", kind="meteo", room="outside"))
    sensors += [SensorConfig(sensor_id=sid, kind="electricity", room=room, power_limit=limit)
                for sid, room, limit in CIRCUITS]
    return HouseConfig(sensors=tuple(sensors))


def generated_house(rooms: int, *, silent_after_s: float = 10.0) -> HouseConfig:
    """A house of ``rooms`` identical rooms (heating, motion, two circuits each) plus one weather
    station: ``4 * rooms + 1`` sensors, for benchmarks and load tests."""
    sensors: list[SensorConfig] = [SensorConfig(sensor_id="meteo-0", kind="meteo", room="outside")]
    for n in range(rooms):
        room = f"room-{n:04d}"
        sensors += [
            SensorConfig(sensor_id=f"heating-{n:04d}", kind="heating", room=room),
            SensorConfig(sensor_id=f"motion-{n:04d}", kind="motion", room=room),
            SensorConfig(sensor_id=f"sockets-{n:04d}", kind="electricity", room=room,
                         power_limit=3680.0),
            SensorConfig(sensor_id=f"lights-{n:04d}", kind="electricity", room=room,
                         power_limit=2300.0),
        ]
    return HouseConfig(sensors=tuple(sensors), silent_after_s=silent_after_s)


# --- between the smart home's actors -------------------------------------------------------------

class ReadingBatch(BulkMessage):
    """Direct mode: readings (as ``model_dump()`` dicts, plus ``received_at``) handed in memory from
    the ingest to an analyzer or the writer. Lost if the receiver dies (broker mode is the safe
    one)."""

    rows: list[dict[str, Any]]


class OutputBatch(BulkMessage):
    """Direct mode: rows an analyzer produced for the writer (``table`` is alerts, rollups or
    modes)."""

    table: str
    rows: list[dict[str, Any]]


class GetRoomStats(Message):
    """Ask an analyzer for the rolling statistics of its sensors in ``room``; ``RoomStats``."""

    room: str


class GetOpenAlerts(Message):
    """Ask an analyzer which of its alert conditions hold now; answered with ``OpenAlerts``."""


class OpenAlert(BaseModel):
    """A condition that raised an alert and has not cleared yet."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: AlertRule
    sensor_id: str
    room: str
    text: str


class OpenAlerts(Message):
    at: float
    alerts: list[OpenAlert]


class _Report(BaseModel):
    """Base of reports whose ``kind`` is a field (a sensor's kind), which ``Message`` reserves."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class WindowStats(_Report):
    count: int
    min: float
    max: float
    mean: float


class SensorStats(_Report):
    sensor_id: str
    kind: str
    room: str
    last_ts: float | None
    last_received_at: float | None
    last: dict[str, float | bool]
    windows: dict[str, dict[str, WindowStats]]  # window name -> metric -> stats


class RoomStats(BulkMessage):
    room: str
    at: float
    sensors: list[SensorStats]


class GetAnalyzerStats(Message):
    """Ask an analyzer for its counters; answered with ``AnalyzerStats``."""


class AnalyzerStats(_Report):
    kind: str
    pid: int
    incarnation: int
    sensors: int
    readings: int
    late_readings: int
    alerts: int
    rollups: int
    replayed: int
    next_offset: int
    mode: str
    window_counts: dict[str, int] = {}  # sensor id -> readings in its hour window (tests, audits)
    storage_unavailable: str = ""  # why the broker or database is out ("" while it answers)
    storage_outages: int = 0       # outages begun (this incarnation)


class GetWriterStats(Message):
    """Ask the writer for its counters; answered with ``WriterStats``."""


class WriterStats(Message):
    pid: int
    incarnation: int
    readings: int
    duplicates: int
    alerts: int
    rollups: int
    modes: int
    lag_entries: int
    recent_alerts: list[str] = []
    truncated_entries: int = 0  # broker entries of readings dropped by retention (this incarnation)
    storage_unavailable: str = ""  # why the broker or database is out ("" while it answers)
    storage_outages: int = 0       # outages begun (this incarnation)


class GetIngestStats(Message):
    """Ask the ingest for its counters; answered with ``IngestStats``."""


class IngestStats(Message):
    accepted: int
    refused: int
    appends: int
    mode: str
    duplicates: int = 0
    unavailable: int = 0           # requests refused with 503 because the broker was out
    storage_unavailable: str = ""  # why the broker is out ("" while it answers)
    storage_outages: int = 0       # outages begun (this incarnation)
    conflicts: int = 0             # requests refused with 409: a message_id reused (this incarnation)
    unchecked: int = 0             # keys not looked up in the database while it was out


class GetSimulatorStats(Message):
    """Ask the house simulator for its counters; answered with ``SimulatorStats``."""


class SimulatorStats(Message):
    sent: int
    acked: int
    refused: int
    failed_attempts: int
    pending: int
    url: str = ""


class GetMqttStats(Message):
    """Ask the MQTT edge for its counters; answered with ``MqttStats``."""


class MqttStats(Message):
    connected: bool
    received: int
    rejected: int
    forwarded: int
    acked: int
    last_error: str = ""
    incarnation: int = 0
    held: int = 0  # readings the ingest refused for now (503): unacknowledged, offered again
    broker_dropped: int = 0    # QoS 1 messages the broker says it dropped ($SYS), since we knew
    sessions_lost: int = 0     # reconnections that found no session where one was expected
    queue_probe: str = ""      # the startup check of the broker's queue for an absent client


class BrokerAlert(Message):
    """The MQTT edge tells the ingest what the broker reported: messages dropped (its queue for
    an absent client was full) or a session gone. Stored as an alert (sensor ``mqtt``)."""

    rule: AlertRule
    value: float
    text: str
    ts: float


class CheckNow(Message):
    """Make an analyzer run its clock-driven rules (silence, closing hours) now; tests and chaos."""


__all__ = [
    "ALL_METRICS", "Alert", "AlertRule", "BrokerAlert", "GetOpenAlerts", "OpenAlert",
    "OpenAlerts", "AnalyzerStats", "CIRCUITS", "CheckNow",
    "ElectricityReading", "GetAnalyzerStats", "GetIngestStats", "GetMqttStats", "GetRoomStats",
    "GetSimulatorStats", "GetWriterStats", "HeatingReading", "HouseConfig", "HouseMode",
    "IngestStats", "KINDS", "METRICS", "MeteoReading", "ModeChange", "ModeSet", "MotionReading",
    "MqttStats", "OutputBatch", "ROOMS", "Reading", "ReadingBatch", "ReadingBody",
    "RoomStats",
    "SensorConfig", "SensorKind", "SensorStats", "SimulatorStats", "UNITS", "WindowStats",
    "WireModel", "WriterStats", "default_house", "generated_house",
]
