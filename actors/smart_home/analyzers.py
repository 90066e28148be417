"""One analyzer per sensor kind: rolling statistics, hourly rollups and alert rules, consumed from
the broker at its own committed offset (rebuilt by replay after a restart)."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from actors.base import Actor
from actors.smart_home._shared import (
    AnalyzerArgs,
    CLOCK_TICK_S,
    MAX_ENTRIES,
    REPLAY_SLICE,
    ClockTick,
    PollBroker,
    RebuildStep,
    analyzer_group,
    last_mode,
)
from actors.smart_home.state import HOUR_S, KindAnalysis
from actors.smart_home.store import (
    ALERTS_TOPIC,
    MODES_TOPIC,
    READINGS_TOPIC,
    ROLLUPS_TOPIC,
    last_arrivals,
    latest_mode,
    open_broker,
    pack,
    rollups_since,
    unpack,
    writers,
)
from actors.storage import DurableLog, LogEntry, StorageBackoff, make_engine
from protocols.smart_home import (
    AnalyzerStats,
    CheckNow,
    GetAnalyzerStats,
    GetOpenAlerts,
    GetRoomStats,
    OpenAlert,
    OpenAlerts,
    HouseConfig,
    OutputBatch,
    ReadingBatch,
    RoomStats,
)
from protocols.supervision import ExitReason

log = logging.getLogger("ptr.smart_home")


class KindAnalyzer(Actor):
    """Rolling statistics, hourly rollups and alerts for every sensor of one kind (plain objects in
    a ``KindAnalysis``; see ``actors.smart_home.state`` for why not one actor per sensor).

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

    Args: ``kind``, ``house``, ``mode``, ``broker_url``, ``storage_url``, ``poll_interval_s``,
    ``commit_interval_s``.
    """

    Args = AnalyzerArgs

    def on_start(self) -> None:
        args: AnalyzerArgs = self.typed_args()
        self.kind = args.kind
        self.writer = self.peer(args.writer)
        self.house: HouseConfig = args.house
        self.direct = args.mode == "direct"
        self.poll_interval_s = args.poll_interval_s
        self.commit_interval_s = args.commit_interval_s
        self.committed_offset = 0  # the last offset committed (this incarnation's knowledge)
        self.committed_at = 0.0
        self.pending_alerts: list[dict[str, Any]] = []   # produced, not yet appended
        self.pending_rollups: list[dict[str, Any]] = []
        self.storage = StorageBackoff(self.path or self.kind, clock=self.clock)
        self.group = analyzer_group(self.kind)
        now = time.time()
        self.up_since = self.clock()  # silence is judged once up for the silence window
        self.analysis = KindAnalysis(self.kind, self.house, started_at=now)
        self.engine = make_engine(args.storage_url)
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
            self.writer.prefetch()
        else:
            self.start_timer(self.poll_interval_s, PollBroker(), repeat=True)
        self.start_timer(CLOCK_TICK_S, ClockTick(), repeat=True)
        self.storage.attempt(self.open_stores)

    def open_stores(self) -> None:
        """Create the tables (the rollups table must exist before it is read), then open the
        broker and begin the rebuild (direct mode: read the house mode and the stored rollups).
        If a store is out when the analyzer starts, its timers try again after the backoff."""
        writers(self.engine)
        self.analysis.load_last_seen(last_arrivals(self.engine, self.analysis.sensors))
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
            self.writer.send(OutputBatch(table="alerts", rows=alerts))
        if rollups:
            self.writer.send(OutputBatch(table="rollups", rows=rollups))

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
        self.emit(self.analysis.check_silence(now, self.clock() - self.up_since),
                  self.analysis.close_hours(now))
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

    def receiveMsg_GetOpenAlerts(self, msg: GetOpenAlerts, sender: Any) -> OpenAlerts:
        now = time.time()
        return OpenAlerts(at=now, alerts=[OpenAlert.model_validate(a)
                                          for a in self.analysis.open_alerts(now)])

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
