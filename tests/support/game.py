"""The game as a client sees it, for tests: settings for a small system, the lobby over HTTP, a
player over UDP."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from protocols.game import LobbyAddress, LobbyInfo, MatchStatus, Welcome, decode_server, \
    encode_input, encode_join
from systems.game import SYSTEM, GameSettings
from systems.runtime import ActorRuntime
from tests.support.clients import call, expect_datagram

__all__ = ["Http", "UdpPlayer", "settings", "wait"]


def settings(tmp_path: Path, **overrides: Any) -> GameSettings:
    values = {"data_dir": str(tmp_path), "lobby_port": 0, "udp_port": 0, "hash_profile": "fast",
              "room_size": 2, "rooms_per_server": 1, "fill_wait_s": 0.3, "poll_s": 0.2,
              "token_secret": "system-test-secret-0123456789", **overrides}
    built = SYSTEM.settings(overrides=values)
    assert isinstance(built, GameSettings)
    return built


class Http:
    """The lobby as a client sees it; made once the matchmaker knows every game server."""

    def __init__(self, rt: ActorRuntime) -> None:
        wait(lambda: rt.ask("matchmaker", MatchStatus()).servers_up == 1, what="server known")
        answer = rt.ask("lobby", LobbyInfo(), 10)
        assert isinstance(answer, LobbyAddress)
        self.url = answer.url

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], Any]:
        answer = call(self.url + path, body, timeout_s=10)
        return answer.status, answer.json, answer.headers

    def player(self, name: str) -> dict[str, Any]:
        credentials = {"name": name, "password": "password-" + name}
        assert self.post("/accounts", credentials)[0] == 200
        status, login, _ = self.post("/login", credentials)
        assert status == 200
        return login


def wait(predicate: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"{what} not reached within {timeout_s} s"
        time.sleep(0.02)  # polling an HTTP or actor status with a deadline
    return value


class UdpPlayer:
    def __init__(self, token: str, room_id: str, server: tuple[str, int]) -> None:
        self.token, self.room_id, self.server = token, room_id, server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.conn = 0

    def expect(self, kind: type, where: Callable[[Any], bool] = lambda d: True,
               timeout_s: float = 5.0) -> Any:
        return expect_datagram(self.sock, decode_server, kind, where=where, timeout_s=timeout_s)

    def join(self) -> Welcome:
        self.sock.sendto(encode_join(self.token, self.room_id), self.server)
        welcome = self.expect(Welcome)
        self.conn = welcome.conn
        return welcome

    def send_input(self, seq: int, dx: int = 1, dy: int = 0) -> None:
        self.sock.sendto(encode_input(self.conn, seq, dx, dy), self.server)
