"""The UDP edge: reads a hot socket in batches and hands decoded datagrams over in batches.

Why not asyncio's ``DatagramProtocol``: it costs a callback per datagram and saturates a core near
60k datagrams/s (LIMITS.md). Here ``loop.add_reader`` wakes us once, and we ``recvfrom`` until the
socket is empty or 256 datagrams were read, so the loop still gets to run timers and other I/O.
Decoded items go to ``on_batch`` every ``interval_s`` or every ``max_batch`` items, whichever comes
first: downstream work (an actor message, a database write) is per batch, never per datagram.

Failure rules: a datagram that does not decode is the sender's fault; it is counted in
``stats.dropped_bad`` and logged at most once a second, and reading goes on. ``on_batch`` is the
host's code: if it raises, the exception reaches the loop's exception handler, that batch is not
delivered again, and the edge keeps reading. Sends never raise either: a full send buffer or an
unreachable peer is counted in ``stats.send_dropped`` (UDP promises no delivery anyway).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from actors.edges._ratelimit import RateLimitedLog

__all__ = ["Address", "UdpEdge", "UdpStats"]

T = TypeVar("T")
Address = tuple[Any, ...]  # (host, port) for IPv4, (host, port, flowinfo, scope_id) for IPv6

log = logging.getLogger("ptr.edges.udp")

RCVBUF_BYTES = 8 * 1024 * 1024  # 0 % loss at 60k/s in LIMITS.md; the kernel may cap it (rmem_max)
READS_PER_WAKE = 256
MAX_DATAGRAM = 65535


@dataclass(slots=True)
class UdpStats:
    """Counters of one edge, written by its loop thread only (read them anywhere)."""

    received: int = 0
    decoded: int = 0
    dropped_bad: int = 0
    batches: int = 0
    sent: int = 0
    send_dropped: int = 0
    recv_errors: int = 0


class UdpEdge(Generic[T]):
    """One non-blocking UDP socket: batched reads in, decoded batches out, replies from the same port.

    ``decode(bytes) -> item`` may raise anything for a bad datagram (msgpack alone raises several
    unrelated types). ``on_batch([(address, item), ...])`` runs on the loop thread and must not
    block it; hand the batch to an ``EdgeBridge`` or similar. Use ``start``/``stop``/``send`` on the
    loop thread.
    """

    def __init__(self, decode: Callable[[bytes], T],
                 on_batch: Callable[[list[tuple[Address, T]]], None], *,
                 host: str = "127.0.0.1", port: int = 0, interval_s: float = 0.005,
                 max_batch: int = 1024, rcvbuf_bytes: int = RCVBUF_BYTES,
                 reads_per_wake: int = READS_PER_WAKE, watch: bool = True) -> None:
        if interval_s <= 0 or max_batch < 1 or reads_per_wake < 1:
            raise ValueError("interval_s, max_batch and reads_per_wake must be positive")
        self.stats = UdpStats()
        self.host = host
        self._port = port
        self._decode = decode
        self._on_batch = on_batch
        self._interval_s = interval_s
        self._max_batch = max_batch
        self._requested_rcvbuf = rcvbuf_bytes
        self._reads_per_wake = reads_per_wake
        self._watch = watch
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._batch: list[tuple[Address, T]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._bad_log = RateLimitedLog(log)
        self._io_log = RateLimitedLog(log)
        self.address: Address | None = None
        self.rcvbuf_bytes = 0

    async def start(self) -> Address:
        """Bind, size the receive buffer and start reading; returns the bound address."""
        if self._sock is not None:
            raise RuntimeError("the UDP edge is started already")
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            self.rcvbuf_bytes = _size_rcvbuf(sock, self._requested_rcvbuf)
            sock.bind((self.host, self._port))
            if self._watch:
                loop.add_reader(sock.fileno(), self._on_readable)
        except BaseException:
            sock.close()
            raise
        self._sock, self._loop = sock, loop
        self.address = sock.getsockname()
        return self.address

    async def stop(self) -> None:
        """Stop reading, deliver the batch in hand, close the socket; idempotent."""
        sock, loop = self._sock, self._loop
        if sock is None or loop is None:
            return
        if self._watch:
            loop.remove_reader(sock.fileno())
        self._sock = None
        try:
            self.flush()
        finally:
            sock.close()

    @property
    def running(self) -> bool:
        return self._sock is not None

    @property
    def socket(self) -> socket.socket | None:
        """The bound socket (None before ``start``), for a caller that sends on its own schedule."""
        return self._sock

    def drain(self) -> None:
        """Read what the socket holds now (up to ``reads_per_wake``) and deliver it at once.

        For an edge made with ``watch=False``, whose owner polls on its own schedule: a game tick
        applies inputs only at the tick, so reading earlier gains nothing, while a loop woken by
        each datagram pays a wake-up per datagram, and so does every sender on loopback.
        """
        self._on_readable()
        self.flush()

    # --- in -----------------------------------------------------------------------------------

    def _on_readable(self) -> None:
        """Read until the socket is empty or ``reads_per_wake`` datagrams were read.

        The counters are kept in locals and added once per wake-up: at 60k datagrams/s each
        attribute write per datagram shows in the profile.
        """
        sock = self._sock
        if sock is None:
            return
        recvfrom, decode, max_batch = sock.recvfrom, self._decode, self._max_batch
        batch = self._batch
        received = bad = 0
        try:
            for _ in range(self._reads_per_wake):
                try:
                    data, addr = recvfrom(MAX_DATAGRAM)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:  # e.g. an ICMP error queued on the socket; next read is fine
                    self.stats.recv_errors += 1
                    self._io_log.warning("UDP edge %s: recvfrom failed: %s", self.address, exc)
                    break
                received += 1
                try:
                    item = decode(data)
                except Exception as exc:  # noqa: BLE001 - any decoder failure means a bad datagram
                    bad += 1
                    self._bad_log.warning("UDP edge %s dropped a bad datagram from %s: %s: %s",
                                          self.address, addr, type(exc).__name__, exc)
                    continue
                batch.append((addr, item))
                if len(batch) >= max_batch:
                    self.flush()
                    batch = self._batch
        finally:
            stats = self.stats
            stats.received += received
            stats.decoded += received - bad
            stats.dropped_bad += bad
        if batch and self._timer is None:
            assert self._loop is not None
            self._timer = self._loop.call_later(self._interval_s, self.flush)

    def flush(self) -> None:
        """Deliver the items read so far now (called by the timer, at ``max_batch`` and on stop).

        The batch is swapped out before ``on_batch`` runs, so an ``on_batch`` that raises loses that
        batch instead of receiving it twice.
        """
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch = self._batch
        if not batch:
            return
        self._batch = []
        self.stats.batches += 1
        self._on_batch(batch)

    # --- out ----------------------------------------------------------------------------------

    def send(self, addr: Address, data: bytes) -> bool:
        """Send one datagram from the edge's own port; returns False (and counts) if it was dropped."""
        sock = self._sock
        if sock is None:
            raise RuntimeError("the UDP edge is not started")
        try:
            sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self.stats.send_dropped += 1
            return False
        except OSError as exc:
            self.stats.send_dropped += 1
            self._io_log.warning("UDP edge %s: send to %s failed: %s", self.address, addr, exc)
            return False
        self.stats.sent += 1
        return True

    def send_many(self, datagrams: Iterable[tuple[Address, bytes]]) -> int:
        """Send each ``(address, bytes)``; returns how many went out (one system call each)."""
        send = self.send
        return sum(1 for addr, data in datagrams if send(addr, data))


def _size_rcvbuf(sock: socket.socket, requested: int) -> int:
    """Ask for ``requested`` bytes of receive buffer and return what the kernel granted.

    Linux caps the request at ``net.core.rmem_max`` and reports twice what it grants (the other half
    is its bookkeeping), so the granted figure is halved there before comparing.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, requested)
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    if sys.platform.startswith("linux"):
        granted //= 2
    if granted < requested:
        log.warning("UDP receive buffer is %d bytes, %d requested: raise net.core.rmem_max to "
                    "avoid losses under bursts", granted, requested)
    return granted
