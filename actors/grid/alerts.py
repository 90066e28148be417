"""Real-time alerts: a consumer group on the readings log runs the rules on every reading, stores
the alerts (keyed, so a replayed reading repeats nothing) and only then commits its offset; after a
restart it resumes from that committed offset.

Rules: cable over-temperature (``temperature_c`` above the sensor's ``max_temp_c``), voltage sag and
swell (outside ±10 % of ``nominal_v``), current over the cable's ``rating_a``, and a sensor silent
for ``SILENT_PERIODS`` periods (by the time the gateway accepted its last reading).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from actors.base import Actor
from actors.grid.registry import SensorRegistry
from actors.grid.store import (
    ALERTS,
    close_log_and_engine,
    create_tables,
    open_log,
    unpack_reading,
)
from actors.storage import DurableLog, LogEntry, StorageBackoff, make_engine, storage_error
from protocols.grid import (
    PERIOD_S,
    READINGS_TOPIC,
    SILENT_PERIODS,
    Alert,
    CheckAlertsNow,
    ConsumerStats,
    GetConsumerStats,
    Replayed,
    ReplayFrom,
    SensorRecord,
)
from protocols.message import ActorArgs

log = logging.getLogger("ptr.grid.alerts")

VOLTAGE_BAND = 0.10


class AlertRules:
    """The rules over plain data: ``check`` one reading, ``silent`` sensors at a time."""

    def __init__(self, sensors: dict[str, SensorRecord]) -> None:
        self.sensors = sensors
        self.last_seen: dict[str, tuple[float, int]] = {}
        self.reported_silent: set[tuple[str, int]] = set()

    def check(self, reading: dict[str, Any]) -> list[Alert]:
        sensor_id, seq = reading["sensor_id"], int(reading["seq"])
        received = float(reading.get("received_at", reading["ts"]))
        if received >= self.last_seen.get(sensor_id, (0.0, 0))[0]:
            self.last_seen[sensor_id] = (received, seq)
        record = self.sensors.get(sensor_id)
        if record is None:
            return []
        out: list[Alert] = []

        def alert(rule: str, value: float, threshold: float, text: str) -> None:
            out.append(Alert(alert_id=f"{rule}:{sensor_id}:{seq}", rule=rule,  # type: ignore[arg-type]
                             sensor_id=sensor_id, seq=seq, value=value, threshold=threshold,
                             ts=float(reading["ts"]), text=f"{sensor_id} ({record.substation}): {text}"))

        temperature = reading.get("temperature_c")
        if temperature is not None and temperature > record.max_temp_c:
            alert("over_temperature", temperature, record.max_temp_c,
                  f"cable at {temperature:.1f} °C, above {record.max_temp_c:.0f} °C")
        voltage = reading.get("voltage_v")
        if voltage is not None:
            low, high = record.nominal_v * (1 - VOLTAGE_BAND), record.nominal_v * (1 + VOLTAGE_BAND)
            if voltage < low:
                alert("voltage_sag", voltage, low, f"voltage sag {voltage:.1f} V below {low:.1f} V")
            elif voltage > high:
                alert("voltage_swell", voltage, high,
                      f"voltage swell {voltage:.1f} V above {high:.1f} V")
        current = reading.get("current_a")
        if current is not None and current > record.rating_a:
            alert("over_current", current, record.rating_a,
                  f"current {current:.0f} A over the cable's rating {record.rating_a:.0f} A")
        return out

    def silent(self, now: float) -> list[Alert]:
        """One alert per silence: a sensor whose last reading is older than 3 periods."""
        out = []
        limit = SILENT_PERIODS * PERIOD_S
        for sensor_id, (received, seq) in sorted(self.last_seen.items()):
            if now - received > limit and (sensor_id, seq) not in self.reported_silent:
                self.reported_silent.add((sensor_id, seq))
                out.append(Alert(alert_id=f"silent:{sensor_id}:{seq}", rule="silent",
                                 sensor_id=sensor_id, seq=seq, value=now - received,
                                 threshold=limit, ts=now,
                                 text=f"{sensor_id}: silent for {now - received:.0f} s"))
        return out


def store_alerts(engine: sa.Engine, alerts: list[Alert]) -> None:
    if not alerts:
        return
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    statement = insert(ALERTS).on_conflict_do_nothing(index_elements=[ALERTS.c.alert_id])
    try:
        with engine.begin() as connection:
            connection.execute(statement, [a.model_dump() for a in alerts])
    except SQLAlchemyError as exc:
        raise storage_error(exc, f"could not store {len(alerts)} alerts") from exc


def stored_alerts(engine: sa.Engine, rule: str | None = None) -> list[Alert]:
    query = sa.select(ALERTS).order_by(ALERTS.c.ts, ALERTS.c.alert_id)
    if rule is not None:
        query = query.where(ALERTS.c.rule == rule)
    with engine.connect() as connection:
        return [Alert.model_validate(dict(row)) for row in connection.execute(query).mappings()]


class AlertConsumption:
    """One consumer group's loop over the log, as a plain object: ``step`` consumes one batch."""

    def __init__(self, log_: DurableLog, engine: sa.Engine, registry: SensorRegistry,
                 group: str, topic: str = READINGS_TOPIC, batch: int = 2000) -> None:
        self.log, self.engine, self.group, self.topic, self.batch = log_, engine, group, topic, batch
        self.registry = registry
        self.rules = AlertRules(registry.records())
        self.processed = self.alerts = 0

    def step(self) -> int:
        """Consume up to one batch: rules, alerts stored, then the offset committed. Returns how
        many entries it consumed (0: caught up)."""
        entries: list[LogEntry] = self.log.poll(self.group, self.topic, self.batch)
        if not entries:
            return 0
        found: list[Alert] = []
        for entry in entries:
            reading = unpack_reading(entry.payload)
            if reading["sensor_id"] not in self.rules.sensors:
                self.rules.sensors = self.registry.records()  # provisioned since we loaded
            found.extend(self.rules.check(reading))
        store_alerts(self.engine, found)
        self.log.commit(self.group, self.topic, entries[-1].offset)
        self.processed += len(entries)
        self.alerts += len(found)
        return len(entries)

    def drain(self) -> None:
        while self.step():
            pass

    def check_silence(self, now: float) -> None:
        found = self.rules.silent(now)
        store_alerts(self.engine, found)
        self.alerts += len(found)

    def stats(self) -> ConsumerStats:
        return ConsumerStats(group=self.group, committed=self.log.committed(self.group, self.topic),
                             processed=self.processed, alerts=self.alerts)


