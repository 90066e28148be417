"""Where the smart home keeps things: the broker's topics (a ``DurableLog``) and the database
tables, with the conversions and queries every smart-home actor shares. Plain Python, no Thespian.

Two stores, two SQLite files by default, so the broker's appends and the writer's inserts do not
queue on one write lock:

* the **broker** (``smart-home-broker.db``): topic ``readings`` holds one entry per accepted batch
  (msgpack list of reading dicts); ``house-mode`` one entry per mode change; ``alerts`` and
  ``rollups`` what the analyzers produced. Consumers keep committed offsets (groups ``writer``,
  ``analyzer-<kind>``), so a consumer that dies resumes where it had finished.
* the **database** (``smart-home.db``): ``smart_home_readings`` (one row per reading, all kinds, a
  column per metric), ``smart_home_alerts``, ``smart_home_rollups`` and ``smart_home_modes``. Every
  table is keyed by ``message_id`` and written with ``RowWriter`` (duplicates skipped), which is
  what makes replays harmless.

A reading's key is ``<sensor_id>/<message_id>``: the sensor's id scopes the id the sensor chose,
so two sensors cannot overwrite, or be mistaken for duplicates of, each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import msgpack
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from actors.storage import (
    DurableLog,
    JetStreamLog,
    RecordTable,
    RowWriter,
    SqliteLog,
    storage_error,
)
from protocols.errors import ConfigError
from protocols.smart_home import ALL_METRICS, METRICS

READINGS_TOPIC = "readings"
MODES_TOPIC = "house-mode"
ALERTS_TOPIC = "alerts"
ROLLUPS_TOPIC = "rollups"

READINGS = RecordTable("smart_home_readings", {
    "sensor_id": sa.String(64), "kind": sa.String(16), "room": sa.String(64), "ts": sa.Float(),
    "received_at": sa.Float(), "stored_at": sa.Float(),
    **{metric: sa.Float() for metric in ALL_METRICS},
})
ALERTS = RecordTable("smart_home_alerts", {
    "rule": sa.String(32), "sensor_id": sa.String(64), "room": sa.String(64),
    "kind": sa.String(16), "ts": sa.Float(), "value": sa.Float(), "threshold": sa.Float(),
    "text": sa.String(256), "stored_at": sa.Float(),
})
ROLLUPS = RecordTable("smart_home_rollups", {
    "sensor_id": sa.String(64), "room": sa.String(64), "kind": sa.String(16),
    "metric": sa.String(16), "hour_start": sa.Float(), "samples": sa.Integer(),
    "low": sa.Float(), "high": sa.Float(), "mean": sa.Float(), "stored_at": sa.Float(),
})
MODES = RecordTable("smart_home_modes", {"mode": sa.String(8), "ts": sa.Float(),
                                         "stored_at": sa.Float()})
TABLES = {"readings": READINGS, "alerts": ALERTS, "rollups": ROLLUPS, "modes": MODES}

_INDEXES = (("ix_smart_home_readings_sensor_ts", "smart_home_readings", ("sensor_id", "ts")),
            ("ix_smart_home_alerts_ts", "smart_home_alerts", ("ts",)),
            ("ix_smart_home_rollups_sensor_hour", "smart_home_rollups",
             ("sensor_id", "hour_start")))


def open_broker(url: str) -> DurableLog:
    """The broker behind ``url``: a ``sqlite:///`` file (the embedded default, ``synchronous=FULL``:
    every append is fsynced before the ingest acknowledges it), or NATS JetStream
    at ``nats://host:port/PREFIX`` (streams ``PREFIX_<topic>``; PREFIX defaults to
    ``PTR_SMART_HOME``)."""
    if url.startswith("sqlite:"):
        # FULL: an acknowledged append survives an OS crash (``?synchronous=NORMAL`` measures
        # what that costs; it is the smart home's own parameter, not SQLite's)
        base, _, query = url.partition("?")
        params = parse_qs(query, keep_blank_values=True)
        synchronous = params.pop("synchronous", ["FULL"])[-1].upper()
        if synchronous not in ("NORMAL", "FULL"):
            raise ConfigError(f"broker_url {url!r}: synchronous is NORMAL or FULL")
        rest = urlencode(params, doseq=True)
        return SqliteLog(f"{base}?{rest}" if rest else base, synchronous=synchronous)
    if url.startswith("nats://"):
        parts = urlsplit(url)
        prefix = parts.path.strip("/") or "PTR_SMART_HOME"
        try:
            return JetStreamLog(f"nats://{parts.netloc}", stream_prefix=prefix)
        except ValueError as exc:  # the prefix is checked before connecting
            raise ConfigError(f"broker_url {url!r}: {exc}") from None
    raise ConfigError(f"broker_url {url!r}: the smart home's broker is a sqlite:/// file or "
                      "nats://host:port/PREFIX")


def writers(engine: sa.Engine) -> dict[str, RowWriter]:
    """A ``RowWriter`` per table, tables and indexes created if missing (idempotent, and safe
    when the writer and the analyzers open the database at the same moment). Raises
    ``StorageError`` (``StorageUnavailableError`` when the database is out)."""
    out = {name: RowWriter(engine, table) for name, table in TABLES.items()}
    for writer in out.values():
        writer.create()
    tables = {w.table.name: w.table for w in out.values()}
    for name, table_name, columns in _INDEXES:
        table = tables[table_name]
        try:
            sa.Index(name, *(table.c[c] for c in columns)).create(engine, checkfirst=True)
        except SQLAlchemyError as exc:
            if not _index_exists(engine, table_name, name):  # else another actor made it first
                raise storage_error(exc, f"could not create index {name!r}") from exc
    return out


def _index_exists(engine: sa.Engine, table_name: str, name: str) -> bool:
    try:
        return any(ix["name"] == name for ix in sa.inspect(engine).get_indexes(table_name))
    except SQLAlchemyError:
        return False


# --- broker payloads ----------------------------------------------------------------------------

def pack(rows: Sequence[Mapping[str, Any]], total: int | None = None) -> bytes:
    """An entry's payload: the rows, and (readings) ``total``, the number of readings accepted
    up to and including this entry, so counters survive restarts of whoever keeps them."""
    if total is None:
        return msgpack.packb(list(rows), use_bin_type=True)
    return msgpack.packb({"rows": list(rows), "total": total}, use_bin_type=True)


def unpack(payload: bytes) -> list[dict[str, Any]]:
    value = msgpack.unpackb(payload, raw=False)
    return list(value["rows"]) if isinstance(value, dict) else list(value)


def unpack_entry(payload: bytes) -> tuple[list[dict[str, Any]], int | None]:
    """An entry's rows and its running total (None where it carries none), decoded once."""
    value = msgpack.unpackb(payload, raw=False)
    if isinstance(value, dict):
        return list(value["rows"]), int(value["total"])
    return list(value), None


