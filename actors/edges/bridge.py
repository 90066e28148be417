"""The hand-off between an edge's asyncio loop thread and the actor thread that owns Thespian.

Two threads, one queue. The loop side (HTTP handlers, UDP readers) calls ``submit`` and awaits the
answer, or ``submit_nowait`` for fire-and-forget. The actor side waits until ``wake_fd`` is readable
(``select``, or Thespian's ``ThespianWatch``), calls ``drain`` and settles each ``Pending`` with
``resolve`` or ``fail``; the awaiting coroutine then resumes on its own loop.

Lifecycle and failure rules:

* Bounded: at most ``max_in_flight`` items are queued or drained-and-unanswered. One more raises
  ``SaturatedError`` at once, so an HTTP edge answers 503 instead of queueing without bound.
* A ``submit`` item holds its slot until the actor settles it; a ``submit_nowait`` item frees its slot
  when it is drained (nothing waits for it). Every drained item that expects a reply must be settled,
  or its slot is lost until ``close``.
* Cancelling a ``submit`` (client gone, timeout) does not withdraw the item: the actor may already be
  working on it. Its later ``resolve`` is simply dropped.
* ``close`` refuses new items and fails every queued or unanswered one with ``BridgeClosedError`` (or
  the given exception), so no coroutine waits forever for an actor that has gone.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from protocols.errors import BridgeClosedError, SaturatedError

T = TypeVar("T")

__all__ = ["BridgeClosedError", "EdgeBridge", "Pending", "SaturatedError"]


def _set_result(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():  # cancelled by a timeout or a gone client: nobody wants the answer
        future.set_result(value)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _settle_batch(calls: list[tuple[Callable[[asyncio.Future[Any], Any], None],
                                    asyncio.Future[Any], Any]]) -> None:
    for fn, future, value in calls:
        fn(future, value)


def _post(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is closed: its coroutines are gone, so is the waiter
        pass


class Pending(Generic[T]):
    """One item handed to the actor side, and the way back to whoever submitted it.

    ``resolve``/``fail`` may be called from any thread, once; later calls return False and do
    nothing. On a fire-and-forget item they are no-ops.
    """

    __slots__ = ("item", "queued_at", "_bridge", "_loop", "_future", "_settled")

    def __init__(self, item: T, bridge: EdgeBridge[T], loop: asyncio.AbstractEventLoop | None,
                 future: asyncio.Future[Any] | None) -> None:
        self.item = item
        self.queued_at = time.monotonic()
        self._bridge = bridge
        self._loop = loop
        self._future = future
        self._settled = False

    @property
    def expects_reply(self) -> bool:
        """True for ``submit`` items: someone awaits ``resolve``/``fail``."""
        return self._future is not None

    def resolve(self, value: Any = None) -> bool:
        """Complete the awaiting ``submit`` with ``value``; returns whether this call settled it."""
        if self._future is None or not self._bridge._settle(self):
            return False
        assert self._loop is not None
        _post(self._loop, _set_result, self._future, value)
        return True

    def fail(self, exc: BaseException) -> bool:
        """Make the awaiting ``submit`` raise ``exc``; returns whether this call settled it."""
        if self._future is None or not self._bridge._settle(self):
            return False
        assert self._loop is not None
        _post(self._loop, _set_exception, self._future, exc)
        return True

    def __repr__(self) -> str:
        return f"Pending({self.item!r}, expects_reply={self.expects_reply})"


class EdgeBridge(Generic[T]):
    """A bounded, thread-safe queue from a loop thread to an actor thread, with a way back.

    ``wake_fd`` becomes readable when the queue goes from empty to non-empty, and stays readable
    after a ``drain`` that left items behind, so an actor that drains in slices is never stranded.
    """

    def __init__(self, *, max_in_flight: int = 1024) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, not {max_in_flight}")
        self.limit = max_in_flight
        self._lock = threading.Lock()
        self._queue: deque[Pending[T]] = deque()
        self._outstanding: set[Pending[T]] = set()
        self._in_flight = 0
        self._closed: BaseException | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    # --- either side --------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Items queued plus items drained whose submitter still waits."""
        return self._in_flight

    @property
    def queued(self) -> int:
        """Items not drained yet."""
        return len(self._queue)

    @property
    def closed(self) -> bool:
        return self._closed is not None

    @property
    def oldest_queued_at(self) -> float | None:
        """``time.monotonic()`` when the oldest item not drained yet was queued; None if none is."""
        queue = self._queue
        try:
            return queue[0].queued_at
        except IndexError:
            return None

    def close(self, exc: BaseException | None = None) -> None:
        """Refuse new items and fail every unanswered one with ``exc`` (default BridgeClosedError).

        Call it from the actor side when it is going away (before or after the loop stops), once it
        no longer selects on ``wake_fd``: the wake sockets are closed too. Idempotent.
        """
        with self._lock:
            if self._closed is not None:
                return
            self._closed = exc or BridgeClosedError("the edge bridge is closed")
            unanswered = [p for p in self._queue if p._future is not None]
            unanswered.extend(self._outstanding)
            self._queue.clear()
            self._outstanding.clear()
            self._in_flight = 0
            for p in unanswered:
                p._settled = True
        for p in unanswered:
            assert p._loop is not None and p._future is not None
            _post(p._loop, _set_exception, p._future, self._closed)
        self._wake_w.close()
        self._wake_r.close()

    # --- loop side ----------------------------------------------------------------------------

    async def submit(self, item: T) -> Any:
        """Hand ``item`` to the actor and wait for its answer.

        Raises ``SaturatedError`` at once when full, ``BridgeClosedError`` when closed, and whatever
        the actor passed to ``Pending.fail``.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._enqueue(Pending(item, self, loop, future))
        return await future

    def submit_nowait(self, item: T) -> None:
        """Hand ``item`` to the actor without waiting; raises ``SaturatedError`` when full."""
        self._enqueue(Pending(item, self, None, None))

    def _enqueue(self, pending: Pending[T]) -> None:
        with self._lock:
            if self._closed is not None:
                raise BridgeClosedError("the edge bridge is closed")
            if self._in_flight >= self.limit:
                raise SaturatedError(self.limit)
            self._in_flight += 1
            was_empty = not self._queue
            self._queue.append(pending)
        if was_empty:
            self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\x00")
        except (BlockingIOError, InterruptedError):
            pass  # the buffer is full of wake bytes: the fd is readable already
        except OSError:
            pass  # closed concurrently; close() fails the items itself

    # --- actor side ---------------------------------------------------------------------------

    @property
    def wake_fd(self) -> int:
        """A file descriptor to select on (or give to ``ThespianWatch``); readable when work waits."""
        return self._wake_r.fileno()

    def drain(self, max_items: int = 256) -> list[Pending[T]]:
        """Take up to ``max_items`` queued items, oldest first; never blocks.

        The wake bytes are consumed *before* the queue is read, so an item queued meanwhile leaves
        the fd readable (at worst one spurious wake-up, never a lost one).
        """
        if self._closed is not None:
            return []
        self._consume_wake()
        with self._lock:
            count = min(max_items, len(self._queue))
            taken = [self._queue.popleft() for _ in range(count)]
            for p in taken:
                if p._future is None:
                    p._settled = True
                    self._in_flight -= 1
                else:
                    self._outstanding.add(p)
            left_behind = bool(self._queue)
        if left_behind:
            self._wake()
        return taken

    def resolve_many(self, results: Iterable[tuple[Pending[T], Any]]) -> int:
        """Resolve many pendings with one cross-thread wake-up per loop instead of one each.

        Returns how many were settled by this call (already settled and fire-and-forget ones are
        skipped). Worth it when an actor answers a whole drained batch at once.
        """
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        settled = 0
        for pending, value in results:
            if pending._future is None or not self._settle(pending):
                continue
            assert pending._loop is not None
            by_loop.setdefault(pending._loop, []).append((_set_result, pending._future, value))
            settled += 1
        for loop, calls in by_loop.items():
            _post(loop, _settle_batch, calls)
        return settled

    def _consume_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _settle(self, pending: Pending[T]) -> bool:
        with self._lock:
            if pending._settled:
                return False
            pending._settled = True
            self._outstanding.discard(pending)
            self._in_flight -= 1
            return True
