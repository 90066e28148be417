"""What the national grid says: sensor readings at the gateways, the registry's records, refusal
reasons, alerts, the daily job's report, and the questions an operator asks the actors."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from protocols.message import Message

SENSOR_KINDS = ("cable", "voltage", "current", "consumption")
PERIOD_S = 10.0
"""Every sensor sends one reading every 10 s; silent for ``SILENT_PERIODS`` periods raises an alert."""
SILENT_PERIODS = 3
READINGS_TOPIC = "grid_readings"


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReadingBody(_Wire):
    """One reading as a sensor sends it (HTTP JSON body, or an element of a JSON list; MQTT payload).

    ``seq`` increases by one per reading of a sensor: ``(sensor_id, seq)`` is the reading's
    identity, so a retry is recognised and stored once.
    """

    sensor_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    seq: int = Field(ge=1)
    ts: float = Field(description="when the sensor measured (Unix s, the sensor's clock)")
    voltage_v: float | None = None
    current_a: float | None = None
    temperature_c: float | None = None
    consumption_kwh: float | None = None
    status: Literal["ok", "fault", "maintenance"] = "ok"


class RefusalReason(str, Enum):
    """Why a gateway refused a request; each is counted per sensor and gateway."""

    MISSING_CREDENTIALS = "missing_credentials"   # 401: no token and no client certificate
    UNKNOWN_SENSOR = "unknown_sensor"             # 401: no such sensor in the registry
    WRONG_TOKEN = "wrong_token"                   # 401: the token does not match
    WRONG_CERTIFICATE = "wrong_certificate"       # 401: a CA-signed certificate, not the registered one
    REVOKED = "revoked"                           # 403: the sensor's credentials were revoked
    SENSOR_MISMATCH = "sensor_mismatch"           # 403: a reading names another sensor
    INVALID = "invalid"                           # 400: not a reading (JSON or fields)
    UNAVAILABLE = "unavailable"                   # 503: the log could not append; retry


STATUS_OF_REASON = {
    RefusalReason.MISSING_CREDENTIALS: 401, RefusalReason.UNKNOWN_SENSOR: 401,
    RefusalReason.WRONG_TOKEN: 401, RefusalReason.WRONG_CERTIFICATE: 401,
    RefusalReason.REVOKED: 403, RefusalReason.SENSOR_MISMATCH: 403,
    RefusalReason.INVALID: 400, RefusalReason.UNAVAILABLE: 503,
}

FATES = ("accepted", "duplicate", "stored") + tuple(f"refused_{r.value}" for r in RefusalReason)
"""Every fate a reading can have: counted per (gateway, sensor) in the ``grid_fates`` table."""


class SensorRecord(_Wire):
    """A registry row: where a sensor is, what it measures, its limits and its credentials."""

    sensor_id: str
    substation: str
    kind: Literal["cable", "voltage", "current", "consumption"]
    token_hash: str = ""
    cert_fingerprint: str = ""
    revoked: bool = False
    nominal_v: float = 230.0
    rating_a: float = 400.0
    max_temp_c: float = 70.0


class Alert(_Wire):
    alert_id: str
    rule: Literal["over_temperature", "voltage_sag", "voltage_swell", "over_current", "silent"]
    sensor_id: str
    seq: int
    value: float
    threshold: float
    ts: float
    text: str


class DayReport(_Wire):
    """What the daily job did for one UTC day."""

    day: str
    first_offset: int
    last_offset: int
    log_count: int
    db_count: int
    verified: bool
    truncated_before: int


# --- questions to the actors ------------------------------------------------------------------

class GetGatewayStats(Message):
    pass


class GatewayStats(Message):
    gateway: str
    pid: int
    url: str
    accepted: int
    duplicates: int
    refused: dict[str, int]
    appends: int


class GetConsumerStats(Message):
    pass


class ConsumerStats(Message):
    group: str
    committed: int
    processed: int
    alerts: int


class CheckAlertsNow(Message):
    """Consume what the log holds and run the silence rule now; answered with ConsumerStats."""

    now: float | None = None


class RunDailyJob(Message):
    """Run the daily job for every finished day up to ``until_day`` (``YYYY-MM-DD``; default:
    yesterday, UTC). Answered with ``DailyJobReport``."""

    until_day: str | None = None


class DailyJobReport(Message):
    days: list[DayReport]


class ReplayFrom(Message):
    """Rewind the alert consumers' group to ``offset`` (the next entry they read is ``offset``)."""

    offset: int = Field(ge=1)


class Replayed(Message):
    group: str
    committed: int


__all__ = [
    "FATES",
    "PERIOD_S",
    "READINGS_TOPIC",
    "SENSOR_KINDS",
    "SILENT_PERIODS",
    "STATUS_OF_REASON",
    "Alert",
    "CheckAlertsNow",
    "ConsumerStats",
    "DailyJobReport",
    "DayReport",
    "GatewayStats",
    "GetConsumerStats",
    "GetGatewayStats",
    "ReadingBody",
    "RefusalReason",
    "ReplayFrom",
    "Replayed",
    "RunDailyJob",
    "SensorRecord",
]
