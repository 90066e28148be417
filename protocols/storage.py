"""What the ``Batcher`` says: records in (``StoreRows`` from any actor, or an HTTP edge's
``EdgeBatch``), answered only after the commit. Pure data: nothing here imports Thespian or the
database. (What the edges say is in ``protocols.edges``.)
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from protocols.message import BulkMessage, Message

MESSAGE_ID = "message_id"
"""The key every stored record carries; a record whose id is stored already is skipped."""


# --- records ------------------------------------------------------------------------------------

class SensorReading(Message):
    """One measurement, the record the edge tests and ``ptr bench edges`` carry into a Batcher.

    ``message_id`` is chosen by the client and kept when it retries, so a retried batch is stored
    once.
    """

    message_id: str = Field(min_length=1, max_length=128)
    sensor: str = Field(min_length=1, max_length=64)
    value: float


class StoreRows(BulkMessage):
    """Request to a Batcher: store ``rows`` (dicts with a ``message_id`` and table columns).

    Answered with ``Stored`` once the rows are committed, or with a ``Refusal``.
    """

    rows: list[dict[str, Any]]


class Stored(Message):
    """The records of one request are committed (the duplicates among them were skipped)."""

    records: int


class FlushNow(Message):
    """Flush a Batcher's buffer now: its age timer's message, and anyone's way to force a flush."""


class GetBatcherStats(Message):
    """Ask a Batcher for its counters; answered with ``BatcherStats``."""


class BatcherStats(Message):
    incarnation: int
    pid: int
    buffered_rows: int
    waiting_senders: int
    flushes: int
    rows_written: int
    rows_new: int
    refused: int