def unpack_total(payload: bytes) -> int | None:
    """The running total a readings entry carries (None: an entry written before totals)."""
    value = msgpack.unpackb(payload, raw=False)
    return int(value["total"]) if isinstance(value, dict) else None


def newest_total(broker: DurableLog) -> int | None:
    """Readings accepted so far, as the newest readings entry says (None: no entry says)."""
    end = broker.end_offset(READINGS_TOPIC)
    if not end:
        return None
    entries = broker.read(READINGS_TOPIC, end, 1)
    return unpack_total(entries[0].payload) if entries else None


def reading_digest(reading: Mapping[str, Any]) -> int:
    """What identifies a reading's content (kind, ids, time, every value): equal for a repeat,
    different for another reading under a reused message id. Within one process only."""
    kind = reading["kind"]
    return hash((kind, reading["sensor_id"], str(reading["message_id"]), float(reading["ts"]),
                 *(float(reading[m]) for m in METRICS[kind])))


# --- rows ---------------------------------------------------------------------------------------

def reading_key(sensor_id: str, message_id: str) -> str:
    return f"{sensor_id}/{message_id}"


_EMPTY_METRICS = dict.fromkeys(ALL_METRICS)


def reading_db_row(reading: Mapping[str, Any], room: str, received_at: float,
                   stored_at: float) -> dict[str, Any]:
    """A reading dict as a ``smart_home_readings`` row (metrics of other kinds NULL)."""
    row = {"message_id": reading_key(reading["sensor_id"], reading["message_id"]),
           "sensor_id": reading["sensor_id"], "kind": reading["kind"], "room": room,
           "ts": reading["ts"], "received_at": received_at, "stored_at": stored_at,
           **_EMPTY_METRICS}
    for metric in METRICS[reading["kind"]]:
        value = reading[metric]
        row[metric] = float(value)
    return row


