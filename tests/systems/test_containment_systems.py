"""Linked death in the real systems: SIGKILL of each supervisor's OS process in turn takes its
subtree along (no actor is left to init holding a port), its parent restarts the subtree, and the
system answers a real request again within 5 s."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from protocols.light import LightAddress
from protocols.supervision import ChildInfo
from systems.processes import orphans_in_sessions, pid_alive
from systems.runtime import ActorRuntime
from tests.support.game import Http, UdpPlayer
from tests.support.game import settings as game_settings
from tests.support.smart_home import reading, start_home

pytestmark = pytest.mark.multiproc

SERVING_WITHIN_S = 5.0


def process_supervisors(rt: ActorRuntime, address: Any = None,
                        path: str = "") -> Iterator[tuple[str, ChildInfo]]:
    """(path, info) of every supervisor below the root that has an OS process of its own."""
    report = rt.which_children(address)
    for child in report.children:
        if not child.is_supervisor or child.status != "running":
            continue
        if type(child.address) is not LightAddress:
            yield f"{report.path}/{child.child_id}", child
        yield from process_supervisors(rt, child.address)


def subtree_pids(rt: ActorRuntime, info: ChildInfo) -> set[int]:
    pids = {info.pid}
    for child in rt.which_children(info.address).children:
        if child.status == "running" and child.pid:
            pids |= subtree_pids(rt, child) if child.is_supervisor else {child.pid}
    return pids


def kill_and_wait_serving(rt: ActorRuntime, path: str, info: ChildInfo,
                          serves: Callable[[], bool]) -> float:
    """SIGKILL the supervisor's process; return how long until ``serves()`` holds again."""
    doomed = subtree_pids(rt, info)
    os.kill(info.pid, signal.SIGKILL)
    began = time.monotonic()
    while True:
        if not any(pid_alive(p) for p in doomed) and serves():
            return time.monotonic() - began
        assert time.monotonic() - began < SERVING_WITHIN_S, \
            f"not serving within {SERVING_WITHIN_S} s of killing {path}: " \
            f"{[p for p in doomed if pid_alive(p)]} of {sorted(doomed)} alive"
        rt.idle(0.05)


def test_the_smart_home_serves_again_after_each_supervisor_is_killed(make_runtime,
                                                                     tmp_path: Path) -> None:
    home = start_home(make_runtime, tmp_path, base="multiproc")
    supervisors = list(process_supervisors(home.rt))
    assert [path for path, _ in supervisors] == ["/smart-home/analyzers"]

    def serves() -> bool:
        try:
            posted = home.post("/readings", reading("heating"))
            stats = home.get("/rooms/living/stats")
        except OSError:
            return False
        return posted.status == 200 and stats.status == 200

    assert serves()
    for path, info in supervisors:
        took = kill_and_wait_serving(home.rt, path, info, serves)
        assert took < SERVING_WITHIN_S
        assert not orphans_in_sessions(home.rt.session_ids)
        restarted = next(i for p, i in process_supervisors(home.rt) if p == path)
        assert restarted.pid != info.pid and restarted.restarts == 1


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_game_serves_again_on_the_same_udp_port_after_each_supervisor_is_killed(
        make_runtime, tmp_path: Path) -> None:
    from systems.game import SYSTEM
    port = free_udp_port()
    s = game_settings(tmp_path, room_size=1, rooms_per_server=50, udp_port=port)
    rt = make_runtime(SYSTEM.tree(s), base="multiproc", name="game")
    http = Http(rt)
    supervisors = list(process_supervisors(rt))
    assert [path for path, _ in supervisors] == ["/game/server-1"]
    players = iter(range(100))

    def plays() -> bool:
        """A new player logs in, queues, is matched and is welcomed by a game server over UDP."""
        try:
            login = http.player(f"player{next(players)}")
            http.post("/queue", {"token": login["token"]})
            deadline = time.monotonic() + 2
            while (status := http.post("/queue/status", {"token": login["token"]})[1])[
                    "status"] != "matched":
                if time.monotonic() > deadline:
                    return False
                rt.idle(0.02)
            assert status["server_port"] == port  # the replacement bound the same port again
            player = UdpPlayer(login["token"], status["room_id"],
                               (status["server_host"], status["server_port"]))
            return player.join().conn > 0
        except (OSError, AssertionError):
            return False

    assert plays()
    for path, info in supervisors:
        kill_and_wait_serving(rt, path, info, plays)
        assert not orphans_in_sessions(rt.session_ids)
    assert [(p, i.restarts) for p, i in process_supervisors(rt)] == [("/game/server-1", 1)]
    assert http.post("/leaderboard/top", {"n": 3})[0] == 200


def test_the_lobby_takes_a_game_result_only_from_a_game_server(make_runtime, tmp_path: Path) -> None:
    """An actor of the same system (here the test, holding the cookie) that is not a game server
    cannot set a player's score: the lobby refuses and counts it. Rounds played on the game server
    still reach the leaderboard (tests/test_game_system.py)."""
    from protocols.errors import RequestFailedError
    from protocols.game import GameResult, PlayerScore
    from protocols.supervision import ActorStats, GetActorStats
    from systems.game import SYSTEM
    rt = make_runtime(SYSTEM.tree(game_settings(tmp_path)), base="multiproc", name="game")
    http = Http(rt)
    ann = http.player("ann")
    forged = GameResult(game_id="forged", room_id="forged", ended_at=1.0,
                        scores=[PlayerScore(player_id=ann["player_id"], score=1_000_000)])
    with pytest.raises(RequestFailedError, match="refused: GameResult is taken only from game_servers"):
        rt.ask("lobby", forged, 10)
    stats = rt.ask("lobby", GetActorStats(), 5)
    assert isinstance(stats, ActorStats) and stats.refused_senders == 1
    assert http.post("/leaderboard/top", {"n": 10})[1]["rows"] == []
