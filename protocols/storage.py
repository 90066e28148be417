"""What the edges and the ``Batcher`` say: records in, answers after the commit, edge endpoints.

The HTTP edge sends one ``EdgeBatch`` request per batch it drains from its bridge and expects one
``EdgeAnswers`` reply with an answer per item, in order. The UDP edge sends one ``DatagramBatch``
request per drained batch and sends out whatever ``SendDatagrams`` comes back. The ``Batcher`` takes
``StoreRows`` (from any actor) and ``EdgeBatch`` (from an HTTP edge) and answers only after the
commit. Pure data: nothing here imports Thespian or the database.
"""

from __future__ import annotations

import pickle
from typing import Any

from pydantic import Field

from protocols.message import Message

MESSAGE_ID = "message_id"
"""The key every stored record carries; a record whose id is stored already is skipped."""


class _Count:
    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __repr__(self) -> str:
        return f"<{self.n} items>"


class BulkMessage(Message):
    """A message that carries thousands of items and shows only their counts in ``repr``/``str``.

    Thespian formats ``str(message)`` for every send (a debug log argument, evaluated whether or not
    it is logged); a pydantic repr of 3,000 datagrams costs ~30 ms, 40 times the pickling.
    """

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, _Count(len(value)) if isinstance(value, (list, tuple, dict)) else value


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


class Refusal(Message):
    """A request was not carried out. ``status`` follows HTTP: 400 the sender's fault (``fields``
    names what is wrong), 503 try again later (storage failed, or the tree is saturated)."""

    status: int
    error: str
    fields: list[dict[str, Any]] = []


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


# --- HTTP edge <-> its targets ------------------------------------------------------------------

class EdgeItem(Message):
    """One HTTP request's validated body: ``route`` is the route's name, ``peer`` the client address.

    ``body`` is plain data: a validated message arrives as the dict of its fields, a list of them as
    a list of dicts (rebuild a model with ``Model.model_construct(**fields)`` if you want one).

    ``wants_answer`` is False for an ``ACCEPTED`` route (the client already has its 202); its answer
    is still expected, and ignored.
    """

    route: str
    body: Any
    peer: str = ""
    wants_answer: bool = True


class EdgeBatch(BulkMessage):
    """Request from an HTTP edge: the items it drained, in arrival order. Answer with ``EdgeAnswers``."""

    items: list[EdgeItem]


class EdgeAnswers(BulkMessage):
    """One answer per ``EdgeBatch`` item, in order: a ``Refusal`` becomes that status code, anything
    else is the JSON body of a 200."""

    answers: list[Any]


class GetEdgeInfo(Message):
    """Ask an edge where it listens; answered with ``EdgeInfo``."""


class EdgeInfo(Message):
    """Where an edge listens; for a bridged edge also how many batches it has sent its targets
    and how many items they held (this incarnation), which shows what batching achieves."""

    scheme: str  # "http", "https" or "udp"
    host: str
    port: int
    incarnation: int = 0
    batches_sent: int = 0
    items_sent: int = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


# --- UDP edge <-> its target --------------------------------------------------------------------

class DatagramBatch(BulkMessage):
    """Request from a UDP edge: ``count`` decoded datagrams, packed by the edge's loop thread.

    ``datagrams()`` unpacks them as ``(peer address, decoded datagram)`` pairs in arrival order (on
    each call: keep the result). They travel packed (pickled, as Thespian would pickle them anyway)
    because packing in the edge's reading thread, between reads, costs the reader far less than the
    actor thread pickling thousands of objects while the reader waits for the GIL.
    Answer with ``SendDatagrams`` (empty when there is nothing to send back).
    """

    count: int
    packed: list[bytes]

    def datagrams(self) -> list[tuple[Any, Any]]:
        return [pair for blob in self.packed for pair in pickle.loads(blob)]

    @classmethod
    def pack(cls, datagrams: list[tuple[Any, Any]]) -> bytes:
        """One blob of ``(address, item)`` pairs, as ``packed`` holds them."""
        return pickle.dumps(datagrams, protocol=pickle.HIGHEST_PROTOCOL)


class SendDatagrams(BulkMessage):
    """``(address, bytes)`` pairs a UDP edge sends from its own socket; an answer to a
    ``DatagramBatch`` or a message to the edge at any time."""

    datagrams: list[tuple[Any, bytes]] = []


class GetUdpEdgeStats(Message):
    """Ask a UDP edge for its counters; answered with ``UdpEdgeStats``."""


class UdpEdgeStats(Message):
    received: int
    decoded: int
    dropped_bad: int
    dropped_saturated: int
    batches_waiting: int
    batches_delivered: int
    datagrams_delivered: int
    sent: int
    send_dropped: int
    incarnation: int


class GetDatagramCounts(Message):
    """Ask a ``DatagramSink`` what reached it; answered with ``DatagramCounts``."""


class DatagramCounts(Message):
    datagrams: int
    batches: int
    first_at: float = 0.0  # time.monotonic() in the sink's process when the first batch arrived
    last_at: float = 0.0
    last_items: list[Any] = []
