"""The ingest: checks each batch of readings and, in broker mode, appends it to the broker before
answering (a 200 means persisted); in direct mode hands it in memory to the writer and analyzers."""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from actors.base import Actor
from actors.smart_home._shared import (
    IngestArgs,
    last_mode,
)
from actors.smart_home.store import (
    ALERTS_TOPIC,
    MODES_TOPIC,
    READINGS_TOPIC,
    newest_total,
    open_broker,
    pack,
    StoredKeys,
    reading_digest,
    unpack,
)
from actors.storage import DurableLog, StorageBackoff, make_engine
from protocols.smart_home import (
    BrokerAlert,
    GetIngestStats,
    HouseConfig,
    IngestStats,
    ModeChange,
    ModeSet,
    OutputBatch,
    ReadingBatch,
    ReadingBody,
)
from protocols.edges import EdgeAnswers, EdgeBatch, Refusal
from protocols.errors import RefusalKind, StorageError
from protocols.storage import Stored
from protocols.supervision import ExitReason

log = logging.getLogger("ptr.smart_home.ingest")

DB_RETRY_S = 5.0  # after a failed database look-up, how long keys are checked in the window only


def conflict(key: str, batch_index: int | None) -> Refusal:
    """409: ``key``'s message id was accepted before with another reading (or twice in a batch)."""
    sensor_id, _, message_id = key.partition("/")
    field = f"{batch_index}.message_id" if batch_index is not None else "message_id"
    return Refusal(reason=RefusalKind.CONFLICT,
                   error=f"message_id {message_id!r} of sensor {sensor_id!r} was already used "
                         "for a different reading; a new reading needs a new message_id",
                   fields=[{"field": field, "error": f"message_id {message_id!r} reused with "
                            "a different reading"}])


