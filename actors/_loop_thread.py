"""An asyncio loop in a daemon thread, so an actor (which owns its own thread and Thespian's receive
loop) can host async clients and servers beside it (edges, the NATS client) and stop them cleanly."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

R = TypeVar("R")

__all__ = ["LoopThread"]

log = logging.getLogger("ptr.loop")


class LoopThread:
    """Owns one event loop running in one daemon thread.

    ``start`` returns once the loop runs. ``run`` executes a coroutine on it from another thread and
    returns its result (or raises its exception). ``stop`` cancels what is still running, waits for
    the cancellations to finish, closes the loop and joins the thread; stop your servers with ``run``
    first so they close their sockets in order. The thread is a daemon so a crashed host process
    never hangs on it.
    """

    def __init__(self, name: str = "ptr-loop") -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._loop

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> asyncio.AbstractEventLoop:
        """Start the thread and return its loop once it is running."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} was started already")
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()
        self._ready.wait()
        return self.loop  # raises if the thread died before its loop could run

    def run(self, coro: Coroutine[Any, Any, R], timeout_s: float | None = None) -> R:
        """Run ``coro`` on the loop and wait for its result; never call it from the loop thread.

        On ``TimeoutError`` the coroutine is cancelled on the loop, so no work outlives the wait.
        """
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("LoopThread.run called from its own loop thread would deadlock")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout_s)
        except TimeoutError:
            future.cancel()
            raise

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Stop the loop, cancel its remaining tasks and join the thread; idempotent.

        Returns False (and logs) if the thread did not end within ``timeout_s``: a task that ignores
        cancellation. The daemon thread then dies with the process.
        """
        thread, loop = self._thread, self._loop
        if thread is None or loop is None or not thread.is_alive():
            return True
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:
            pass  # closed in the meantime
        thread.join(timeout_s)
        if thread.is_alive():
            log.warning("%s did not stop within %.1f s", self.name, timeout_s)
            return False
        return True

    def _main(self) -> None:
        try:
            loop = asyncio.new_event_loop()
            self._loop = loop
        finally:
            self._ready.set()  # never leave start() waiting, even if the loop cannot be made
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            try:
                _cancel_all_tasks(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    def __enter__(self) -> LoopThread:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """What ``asyncio.run`` does on exit: cancel, wait, and report errors that were not cancellation."""
    tasks = asyncio.all_tasks(loop)
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler({"message": "unhandled exception during LoopThread stop",
                                         "exception": task.exception(), "task": task})
