"""The durable log interface: topics of byte payloads at offsets 1, 2, 3..., replayable from any
offset, with consumer groups that each keep one committed offset per topic (Kafka's model).

Backends: :class:`~actors.storage.log_sqlite.SqliteLog` (embedded) and
:class:`~actors.storage.log_jetstream.JetStreamLog` (NATS JetStream). Both check arguments here, so
a caller's mistake gets the same answer whichever backend runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType

from actors.storage._names import check_name
from protocols.errors import StorageError


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One stored payload: its offset in the topic, its bytes, and when the log stored it (Unix s)."""

    offset: int
    payload: bytes
    timestamp: float


class DurableLog(ABC):
    """A synchronous, durable, replayable log. Every method may raise StorageError when the backend
    fails; arguments a caller got wrong raise ValueError or TypeError before the backend is touched.

    * ``append`` stores payloads in order; offsets increase per topic and start at 1. A topic
      exists once something is appended to it; reading an unknown topic returns nothing.
    * A group's committed offset is the last offset it has finished with (0: none). ``poll`` reads
      from the next one and does not move it: only ``commit`` does, so a consumer that crashes
      before committing gets the same entries again (at-least-once). Committing a lower offset
      rewinds the group for a replay.
    * ``truncate`` drops a topic's oldest entries (retention); offsets never change.
    * After ``close`` every call raises StorageError; ``close`` itself may be called again.
    """

    _closed: bool = False

    def append(self, topic: str, payloads: list[bytes]) -> list[int]:
        """Store ``payloads`` at the end of ``topic``; return their offsets in the same order."""
        check_name("topic", topic)
        for index, payload in enumerate(payloads):
            if not isinstance(payload, bytes):
                raise TypeError(
                    f"payload {index} for topic {topic!r} is {type(payload).__name__}, not bytes"
                )
        self._check_open()
        return self._append(topic, payloads) if payloads else []

    def append_sequenced(self, topic: str, items: list[tuple[str, int, bytes]]) -> list[int | None]:
        """Append each ``(key, seq, payload)`` unless ``key`` already has a payload with a sequence
        number >= ``seq`` in ``topic`` (Kafka's idempotent producer, with one sequence per key, such
        as a sensor). Returns each item's offset, or None for an item that was not appended (a
        retry of one already stored, or an older one): so a key's payloads stand in the log in
        increasing ``seq`` order and each ``(key, seq)`` at most once.

        SqliteLog checks and appends in one transaction (exact, across processes); JetStreamLog
        uses the server's message-id deduplication (exact within the stream's duplicate window).
        """
        check_name("topic", topic)
        for index, item in enumerate(items):
            key, seq, payload = item
            if not isinstance(key, str) or not key or not isinstance(seq, int) or seq < 1:
                raise ValueError(f"item {index} for topic {topic!r} needs a key and a seq >= 1")
            if not isinstance(payload, bytes):
                raise TypeError(
                    f"payload {index} for topic {topic!r} is {type(payload).__name__}, not bytes"
                )
        self._check_open()
        return self._append_sequenced(topic, items) if items else []

    def read(self, topic: str, from_offset: int, max_count: int) -> list[LogEntry]:
        """Up to ``max_count`` entries of ``topic`` from ``from_offset`` on, in offset order.

        Returns [] past the end and for a topic nothing was ever appended to.
        """
        check_name("topic", topic)
        _check_positive("from_offset", from_offset)
        _check_positive("max_count", max_count)
        self._check_open()
        return self._read(topic, from_offset, max_count)

    def commit(self, group: str, topic: str, offset: int) -> None:
        """Record that ``group`` has finished with ``topic`` up to and including ``offset``.

        Raises ValueError for an offset beyond the topic's end: it would make the group skip
        entries that do not exist yet.
        """
        check_name("group", group)
        check_name("topic", topic)
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be an int >= 0, got {offset!r}")
        self._check_open()
        end = self._end_offset(topic)
        if offset > end:
            raise ValueError(
                f"cannot commit offset {offset} for group {group!r}: topic {topic!r} ends at {end}"
            )
        self._commit(group, topic, offset)

    def committed(self, group: str, topic: str) -> int:
        """The last offset ``group`` committed for ``topic``; 0 if it never committed."""
        check_name("group", group)
        check_name("topic", topic)
        self._check_open()
        return self._committed(group, topic)

    def poll(self, group: str, topic: str, max_count: int) -> list[LogEntry]:
        """The next entries for ``group``: ``read(topic, committed + 1, max_count)``."""
        return self.read(topic, self.committed(group, topic) + 1, max_count)

    def truncate(self, topic: str, before_offset: int) -> None:
        """Drop the entries of ``topic`` below ``before_offset`` (Kafka's ``deleteRecords``): the
        retention of a log whose consumers have all moved past them. The rest keep their offsets;
        a read from a dropped offset starts at the first kept entry; committed offsets stay.

        Raises ValueError for an offset beyond ``end_offset + 1`` (there is nothing there to keep).
        """
        check_name("topic", topic)
        _check_positive("before_offset", before_offset)
        self._check_open()
        end = self._end_offset(topic)
        if before_offset > end + 1:
            raise ValueError(f"cannot truncate topic {topic!r} below {before_offset}: it ends at {end}")
        if before_offset > 1:
            self._truncate(topic, before_offset)

    def end_offset(self, topic: str) -> int:
        """The offset of the last entry in ``topic``; 0 for an empty or unknown topic."""
        check_name("topic", topic)
        self._check_open()
        return self._end_offset(topic)

    def close(self) -> None:
        """Release connections and threads. Idempotent."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> DurableLog:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"{type(self).__name__} is closed")

    # Backends implement these; arguments are already checked.
    @abstractmethod
    def _append(self, topic: str, payloads: list[bytes]) -> list[int]: ...

    @abstractmethod
    def _append_sequenced(self, topic: str, items: list[tuple[str, int, bytes]]) -> list[int | None]:
        ...

    @abstractmethod
    def _read(self, topic: str, from_offset: int, max_count: int) -> list[LogEntry]: ...

    @abstractmethod
    def _commit(self, group: str, topic: str, offset: int) -> None: ...

    @abstractmethod
    def _committed(self, group: str, topic: str) -> int: ...

    @abstractmethod
    def _end_offset(self, topic: str) -> int: ...

    @abstractmethod
    def _truncate(self, topic: str, before_offset: int) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