def alert_db_row(alert: Mapping[str, Any], stored_at: float) -> dict[str, Any]:
    row = {k: alert[k] for k in ("rule", "sensor_id", "room", "kind", "ts", "value", "threshold",
                                 "text")}
    row["message_id"] = alert["alert_id"]
    row["stored_at"] = stored_at
    return row


def rollup_db_row(rollup: Mapping[str, Any], stored_at: float) -> dict[str, Any]:
    return {**rollup, "stored_at": stored_at}


def mode_db_row(change: Mapping[str, Any], stored_at: float) -> dict[str, Any]:
    return {"message_id": change["message_id"], "mode": change["mode"], "ts": change["ts"],
            "stored_at": stored_at}


# --- queries (the API, the analyzers' rebuild, tests) ---------------------------------------------

@contextmanager
def _reading(engine: sa.Engine, what: str) -> Iterator[sa.Connection]:
    """A connection for one query; a database error becomes a ``StorageError`` (unavailable
    when it is the disk's or the server's), so the API answers 503 instead of 500."""
    try:
        with engine.connect() as connection:
            yield connection
    except SQLAlchemyError as exc:
        raise storage_error(exc, f"{what} failed") from exc


def _t(name: str) -> sa.TableClause:
    table = TABLES[name]
    return sa.table(table.name, sa.column("message_id"), *(sa.column(c) for c in table.columns))


