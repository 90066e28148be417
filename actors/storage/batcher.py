"""The ``Batcher``: a process actor that buffers records, writes them in one idempotent transaction
per flush, and acknowledges each sender only after that transaction committed.

Args (from the child spec): ``storage_url`` (database URL, see ``actors.storage.make_engine``), ``table``
(a ``RecordTable``), ``max_rows`` (flush when this many rows are buffered, default 1000),
``max_age_s`` (flush when the oldest buffered row is this old, default 0.005).

Lifecycle and failure rules:

* ``on_start`` builds a fresh engine and creates the table if missing; a restart does it again, so
  nothing of a crashed incarnation's connections is reused.
* A flush is one ``RowWriter.write_batch``: rows whose ``message_id`` is stored already are skipped,
  so a client that retries a batch after a crash or a timeout leaves no duplicate.
* Acknowledgements (``Stored``, or ``EdgeAnswers`` for an HTTP edge) go out after the commit. A crash
  or a SIGKILL before it loses only unacknowledged rows, which their senders retry.
* If the database refuses a flush, every sender of that flush gets an ``unavailable`` ``Refusal`` naming the
  reason. A fault of the outside world (``StorageUnavailableError``: disk full, read-only file,
  server gone) ends there: the Batcher lives on and the next flush tries again, so an outage spends
  none of its supervisor's restart intensity. Any other ``StorageError`` is a bug: the Batcher then
  crashes and its supervisor restarts it with a new engine.
* Rows that do not fit the table (no ``message_id``, unknown columns) are refused with a 400
  ``Refusal`` naming them; they never reach a flush, so they cannot fail other senders' rows.
* A graceful stop (shutdown or normal exit) flushes and acknowledges what is buffered.
* In flight is bounded: a flush runs inside the handler that fills the buffer to ``max_rows``, so at
  most ``max_rows`` plus one message's rows wait here. Back-pressure is the senders' credit window
  (an HTTP edge keeps a few requests in flight and answers 503 when its own bound is reached).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import Field

from actors.base import Actor, ReplyTo
from actors.storage import RecordTable, RowWriter, make_engine
from protocols.errors import StorageError, StorageUnavailableError
from protocols.message import Message
from protocols.edges import EdgeAnswers, EdgeBatch, Refusal
from protocols.message import ActorArgs
from protocols.storage import BatcherStats, FlushNow, GetBatcherStats, MESSAGE_ID, Stored, StoreRows
from protocols.supervision import ExitReason

__all__ = ["Batcher", "BatcherArgs", "DEFAULT_MAX_AGE_S", "DEFAULT_MAX_ROWS", "READINGS_TABLE"]

DEFAULT_MAX_ROWS = 1000
DEFAULT_MAX_AGE_S = 0.005


def _readings_table() -> RecordTable:
    import sqlalchemy as sa
    return RecordTable("readings", {"sensor": sa.String(64), "value": sa.Float()})


READINGS_TABLE = _readings_table()
"""The table for ``protocols.storage.SensorReading`` records."""


class _Waiting:
    """A sender whose rows are in the buffer: what to tell it after the commit, or on failure."""

    __slots__ = ("reply_to", "on_commit", "on_failure")

    def __init__(self, reply_to: ReplyTo, on_commit: Any, on_failure: Any) -> None:
        self.reply_to = reply_to
        self.on_commit = on_commit
        self.on_failure = on_failure


class BatcherArgs(ActorArgs):
    storage_url: str
    table: RecordTable
    max_rows: int = Field(default=DEFAULT_MAX_ROWS, ge=1)
    max_age_s: float = Field(default=DEFAULT_MAX_AGE_S, gt=0)


class Batcher(Actor):
    """Buffers rows and flushes them on size or age; see the module docstring for the rules."""

    Args = BatcherArgs

    def on_start(self) -> None:
        args = self.args
        typed: BatcherArgs = self.typed_args()
        table = typed.table
        self.max_rows = typed.max_rows
        self.max_age_s = typed.max_age_s
        self.rows: list[dict[str, Any]] = []
        self.waiting: list[_Waiting] = []
        self.age_timer: int | None = None
        self.flushes = self.rows_written = self.rows_new = self.refused = 0
        self.engine = make_engine(str(args["storage_url"]))
        self.writer = RowWriter(self.engine, table)
        self.writer.create()
        self.columns: tuple[str, ...] = tuple(self.writer.table.columns.keys())
        self.known_columns = frozenset(self.columns)

    def on_stop(self, reason: ExitReason) -> None:
        engine = getattr(self, "engine", None)
        if engine is None:  # on_start failed before there was anything to stop
            return
        try:
            self.flush_batch()  # a graceful stop acknowledges what it can; a failure refuses it
        finally:
            engine.dispose()

    # --- intake -------------------------------------------------------------------------------

    def receiveMsg_StoreRows(self, msg: StoreRows, sender: Any) -> Refusal | None:
        rows, refusal = self.rows_of(msg.rows)
        if refusal is not None:
            self.refused += 1
            return refusal
        self.buffer(rows, self.defer_reply(sender), Stored(records=len(rows)),
                    lambda error: Refusal.unavailable(error))
        return None

    def receiveMsg_EdgeBatch(self, msg: EdgeBatch, sender: Any) -> EdgeAnswers | None:
        answers: list[Any] = []
        rows: list[dict[str, Any]] = []
        for item in msg.items:
            item_rows, refusal = self.rows_of(_records_in(item.body))
            if refusal is not None:
                self.refused += 1
                answers.append(refusal)
            else:
                rows.extend(item_rows)
                answers.append(Stored(records=len(item_rows)))
        if not rows:  # every item refused: nothing to wait for
            return EdgeAnswers(answers=answers)
        count = len(answers)
        self.buffer(rows, self.defer_reply(sender), EdgeAnswers(answers=answers),
                    lambda error: EdgeAnswers(answers=[Refusal.unavailable(error)] * count))
        return None

    def rows_of(self, records: Iterable[Any]) -> tuple[list[dict[str, Any]], Refusal | None]:
        """Each record as a row with every column of the table (missing ones None), or a 400
        ``Refusal`` naming the first record that lacks a ``message_id`` or has unknown fields.

        A record message is taken as its fields (records are flat: one column per field). A row
        that has exactly the table's columns is used as it is, not copied.
        """
        columns, known = self.columns, self.known_columns
        rows = []
        for index, record in enumerate(records):
            raw = record.__dict__ if isinstance(record, Message) else record
            if isinstance(raw, Mapping) and raw.keys() == known and raw[MESSAGE_ID]:
                rows.append(raw)
                continue
            if not isinstance(raw, Mapping) or not raw.get(MESSAGE_ID):
                return [], Refusal.invalid(f"record {index} has no {MESSAGE_ID}",
                                           fields=[{"field": f"{index}.{MESSAGE_ID}", "error": "missing"}])
            if not known.issuperset(raw):
                unknown = sorted(set(raw) - known)
                return [], Refusal.invalid(f"record {index} has fields the table "
                                           f"{self.writer.table.name!r} lacks: {unknown}",
                                           fields=[{"field": f"{index}.{name}",
                                                    "error": "unknown column"}
                                                   for name in unknown])
            rows.append({column: raw.get(column) for column in columns})
        return rows, None

    def buffer(self, rows: list[dict[str, Any]], reply_to: ReplyTo, on_commit: Any,
               on_failure: Callable[[str], Any]) -> None:
        """Add one sender's rows; flush now if the buffer is full, else make sure a flush is due."""
        self.rows.extend(rows)
        self.waiting.append(_Waiting(reply_to, on_commit, on_failure))
        if len(self.rows) >= self.max_rows:
            self.flush_batch()
        elif self.age_timer is None:
            self.age_timer = self.start_timer(self.max_age_s, FlushNow())

    # --- flushing -----------------------------------------------------------------------------

    def receiveMsg_FlushNow(self, msg: FlushNow, sender: Any) -> None:
        if sender == self.myAddress:
            self.age_timer = None  # it fired; another sender's FlushNow cancels it in flush_batch
        self.flush_batch()

    def flush_batch(self) -> int:
        """Write the buffer in one transaction, then acknowledge its senders; returns new rows.

        Refuses every sender of a failed flush with a 503; then raises the ``StorageError``
        unless it is a ``StorageUnavailableError`` (see the module docstring).
        """
        if self.age_timer is not None:
            self.cancel_timer(self.age_timer)
            self.age_timer = None
        rows, waiting = self.rows, self.waiting
        if not waiting:
            return 0
        self.rows, self.waiting = [], []
        try:
            new = self.writer.write_batch(rows)
        except StorageError as exc:
            for entry in waiting:
                self.reply_later(entry.reply_to, entry.on_failure(f"storage failed: {exc}"))
            if isinstance(exc, StorageUnavailableError):
                return 0
            raise
        self.flushes += 1
        self.rows_written += len(rows)
        self.rows_new += new
        for entry in waiting:
            self.reply_later(entry.reply_to, entry.on_commit)
        return new

    # --- introspection ------------------------------------------------------------------------

    def receiveMsg_GetBatcherStats(self, msg: GetBatcherStats, sender: Any) -> BatcherStats:
        return BatcherStats(incarnation=self.incarnation, pid=os.getpid(),
                            buffered_rows=len(self.rows), waiting_senders=len(self.waiting),
                            flushes=self.flushes, rows_written=self.rows_written,
                            rows_new=self.rows_new, refused=self.refused)


def _records_in(body: Any) -> list[Any]:
    """An HTTP body is one record or a list of them."""
    return body if isinstance(body, list) else [body]
