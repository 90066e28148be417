"""The supervised UDP edge: msgpack datagrams in, one ``DatagramBatch`` per drained batch into the
tree, replies out from the same socket.

``UdpEdgeActor`` hosts an ``actors.edges.UdpEdge`` on a ``LoopThread`` (batched ``recvfrom``, never
asyncio's per-datagram ``DatagramProtocol``). Every ``interval_s`` (or ``max_batch`` datagrams) the
loop thread packs one batch (``DatagramBatch.pack``) and puts it on the bridge; the actor drains all
waiting batches and sends them to the target as ONE ``DatagramBatch`` request (see
``actors.edges.http_edge.BridgedEdge`` for waking, the credit window and target resolution). Packing in
the reading thread matters: when the actor thread pickled thousands of objects itself, every
``recvfrom`` of the reader (which releases the GIL) waited for it, and the edge lost over half of a
120k/s stream; packed, it keeps up. The target answers ``SendDatagrams`` (empty if nothing to say) and
those datagrams go out from the edge's own port; it may also send ``SendDatagrams`` at any time.

Failure rules: a datagram that does not decode is counted (``dropped_bad``) and dropped, never
raised. When the target is slow or absent (window full, bridge full), whole batches are dropped
and counted (``dropped_saturated``): UDP promises no delivery, and an edge that queued without bound
would fall over instead. A target that does not answer within ``timeout_s`` frees its window slot.
The edge restarts like any child; a fixed ``port`` is bound again by the new incarnation.

Args: ``target`` (registered name), ``host`` (127.0.0.1), ``port`` (0; ``GetEdgeInfo`` reports the
bound one), ``message_types`` (Message classes to decode with ``protocols.codec.Codec``; default:
any msgpack value), ``interval_s`` (0.005), ``max_batch`` (1024), ``max_in_flight`` (batches held in
the bridge, 64), ``window`` (4), ``timeout_s`` (5.0), ``rcvbuf_bytes`` (8 MiB).

``DatagramSink`` is a small target: it counts what arrives, keeps the last few items and, with
``echo``, answers each datagram with its own item msgpack-encoded.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import msgpack
from pydantic import Field

from actors.base import Actor
from actors.edges import Address, BridgeClosedError, EdgeBridge, Pending, SaturatedError, UdpEdge
from actors.edges.udp import RCVBUF_BYTES
from actors.edges.http_edge import LOOP_CALL_TIMEOUT_S, BridgedEdge, BridgedEdgeArgs
from protocols.codec import Codec
from protocols.message import ActorArgs, Message
from protocols.edges import (
    DatagramBatch,
    DatagramCounts,
    EdgeInfo,
    GetDatagramCounts,
    GetEdgeInfo,
    GetUdpEdgeStats,
    SendDatagrams,
    UdpEdgeStats,
)

__all__ = ["DatagramSink", "DatagramSinkArgs", "UdpEdgeActor", "UdpEdgeArgs", "decode_msgpack"]

log = logging.getLogger("ptr.edges.udp")


def decode_msgpack(data: bytes) -> Any:
    """Any msgpack value (the default decoder); raises for bytes that are not one."""
    return msgpack.unpackb(data, raw=False, strict_map_key=True)


class UdpEdgeArgs(BridgedEdgeArgs):
    """A UDP edge's arguments (see the module docstring)."""

    target: str
    timeout_s: float = Field(default=5.0, gt=0)
    message_types: list[type[Message]] | None = None
    max_in_flight: int = Field(default=64, ge=1)
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    interval_s: float = Field(default=0.005, gt=0)
    max_batch: int = Field(default=1024, ge=1)
    rcvbuf_bytes: int = Field(default=RCVBUF_BYTES, ge=1)