def reading_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored reading in its kind's JSON shape (the sensor's own message id) plus arrival
    times."""
    kind = row["kind"]
    out: dict[str, Any] = {"kind": kind, "sensor_id": row["sensor_id"],
                           "message_id": row["message_id"][len(row["sensor_id"]) + 1:],
                           "ts": row["ts"]}
    for metric in METRICS[kind]:
        value = row[metric]
        out[metric] = bool(value) if metric == "motion" else value
    out["received_at"] = row["received_at"]
    out["stored_at"] = row["stored_at"]
    return out


def readings_between(engine: sa.Engine, sensor_id: str, since: float, until: float,
                     limit: int) -> list[dict[str, Any]]:
    readings = _t("readings")
    query = (sa.select(readings).where(readings.c.sensor_id == sensor_id,
                                       readings.c.ts >= since, readings.c.ts <= until)
             .order_by(readings.c.ts).limit(limit))
    with _reading(engine, "reading stored readings") as connection:
        return [reading_json(r._mapping) for r in connection.execute(query)]


def latest_readings(engine: sa.Engine,
                    sensor_ids: Iterable[str]) -> dict[str, dict[str, Any] | None]:
    """Each sensor's newest stored reading: one indexed lookup per sensor on one connection (a
    single GROUP BY would scan the whole table)."""
    readings = _t("readings")
    sensor = sa.bindparam("sensor")
    query = (sa.select(readings).where(readings.c.sensor_id == sensor)
             .order_by(readings.c.ts.desc()).limit(1))
    out: dict[str, dict[str, Any] | None] = {}
    with _reading(engine, "reading the latest readings") as connection:
        for sensor_id in sensor_ids:
            row = connection.execute(query, {"sensor": sensor_id}).first()
            out[sensor_id] = reading_json(row._mapping) if row is not None else None
    return out


class StoredKeys:
    """Which reading keys (``sensor/message`` ids) the database holds, and each reading's
    ``reading_digest``: the ingest's look-up for keys outside its memory, on its hot path. So it
    is one plain statement per 500 keys on a connection kept open (compiling an ``IN`` of a new
    length each time cost more than running it), whose read transaction ends after each call.
    Raises ``StorageError`` (``StorageUnavailableError`` when the database is out); the next call
    opens a new connection. ``create`` makes the tables first (a fresh database)."""

    COLUMNS = ("message_id", "sensor_id", "kind", "ts", *ALL_METRICS)

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.connection: sa.Connection | None = None
        self.mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self.created = False

    def digests(self, keys: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        try:
            if not self.created:
                writers(self.engine)
                self.created = True
            if self.connection is None:
                self.connection = self.engine.connect()
            connection = self.connection
            try:
                for start in range(0, len(keys), 500):
                    chunk = tuple(keys[start:start + 500])
                    marks = ", ".join([self.mark] * len(chunk))
                    result = connection.exec_driver_sql(
                        f"SELECT {', '.join(self.COLUMNS)} FROM {READINGS.name} "
                        f"WHERE message_id IN ({marks})", chunk)
                    for row in result:
                        mapping = dict(zip(self.COLUMNS, row))
                        mapping["received_at"] = mapping["stored_at"] = 0.0
                        out[mapping["message_id"]] = reading_digest(reading_json(mapping))
            finally:
                connection.rollback()
        except SQLAlchemyError as exc:
            self.close()
            raise storage_error(exc, "looking up message ids failed") from exc
        return out

    def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            try:
                connection.close()
            except SQLAlchemyError:
                pass  # a connection that failed is dropped; the pool makes a new one


def row_counts(engine: sa.Engine, tables: Iterable[str]) -> dict[str, int]:
    """``count(*)`` of each named table (``readings``, ``alerts``...)."""
    with _reading(engine, "counting rows") as connection:
        return {name: int(connection.execute(
            sa.select(sa.func.count()).select_from(_t(name))).scalar_one()) for name in tables}


def last_arrivals(engine: sa.Engine,
                  sensor_ids: Iterable[str]) -> dict[str, tuple[float, str]]:
    """When each sensor's newest stored reading arrived, and its message id (sensors never
    stored are absent). One indexed look-up per sensor."""
    readings = _t("readings")
    sensor = sa.bindparam("sensor")
    query = (sa.select(readings.c.received_at, readings.c.message_id)
             .where(readings.c.sensor_id == sensor).order_by(readings.c.ts.desc()).limit(1))
    out: dict[str, tuple[float, str]] = {}
    with _reading(engine, "reading when sensors were last heard") as connection:
        for sensor_id in sensor_ids:
            row = connection.execute(query, {"sensor": sensor_id}).first()
            if row is not None:
                out[sensor_id] = (float(row[0]), str(row[1])[len(sensor_id) + 1:])
    return out


def alerts_between(engine: sa.Engine, since: float, until: float, *, rule: str | None = None,
                   sensor_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Alerts with ``since <= ts <= until``, newest first."""
    alerts = _t("alerts")
    query = sa.select(alerts).where(alerts.c.ts >= since, alerts.c.ts <= until)
    if rule:
        query = query.where(alerts.c.rule == rule)
    if sensor_id:
        query = query.where(alerts.c.sensor_id == sensor_id)
    query = query.order_by(alerts.c.ts.desc()).limit(limit)
    with _reading(engine, "reading alerts") as connection:
        out = []
        for row in connection.execute(query):
            item = dict(row._mapping)
            item["alert_id"] = item.pop("message_id")
            out.append(item)
        return out


