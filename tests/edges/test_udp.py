"""The UDP edge on real sockets: batched delivery, bad datagrams counted, replies from its port."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from actors.edges import Address, UdpEdge
from actors.edges import RateLimitedLog
from protocols.codec import Codec
from protocols.message import Message


class Input(Message):
    player: int
    seq: int


CODEC = Codec([Input])
GARBAGE = [
    b"",
    b"\xc1",                                                   # a byte msgpack never uses
    b"\x93\x01",                                               # truncated array
    b"hello, not msgpack at all",
    msgpack.packb([1, 2, 3]),                                  # not an envelope
    msgpack.packb({"v": 1, "k": "Nope", "d": {}}),             # unknown kind
    msgpack.packb({"v": 1, "k": "Input", "d": {"player": "x", "seq": 1}}),  # wrong type
    msgpack.packb({"v": 1, "k": "Input", "d": {"player": 1}}),              # missing field
]


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll ``condition`` on the loop (which keeps the edge reading) until true or the deadline."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.001)


class Collector:
    def __init__(self) -> None:
        self.batches: list[list[tuple[Address, Input]]] = []

    def __call__(self, batch: list[tuple[Address, Input]]) -> None:
        self.batches.append(batch)

    @property
    def items(self) -> list[Input]:
        return [item for batch in self.batches for _, item in batch]


@pytest.fixture
def sender() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


async def started(edge: UdpEdge[Any]) -> UdpEdge[Any]:
    await edge.start()
    return edge


@pytest.fixture
def collector() -> Collector:
    return Collector()


async def test_good_datagrams_arrive_in_batches_and_garbage_is_counted(
        sender: socket.socket, collector: Collector) -> None:
    good, bad, window = 600, 150, 50
    edge = await started(UdpEdge(CODEC.from_msgpack, collector, max_batch=64))
    datagrams = []
    for seq in range(good):
        datagrams.append(CODEC.to_msgpack(Input(player=seq % 7, seq=seq)))
        if seq % 4 == 0 and len(datagrams) - seq - 1 < bad:
            datagrams.append(GARBAGE[seq % len(GARBAGE)])
    assert len(datagrams) == good + bad
    try:
        for start in range(0, len(datagrams), window):  # a window at a time: no kernel drops
            for data in datagrams[start:start + window]:
                sender.sendto(data, edge.address)
            sent = min(start + window, len(datagrams))
            await until(lambda: edge.stats.received >= sent)
        await until(lambda: len(collector.items) >= good)
    finally:
        await edge.stop()

    assert [item.seq for item in collector.items] == list(range(good))
    assert all(addr == sender.getsockname() for batch in collector.batches for addr, _ in batch)
    assert all(1 <= len(batch) <= 64 for batch in collector.batches)
    assert len(collector.batches) >= good // 64
    stats = edge.stats
    assert (stats.received, stats.decoded, stats.dropped_bad) == (good + bad, good, bad)
    assert stats.batches == len(collector.batches)


async def test_edge_keeps_working_after_garbage(sender: socket.socket, collector: Collector) -> None:
    edge = await started(UdpEdge(CODEC.from_msgpack, collector))
    try:
        for data in GARBAGE:
            sender.sendto(data, edge.address)
        await until(lambda: edge.stats.dropped_bad == len(GARBAGE))
        sender.sendto(CODEC.to_msgpack(Input(player=1, seq=42)), edge.address)
        await until(lambda: len(collector.items) == 1)
    finally:
        await edge.stop()
    assert collector.items == [Input(player=1, seq=42)]


async def test_full_batch_goes_out_at_once_and_the_rest_on_stop(sender: socket.socket,
                                                                collector: Collector) -> None:
    edge = await started(UdpEdge(CODEC.from_msgpack, collector, max_batch=10, interval_s=3600))
    for seq in range(25):
        sender.sendto(CODEC.to_msgpack(Input(player=0, seq=seq)), edge.address)
    await until(lambda: edge.stats.decoded == 25)
    assert [len(b) for b in collector.batches] == [10, 10], "an hour-long interval never fired"
    await edge.stop()
    assert [len(b) for b in collector.batches] == [10, 10, 5], "stop delivers the batch in hand"
    assert [item.seq for item in collector.items] == list(range(25))


async def test_partial_batch_goes_out_after_the_interval(sender: socket.socket,
                                                         collector: Collector) -> None:
    edge = await started(UdpEdge(CODEC.from_msgpack, collector, max_batch=1000, interval_s=0.005))
    try:
        for seq in range(3):
            sender.sendto(CODEC.to_msgpack(Input(player=0, seq=seq)), edge.address)
        await until(lambda: len(collector.items) == 3)
        assert edge.running, "delivered by the timer, not by stop"
    finally:
        await edge.stop()
    assert edge.stats.batches == len(collector.batches)


async def test_on_batch_that_raises_reaches_the_loop_handler_and_reading_goes_on(
        sender: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    reported: list[BaseException] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context["exception"]))
    delivered: list[list[tuple[Address, Input]]] = []

    def on_batch(batch: list[tuple[Address, Input]]) -> None:
        delivered.append(batch)
        if len(delivered) == 1:
            raise RuntimeError("host bug")

    edge = await started(UdpEdge(CODEC.from_msgpack, on_batch, max_batch=1))
    try:
        sender.sendto(CODEC.to_msgpack(Input(player=0, seq=0)), edge.address)
        await until(lambda: len(reported) == 1)
        sender.sendto(CODEC.to_msgpack(Input(player=0, seq=1)), edge.address)
        await until(lambda: len(delivered) == 2)
    finally:
        await edge.stop()
        loop.set_exception_handler(None)
    assert isinstance(reported[0], RuntimeError)
    assert [[item.seq for _, item in batch] for batch in delivered] == [[0], [1]], \
        "the failed batch is not delivered again"


async def test_replies_come_from_the_edge_port(sender: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    edge: UdpEdge[Input]

    def answer(batch: list[tuple[Address, Input]]) -> None:
        addr, first = batch[0]
        edge.send(addr, b"ack %d" % first.seq)
        assert edge.send_many((a, b"ack %d" % item.seq) for a, item in batch[1:]) == len(batch) - 1

    edge = await started(UdpEdge(CODEC.from_msgpack, answer))
    try:
        for seq in range(5):
            sender.sendto(CODEC.to_msgpack(Input(player=3, seq=seq)), edge.address)
        replies = [await asyncio.wait_for(loop.sock_recvfrom(sender, 2048), 5) for _ in range(5)]
    finally:
        await edge.stop()
    assert sorted(data for data, _ in replies) == [b"ack %d" % seq for seq in range(5)]
    assert {source for _, source in replies} == {edge.address}
    assert edge.stats.sent == 5 and edge.stats.send_dropped == 0


async def test_bad_datagrams_are_logged_at_most_once_a_second(
        sender: socket.socket, collector: Collector, caplog: pytest.LogCaptureFixture) -> None:
    edge = await started(UdpEdge(CODEC.from_msgpack, collector))
    try:
        with caplog.at_level(logging.WARNING, logger="ptr.edges.udp"):
            for _ in range(100):
                sender.sendto(b"\xc1", edge.address)
            await until(lambda: edge.stats.dropped_bad == 100)
    finally:
        await edge.stop()
    dropped = [r for r in caplog.records if "dropped a bad datagram" in r.getMessage()]
    assert 1 <= len(dropped) <= 2  # two only if the burst straddled a one-second boundary


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's rmem_max")
async def test_receive_buffer_is_as_large_as_the_kernel_allows(collector: Collector) -> None:
    rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
    edge = await started(UdpEdge(CODEC.from_msgpack, collector))
    await edge.stop()
    assert edge.rcvbuf_bytes == min(8 * 1024 * 1024, rmem_max)


async def test_stopped_edge_refuses_to_send_and_stops_twice_quietly(collector: Collector) -> None:
    edge = await started(UdpEdge(CODEC.from_msgpack, collector))
    await edge.stop()
    await edge.stop()
    with pytest.raises(RuntimeError):
        edge.send(("127.0.0.1", 9), b"x")


def test_rate_limited_log_writes_one_record_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    limited = RateLimitedLog(logging.getLogger("ptr.test.ratelimit"), interval_s=1.0,
                             clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="ptr.test.ratelimit"):
        written = [limited.warning("bad %d", i) for i in range(50)]
        now[0] += 0.999
        written.append(limited.warning("bad %d", 50))
        now[0] += 0.002
        written.append(limited.warning("bad %d", 51))
    assert written.count(True) == 2 and written[0] and written[-1]
    assert [r.getMessage() for r in caplog.records] == ["bad 0", "bad 51 (50 similar suppressed)"]
