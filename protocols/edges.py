"""What the edges say to the actors behind them: an HTTP edge's ``EdgeBatch`` of validated requests
answered by ``EdgeAnswers`` (one per item: a ``Refusal`` names its kind, which the edge maps to
its wire), a UDP edge's
``DatagramBatch`` answered by ``SendDatagrams``, and where an edge listens. Pure data.
"""

from __future__ import annotations

import pickle
from typing import Any

from protocols.errors import RefusalKind, RefusedError
from protocols.message import BulkMessage, Message


class Refusal(Message):
    """A request was not carried out: ``reason`` is the kind (``invalid``: the sender's fault,
    ``fields`` names what is wrong; ``unavailable``: try again later, a store is out...), ``error``
    the text. No wire code: the HTTP edge maps the kind to a status, MQTT to an acknowledgement."""

    reason: RefusalKind
    error: str
    fields: list[dict[str, Any]] = []
    retry_after_s: float | None = None

    @classmethod
    def invalid(cls, error: str, fields: list[dict[str, Any]] | None = None) -> Refusal:
        return cls(reason=RefusalKind.INVALID, error=error, fields=fields or [])

    @classmethod
    def unavailable(cls, error: str) -> Refusal:
        return cls(reason=RefusalKind.UNAVAILABLE, error=error)

    @property
    def retryable(self) -> bool:
        """True when the same request may succeed later (unavailable, too_many, timeout)."""
        return self.reason in (RefusalKind.UNAVAILABLE, RefusalKind.TOO_MANY, RefusalKind.TIMEOUT)

    def as_error(self, **context: Any) -> RefusedError:
        """The exception an edge answers this refusal with."""
        return RefusedError(self.error, refusal=self.reason, fields=list(self.fields),
                            retry_after_s=self.retry_after_s, **context)


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
    """One answer per ``EdgeBatch`` item, in order: a ``Refusal`` refuses that item (the edge maps its
    kind to its wire), anything else is the JSON body of a 200."""

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