def chart_series(engine: sa.Engine, sensor_id: str, metric: str, since: float, until: float,
                 bucket_s: float) -> list[tuple[float, float, float, float]]:
    """(bucket start, mean, min, max) of ``metric`` per ``bucket_s`` from ``since`` to ``until``."""
    if metric not in ALL_METRICS:
        raise ValueError(f"unknown metric {metric!r}")
    readings = _t("readings")
    column = readings.c[metric]
    bucket = sa.cast(readings.c.ts / bucket_s, sa.Integer)
    query = (sa.select(bucket.label("b"), sa.func.avg(column), sa.func.min(column),
                       sa.func.max(column))
             .where(readings.c.sensor_id == sensor_id, readings.c.ts >= since,
                    readings.c.ts <= until, column.is_not(None))
             .group_by(bucket).order_by(bucket))
    with _reading(engine, "reading a chart's series") as connection:
        return [(int(b) * bucket_s, float(avg), float(low), float(high))
                for b, avg, low, high in connection.execute(query)]


def history(engine: sa.Engine, sensor_id: str, metric: str, since: float,
            until: float) -> tuple[str, list[tuple[float, float, float, float]]]:
    """A chart's points (start, mean, min, max) from ``since`` to ``until``: for up to two hours
    ~120 buckets of the raw readings; longer, the hourly rollups, and the hours not rolled up yet
    (the current one) from the raw readings. Returns the source (``readings``/``rollups``) too."""
    span = until - since
    if span <= 2 * 3600:
        return "readings", chart_series(engine, sensor_id, metric, since, until,
                                        max(1.0, span / 120))
    rollups = _t("rollups")
    query = (sa.select(rollups.c.hour_start, rollups.c.mean, rollups.c.low, rollups.c.high)
             .where(rollups.c.sensor_id == sensor_id, rollups.c.metric == metric,
                    rollups.c.hour_start >= since - 3600, rollups.c.hour_start <= until)
             .order_by(rollups.c.hour_start))
    with _reading(engine, "reading rollups") as connection:
        points = [(float(h), float(m), float(lo), float(hi))
                  for h, m, lo, hi in connection.execute(query)]
    rolled_through = points[-1][0] + 3600 if points else since
    if rolled_through < until:
        points += chart_series(engine, sensor_id, metric, rolled_through, until, 3600.0)
    return "rollups", [p for p in points if p[0] + 3600 > since]


def rollups_since(engine: sa.Engine, sensor_ids: Iterable[str],
                  since: float) -> list[dict[str, Any]]:
    ids = list(sensor_ids)
    if not ids:
        return []
    rollups = _t("rollups")
    query = sa.select(rollups).where(rollups.c.sensor_id.in_(ids), rollups.c.hour_start >= since)
    with _reading(engine, "reading rollups") as connection:
        return [dict(r._mapping) for r in connection.execute(query)]


def latest_mode(engine: sa.Engine) -> str | None:
    modes = _t("modes")
    query = sa.select(modes.c.mode).order_by(modes.c.ts.desc()).limit(1)
    with _reading(engine, "reading the house mode") as connection:
        return connection.execute(query).scalar()


__all__ = [
    "ALERTS",
    "ALERTS_TOPIC",
    "MODES",
    "MODES_TOPIC",
    "READINGS",
    "READINGS_TOPIC",
    "ROLLUPS",
    "ROLLUPS_TOPIC",
    "TABLES",
    "StoredKeys",
    "alert_db_row",
    "alerts_between",
    "chart_series",
    "history",
    "last_arrivals",
    "latest_mode",
    "latest_readings",
    "mode_db_row",
    "newest_total",
    "open_broker",
    "pack",
    "reading_db_row",
    "reading_digest",
    "reading_json",
    "reading_key",
    "readings_between",
    "rollup_db_row",
    "rollups_since",
    "row_counts",
    "unpack",
    "unpack_entry",
    "unpack_total",
    "writers",
]