class ConsumerArgs(ActorArgs):
    database_url: str
    log_url: str
    version_file: str
    group: str = "alerts"
    topic: str = READINGS_TOPIC
    poll_s: float = 0.2


class PollLog:
    """Timer message: consume what is new."""


class AlertConsumer(Actor):
    """The actor shell of ``AlertConsumption``: polls every ``poll_s``; a storage fault backs off."""

    Args = ConsumerArgs

    def on_start(self) -> Any:
        args: ConsumerArgs = self.typed_args()
        self.engine = make_engine(args.database_url)
        create_tables(self.engine)
        self.grid_log = open_log(args.log_url)
        self.consumption = AlertConsumption(self.grid_log, self.engine,
                                            SensorRegistry(self.engine, args.version_file),
                                            args.group, args.topic)
        self.backoff = StorageBackoff(self.path or "alerts", clock=self.clock)
        self.start_timer(args.poll_s, PollLog(), repeat=True)
        return None

    def on_stop(self, reason: Any) -> None:
        close_log_and_engine(self)

    def receiveMsg_PollLog(self, msg: PollLog, sender: Any) -> None:
        def step() -> None:
            self.consumption.step()
            self.consumption.check_silence(time.time())
        self.backoff.attempt(step)

    def receiveMsg_CheckAlertsNow(self, msg: CheckAlertsNow, sender: Any) -> ConsumerStats:
        self.consumption.drain()
        self.consumption.check_silence(msg.now if msg.now is not None else time.time())
        return self.consumption.stats()

    def receiveMsg_GetConsumerStats(self, msg: GetConsumerStats, sender: Any) -> ConsumerStats:
        return self.consumption.stats()

    def receiveMsg_ReplayFrom(self, msg: ReplayFrom, sender: Any) -> Replayed:
        c = self.consumption
        c.log.commit(c.group, c.topic, min(msg.offset - 1, c.log.end_offset(c.topic)))
        return Replayed(group=c.group, committed=c.log.committed(c.group, c.topic))
