"""The grid's tables (registry, fates, alerts, the daily job's runs and its one table per day) and
how the log is opened. Plain SQLAlchemy Core: SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from actors.storage import DurableLog, JetStreamLog, SqliteLog, storage_error
from protocols.errors import ConfigError
from protocols.grid import ReadingBody

METADATA = sa.MetaData()

SENSORS = sa.Table(
    "grid_sensors", METADATA,
    sa.Column("sensor_id", sa.String(64), primary_key=True),
    sa.Column("substation", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("token_hash", sa.String(128), nullable=False, default=""),
    sa.Column("cert_fingerprint", sa.String(128), nullable=False, default=""),
    sa.Column("revoked", sa.Boolean(), nullable=False, default=False),
    sa.Column("nominal_v", sa.Float(), nullable=False),
    sa.Column("rating_a", sa.Float(), nullable=False),
    sa.Column("max_temp_c", sa.Float(), nullable=False),
)
FATES = sa.Table(
    "grid_fates", METADATA,
    sa.Column("gateway", sa.String(64), primary_key=True),
    sa.Column("sensor_id", sa.String(64), primary_key=True),
    sa.Column("fate", sa.String(40), primary_key=True),
    sa.Column("count", sa.BigInteger(), nullable=False),
)
ALERTS = sa.Table(
    "grid_alerts", METADATA,
    sa.Column("alert_id", sa.String(200), primary_key=True),
    sa.Column("rule", sa.String(32), nullable=False),
    sa.Column("sensor_id", sa.String(64), nullable=False, index=True),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("value", sa.Float(), nullable=False),
    sa.Column("threshold", sa.Float(), nullable=False),
    sa.Column("ts", sa.Float(), nullable=False),
    sa.Column("text", sa.String(400), nullable=False),
)
DAILY_RUNS = sa.Table(
    "grid_daily_runs", METADATA,
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("first_offset", sa.BigInteger(), nullable=False),
    sa.Column("last_offset", sa.BigInteger(), nullable=False),
    sa.Column("log_count", sa.BigInteger(), nullable=False, default=0),
    sa.Column("db_count", sa.BigInteger(), nullable=False, default=0),
    sa.Column("done", sa.Boolean(), nullable=False, default=False),
)


def create_tables(engine: sa.Engine) -> None:
    """Create the grid's fixed tables if missing (safe when several processes start together)."""
    try:
        METADATA.create_all(engine, checkfirst=True)
    except SQLAlchemyError as exc:
        if "already exists" not in str(exc):
            raise storage_error(exc, f"could not create the grid tables in {engine.url}") from exc


def day_table(day: str) -> sa.Table:
    """The readings of one UTC day (``YYYY-MM-DD``): ``grid_readings_YYYYMMDD``, keyed by the
    reading's identity, so a copy repeated after a crash stores nothing twice."""
    name = f"grid_readings_{day.replace('-', '')}"
    if name in METADATA.tables:
        return METADATA.tables[name]
    return sa.Table(
        name, METADATA,
        sa.Column("sensor_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger(), primary_key=True),
        sa.Column("log_offset", sa.BigInteger(), nullable=False),
        sa.Column("gateway", sa.String(64), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("voltage_v", sa.Float()),
        sa.Column("current_a", sa.Float()),
        sa.Column("temperature_c", sa.Float()),
        sa.Column("consumption_kwh", sa.Float()),
        sa.Column("status", sa.String(16), nullable=False),
    )


def utc_day(unix_s: float) -> str:
    return dt.datetime.fromtimestamp(unix_s, dt.UTC).date().isoformat()


def pack_reading(reading: ReadingBody, gateway: str) -> bytes:
    """The log payload: the reading's fields and the gateway that accepted it (compact JSON)."""
    values = reading.model_dump(exclude_none=True)
    values["gateway"] = gateway
    values["received_at"] = time.time()
    return json.dumps(values, separators=(",", ":")).encode()


def unpack_reading(payload: bytes) -> dict[str, Any]:
    values: dict[str, Any] = json.loads(payload)
    return values


def add_fates(engine: sa.Engine, counts: Counter[tuple[str, str, str]]) -> None:
    """Add ``counts`` (keyed (gateway, sensor_id, fate)) to ``grid_fates`` in one transaction."""
    if not counts:
        return
    try:
        with engine.begin() as connection:
            add_fates_in(connection, counts)
    except SQLAlchemyError as exc:
        raise storage_error(exc, "could not add fate counts") from exc


def add_fates_in(connection: sa.Connection, counts: Counter[tuple[str, str, str]]) -> None:
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    statement = insert(FATES)
    statement = statement.on_conflict_do_update(
        index_elements=[FATES.c.gateway, FATES.c.sensor_id, FATES.c.fate],
        set_={"count": FATES.c.count + statement.excluded.count})
    connection.execute(statement, [{"gateway": g, "sensor_id": s, "fate": f, "count": n}
                                   for (g, s, f), n in sorted(counts.items())])


def fates(engine: sa.Engine, *, sensor_id: str | None = None,
          gateway: str | None = None) -> dict[str, int]:
    """Fate -> count, over every gateway and sensor unless one is named."""
    query = sa.select(FATES.c.fate, sa.func.sum(FATES.c.count)).group_by(FATES.c.fate)
    if sensor_id is not None:
        query = query.where(FATES.c.sensor_id == sensor_id)
    if gateway is not None:
        query = query.where(FATES.c.gateway == gateway)
    with engine.connect() as connection:
        return {fate: int(n) for fate, n in connection.execute(query)}


def open_log(url: str) -> DurableLog:
    """The log behind ``url``: ``sqlite:///file`` (default) or ``nats://host:port/PREFIX``."""
    if url.startswith("sqlite:"):
        return SqliteLog(url)
    if url.startswith("nats://"):
        parts = urlsplit(url)
        prefix = parts.path.strip("/") or "PTR_GRID"
        return JetStreamLog(f"nats://{parts.netloc}", stream_prefix=prefix)
    raise ConfigError(f"log_url {url!r}: the grid's log is a sqlite:/// file or "
                      "nats://host:port/PREFIX")


def close_log_and_engine(owner: Any) -> None:
    """What an actor reading the log and the database closes when it stops (either may be
    missing if its ``on_start`` failed half way)."""
    if getattr(owner, "grid_log", None) is not None:
        owner.grid_log.close()
    if getattr(owner, "engine", None) is not None:
        owner.engine.dispose()
