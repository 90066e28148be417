"""The smart home's process actors: the ingest, one analyzer per sensor kind, and the writer.
(The query API, the MQTT edge and the simulator are in ``smart_home_api``, ``smart_home_mqtt`` and
``smart_home_sim``; the per-sensor state and rules in ``smart_home_state``.)

How a reading travels. The HTTPS edge (``actors.http_edge.HttpEdgeActor``) or the MQTT edge
validates it and hands the ingest one ``EdgeBatch`` per drained batch. The ingest refuses readings
of unknown sensors or impossible times (400 naming the field), then, by mode:

* **broker** (default): appends the batch to the broker's ``readings`` topic in one transaction and
  only then answers, so a 200 means "persisted". The writer and each analyzer consume the topic at
  their own committed offsets: killing either (even with SIGKILL) loses nothing, the restarted one
  resumes where it had finished, and the database keys make a replay store nothing twice.
* **direct**: the edge answers 202 at once and the ingest hands the batch in memory to the writer
  and the analyzer of each kind. Lower latency, but what a dying actor held is gone.

Storage faults of the outside world (disk full, a read-only file, PostgreSQL or NATS gone: a
``StorageUnavailableError``) are not crashes: each actor keeps a ``StorageBackoff``, refuses work
with the reason meanwhile (the ingest answers 503, which the edge sends on with ``Retry-After``;
the writer and the analyzers stop consuming) and tries the store again 0.1 s, 0.2 s, ... 2 s
later, so an outage spends no restart intensity and ends by itself when the store is back. Nothing
moves past a failure: the ingest remembers a reading only once it is appended, consumers commit
an offset only after what it produced is stored. Any other error is a bug and crashes the actor;
the supervisor restarts it and ``on_start`` rebuilds it from the stores.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

from actors.base import Actor
from actors.smart_home_state import HOUR_S, KindAnalysis
from actors.smart_home_store import (
    ALERTS_TOPIC,
    MODES_TOPIC,
    READINGS_TOPIC,
    ROLLUPS_TOPIC,
    TABLES,
    alert_db_row,
    latest_mode,
    mode_db_row,
    open_broker,
    pack,
    reading_db_row,
    rollup_db_row,
    rollups_since,
    unpack,
    writers,
)
from actors.storage import DurableLog, LogEntry, RowWriter, StorageBackoff, make_engine
from protocols.errors import StorageUnavailableError
from protocols.light import MonitorName, NameDown
from protocols.smart_home import (
    AnalyzerStats,
    CheckNow,
    GetAnalyzerStats,
    GetIngestStats,
    GetRoomStats,
    GetWriterStats,
    HouseConfig,
    IngestStats,
    ModeChange,
    ModeSet,
    OutputBatch,
    ReadingBatch,
    ReadingBody,
    RoomStats,
    WriterStats,
)
from protocols.storage import EdgeAnswers, EdgeBatch, Refusal, Stored
from protocols.supervision import ExitReason

log = logging.getLogger("ptr.smart_home")

INGEST = "sh-ingest"
WRITER = "sh-writer"
HTTP_EDGE = "sh-http"
API = "sh-api"
MQTT_EDGE = "sh-mqtt"
SIMULATOR = "sh-simulator"
WRITER_GROUP = "writer"
POLL_INTERVAL_S = 0.02  # the writer; analyzers are given 0.05 by the system (alerts may wait 50 ms)
COMMIT_INTERVAL_S = 0.25
MAX_ENTRIES = 256
REPLAY_SLICE = 2000
MINOR_TOPIC_EVERY = 5
CLOCK_TICK_S = 1.0
RETENTION_EVERY_S = 60.0  # how often the writer drops broker entries every consumer is done with
RETAIN_ENTRIES = 2000     # the newest readings entries are kept: the ingest refills its
                          # duplicate window from them when it restarts


def last_mode(broker: DurableLog) -> str | None:
    """The house mode of the newest change in the broker, if there was one."""
    end = broker.end_offset(MODES_TOPIC)
    if not end:
        return None
    return str(unpack(broker.read(MODES_TOPIC, end, 1)[0].payload)[-1]["mode"])


def analyzer_name(kind: str) -> str:
    """The registered name of the analyzer of ``kind`` (``sh-analyzer-heating``...)."""
    return f"sh-analyzer-{kind}"


def analyzer_group(kind: str) -> str:
    """The analyzer's consumer group; ``<group>-replay`` marks where its rebuild starts."""
    return f"analyzer-{kind}"


class PollBroker:
    """Timer message (and self-sent to continue a backlog): read what the broker has for us."""


class ClockTick:
    """Timer message: run the clock-driven rules (silence, closing hours)."""


class RebuildStep:
    """Self-sent: replay the next slice of the broker into a restarted analyzer's windows."""


class FlushWrites:
    """Timer message: the writer's direct-mode buffer is due."""


