"""Recovery as players meet it, in real processes: a game server, the matchmaker or the lobby is
killed (SIGKILL) and comes back; players are told at once, resume within a second of the new
process being up, and keep the scores of the interrupted round up to its last checkpoint."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

from protocols.errors import PtrError
from protocols.game import (
    GameOver,
    MatchStatus,
    Reject,
    Rejoin,
    ServerReport,
    ServerStatus,
    Snapshot,
    Welcome,
    encode_join,
)
from systems.game import SYSTEM
from tests.support.game import Http, UdpPlayer, settings, wait

pytestmark = pytest.mark.multiproc


def _pid_of(rt: Any, child_id: str, supervisor: Any = None) -> int:
    (child,) = [c for c in rt.which_children(supervisor).children if c.child_id == child_id]
    return int(child.pid)


def _matched(http: Http, token: str) -> dict[str, Any]:
    return wait(lambda: (a := http.post("/queue/status", {"token": token})[1])["status"]
                == "matched" and a, what="matched")


def test_after_a_game_server_kill_players_rejoin_within_a_second_with_their_scores(
        make_runtime, tmp_path, free_udp_port) -> None:
    """Every tick the one player takes every coin (coins and players all near the middle, within
    the pickup radius): its score grows 3 a tick, so a restored room that lost the checkpoint
    would show it at once."""
    rt = make_runtime(SYSTEM.tree(settings(tmp_path, room_size=1, pickup_radius=490,
                                           udp_port=free_udp_port, round_s=4)),
                      base="multiproc")
    http = Http(rt)
    ann = http.player("ann")
    http.post("/queue", {"token": ann["token"]})
    matched = _matched(http, ann["token"])
    room_id = matched["room_id"]
    server = (matched["server_host"], matched["server_port"])
    player = UdpPlayer(ann["token"], room_id, server)
    player.join()
    seen = player.expect(Snapshot, where=lambda s: s.players[3] >= 30)
    wait(lambda: rt.ask("matchmaker", MatchStatus()).checkpoint_ticks.get(room_id, 0) >= seen.tick,
         what="the matchmaker holds a checkpoint at least as new as what ann saw")
    report = rt.ask("game-1", ServerStatus())
    assert isinstance(report, ServerReport)

    os.kill(report.pid, signal.SIGKILL)
    killed = time.monotonic()
    told = wait(lambda: (a := http.post("/queue/status", {"token": ann["token"]})[1])["status"]
                != "matched" and a, what="the lobby stops pointing at the dead room")
    assert told["status"] == "starting" and told["room_id"] == room_id
    assert time.monotonic() - killed < 1.0, "told within a second of the kill"

    def new_server_up() -> float | None:
        try:
            answer = rt.ask("game-1", ServerStatus(), 1)
        except PtrError:
            return None
        return time.monotonic() if answer.pid != report.pid else None

    up_at = wait(new_server_up, what="a new game server process")
    # the client's state machine: an input; REJOIN -> JOIN; REJECT unknown room -> ask the lobby
    seq = seen.ack + 1
    while True:
        player.send_input(seq)
        reply = player.expect(object, timeout_s=2)
        if isinstance(reply, Rejoin):
            player.sock.sendto(encode_join(ann["token"], room_id), server)
            continue
        if isinstance(reply, Reject):
            answer = http.post("/queue/status", {"token": ann["token"]})[1]
            assert answer["status"] in ("starting", "matched"), answer
            assert answer["room_id"] == room_id
            continue
        if isinstance(reply, Welcome):
            player.conn = reply.conn
            break
    resumed_at = time.monotonic()
    assert resumed_at - up_at < 1.0, "resumed within a second of the new server being up"
    assert reply.last_seq >= seen.ack and reply.room_id == room_id
    snap = player.expect(Snapshot)
    assert snap.players[3] >= seen.players[3], "the round's score kept up to its checkpoint"
    assert snap.tick >= seen.tick
    status = http.post("/queue/status", {"token": ann["token"]})[1]
    assert (status["status"], status["room_id"]) == ("matched", room_id)
    over = player.expect(GameOver, timeout_s=6)  # the interrupted round plays to its end ...
    assert over.room_id == room_id and over.scores[1] >= seen.players[3]
    rows = wait(lambda: http.post("/leaderboard/top", {"n": 1})[1]["rows"], what="the result")
    assert rows[0]["total"] == over.scores[1] >= seen.players[3], \
        "... and its score, kept across the kill, reaches the leaderboard"


def test_after_a_matchmaker_kill_the_lobby_reaches_the_new_one_at_once(make_runtime,
                                                                         tmp_path) -> None:
    rt = make_runtime(SYSTEM.tree(settings(tmp_path)), base="multiproc")
    http = Http(rt)
    ann = http.player("ann")
    assert http.post("/queue", {"token": ann["token"]})[1]["status"] == "queued"
    old = rt.whereis("matchmaker")
    os.kill(_pid_of(rt, "matchmaker"), signal.SIGKILL)

    def new_matchmaker() -> float | None:
        try:
            address = rt.whereis("matchmaker", 1)
        except PtrError:
            return None
        return time.monotonic() if address is not None and address != old else None

    up_at = wait(new_matchmaker, what="a new matchmaker")
    ok_at = wait(lambda: http.post("/queue", {"token": ann["token"]})[0] == 200
                 and time.monotonic(), what="the lobby answers queue requests again")
    assert ok_at - up_at < 1.0, "the lobby reached the new matchmaker at once"
    assert http.post("/queue/status", {"token": ann["token"]})[1]["status"] == "queued"


def test_after_a_lobby_kill_it_serves_again_on_its_port_and_takes_the_round_s_result(
        make_runtime, tmp_path, free_tcp_port) -> None:
    """And /queue right after GAME_OVER queues the player again (not 'matched' to the room)."""
    rt = make_runtime(SYSTEM.tree(settings(tmp_path, room_size=1, round_s=2.0,
                                           lobby_port=free_tcp_port)), base="multiproc")
    http = Http(rt)
    ann = http.player("ann")
    http.post("/queue", {"token": ann["token"]})
    matched = _matched(http, ann["token"])
    player = UdpPlayer(ann["token"], matched["room_id"],
                       (matched["server_host"], matched["server_port"]))
    player.join()

    os.kill(_pid_of(rt, "lobby"), signal.SIGKILL)
    killed = time.monotonic()
    wait(lambda: _health(http.url), what="the lobby serves again")
    assert time.monotonic() - killed < 3.0
    over = player.expect(GameOver, timeout_s=5)
    again = http.post("/queue", {"token": ann["token"], "finished_room": over.room_id})[1]
    assert again["status"] in ("queued", "starting") or again["room_id"] != over.room_id
    rows = wait(lambda: http.post("/leaderboard/top", {"n": 5})[1]["rows"],
                what="the finished round recorded by the new lobby")
    assert rows[0]["name"] == "ann" and rows[0]["games"] == 1


def _health(url: str) -> bool:
    from tests.support.clients import call
    try:
        return call(url + "/health", timeout_s=1).status == 200
    except OSError:
        return False
