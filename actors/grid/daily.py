"""The daily job: copy each finished UTC day of the readings log into its own table, verify the
count against the log, then let the log drop what was copied.

A reading's day is the day its gateway accepted it (``received_at``), made monotonic along the log
(an entry never belongs to an earlier day than the one before it), so each day is one contiguous
range of offsets, and a day is finished once an entry of a later day exists or the day is over.

Resumable and idempotent: the job is a consumer group of its own (``daily``). Each batch is inserted
with ``ON CONFLICT DO NOTHING`` on ``(sensor_id, seq)`` and the day's offset range recorded in one
database transaction; then the group's offset is committed. A crash between the two repeats a batch
that stores nothing new. A day is marked done (with its ``stored`` fate counts, in the same
transaction) only when the table holds exactly the log's count for its range; a done day is never
copied again, so running the job twice changes nothing, and a missed day is caught up by the next
run, in order. The log is truncated only below what every group in ``retain_for`` has committed.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter, defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from actors.base import Actor
from actors.grid.store import (
    DAILY_RUNS,
    add_fates_in,
    close_log_and_engine,
    create_tables,
    day_table,
    open_log,
    unpack_reading,
    utc_day,
)
from actors.storage import DurableLog, make_engine, storage_error
from protocols.grid import READINGS_TOPIC, DailyJobReport, DayReport, RunDailyJob
from protocols.message import ActorArgs

log = logging.getLogger("ptr.grid.daily")

DAILY_GROUP = "daily"


def yesterday(now: float | None = None) -> str:
    today = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.UTC).date()
    return (today - dt.timedelta(days=1)).isoformat()


class DailyJob:
    """The job over plain objects; ``run(until_day)`` does every finished day up to it."""

    def __init__(self, log_: DurableLog, engine: sa.Engine, *, topic: str = READINGS_TOPIC,
                 group: str = DAILY_GROUP, batch: int = 1000,
                 retain_for: tuple[str, ...] = ()) -> None:
        self.log, self.engine, self.topic, self.group = log_, engine, topic, group
        self.batch = batch
        self.retain_for = retain_for
        self.copied = 0
        create_tables(engine)

    def run(self, until_day: str | None = None, now: float | None = None) -> list[DayReport]:
        """Copy, verify and mark done every day <= ``until_day`` (default yesterday) that is
        finished; returns the days marked done in this run."""
        now = time.time() if now is None else now
        until = until_day or yesterday(now)
        today = utc_day(now)
        cursor_day = self._cursor_day()
        later_seen = False
        while True:
            start = self.log.committed(self.group, self.topic) + 1
            entries = self.log.read(self.topic, start, self.batch)
            if not entries:
                break
            rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
            last_offset = 0
            for entry in entries:
                reading = unpack_reading(entry.payload)
                day = max(utc_day(float(reading.get("received_at", entry.timestamp))), cursor_day)
                if day > until:
                    later_seen = True
                    break
                cursor_day = day
                rows[day].append(_row(reading, entry.offset))
                last_offset = entry.offset
            if rows:
                self._copy(rows)
                self.log.commit(self.group, self.topic, last_offset)
            if later_seen:
                break
        return self._finish(until, today, later_seen)

    def _cursor_day(self) -> str:
        with self.engine.connect() as connection:
            found = connection.execute(sa.select(sa.func.max(DAILY_RUNS.c.day))).scalar()
        return str(found or "")

    def _copy(self, rows: dict[str, list[dict[str, Any]]]) -> None:
        try:
            with self.engine.begin() as connection:
                for day, day_rows in sorted(rows.items()):
                    table = day_table(day)
                    table.create(connection, checkfirst=True)
                    connection.execute(_insert_ignore(connection, table), day_rows)
                    first = min(r["log_offset"] for r in day_rows)
                    last = max(r["log_offset"] for r in day_rows)
                    known = connection.execute(sa.select(DAILY_RUNS).where(
                        DAILY_RUNS.c.day == day)).mappings().first()
                    if known is None:
                        connection.execute(DAILY_RUNS.insert().values(
                            day=day, first_offset=first, last_offset=last, log_count=0,
                            db_count=0, done=False))
                    else:
                        connection.execute(DAILY_RUNS.update().where(DAILY_RUNS.c.day == day).values(
                            first_offset=min(first, known["first_offset"]),
                            last_offset=max(last, known["last_offset"])))
        except SQLAlchemyError as exc:
            raise storage_error(exc, "the daily job could not copy a batch") from exc
        self.copied += sum(len(r) for r in rows.values())

    def _finish(self, until: str, today: str, later_seen: bool) -> list[DayReport]:
        with self.engine.connect() as connection:
            open_days = connection.execute(sa.select(DAILY_RUNS).where(
                DAILY_RUNS.c.done.is_(False), DAILY_RUNS.c.day <= until)
                .order_by(DAILY_RUNS.c.day)).mappings().all()
        cursor = self._cursor_day()
        reports = []
        for run in open_days:
            day = run["day"]
            finished = day < cursor or later_seen or day < today
            if not finished:
                continue
            reports.append(self._verify(day, run["first_offset"], run["last_offset"]))
            if not reports[-1].verified:
                break  # never truncate past a day that does not add up
        done = [r for r in reports if r.verified]
        if done:
            before = done[-1].last_offset + 1
            for group in self.retain_for:
                before = min(before, self.log.committed(group, self.topic) + 1)
            if before > 1:
                self.log.truncate(self.topic, before)
            reports = [r.model_copy(update={"truncated_before": before}) for r in reports]
        return reports

    def _verify(self, day: str, first: int, last: int) -> DayReport:
        table = day_table(day)
        log_count = last - first + 1  # offsets are contiguous and each (sensor, seq) appears once
        try:
            with self.engine.begin() as connection:
                db_count = int(connection.execute(sa.select(sa.func.count()).select_from(table))
                               .scalar_one())
                verified = db_count == log_count
                if verified:
                    stored: Counter[tuple[str, str, str]] = Counter()
                    query = sa.select(table.c.gateway, table.c.sensor_id, sa.func.count()) \
                        .group_by(table.c.gateway, table.c.sensor_id)
                    for gateway, sensor_id, n in connection.execute(query):
                        stored[(gateway, sensor_id, "stored")] = int(n)
                    add_fates_in(connection, stored)
                connection.execute(DAILY_RUNS.update().where(DAILY_RUNS.c.day == day).values(
                    log_count=log_count, db_count=db_count, done=verified))
        except SQLAlchemyError as exc:
            raise storage_error(exc, f"the daily job could not verify {day}") from exc
        if not verified:
            log.error("daily job: %s has %d rows for %d log entries; the log is kept", day,
                      db_count, log_count)
        return DayReport(day=day, first_offset=first, last_offset=last, log_count=log_count,
                         db_count=db_count, verified=verified, truncated_before=0)


def _row(reading: dict[str, Any], offset: int) -> dict[str, Any]:
    return {"sensor_id": reading["sensor_id"], "seq": int(reading["seq"]), "log_offset": offset,
            "gateway": reading.get("gateway", ""), "ts": float(reading["ts"]),
            "received_at": float(reading.get("received_at", 0.0)),
            "voltage_v": reading.get("voltage_v"), "current_a": reading.get("current_a"),
            "temperature_c": reading.get("temperature_c"),
            "consumption_kwh": reading.get("consumption_kwh"),
            "status": reading.get("status", "ok")}


def _insert_ignore(connection: sa.Connection, table: sa.Table) -> Any:
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    return insert(table).on_conflict_do_nothing(index_elements=[table.c.sensor_id, table.c.seq])


class DailyJobArgs(ActorArgs):
    database_url: str
    log_url: str
    topic: str = READINGS_TOPIC
    retain_for: tuple[str, ...] = ("alerts",)
    batch: int = 1000
    check_every_s: float = 300.0


class CheckDaily:
    """Timer message: run the job if a finished day is not done yet (catch-up included)."""


class DailyJobActor(Actor):
    """Runs ``DailyJob`` every ``check_every_s`` (a no-op when every finished day is done) and on
    ``RunDailyJob``. If the job raises, the actor exits and its supervisor restarts it; the job
    resumes from its committed offset."""

    Args = DailyJobArgs

    def on_start(self) -> Any:
        args: DailyJobArgs = self.typed_args()
        self.engine = make_engine(args.database_url)
        self.grid_log = open_log(args.log_url)
        self.job = DailyJob(self.grid_log, self.engine, topic=args.topic, batch=args.batch,
                            retain_for=args.retain_for)
        self.start_timer(args.check_every_s, CheckDaily(), repeat=True)
        return None

    def on_stop(self, reason: Any) -> None:
        close_log_and_engine(self)

    def receiveMsg_CheckDaily(self, msg: CheckDaily, sender: Any) -> None:
        self.job.run()

    def receiveMsg_RunDailyJob(self, msg: RunDailyJob, sender: Any) -> DailyJobReport:
        return DailyJobReport(days=self.job.run(msg.until_day))
