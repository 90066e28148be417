"""The durable log on NATS JetStream, behind the synchronous :class:`~actors.storage.log.DurableLog`.

Each topic is one stream ``<prefix>_<topic>`` capturing the subject ``<prefix>.<topic>``, so a topic's
offsets are its stream's sequence numbers (1, 2, 3... with no other topic's messages in between).

Consumer-group offsets live in a JetStream key-value bucket ``<prefix>_offsets`` (key
``<group>.<topic>``, value the decimal offset, file storage, history 1), not in durable consumers:
this interface's groups are cursors the caller moves explicitly (``poll`` repeats until ``commit``,
and a commit may rewind), while a durable consumer tracks per-message acks with redelivery timers and
cannot be rewound without being recreated. The bucket stores exactly the cursor, and survives
restarts of both the server and this process.

nats-py is asyncio-only: each log runs its own event loop in a daemon thread and every call waits
for its coroutine with ``timeout`` seconds; a call that times out is cancelled and raises StorageError.

A server that goes away is the outside world's fault: the client reconnects for ever (every
``RECONNECT_WAIT_S``), and meanwhile every call fails at once with ``StorageUnavailableError``
(as do timeouts and a JetStream that is not ready yet), so the caller backs off instead of
waiting ``timeout`` per call or crashing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from actors._loop_thread import LoopThread
from actors.storage._names import check_name
from actors.storage.log import DurableLog, LogEntry
from protocols.errors import StorageError, StorageUnavailableError

T = TypeVar("T")

_log = logging.getLogger(__name__)

# Direct gets are answered by any stream replica without the JetStream API queue; servers before 2.11
# have no batched direct get, so a read pipelines one request per entry, this many in flight.
_READ_WINDOW = 256

_NATS_ERRORS = (nats.errors.Error, nats.js.errors.Error, OSError)
# The server or the network, not a mistake of ours: a lost or closed connection, no server, no
# JetStream responder yet (a restarting server), a full server disk (JetStream error 10023).
_OUTSIDE_ERRORS = (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError,
                   nats.errors.NoServersError, nats.errors.NoRespondersError,
                   nats.errors.StaleConnectionError, nats.errors.OutboundBufferLimitError,
                   nats.js.errors.ServiceUnavailableError, nats.js.errors.NoStreamResponseError,
                   OSError)  # nats.errors.TimeoutError is an OSError too
_INSUFFICIENT_RESOURCES = 10023
RECONNECT_WAIT_S = 1


class JetStreamLog(DurableLog):
    """A durable log in NATS JetStream; see the module docstring for the layout.

    Streams and the offsets bucket are created on first use (file storage, ``replicas`` copies).
    Appends publish the whole batch before waiting for the acks, in order on one connection, so
    offsets follow the payloads' order; an append is not atomic: if it fails, a prefix of the batch
    may be stored. A payload larger than the server's max_payload (1 MiB by default) is refused
    with StorageError before anything is published.
    """

    def __init__(
        self,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        stream_prefix: str = "PTR_LOG",
        *,
        timeout: float = 5.0,
        replicas: int = 1,
    ) -> None:
        self.stream_prefix = check_name("stream_prefix", stream_prefix)
        self.timeout = timeout
        self.replicas = replicas
        self._known_streams: set[str] = set()
        self._loop = LoopThread(name=f"ptr-jetstream-{stream_prefix}")
        self._loop.start()
        target = servers if isinstance(servers, str) else list(servers)
        try:
            self._nc, self._js, self._offsets = self._run(f"connect to {target}", self._connect(target))
        except BaseException:
            self._loop.stop()
            raise

    def stream_name(self, topic: str) -> str:
        """The JetStream stream holding ``topic``."""
        return f"{self.stream_prefix}_{check_name('topic', topic)}"

    @property
    def offsets_bucket(self) -> str:
        """The key-value bucket holding consumer-group offsets."""
        return f"{self.stream_prefix}_offsets"

    async def _connect(self, servers: str | list[str]) -> tuple[NatsClient, JetStreamContext, KeyValue]:
        nc = await nats.connect(
            servers,
            name=f"ptr-log-{self.stream_prefix}",
            connect_timeout=max(1, int(self.timeout)),
            reconnect_time_wait=RECONNECT_WAIT_S,
            max_reconnect_attempts=-1,  # for ever: a restarted server is found again
            error_cb=_log_nats_error,
        )
        js = nc.jetstream(timeout=self.timeout)
        try:
            offsets = await js.key_value(self.offsets_bucket)
        except nats.js.errors.BucketNotFoundError:
            offsets = await js.create_key_value(
                bucket=self.offsets_bucket, history=1, storage=api.StorageType.FILE, replicas=self.replicas
            )
        return nc, js, offsets

    def _append(self, topic: str, payloads: list[bytes]) -> list[int]:
        self._append_limit_check(topic, payloads)
        return self._run(f"append to topic {topic!r}", self._publish(topic, payloads))

    async def _publish(self, topic: str, payloads: list[bytes]) -> list[int]:
        await self._ensure_stream(topic)
        subject = f"{self.stream_prefix}.{topic}"
        # No Nats-Expected-Stream header: JetStream forbids overlapping subjects, so only this stream
        # captures the subject, and a header would count against max_payload on the server.
        acks = [await self._js.publish_async(subject, payload) for payload in payloads]
        return [ack.seq for ack in await asyncio.gather(*acks)]

    def _append_sequenced(self, topic: str, items: list[tuple[str, int, bytes]]) -> list[int | None]:
        self._append_limit_check(topic, [payload for _key, _seq, payload in items])
        return self._run(f"sequenced append to topic {topic!r}", self._publish_ids(topic, items))

    async def _publish_ids(self, topic: str, items: list[tuple[str, int, bytes]]) -> list[int | None]:
        # Nats-Msg-Id: the server drops a repeat within the stream's duplicate window (2 min by
        # default) and answers it with duplicate=True.
        await self._ensure_stream(topic)
        subject = f"{self.stream_prefix}.{topic}"
        acks = [await self._js.publish_async(subject, payload,
                                             headers={"Nats-Msg-Id": f"{key}:{seq}"})
                for key, seq, payload in items]
        return [None if ack.duplicate else ack.seq for ack in await asyncio.gather(*acks)]

    def _append_limit_check(self, topic: str, payloads: list[bytes]) -> None:
        limit = self._nc.max_payload
        for index, payload in enumerate(payloads):
            if len(payload) > limit:
                raise StorageError(
                    f"payload {index} for topic {topic!r} has {len(payload)} bytes; "
                    f"the NATS server accepts at most {limit}"
                )

    async def _ensure_stream(self, topic: str) -> str:
        stream = self.stream_name(topic)
        if stream not in self._known_streams:
            try:
                await self._js.stream_info(stream)
            except nats.js.errors.NotFoundError:
                await self._js.add_stream(
                    name=stream,
                    subjects=[f"{self.stream_prefix}.{topic}"],
                    storage=api.StorageType.FILE,
                    retention=api.RetentionPolicy.LIMITS,
                    allow_direct=True,
                    num_replicas=self.replicas,
                )
            self._known_streams.add(stream)
        return stream

    def _read(self, topic: str, from_offset: int, max_count: int) -> list[LogEntry]:
        return self._run(f"read of topic {topic!r}", self._fetch(topic, from_offset, max_count))

    async def _fetch(self, topic: str, from_offset: int, max_count: int) -> list[LogEntry]:
        stream = self.stream_name(topic)
        state = await self._stream_state(stream)
        if state is None:
            return []
        first = max(from_offset, state.first_seq)
        last = min(state.last_seq, first + max_count - 1)
        entries: list[LogEntry] = []
        for window_start in range(first, last + 1, _READ_WINDOW):
            window = range(window_start, min(window_start + _READ_WINDOW, last + 1))
            messages = await asyncio.gather(*(self._get(stream, offset) for offset in window))
            entries.extend(message for message in messages if message is not None)
        return entries

    async def _get(self, stream: str, offset: int) -> LogEntry | None:
        try:
            message = await self._js.get_msg(stream, offset, direct=True)
        except nats.js.errors.NotFoundError:
            return None  # removed by a retention limit or an operator
        stored_at = message.time.timestamp() if message.time is not None else 0.0
        return LogEntry(offset, message.data or b"", stored_at)

    async def _stream_state(self, stream: str) -> api.StreamState | None:
        try:
            info = await self._js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            return None
        return info.state

    def _commit(self, group: str, topic: str, offset: int) -> None:
        key = f"{group}.{topic}"
        what = f"commit of group {group!r} on topic {topic!r}"
        self._run(what, self._offsets.put(key, str(offset).encode()))

    def _committed(self, group: str, topic: str) -> int:
        what = f"committed offset of group {group!r} on topic {topic!r}"
        return self._run(what, self._get_committed(group, topic))

    async def _get_committed(self, group: str, topic: str) -> int:
        try:
            entry = await self._offsets.get(f"{group}.{topic}")
        except nats.js.errors.KeyNotFoundError:
            return 0
        return int(entry.value or b"0")

    def _end_offset(self, topic: str) -> int:
        state = self._run(f"end of topic {topic!r}", self._stream_state(self.stream_name(topic)))
        return 0 if state is None else state.last_seq

    def _truncate(self, topic: str, before_offset: int) -> None:
        self._run(f"truncation of topic {topic!r}", self._purge(topic, before_offset))

    async def _purge(self, topic: str, before_offset: int) -> None:
        stream = self.stream_name(topic)
        if await self._stream_state(stream) is not None:
            await self._js.purge_stream(stream, seq=before_offset)  # up to, not including, seq

    def _close(self) -> None:
        try:
            self._run("close", self._nc.close(), connected=False)
        except StorageError as exc:
            _log.warning("closing the NATS connection failed: %s", exc)
        finally:
            self._loop.stop()

    def _run(self, what: str, coro: Coroutine[Any, Any, T], *, connected: bool = True) -> T:
        """Run ``coro`` on the log's loop; NATS failures and timeouts become StorageError, those of
        the server or the network StorageUnavailableError. With ``connected``, a client that is
        reconnecting fails at once instead of waiting ``timeout``."""
        if not self._loop.running:
            coro.close()
            raise StorageError("the storage client is closed")
        nc = getattr(self, "_nc", None)
        if connected and nc is not None and not nc.is_connected:
            coro.close()
            raise StorageUnavailableError(f"JetStream {what} failed: not connected to NATS "
                                          f"(reconnecting every {RECONNECT_WAIT_S} s)")
        try:
            return self._loop.run(coro, self.timeout)
        except TimeoutError:
            raise StorageUnavailableError(
                f"JetStream {what} got no answer within {self.timeout:g} s") from None
        except _OUTSIDE_ERRORS as exc:
            raise StorageUnavailableError(f"JetStream {what} failed: {exc!r}") from exc
        except nats.js.errors.APIError as exc:
            if exc.err_code == _INSUFFICIENT_RESOURCES:
                raise StorageUnavailableError(f"JetStream {what} failed: {exc!r}") from exc
            raise StorageError(f"JetStream {what} failed: {exc!r}") from exc
        except _NATS_ERRORS as exc:
            raise StorageError(f"JetStream {what} failed: {exc!r}") from exc


async def _log_nats_error(error: Exception) -> None:
    """nats-py logs every reconnect failure with a traceback by default; one line is enough."""
    _log.warning("NATS connection error: %r", error)
