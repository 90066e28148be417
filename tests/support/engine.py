"""A game server's engine on real loopback UDP without actors, for tests: ``Rig`` runs a
``TickEngine`` on a loop thread, ``Player`` is a UDP client of it; the fixtures ``rig`` and
``players`` make and close them."""

from __future__ import annotations

import queue
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from actors.edges import LoopThread
from actors.game.auth import SessionTokens
from actors.game.engine import EngineSettings, TickEngine
from actors.game.room import RoomConfig
from protocols.game import (
    Welcome,
    decode_server,
    encode_join,
)
from tests.support.clients import expect_datagram

SECRET = "engine-test-secret-0123456789"
TOKENS = SessionTokens(SECRET)


async def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


class Rig:
    """A ``TickEngine`` on its own loop thread, as the ``GameServer`` runs it."""

    def __init__(self, **settings: Any) -> None:
        self.events: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.engine = TickEngine(TOKENS, self.events.put, EngineSettings(port=0, **settings))
        self.loop = LoopThread("engine-test")
        self.loop.start()
        try:
            self.address = self.loop.run(self.engine.start(), 5)
        except BaseException:
            self.close()
            raise

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.loop.run(_call(fn, *args, **kwargs), 5)

    def attach(self, room_id: str = "r1", players: tuple[int, ...] = (1, 2), incarnation: int = 1,
               **rules: int) -> None:
        config = RoomConfig(room_id=room_id, players=players, seed=3, **rules)
        self.call(self.engine.attach, room_id, incarnation, config)

    def stats(self) -> dict[str, Any]:
        return self.call(self.engine.stats)

    def event(self, timeout_s: float = 5.0) -> object:
        return self.events.get(timeout=timeout_s)

    def close(self) -> None:
        try:
            self.loop.run(self.engine.stop(), 5)
        finally:
            self.loop.stop()


class Player:
    """A client socket; ``expect`` reads until a datagram of the wanted type (or fails)."""

    def __init__(self, rig: Rig, player_id: int) -> None:
        self.rig = rig
        self.player_id = player_id
        self.token = TOKENS.issue(player_id)[0]
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.conn = 0

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.rig.address)

    def expect(self, kind: type, timeout_s: float = 3.0,
               where: Callable[[Any], bool] = lambda d: True) -> Any:
        return expect_datagram(self.sock, decode_server, kind, where=where, timeout_s=timeout_s,
                               who=f"player {self.player_id}")

    def join(self, room_id: str = "r1") -> Welcome:
        self.send(encode_join(self.token, room_id))
        welcome = self.expect(Welcome)
        self.conn = welcome.conn
        return welcome

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    rig = Rig()
    yield rig
    rig.close()


@pytest.fixture
def players(rig: Rig) -> Iterator[Callable[[int], Player]]:
    made: list[Player] = []

    def make(player_id: int) -> Player:
        made.append(Player(rig, player_id))
        return made[-1]

    yield make
    for p in made:
        p.close()


def wait_stats(rig: Rig, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while not predicate(stats := rig.stats()):
        assert time.monotonic() < deadline, f"counters never got there: {stats}"
        time.sleep(0.01)  # polling the engine's counters with a deadline
    return stats
