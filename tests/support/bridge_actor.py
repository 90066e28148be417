"""A thread that stands in for the Thespian actor behind an ``EdgeBridge``: it waits on ``wake_fd``,
drains, and answers each item. Shared by the bridge and HTTP app tests."""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Callable
from typing import Any

from actors.edges import EdgeBridge, Pending


class ActorThread:
    def __init__(self, bridge: EdgeBridge[Any], answer: Callable[[Pending[Any]], None], *,
                 drain_max: int = 16) -> None:
        self.bridge = bridge
        self.answer = answer
        self.drain_max = drain_max  # small, so tests see partial drains keep wake_fd readable
        self.wakeups = 0
        self._stop_r, self._stop_w = socket.socketpair()
        self._thread = threading.Thread(target=self._run, name="test-actor", daemon=True)

    def _run(self) -> None:
        while True:
            ready, _, _ = select.select([self.bridge.wake_fd, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            self.wakeups += 1
            for pending in self.bridge.drain(max_items=self.drain_max):
                self.answer(pending)

    def __enter__(self) -> ActorThread:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_w.send(b"x")
        self._thread.join(5)
        assert not self._thread.is_alive()
        self._stop_r.close()
        self._stop_w.close()