class ReadingIngest(Actor):
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

    A ``message_id`` is an idempotency key with meaning (as payment APIs treat theirs): a reading
    whose key (sensor and message id) was accepted before is answered as stored and not passed on
    again when it is the same reading (a client retrying because its answer was lost is not
    counted twice), and refused with 409 ``conflict`` naming the id when it differs (a sensor whose
    counter restarted after a power cut is told, not silently dropped). So is a batch holding
    two different readings under one key. Keys are looked up among the last ``dedup_window``
    accepted (refilled from the broker's newest entries on start) and then in the database (one
    query per ``EdgeBatch`` for the keys not in the window). While the database cannot be read,
    that second look is skipped for ``DB_RETRY_S`` and counted (``unchecked``): availability of
    the ingest does not hang on the database's.

    Args: ``writer`` and ``analyzers`` (the registered names of its peers: the writer's, and one
    per sensor kind), ``house``, ``mode`` ("broker"/"direct"), ``broker_url``, ``max_age_s`` (7 days),
    ``max_skew_s`` (300), ``dedup_window`` (50,000 readings).
    """

    Args = IngestArgs

    def on_start(self) -> None:
        args: IngestArgs = self.typed_args()
        self.house: HouseConfig = args.house
        self.sensors = self.house.by_id()
        self.direct = args.mode == "direct"
        self.max_age_s = args.max_age_s
        self.max_skew_s = args.max_skew_s
        self.accepted = self.refused = self.appends = self.duplicates = self.unavailable = 0
        self.conflicts = self.unchecked = 0
        self.engine = make_engine(args.storage_url)
        self.stored_keys = StoredKeys(self.engine)
        self.db_retry_at = 0.0
        self.storage = StorageBackoff(self.path or "ingest", clock=self.clock)
        self.writer = self.peer(args.writer)
        self.analyzers = {kind: self.peer(name) for kind, name in args.analyzers.items()}
        self.undelivered = 0
        self.house_mode = "home"
        self.dedup_window = args.dedup_window
        self.recent: OrderedDict[str, int] = OrderedDict()  # key -> the reading's digest
        self.broker: DurableLog | None = None
        self.opened = self.direct
        if self.direct:  # sends in memory to its peers: find them now, not on the first batch
            for peer in (self.writer, *self.analyzers.values()):
                peer.prefetch()
        else:
            self.storage.attempt(self.open_stores)

    def open_stores(self) -> None:
        """Open the broker and take from it what a restart needs (the house mode, the duplicate
        window). Until this worked (the broker may be out when the ingest starts) every request
        is refused with 503, and the next request after the backoff tries again."""
        if self.broker is None:
            self.broker = open_broker(str(self.args["broker_url"]))
        self.house_mode = last_mode(self.broker) or "home"
        self.accepted = newest_total(self.broker) or 0  # carried across restarts
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
                    self.remember(f"{row['sensor_id']}/{row['message_id']}", reading_digest(row))
            offset = entries[-1].offset + 1

    def remember(self, key: str, digest: int) -> None:
        recent = self.recent
        recent[key] = digest
        if len(recent) > self.dedup_window:
            recent.popitem(last=False)

    def on_stop(self, reason: ExitReason) -> None:
        if self.broker is not None:
            self.broker.close()
        if getattr(self, "engine", None) is not None:
            self.stored_keys.close()
            self.engine.dispose()

    def receiveMsg_EdgeBatch(self, msg: EdgeBatch, sender: Any) -> EdgeAnswers:
        if not self.opened and not self.storage.attempt(self.open_stores):
            return self.refuse_unavailable([None] * len(msg.items))  # no duplicate window yet
        now = time.time()
        answers: list[Any] = []
        modes: list[dict[str, Any]] = []
        requests: list[tuple[int, bool, list[tuple[str, int, dict[str, Any]]]]] = []
        unknown: list[str] = []
        recent = self.recent
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
            keyed = []
            for reading in readings:
                row = reading.model_dump()
                key = f"{reading.sensor_id}/{reading.message_id}"
                keyed.append((key, reading_digest(row), row))
                if key not in recent:
                    unknown.append(key)
            requests.append((len(answers), batch, keyed))
            answers.append(None)
        stored = self.stored_digests(unknown) if unknown else {}
        rows: list[dict[str, Any]] = []
        fresh: dict[str, int] = {}  # keys of this EdgeBatch, remembered once appended
        duplicates = 0
        for position, batch, keyed in requests:
            answers[position], new, repeats = self.decide(keyed, batch, fresh, stored)
            if new is None:
                self.refused += len(keyed)
                self.conflicts += 1
                continue
            duplicates += repeats
            for key, digest, row in new:
                fresh[key] = digest
                rows.append(row)
        if (rows or modes) and not self.storage.attempt(lambda: self.persist(rows, modes, now)):
            return self.refuse_unavailable(answers)
        for key, digest in fresh.items():
            self.remember(key, digest)
        self.duplicates += duplicates
        self.accepted += len(rows)
        if modes:
            self.house_mode = modes[-1]["mode"]
        return EdgeAnswers(answers=answers)

    def decide(self, keyed: list[tuple[str, int, dict[str, Any]]], batch: bool,
               fresh: dict[str, int], stored: dict[str, int],
               ) -> tuple[Any, list[tuple[str, int, dict[str, Any]]] | None, int]:
        """One request's answer, its new readings (None: refused) and how many it repeated.
        A key seen before with another digest refuses the whole request with 409."""
        recent = self.recent
        new: list[tuple[str, int, dict[str, Any]]] = []
        mine: dict[str, int] = {}
        repeats = 0
        for index, (key, digest, row) in enumerate(keyed):
            known = mine.get(key)
            if known is None:
                known = fresh.get(key)
            if known is None:
                known = recent.get(key)
            if known is None:
                known = stored.get(key)
            if known is None:
                mine[key] = digest
                new.append((key, digest, row))
            elif known != digest:
                return conflict(key, index if batch else None), None, 0
            else:
                repeats += 1
        return Stored(records=len(keyed)), new, repeats

    def stored_digests(self, keys: list[str]) -> dict[str, int]:
        """The digests of the readings the database holds under ``keys`` (those outside the
        window). Skipped (and counted) for ``DB_RETRY_S`` after the database failed."""
        if self.direct:
            return {}
        now = self.clock()
        if now < self.db_retry_at:
            self.unchecked += len(keys)
            return {}
        try:
            return self.stored_keys.digests(keys)
        except StorageError as exc:
            self.db_retry_at = now + DB_RETRY_S
            self.unchecked += len(keys)
            log.warning("%s: reused message ids not checked in the database for %g s: %s",
                        self.path, DB_RETRY_S, exc)
            return {}

    def refuse_unavailable(self, answers: list[Any]) -> EdgeAnswers:
        """The broker is out: every request that was to be stored (or to set the mode) is refused
        with 503 and the reason. None of it was acknowledged, so its client may send it again."""
        refusal = Refusal.unavailable(f"storage unavailable: {self.storage.reason}")
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
        return Refusal.invalid(f"{first['field']}: {first['error']}{more}", fields)

    def persist(self, rows: list[dict[str, Any]], modes: list[dict[str, Any]], now: float) -> None:
        if not self.direct:
            assert self.broker is not None  # opened before the batch was looked at
            if modes:
                self.broker.append(MODES_TOPIC, [pack(modes)])
                self.appends += 1
            if rows:
                self.broker.append(READINGS_TOPIC, [pack(rows, self.accepted + len(rows))])
                self.appends += 1
            return
        for row in rows:
            row["received_at"] = now
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_kind.setdefault(row["kind"], []).append(row)
        if modes:
            self.writer.send(OutputBatch(table="modes", rows=modes), self.lost)
            if "motion" in self.analyzers:
                self.analyzers["motion"].send(OutputBatch(table="modes", rows=modes), self.lost)
        for kind, kind_rows in by_kind.items():
            self.analyzers[kind].send(ReadingBatch(rows=kind_rows), self.lost)
        if rows:
            self.writer.send(ReadingBatch(rows=rows), self.lost)

    def lost(self) -> None:
        """Direct mode: a batch whose peer stayed down was dropped (direct mode promises no more)."""
        self.undelivered += 1

    def receiveMsg_BrokerAlert(self, msg: BrokerAlert, sender: Any) -> None:
        """Store what the MQTT edge learnt from the broker as an alert (a loss must not be
        silent). Broker mode: appended to the alerts topic; direct: sent to the writer."""
        alert = {"alert_id": f"{msg.rule}:{msg.ts:.6f}", "rule": msg.rule, "sensor_id": "mqtt",
                 "room": "", "kind": "mqtt", "ts": msg.ts, "value": msg.value, "threshold": 0.0,
                 "text": msg.text}
        log.warning("%s: %s", self.path, msg.text)
        if self.direct:
            self.writer.send(OutputBatch(table="alerts", rows=[alert]), self.lost)
        elif self.broker is not None:
            broker = self.broker
            self.storage.attempt(lambda: broker.append(ALERTS_TOPIC, [pack([alert])]))

    def receiveMsg_GetIngestStats(self, msg: GetIngestStats, sender: Any) -> IngestStats:
        return IngestStats(accepted=self.accepted, refused=self.refused, appends=self.appends,
                           duplicates=self.duplicates, mode=self.house_mode,
                           conflicts=self.conflicts, unchecked=self.unchecked,
                           unavailable=self.unavailable,
                           storage_unavailable=self.storage.reason or "",
                           storage_outages=self.storage.outages)
