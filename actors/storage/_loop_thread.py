"""An asyncio event loop in a daemon thread: how a synchronous facade drives an asyncio-only client."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from protocols.errors import StorageError

T = TypeVar("T")


class LoopThread:
    """Runs one event loop forever in a daemon thread until :meth:`stop`.

    Callers block on :meth:`run` with a timeout; a timed-out coroutine is cancelled on the loop so no
    work outlives the caller's patience. The thread is a daemon so a forgotten ``stop`` never keeps
    the interpreter alive.
    """

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._stopped = False
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and return its result.

        Raises TimeoutError (after cancelling the coroutine) when it takes longer than ``timeout``
        seconds, and StorageError when the loop is already stopped. Calling this from the loop's own
        thread would deadlock, so it raises RuntimeError instead.
        """
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("LoopThread.run called from its own loop thread; await instead")
        if self._stopped:
            coro.close()
            raise StorageError("the storage client is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel what still runs on the loop, stop it, join the thread and close the loop. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread.is_alive():
            cancel = asyncio.run_coroutine_threadsafe(_cancel_other_tasks(), self._loop)
            with contextlib.suppress(TimeoutError):
                cancel.result(timeout)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()


async def _cancel_other_tasks() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