class ResolveName:
    """Timer message: ask the registry for ``name`` again."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class NamedTargets(Actor):
    """Keeps the current address of registered names (direct mode sends by name): resolved through
    the root, resolved again when the root says a name went down. A message for a name that is not
    resolved right now is dropped and counted; direct mode promises no more."""

    def track_names(self, names: Iterable[str]) -> None:
        self.target_addresses: dict[str, Any] = {}
        self.undelivered = 0
        for name in names:
            self.send(self.root, MonitorName(name=name, subscriber=self.myAddress))
            self.resolve_name(name)

    def resolve_name(self, name: str) -> None:
        def found(address: Any) -> None:
            if address is None:
                self.start_timer(0.05, ResolveName(name))
            else:
                self.target_addresses[name] = address
        self.whereis(name, found)

    def receiveMsg_ResolveName(self, msg: ResolveName, sender: Any) -> None:
        if sender == self.myAddress and self.target_addresses.get(msg.name) is None:
            self.resolve_name(msg.name)

    def receiveMsg_NameDown(self, msg: NameDown, sender: Any) -> None:
        if msg.name in getattr(self, "target_addresses", {}):
            self.target_addresses.pop(msg.name, None)
            self.resolve_name(msg.name)

    def tell_name(self, name: str, message: Any) -> bool:
        address = self.target_addresses.get(name)
        if address is None:
            self.undelivered += 1
            return False
        self.send(address, message)
        return True


# --- the ingest ----------------------------------------------------------------------------------

class ReadingIngest(NamedTargets):
    """Checks readings against the house and persists (broker) or forwards (direct) them.

    Answers each ``EdgeBatch`` with one answer per item: ``Stored`` (200 ``{"records": n}``), a 400
    ``Refusal`` naming the fields (unknown sensor, a kind the sensor is not, a time in the future or
    too old), or ``ModeSet`` for a mode change. A batch is all or nothing: one bad reading refuses
    its whole request, so a client's retry never half-repeats it. If the broker is unavailable
    (disk full, read-only, NATS down), every request of the batch that was to be stored is
    refused with a 503 ``Refusal`` naming the reason, nothing of it is remembered, and the broker
    is tried again by the first batch after the backoff (0.1 s doubling to 2 s); batches before
    that are refused at once; so is everything while the broker could not be opened yet (it was
    out when the ingest started). Any other broker error crashes this actor (the edge answers 503).

    A reading whose key (sensor and message id) is among the last ``dedup_window`` accepted is
    answered as stored and not passed on again: a client that retries because its answer was lost
    is not counted twice by the analyzers (the database's keys would skip it anyway). On start the
    window is refilled from the broker's newest entries.

    Args: ``house``, ``mode`` ("broker"/"direct"), ``broker_url``, ``max_age_s`` (7 days),
    ``max_skew_s`` (300), ``dedup_window`` (50,000 readings).
    """

    def on_start(self) -> None:
        args = self.args
        self.house: HouseConfig = args["house"]
        self.sensors = self.house.by_id()
        self.direct = args.get("mode", "broker") == "direct"
        self.max_age_s = float(args.get("max_age_s", 7 * 86400))
        self.max_skew_s = float(args.get("max_skew_s", 300))
        self.accepted = self.refused = self.appends = self.duplicates = self.unavailable = 0
        self.storage = StorageBackoff(self.path or INGEST, clock=self.clock)
        self.house_mode = "home"
        self.dedup_window = int(args.get("dedup_window", 50_000))
        self.recent: OrderedDict[str, None] = OrderedDict()
        self.broker: DurableLog | None = None
        self.opened = self.direct
        if self.direct:
            kinds = sorted({s.kind for s in self.house.sensors})
            self.track_names([WRITER, *(analyzer_name(k) for k in kinds)])
        else:
            self.storage.attempt(self.open_stores)

    def open_stores(self) -> None:
        """Open the broker and take from it what a restart needs (the house mode, the duplicate
        window). Until this worked (the broker may be out when the ingest starts) every request
        is refused with 503, and the next request after the backoff tries again."""
        if self.broker is None:
            self.broker = open_broker(str(self.args["broker_url"]))
        self.house_mode = last_mode(self.broker) or "home"
        self.refill_recent()
        self.opened = True

    def refill_recent(self, max_entries: int = 2000) -> None:
        """Remember the keys of the newest readings in the broker (at most ``max_entries``
        entries back), oldest first, so the window's order is the arrival order."""
        assert self.broker is not None
        end = self.broker.end_offset(READINGS_TOPIC)
        first = max(1, end - max_entries + 1)
        offset = first
        while offset <= end:
            entries = self.broker.read(READINGS_TOPIC, offset, 500)
            if not entries:
                break
            for entry in entries:
                for row in unpack(entry.payload):
                    self.remember(f"{row['sensor_id']}/{row['message_id']}")
            offset = entries[-1].offset + 1

    def remember(self, key: str) -> None:
        recent = self.recent
        recent[key] = None
        if len(recent) > self.dedup_window:
            recent.popitem(last=False)

    def on_stop(self, reason: ExitReason) -> None:
        if self.broker is not None:
            self.broker.close()

    def receiveMsg_EdgeBatch(self, msg: EdgeBatch, sender: Any) -> EdgeAnswers:
        if not self.opened and not self.storage.attempt(self.open_stores):
            return self.refuse_unavailable([None] * len(msg.items))  # no duplicate window yet
        now = time.time()
        answers: list[Any] = []
        rows: list[dict[str, Any]] = []
        modes: list[dict[str, Any]] = []
        fresh: dict[str, None] = {}  # keys of this batch, remembered once appended
        duplicates = 0
        for item in msg.items:
            body = item.body
            if isinstance(body, ModeChange):
                modes.append({"message_id": uuid.uuid4().hex, "mode": body.mode, "ts": now})
                answers.append(ModeSet(mode=body.mode, ts=now))
                continue
            batch = isinstance(body, list)
            readings = [b.root if isinstance(b, ReadingBody) else b
                        for b in (body if batch else [body])]
            refusal = self.check(readings, now, batch)
            if refusal is not None:
                self.refused += len(readings)
                answers.append(refusal)
                continue
            for reading in readings:
                key = f"{reading.sensor_id}/{reading.message_id}"
                if key in self.recent or key in fresh:
                    duplicates += 1
                    continue
                fresh[key] = None
                rows.append(reading.model_dump())
            answers.append(Stored(records=len(readings)))
        if (rows or modes) and not self.storage.attempt(lambda: self.persist(rows, modes, now)):
            return self.refuse_unavailable(answers)
        for key in fresh:
            self.remember(key)
        self.duplicates += duplicates
        self.accepted += len(rows)
        if modes:
            self.house_mode = modes[-1]["mode"]
        return EdgeAnswers(answers=answers)

    def refuse_unavailable(self, answers: list[Any]) -> EdgeAnswers:
        """The broker is out: every request that was to be stored (or to set the mode) is refused
        with 503 and the reason. None of it was acknowledged, so its client may send it again."""
        refusal = Refusal(status=503, error=f"storage unavailable: {self.storage.reason}")
        refused = [a if isinstance(a, Refusal) else refusal for a in answers]
        self.unavailable += sum(a is refusal for a in refused)
        return EdgeAnswers(answers=refused)

    def check(self, readings: Sequence[Any], now: float, batch: bool) -> Refusal | None:
        """The checks a schema cannot make: the sensor is installed, is of that kind, and the time
        is plausible. Returns a 400 ``Refusal`` naming up to 20 bad fields."""
        fields: list[dict[str, str]] = []
        for index, reading in enumerate(readings):
            prefix = f"{index}." if batch else ""
            config = self.sensors.get(reading.sensor_id)
            if config is None:
                fields.append({"field": prefix + "sensor_id",
                               "error": f"unknown sensor {reading.sensor_id!r}"})
            elif config.kind != reading.kind:
                fields.append({"field": prefix + "kind", "error": f"sensor {reading.sensor_id!r} "
                               f"is a {config.kind} sensor, not {reading.kind}"})
            if reading.ts > now + self.max_skew_s:
                fields.append({"field": prefix + "ts", "error": f"{reading.ts} is more than "
                               f"{self.max_skew_s:g} s in the future"})
            elif reading.ts < now - self.max_age_s:
                fields.append({"field": prefix + "ts", "error": f"{reading.ts} is older than "
                               f"{self.max_age_s:g} s"})
            if len(fields) >= 20:
                break
        if not fields:
            return None
        first = fields[0]
        more = f" (and {len(fields) - 1} more)" if len(fields) > 1 else ""
        return Refusal(status=400, error=f"{first['field']}: {first['error']}{more}", fields=fields)

    def persist(self, rows: list[dict[str, Any]], modes: list[dict[str, Any]], now: float) -> None:
        if not self.direct:
            assert self.broker is not None  # opened before the batch was looked at
            if modes:
                self.broker.append(MODES_TOPIC, [pack(modes)])
                self.appends += 1
            if rows:
                self.broker.append(READINGS_TOPIC, [pack(rows)])
                self.appends += 1
            return
        for row in rows:
            row["received_at"] = now
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_kind.setdefault(row["kind"], []).append(row)
        if modes:
            self.tell_name(WRITER, OutputBatch(table="modes", rows=modes))
            self.tell_name(analyzer_name("motion"), OutputBatch(table="modes", rows=modes))
        for kind, kind_rows in by_kind.items():
            self.tell_name(analyzer_name(kind), ReadingBatch(rows=kind_rows))
        if rows:
            self.tell_name(WRITER, ReadingBatch(rows=rows))

    def receiveMsg_GetIngestStats(self, msg: GetIngestStats, sender: Any) -> IngestStats:
        return IngestStats(accepted=self.accepted, refused=self.refused, appends=self.appends,
                           duplicates=self.duplicates, mode=self.house_mode,
                           unavailable=self.unavailable,
                           storage_unavailable=self.storage.reason or "",
                           storage_outages=self.storage.outages)


# --- the analyzers -------------------------------------------------------------------------------

class KindAnalyzer(NamedTargets):
    """Rolling statistics, hourly rollups and alerts for every sensor of one kind (plain objects in
    a ``KindAnalysis``; see ``smart_home_state`` for why not one actor per sensor).

    Broker mode: polls the ``readings`` topic every ``poll_interval_s``, appends what the readings
    triggered (alerts, rollups) to their topics, and only then commits its offset, at most every
    ``commit_interval_s`` (each commit is a write that every other broker writer queues behind); a
    crash before a commit replays those entries, and the alert and rollup keys make the repeat
    harmless, as they make the replay of a graceful restart's last commit harmless. On start
    it rebuilds its windows: hourly rollups from the database for old hours, and a silent replay of
    the broker from the start of the previous hour (a second committed offset, ``<group>-replay``,
    marks it) up to its committed offset. The replay runs in slices of ``REPLAY_SLICE`` entries,
    one message each, so the analyzer answers questions (and its supervisor) while it rebuilds;
    the silence rule waits until the analyzer has caught up with the broker, or every sensor
    would look silent for as long as the replay took.

    An unavailable broker or database pauses it (``StorageBackoff``): a failed read consumed
    nothing, outputs whose append failed are kept and appended before anything else is read, and
    the offset is committed only once the outputs of everything before it are appended. So a
    resumed analyzer counts every reading once, and a crash meanwhile replays from the commit.
    One that starts while a store is out begins its rebuild when the store answers.

    Direct mode: takes ``ReadingBatch`` messages and sends its outputs to the writer; a restart
    keeps only the rolled-up hours.

    Args: ``kind``, ``house``, ``mode``, ``broker_url``, ``db_url``, ``poll_interval_s``,
    ``commit_interval_s``.
    """

    def on_start(self) -> None:
        args = self.args
        self.kind = str(args["kind"])
        self.house: HouseConfig = args["house"]
        self.direct = args.get("mode", "broker") == "direct"
        self.poll_interval_s = float(args.get("poll_interval_s", POLL_INTERVAL_S))
        self.commit_interval_s = float(args.get("commit_interval_s", COMMIT_INTERVAL_S))
        self.committed_offset = 0  # the last offset committed (this incarnation's knowledge)
        self.committed_at = 0.0
        self.pending_alerts: list[dict[str, Any]] = []   # produced, not yet appended
        self.pending_rollups: list[dict[str, Any]] = []
        self.storage = StorageBackoff(self.path or self.kind, clock=self.clock)
        self.group = analyzer_group(self.kind)
        now = time.time()
        self.analysis = KindAnalysis(self.kind, self.house, started_at=now)
        self.engine = make_engine(str(args["db_url"]))
        self.broker: DurableLog | None = None
        self.opened = False
        self.next_offset = 1
        self.next_mode_offset = 1
        self.replayed = 0
        self.append_hour = -1
        self.append_hour_first = 0
        self.previous_hour_first = 0
        self.marker_committed = 0
        self.rebuild_until = 0
        self.rollups_loaded = False
        self.first_hour = int(now // HOUR_S)
        self.caught_up = False
        if self.direct:
            self.caught_up = True
            self.track_names([WRITER])
        else:
            self.start_timer(self.poll_interval_s, PollBroker(), repeat=True)
        self.start_timer(CLOCK_TICK_S, ClockTick(), repeat=True)
        self.storage.attempt(self.open_stores)

    def open_stores(self) -> None:
        """Create the tables (the rollups table must exist before it is read), then open the
        broker and begin the rebuild (direct mode: read the house mode and the stored rollups).
        If a store is out when the analyzer starts, its timers try again after the backoff."""
        writers(self.engine)
        if self.direct:
            if self.kind == "motion":
                self.analysis.set_mode(latest_mode(self.engine) or "home")
            self.load_rollups(self.first_hour)
        else:
            if self.broker is None:
                self.broker = open_broker(str(self.args["broker_url"]))
            self.begin_rebuild()
        self.opened = True

    def on_stop(self, reason: ExitReason) -> None:
        try:
            if self.broker is not None and self.commit_due(0.0):
                self.commit()  # a graceful stop keeps the next incarnation's replay short
        finally:
            if self.broker is not None:
                self.broker.close()
            if getattr(self, "engine", None) is not None:
                self.engine.dispose()

    # --- rebuilding ---------------------------------------------------------------------------

    @property
    def rebuilding(self) -> bool:
        return not self.opened or self.next_offset <= self.rebuild_until or not self.rollups_loaded

    def begin_rebuild(self) -> None:
        broker = self.broker
        assert broker is not None
        if self.kind == "motion":
            self.analysis.set_mode(last_mode(broker) or "home")
            self.next_mode_offset = broker.end_offset(MODES_TOPIC) + 1
        self.rebuild_until = self.committed_offset = broker.committed(self.group, READINGS_TOPIC)
        self.marker_committed = broker.committed(f"{self.group}-replay", READINGS_TOPIC)
        self.next_offset = self.marker_committed + 1
        if self.next_offset <= self.rebuild_until:
            self.send(self.myAddress, RebuildStep())
        else:
            self.load_rollups(self.first_hour)

    def receiveMsg_RebuildStep(self, msg: RebuildStep, sender: Any) -> None:
        if sender != self.myAddress:
            return
        if not self.storage.attempt(self.rebuild_step):
            self.start_timer(self.storage.wait_s(), RebuildStep())
        elif self.rebuilding:
            self.send(self.myAddress, RebuildStep())

    def rebuild_step(self) -> None:
        """Replay one slice (outputs suppressed: they were appended before the commit); at the end,
        put the stored rollups of the hours before the replay into the day windows."""
        if not self.rebuilding:
            return
        assert self.broker is not None
        if self.next_offset <= self.rebuild_until:
            entries = self.broker.read(READINGS_TOPIC, self.next_offset,
                                       min(REPLAY_SLICE, self.rebuild_until - self.next_offset + 1))
            if entries:
                if self.replayed == 0:
                    self.first_hour = int(entries[0].timestamp // HOUR_S)
                self.consume(entries, emit=False)
                self.replayed += len(entries)
            else:
                self.next_offset = self.rebuild_until + 1  # nothing there (never on one log)
        if self.next_offset > self.rebuild_until:
            self.load_rollups(self.first_hour)
            log.info("%s: rebuilt from %d broker entries", self.path, self.replayed)

    def load_rollups(self, before_hour: int) -> None:
        since = (before_hour - 24) * HOUR_S
        rows = rollups_since(self.engine, self.analysis.sensors, since)
        self.analysis.load_rollups(rows, before_hour)
        self.rollups_loaded = True

    # --- consuming ----------------------------------------------------------------------------

    def receiveMsg_PollBroker(self, msg: PollBroker, sender: Any) -> None:
        if self.direct:
            return
        if not self.opened:
            self.storage.attempt(self.open_stores)
        elif not self.rebuilding:
            self.storage.attempt(self.poll_broker)

    def poll_broker(self) -> None:
        """Append held outputs, read and analyze the next entries, append what they produced, and
        commit when due. Raises ``StorageUnavailableError`` where the broker fails; what was done
        before that stays done and is not repeated."""
        broker = self.broker
        assert broker is not None
        self.append_outputs()
        if self.kind == "motion":
            for entry in broker.read(MODES_TOPIC, self.next_mode_offset, MAX_ENTRIES):
                for change in unpack(entry.payload):
                    self.analysis.set_mode(change["mode"])
                self.next_mode_offset = entry.offset + 1
        entries = broker.read(READINGS_TOPIC, self.next_offset, MAX_ENTRIES)
        if entries:
            self.consume(entries, emit=True)
            self.append_outputs()
        if self.commit_due(self.commit_interval_s):
            self.commit()
        self.caught_up = len(entries) < MAX_ENTRIES
        if not self.caught_up:
            self.send(self.myAddress, PollBroker())  # a backlog: go on after other messages

    def commit_due(self, interval_s: float) -> bool:
        """Entries are analyzed past the commit, their outputs appended, and ``interval_s`` has
        passed since the last commit."""
        return (self.next_offset - 1 > self.committed_offset and not self.rebuilding
                and not (self.pending_alerts or self.pending_rollups)
                and time.monotonic() - self.committed_at >= interval_s)

    def commit(self) -> None:
        """Record what is finished (its outputs appended already), and where a replay starts."""
        broker = self.broker
        assert broker is not None
        done = self.next_offset - 1
        broker.commit(self.group, READINGS_TOPIC, done)
        self.committed_offset = done
        self.committed_at = time.monotonic()
        marker = self.previous_hour_first - 1
        if marker > self.marker_committed:
            broker.commit(f"{self.group}-replay", READINGS_TOPIC, marker)
            self.marker_committed = marker

    def consume(self, entries: list[LogEntry], *, emit: bool) -> None:
        alerts: list[dict[str, Any]] = []
        rollups: list[dict[str, Any]] = []
        ingest, kind = self.analysis.ingest, self.kind
        for entry in entries:
            self.track_hour(entry)
            received_at = entry.timestamp
            for row in unpack(entry.payload):
                if row["kind"] == kind:
                    ingest(row, received_at, alerts, rollups)
        self.next_offset = entries[-1].offset + 1
        if emit:
            self.emit(alerts, rollups)

    def track_hour(self, entry: LogEntry) -> None:
        """Remember where the previous hour of appends began: a restart replays from there."""
        hour = int(entry.timestamp // HOUR_S)
        if hour > self.append_hour:
            self.previous_hour_first = self.append_hour_first or entry.offset
            self.append_hour, self.append_hour_first = hour, entry.offset

    def receiveMsg_ReadingBatch(self, msg: ReadingBatch, sender: Any) -> None:
        alerts: list[dict[str, Any]] = []
        rollups: list[dict[str, Any]] = []
        for row in msg.rows:
            self.analysis.ingest(row, row["received_at"], alerts, rollups)
        self.emit(alerts, rollups)

    def receiveMsg_OutputBatch(self, msg: OutputBatch, sender: Any) -> None:
        if msg.table == "modes" and msg.rows:
            self.analysis.set_mode(msg.rows[-1]["mode"])

    def emit(self, alerts: list[dict[str, Any]], rollups: list[dict[str, Any]]) -> None:
        """Hand outputs on: held for the broker (``append_outputs``), or sent to the writer
        (direct mode)."""
        if not self.direct:
            self.pending_alerts.extend(alerts)
            self.pending_rollups.extend(rollups)
            return
        if alerts:
            self.tell_name(WRITER, OutputBatch(table="alerts", rows=alerts))
        if rollups:
            self.tell_name(WRITER, OutputBatch(table="rollups", rows=rollups))

    def append_outputs(self) -> None:
        """Append the held outputs to the broker; each list is dropped once appended. Raises
        ``StorageUnavailableError`` (keeping what is not appended) while the broker is out."""
        assert self.broker is not None
        if self.pending_alerts:
            self.broker.append(ALERTS_TOPIC, [pack(self.pending_alerts)])
            self.pending_alerts = []
        if self.pending_rollups:
            self.broker.append(ROLLUPS_TOPIC, [pack(self.pending_rollups)])
            self.pending_rollups = []

    # --- the clock ----------------------------------------------------------------------------

    def receiveMsg_ClockTick(self, msg: ClockTick, sender: Any) -> None:
        if not self.opened:
            self.storage.attempt(self.open_stores)
        if not self.caught_up:
            return
        now = time.time()
        self.emit(self.analysis.check_silence(now), self.analysis.close_hours(now))
        if self.pending_alerts or self.pending_rollups:  # broker mode: append them now if it can
            self.storage.attempt(self.append_outputs)

    def receiveMsg_CheckNow(self, msg: CheckNow, sender: Any) -> AnalyzerStats:
        if not self.opened:
            self.storage.attempt(self.open_stores)
        while self.opened and self.rebuilding and self.storage.attempt(self.rebuild_step):
            pass
        self.receiveMsg_PollBroker(PollBroker(), sender)
        self.receiveMsg_ClockTick(ClockTick(), sender)
        return self.stats()

    # --- questions ----------------------------------------------------------------------------

    def receiveMsg_GetRoomStats(self, msg: GetRoomStats, sender: Any) -> RoomStats:
        now = time.time()
        return RoomStats(room=msg.room, at=now, sensors=self.analysis.room_stats(msg.room, now))

    def receiveMsg_GetAnalyzerStats(self, msg: GetAnalyzerStats, sender: Any) -> AnalyzerStats:
        return self.stats()

    def stats(self) -> AnalyzerStats:
        a = self.analysis
        return AnalyzerStats(kind=self.kind, pid=os.getpid(), incarnation=self.incarnation,
                             sensors=len(a.sensors), readings=a.readings,
                             late_readings=a.late_readings, alerts=a.alerts, rollups=a.rollups,
                             replayed=self.replayed, next_offset=self.next_offset, mode=a.mode,
                             window_counts=a.hour_window_counts(time.time()),
                             storage_unavailable=self.storage.reason or "",
                             storage_outages=self.storage.outages)


# --- the writer ----------------------------------------------------------------------------------

class ReadingWriter(Actor):
    """The one actor that writes the database: readings, alerts, rollups and mode changes, each
    table in one idempotent ``RowWriter`` transaction per round.

    Broker mode: every ``poll_interval_s`` it reads up to ``MAX_ENTRIES`` entries of each topic,
    writes them, and then commits its offsets (at most every ``commit_interval_s``); killed before
    a commit, it writes the same rows again and the keys skip them. ``stored_at`` is the wall clock
    just before the transaction.
    Direct mode: buffers what it is sent and flushes every ``flush_s`` or ``max_rows`` readings.

    Retention (broker mode): every ``retention_every_s`` the writer drops the broker entries that
    every consumer is done with: readings below the oldest of its own committed offset and each
    analyzer's replay marker (a restarted analyzer rebuilds from there), keeping at least the
    newest ``retain_entries``; alerts and rollups below its own committed offset (it is their only
    reader). Mode changes are kept: they are few, and the newest one is the house's mode.

    An unavailable database or broker pauses it (``StorageBackoff``) instead of crashing it: in
    broker mode nothing moves past the failure (the offsets advance only after the rows are
    written, and the next try reads the same entries again; the keys skip what one table already
    took); in direct mode the rows stay buffered (in memory: a kill loses them) until a try works.
    A writer that starts while a store is out makes its tables and opens the broker when it can.

    Args: ``house``, ``mode``, ``broker_url``, ``db_url``, ``poll_interval_s``,
    ``commit_interval_s``, ``flush_s`` (0.05), ``max_rows`` (2000), ``retention_every_s`` (60),
    ``retain_entries`` (2000).
    """

    TOPICS = (READINGS_TOPIC, ALERTS_TOPIC, ROLLUPS_TOPIC, MODES_TOPIC)

    def on_start(self) -> None:
        args = self.args
        house: HouseConfig = args["house"]
        self.rooms = {s.sensor_id: s.room for s in house.sensors}
        self.direct = args.get("mode", "broker") == "direct"
        self.engine = make_engine(str(args["db_url"]))
        self.tables: dict[str, RowWriter] = {}   # made by open_stores
        self.counts = dict.fromkeys(("readings", "alerts", "rollups", "modes", "duplicates"), 0)
        self.recent_alerts: list[str] = []
        self.broker: DurableLog | None = None
        self.next: dict[str, int] = {}           # per topic, the next offset to read
        self.buffer: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}
        self.received_at: list[float] = []
        self.flush_timer: int | None = None
        self.flush_s = float(args.get("flush_s", 0.05))
        self.max_rows = int(args.get("max_rows", 2000))
        self.commit_interval_s = float(args.get("commit_interval_s", COMMIT_INTERVAL_S))
        self.polls = 0
        self.uncommitted: dict[str, int] = {}
        self.committed_at = 0.0
        self.kinds = sorted({s.kind for s in house.sensors})
        self.retention_every_s = float(args.get("retention_every_s", RETENTION_EVERY_S))
        self.retain_entries = int(args.get("retain_entries", RETAIN_ENTRIES))
        self.retained_at = time.monotonic()
        self.truncated = 0  # readings entries dropped by retention, this incarnation
        self.storage = StorageBackoff(self.path or WRITER, clock=self.clock)
        if not self.direct:
            self.start_timer(float(args.get("poll_interval_s", POLL_INTERVAL_S)), PollBroker(),
                             repeat=True)
        self.storage.attempt(self.open_stores)

    def open_stores(self) -> None:
        """Create the tables, then (broker mode) open the broker at the committed offsets. If a
        store is out when the writer starts, the next poll (direct mode: flush) after the
        backoff tries again; what is open stays open."""
        if not self.tables:
            self.tables = writers(self.engine)
        if not self.direct and not self.next:
            if self.broker is None:
                self.broker = open_broker(str(self.args["broker_url"]))
            self.next = {t: self.broker.committed(WRITER_GROUP, t) + 1 for t in self.TOPICS}

    def on_stop(self, reason: ExitReason) -> None:
        try:
            if self.direct and getattr(self, "tables", None):
                self.flush()  # a graceful stop writes what it holds
            elif self.broker is not None and self.uncommitted:
                self.commit()
        finally:
            if self.broker is not None:
                self.broker.close()
            if getattr(self, "engine", None) is not None:
                self.engine.dispose()

    # --- broker mode --------------------------------------------------------------------------

    def receiveMsg_PollBroker(self, msg: PollBroker, sender: Any) -> None:
        if not self.direct:
            self.storage.attempt(self.poll_broker)

    def poll_broker(self) -> None:
        """Read what is new in each topic, write it, then advance (and, when due, commit) the
        offsets, and apply retention when due. Raises ``StorageUnavailableError`` where the
        broker or the database fails; the next try starts again from the same offsets."""
        self.open_stores()
        broker = self.broker
        assert broker is not None
        self.buffer = {t: [] for t in TABLES}  # broker mode: the buffer is what was read
        self.received_at = []
        done: dict[str, int] = {}
        backlog = False
        self.polls += 1
        for topic in self.TOPICS:
            if topic != READINGS_TOPIC and self.polls % MINOR_TOPIC_EVERY:
                continue  # alerts, rollups and modes are rare: every few polls is soon enough
            entries = broker.read(topic, self.next[topic], MAX_ENTRIES)
            if not entries:
                continue
            backlog = backlog or len(entries) == MAX_ENTRIES
            done[topic] = entries[-1].offset
            self.take(topic, entries)
        if done:
            self.flush()
            for topic, offset in done.items():
                self.uncommitted[topic] = offset
                self.next[topic] = offset + 1
        if self.uncommitted and time.monotonic() - self.committed_at >= self.commit_interval_s:
            self.commit()
        if time.monotonic() - self.retained_at >= self.retention_every_s:
            self.apply_retention()
        if backlog:
            self.send(self.myAddress, PollBroker())

    def commit(self) -> None:
        assert self.broker is not None
        for topic, offset in self.uncommitted.items():
            self.broker.commit(WRITER_GROUP, topic, offset)
        self.uncommitted = {}
        self.committed_at = time.monotonic()

    def apply_retention(self) -> None:
        """Drop what every consumer is done with (see the class docstring); committed offsets are
        read from the broker, so an analyzer that never committed keeps everything."""
        broker = self.broker
        assert broker is not None
        self.retained_at = time.monotonic()
        done = min([broker.committed(WRITER_GROUP, READINGS_TOPIC)]
                   + [broker.committed(f"{analyzer_group(k)}-replay", READINGS_TOPIC)
                      for k in self.kinds])
        keep_from = min(done + 1, broker.end_offset(READINGS_TOPIC) - self.retain_entries + 1)
        first = broker.read(READINGS_TOPIC, 1, 1)
        if keep_from > 1 and first and first[0].offset < keep_from:
            broker.truncate(READINGS_TOPIC, keep_from)
            self.truncated += keep_from - first[0].offset
        for topic in (ALERTS_TOPIC, ROLLUPS_TOPIC):
            broker.truncate(topic, broker.committed(WRITER_GROUP, topic) + 1)

    def take(self, topic: str, entries: list[LogEntry]) -> None:
        """Buffer the rows of ``entries``; readings keep their entry's time as ``received_at``."""
        for entry in entries:
            rows = unpack(entry.payload)
            if topic == READINGS_TOPIC:
                self.buffer["readings"].extend(rows)
                self.received_at.extend([entry.timestamp] * len(rows))
            elif topic == ALERTS_TOPIC:
                self.buffer["alerts"].extend(rows)
            elif topic == ROLLUPS_TOPIC:
                self.buffer["rollups"].extend(rows)
            else:
                self.buffer["modes"].extend(rows)

    # --- direct mode --------------------------------------------------------------------------

    def receiveMsg_ReadingBatch(self, msg: ReadingBatch, sender: Any) -> None:
        self.buffer["readings"].extend(msg.rows)
        self.received_at.extend(row["received_at"] for row in msg.rows)
        self.flush_soon()

    def receiveMsg_OutputBatch(self, msg: OutputBatch, sender: Any) -> None:
        if msg.table in self.buffer and msg.table != "readings":
            self.buffer[msg.table].extend(msg.rows)
            self.flush_soon()

    def flush_soon(self) -> None:
        if len(self.buffer["readings"]) >= self.max_rows and self.storage.ready():
            self.write_buffer()
        elif self.flush_timer is None:
            self.flush_timer = self.start_timer(self.flush_s, FlushWrites())

    def receiveMsg_FlushWrites(self, msg: FlushWrites, sender: Any) -> None:
        self.flush_timer = None
        self.write_buffer()

    def write_buffer(self) -> None:
        """Direct mode: write what is buffered; while the database is out, a timer tries again."""
        if not self.storage.attempt(self.flush) and self.flush_timer is None:
            self.flush_timer = self.start_timer(self.flush_s, FlushWrites())

    # --- writing ------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write every buffered row, one transaction per table; a table's rows leave the buffer
        once written. Raises ``StorageError`` (``StorageUnavailableError``: the rest stays)."""
        if self.flush_timer is not None:
            self.cancel_timer(self.flush_timer)
            self.flush_timer = None
        self.open_stores()
        buffer = self.buffer
        stored_at = time.time()
        rooms = self.rooms
        if buffer["readings"]:
            rows = [reading_db_row(r, rooms.get(r["sensor_id"], "?"), at, stored_at)
                    for r, at in zip(buffer["readings"], self.received_at)]
            new = self.tables["readings"].write_batch(rows)
            buffer["readings"], self.received_at = [], []
            self.counts["readings"] += new
            self.counts["duplicates"] += len(rows) - new
        if buffer["alerts"]:
            self.counts["alerts"] += self.tables["alerts"].write_batch(
                [alert_db_row(a, stored_at) for a in buffer["alerts"]])
            self.recent_alerts = (self.recent_alerts + [a["text"] for a in buffer["alerts"]])[-5:]
            buffer["alerts"] = []
        if buffer["rollups"]:
            self.counts["rollups"] += self.tables["rollups"].write_batch(
                [rollup_db_row(r, stored_at) for r in buffer["rollups"]])
            buffer["rollups"] = []
        if buffer["modes"]:
            self.counts["modes"] += self.tables["modes"].write_batch(
                [mode_db_row(m, stored_at) for m in buffer["modes"]])
            buffer["modes"] = []

    def receiveMsg_GetWriterStats(self, msg: GetWriterStats, sender: Any) -> WriterStats:
        c = self.counts
        return WriterStats(pid=os.getpid(), incarnation=self.incarnation, readings=c["readings"],
                           duplicates=c["duplicates"], alerts=c["alerts"], rollups=c["rollups"],
                           modes=c["modes"], lag_entries=self.lag_entries(),
                           recent_alerts=self.recent_alerts, truncated_entries=self.truncated,
                           storage_unavailable=self.storage.reason or "",
                           storage_outages=self.storage.outages)

    def lag_entries(self) -> int:
        """Readings entries in the broker not written yet; -1 while the broker cannot say."""
        if self.direct:
            return 0
        if self.broker is None or not self.next:
            return -1
        try:
            return self.broker.end_offset(READINGS_TOPIC) - (self.next[READINGS_TOPIC] - 1)
        except StorageUnavailableError:
            return -1


__all__ = ["API", "HTTP_EDGE", "INGEST", "KindAnalyzer", "MQTT_EDGE", "NamedTargets",
           "ReadingIngest", "ReadingWriter", "SIMULATOR", "WRITER", "analyzer_group",
           "analyzer_name"]