class UdpEdgeActor(BridgedEdge):
    """Reads a UDP port in batches and feeds the named target; see the module docstring."""

    Args: type[BridgedEdgeArgs] = UdpEdgeArgs
    udp: UdpEdge[Any] | None = None

    def start_edge(self) -> EdgeBridge[tuple[int, bytes]]:
        args: UdpEdgeArgs = self.edge_args
        self.target = args.target
        self.timeout_s = args.timeout_s
        types = args.message_types
        decode = Codec(types).from_msgpack if types else decode_msgpack
        self.dropped_saturated = 0  # written by the loop thread only
        self.batches_delivered = self.datagrams_delivered = 0
        bridge: EdgeBridge[tuple[int, bytes]] = EdgeBridge(max_in_flight=args.max_in_flight)
        self.udp_bridge = self.bridge = bridge  # closed by on_stop even if the bind fails
        self.udp = UdpEdge(decode, self.on_batch, host=args.host, port=args.port,
                           interval_s=args.interval_s, max_batch=args.max_batch,
                           rcvbuf_bytes=args.rcvbuf_bytes)
        assert self.loop_thread is not None
        self.address = self.loop_thread.run(self.udp.start(), LOOP_CALL_TIMEOUT_S)
        log.info("%s reading udp://%s:%d", self.path, self.address[0], self.address[1])
        return bridge

    def on_batch(self, batch: list[tuple[Address, Any]]) -> None:
        """Loop thread: one packed batch onto the bridge, or counted and dropped when the bridge is
        full or closed."""
        try:
            self.udp_bridge.submit_nowait((len(batch), DatagramBatch.pack(batch)))
        except (SaturatedError, BridgeClosedError):
            self.dropped_saturated += len(batch)

    def stop_edge(self) -> None:
        if self.udp is not None and self.loop_thread is not None:
            self.loop_thread.run(self.udp.stop(), LOOP_CALL_TIMEOUT_S)

    def target_names(self) -> Sequence[str]:
        return (self.target,)

    def send_drained(self, drained: list[Pending[tuple[int, bytes]]]) -> None:
        count = sum(pending.item[0] for pending in drained)
        self.batches_delivered += 1
        self.datagrams_delivered += count
        batch = DatagramBatch(count=count, packed=[pending.item[1] for pending in drained])
        self.ask_target(self.target, batch, self.send_answer, self.lost, self.timeout_s)

    def send_answer(self, answer: Any) -> None:
        if isinstance(answer, SendDatagrams) and answer.datagrams:
            self.send_out(answer.datagrams)

    def lost(self, exc: BaseException) -> None:
        log.info("%s: a batch to %s was not answered: %s", self.path, self.target, exc)

    def receiveMsg_SendDatagrams(self, msg: SendDatagrams, sender: Any) -> None:
        self.send_out(msg.datagrams)

    def send_out(self, datagrams: list[tuple[Any, bytes]]) -> None:
        udp, loop_thread = self.udp, self.loop_thread
        if udp is not None and loop_thread is not None and loop_thread.running:
            loop_thread.loop.call_soon_threadsafe(udp.send_many, [(tuple(a), d) for a, d in datagrams])

    def receiveMsg_GetEdgeInfo(self, msg: GetEdgeInfo, sender: Any) -> EdgeInfo:
        return EdgeInfo(scheme="udp", host=str(self.address[0]), port=int(self.address[1]),
                        incarnation=self.incarnation, batches_sent=self.batches_sent,
                        items_sent=self.items_sent)

    def receiveMsg_GetUdpEdgeStats(self, msg: GetUdpEdgeStats, sender: Any) -> UdpEdgeStats:
        assert self.udp is not None
        stats = self.udp.stats
        return UdpEdgeStats(received=stats.received, decoded=stats.decoded,
                            dropped_bad=stats.dropped_bad, dropped_saturated=self.dropped_saturated,
                            batches_waiting=self.udp_bridge.queued,
                            batches_delivered=self.batches_delivered,
                            datagrams_delivered=self.datagrams_delivered, sent=stats.sent,
                            send_dropped=stats.send_dropped, incarnation=self.incarnation)


class DatagramSinkArgs(ActorArgs):
    echo: bool = False
    keep_last: int = Field(default=32, ge=0)


class DatagramSink(Actor):
    """Counts the datagrams a UDP edge delivers (tests and ``ptr bench edges``).

    Args: ``echo`` (answer each datagram with its item, msgpack-encoded, to its sender),
    ``keep_last`` (how many items ``GetDatagramCounts`` returns, default 32).
    """

    Args = DatagramSinkArgs

    def on_start(self) -> None:
        typed: DatagramSinkArgs = self.typed_args()
        self.echo, self.keep_last = typed.echo, typed.keep_last
        self.last_items: deque[Any] = deque(maxlen=self.keep_last)
        self.datagrams = self.batches = 0
        self.first_at = self.last_at = 0.0

    def receiveMsg_DatagramBatch(self, msg: DatagramBatch, sender: Any) -> SendDatagrams:
        now = time.monotonic()
        if not self.batches:
            self.first_at = now
        self.last_at = now
        self.batches += 1
        self.datagrams += msg.count
        if not (self.keep_last or self.echo):
            return SendDatagrams()  # counting only: no need to unpack
        datagrams = msg.datagrams()
        self.last_items.extend(_plain(item) for _, item in datagrams[-self.keep_last:])
        if not self.echo:
            return SendDatagrams()
        return SendDatagrams(datagrams=[(addr, msgpack.packb(_plain(item), use_bin_type=True))
                                        for addr, item in datagrams])

    def receiveMsg_GetDatagramCounts(self, msg: GetDatagramCounts, sender: Any) -> DatagramCounts:
        return DatagramCounts(datagrams=self.datagrams, batches=self.batches,
                              first_at=self.first_at, last_at=self.last_at,
                              last_items=list(self.last_items))


def _plain(item: Any) -> Any:
    """A decoded datagram as plain msgpack-able data (a typed message becomes its fields)."""
    return item.model_dump(mode="json") if isinstance(item, Message) else item
