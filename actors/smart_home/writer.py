"""The writer: stores readings, alerts, rollups and modes in the database, consuming the broker at
its committed offsets (idempotent by message id), and drops what every consumer is done with."""

from __future__ import annotations

import os
import time
from typing import Any

from actors.base import Actor
from actors.smart_home._shared import (
    WriterArgs,
    MAX_ENTRIES,
    MINOR_TOPIC_EVERY,
    WRITER_GROUP,
    FlushWrites,
    PollBroker,
    analyzer_group,
)
from actors.smart_home.store import (
    ALERTS_TOPIC,
    MODES_TOPIC,
    READINGS_TOPIC,
    ROLLUPS_TOPIC,
    TABLES,
    alert_db_row,
    mode_db_row,
    open_broker,
    reading_db_row,
    rollup_db_row,
    row_counts,
    unpack,
    unpack_entry,
    unpack_total,
    writers,
)
from actors.storage import DurableLog, LogEntry, RowWriter, StorageBackoff, make_engine
from protocols.errors import StorageUnavailableError
from protocols.smart_home import (
    GetWriterStats,
    HouseConfig,
    OutputBatch,
    ReadingBatch,
    WriterStats,
)
from protocols.supervision import ExitReason


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

    Args: ``house``, ``mode``, ``broker_url``, ``storage_url``, ``poll_interval_s``,
    ``commit_interval_s``, ``flush_s`` (0.05), ``max_rows`` (2000), ``retention_every_s`` (60),
    ``retain_entries`` (2000).
    """

    TOPICS = (READINGS_TOPIC, ALERTS_TOPIC, ROLLUPS_TOPIC, MODES_TOPIC)

    Args = WriterArgs

    def on_start(self) -> None:
        args: WriterArgs = self.typed_args()
        house: HouseConfig = args.house
        self.rooms = {s.sensor_id: s.room for s in house.sensors}
        self.direct = args.mode == "direct"
        self.engine = make_engine(args.storage_url)
        self.tables: dict[str, RowWriter] = {}   # made by open_stores
        self.counts = dict.fromkeys(("readings", "alerts", "rollups", "modes", "duplicates"), 0)
        self.recent_alerts: list[str] = []
        self.counted = False
        self.last_total: int | None = None  # the running total of the newest entry read
        self.broker: DurableLog | None = None
        self.next: dict[str, int] = {}           # per topic, the next offset to read
        self.buffer: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}
        self.received_at: list[float] = []
        self.flush_timer: int | None = None
        self.flush_s = args.flush_s
        self.max_rows = args.max_rows
        self.commit_interval_s = args.commit_interval_s
        self.polls = 0
        self.uncommitted: dict[str, int] = {}
        self.committed_at = 0.0
        self.kinds = sorted({s.kind for s in house.sensors})
        self.retention_every_s = args.retention_every_s
        self.retain_entries = args.retain_entries
        self.retained_at = time.monotonic()
        self.truncated = 0  # readings entries dropped by retention, this incarnation
        self.storage = StorageBackoff(self.path or "writer", clock=self.clock)
        if not self.direct:
            self.start_timer(args.poll_interval_s, PollBroker(),
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
            next_offsets = {t: self.broker.committed(WRITER_GROUP, t) + 1 for t in self.TOPICS}
            self.load_counts(next_offsets[READINGS_TOPIC] - 1)
            self.next = next_offsets
        elif self.direct and not self.counted:
            self.load_counts(0)

    def load_counts(self, readings_offset: int) -> None:
        """Counters continue from durable state, not from 0: alerts, rollups and modes are the
        rows their tables hold; readings the running total the broker entry at the committed
        ``readings_offset`` carries (a count of the table where it carries none)."""
        total = None
        if readings_offset > 0 and self.broker is not None:
            entries = self.broker.read(READINGS_TOPIC, readings_offset, 1)
            if entries and entries[0].offset == readings_offset:
                total = unpack_total(entries[0].payload)
        names = ("alerts", "rollups", "modes") if total is not None else \
            ("readings", "alerts", "rollups", "modes")
        self.counts.update(row_counts(self.engine, names))
        if total is not None:
            self.counts["readings"] = total
        self.counted = True

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
            if topic == READINGS_TOPIC:
                rows, self.last_total = unpack_entry(entry.payload)
                self.buffer["readings"].extend(rows)
                self.received_at.extend([entry.timestamp] * len(rows))
                continue
            rows = unpack(entry.payload)
            if topic == ALERTS_TOPIC:
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
            if self.last_total is not None and not self.direct:
                self.counts["readings"] = self.last_total  # every reading accepted up to here
            else:
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
