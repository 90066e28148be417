"""The whole game system in real processes: HTTP login, queueing when full, rooms formed and
supervised, a crashed room resumed with its players, scores on the leaderboard, bots on UDP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import pytest

from actors.game.auth import SessionTokens
from actors.game.bots import BotFleet
from protocols.game import (
    CrashRoom,
    GameOver,
    Rejoin,
    Snapshot,
)
from systems.bench.game import CpuPlan, bench_settings, bench_tree, measure, measure_bare
from systems.game import SYSTEM
from tests.support.game import Http, UdpPlayer, settings, wait

pytestmark = pytest.mark.multiproc


def test_login_over_http_accepts_good_and_refuses_bad_credentials(make_runtime, tmp_path) -> None:
    rt = make_runtime(SYSTEM.tree(settings(tmp_path)), base="multiproc")
    http = Http(rt)
    login = http.player("alice")
    assert SessionTokens("system-test-secret-0123456789").verify(login["token"]) == \
        login["player_id"]
    status, body, _ = http.post("/login", {"name": "alice", "password": "not-her-password"})
    assert (status, body["error"]) == (401, "bad name or password")
    status, body, _ = http.post("/login", {"name": "a", "password": "short"})
    assert status == 400 and {f["field"] for f in body["fields"]} == {"name", "password"}
    status, body, _ = http.post("/queue", {"token": login["token"] + "x"})
    assert status == 401
    for n in range(5):
        assert http.post("/chat/send", {"token": login["token"], "room": "lobby",
                                        "text": f"hi {n}"})[0] == 200
    status, body, headers = http.post("/chat/send", {"token": login["token"], "room": "lobby",
                                                     "text": "one too many"})
    assert status == 429 and int(headers["Retry-After"]) >= 1


def test_players_queue_when_full_and_finished_rounds_reach_the_leaderboard(make_runtime,
                                                                           tmp_path) -> None:
    """One server with one room slot of two: the third player waits at position 1 until the
    first round ends, then plays (alone, after fill_wait_s); both rounds' scores are ranked."""
    rt = make_runtime(SYSTEM.tree(settings(tmp_path, round_s=1.0)), base="multiproc")
    http = Http(rt)
    ann, bob, cat = (http.player(n) for n in ("ann", "bob", "cat"))
    answers = [http.post("/queue", {"token": p["token"]})[1] for p in (ann, bob, cat)]
    assert answers[2]["status"] == "queued" and answers[2]["position"] == 1
    matched = wait(lambda: http.post("/queue/status", {"token": ann["token"]})[1]
                   if http.post("/queue/status", {"token": ann["token"]})[1]["status"] == "matched"
                   else None, what="ann matched")
    bob_status = http.post("/queue/status", {"token": bob["token"]})[1]
    assert bob_status["room_id"] == matched["room_id"], "ann and bob share the room"
    cat_status = http.post("/queue/status", {"token": cat["token"]})[1]
    assert (cat_status["status"], cat_status["position"]) == ("queued", 1)

    server = (matched["server_host"], matched["server_port"])
    player = UdpPlayer(ann["token"], matched["room_id"], server)
    player.join()
    for seq in range(1, 30):
        player.send_input(seq)
    over = player.expect(GameOver)
    assert over.room_id == matched["room_id"]

    second = wait(lambda: (a := http.post("/queue/status", {"token": cat["token"]})[1])["status"]
                  == "matched" and a, what="cat matched once the room ended")
    assert second["room_id"] != matched["room_id"]
    assert http.post("/queue/status", {"token": ann["token"]})[1]["status"] == "idle"

    def ranked() -> Any:
        rows = http.post("/leaderboard/top", {"n": 10})[1]["rows"]
        return rows if {r["name"] for r in rows} >= {"ann", "bob", "cat"} else None
    rows = wait(ranked, what="three players on the leaderboard")
    assert [r["rank"] for r in rows] == sorted(r["rank"] for r in rows)
    assert all(r["games"] == 1 for r in rows)
    rank = http.post("/leaderboard/rank", {"player_id": ann["player_id"]})[1]
    assert rank["rank"] >= 1 and rank["ranked_players"] == 3


def test_a_crashed_room_restarts_from_its_snapshot_and_its_player_plays_on(make_runtime,
                                                                           tmp_path) -> None:
    rt = make_runtime(SYSTEM.tree(settings(tmp_path, room_size=1, max_inputs_per_tick=16)),
                      base="multiproc")
    http = Http(rt)
    ann = http.player("ann")
    http.post("/queue", {"token": ann["token"]})
    matched = wait(lambda: (a := http.post("/queue/status", {"token": ann["token"]})[1])["status"]
                   == "matched" and a, what="ann matched")
    player = UdpPlayer(ann["token"], matched["room_id"], (matched["server_host"],
                                                         matched["server_port"]))
    player.join()
    for seq in range(1, 11):
        player.send_input(seq, 1, 1)
    before = player.expect(Snapshot, where=lambda s: s.ack == 10)
    (room,) = rt.which_children("rooms-1").children
    assert rt.ask("game-1", CrashRoom(room_id=matched["room_id"])) is True
    restarted = wait(lambda: (c := rt.which_children("rooms-1").children) and c[0].restarts == 1
                     and c[0].status == "running" and c[0], what="the room restarted")
    assert restarted.child_id == room.child_id and restarted.address != room.address
    assert restarted.last_exit is not None and restarted.last_exit.error_type == "RoomCrashedError"

    player.send_input(11, 1, 1)  # the old connection died with the old incarnation
    assert player.expect(Rejoin).conn == player.conn
    welcome = player.join()  # join again with the same token
    assert welcome.last_seq == 10, "the restarted room resumed from its last snapshot"
    snap = player.expect(Snapshot)
    assert snap.players[1:3] == before.players[1:3], "position kept across the crash"
    player.send_input(11, 1, 1)
    after = player.expect(Snapshot, where=lambda s: s.ack == 11)
    assert after.players[1] == min(1000, before.players[1] + 5), "and the player plays on"


def test_bots_log_in_queue_and_play_over_udp_as_the_benchmark_measures(make_runtime,
                                                                       tmp_path) -> None:
    """The benchmark's steps on a small scale: 6 bots in 2 processes, a short window."""
    s = bench_settings(6, str(tmp_path), hash_profile="fast", bot_processes=2, room_size=3)
    rt = make_runtime(bench_tree(s), base="multiproc")
    result = measure(rt, s, duration_s=1.0, settle_s=0.2, warmup_timeout_s=60,
                     naive_inputs=200)
    assert result["inputs_per_s"] > 0 and result["inputs_applied_per_s"] > 0
    assert result["input_to_snapshot_p99_ms"] is not None and result["latency_samples"] > 50
    assert result["naive_inputs_per_s"] > 0 and result["rooms"] == 2
    assert result["dropped"]["unauthenticated"] == 0 and result["room_crashes"] == 0
    assert set(result["meets_targets"]) == {"players", "inputs_per_s", "tick_p99_ms",
                                           "late_tick_ratio"}


def test_the_bare_baseline_is_played_by_the_same_bots_and_measured_the_same_way(
        tmp_path) -> None:
    s = bench_settings(6, str(tmp_path), hash_profile="fast", bot_processes=2, room_size=3,
                       snapshot_every=2)
    result = measure_bare(s, duration_s=1.0, settle_s=0.2, warmup_timeout_s=60)
    assert result["bare_players_playing"] == 6
    assert result["bare_inputs_per_s"] > 0 and result["bare_inputs_applied_per_s"] > 0
    assert result["bare_bots_snapshot_loss_ratio"] == 0.0, "the same snapshot rate as the bots'"
    assert result["bare_tick_p99_ms"] > 0 and result["bare_input_to_snapshot_p99_ms"] is not None


def test_the_floor_loop_counts_a_tick_late_when_its_work_cannot_fit_the_slot() -> None:
    from systems.bench.game.bare import floor
    fits = floor(work_ms=1.0, seconds=0.5, tick_hz=60)
    overruns = floor(work_ms=25.0, seconds=0.5, tick_hz=60)
    assert fits["ticks"] >= 29 and fits["late_tick_ratio"] < 0.5
    assert overruns["late_tick_ratio"] == 1.0, "25 ms of work never fits a 16.7 ms slot"


def test_the_cpu_plan_puts_every_thread_of_a_server_on_its_own_cpu_and_restores_ours() -> None:
    plan = CpuPlan(True)
    if len(os.sched_getaffinity(0)) < 2:
        assert plan.describe() is None  # one CPU: nothing to separate
        return
    original = os.sched_getaffinity(0)
    server = subprocess.Popen([sys.executable, "-c", "import threading, time; "
                               "threading.Thread(target=time.sleep, args=(30,)).start(); "
                               "time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while len(os.listdir(f"/proc/{server.pid}/task")) < 2:
            assert time.monotonic() < deadline, "the server's second thread never started"
            time.sleep(0.01)
        plan.apply([server.pid], [])
        for task in os.listdir(f"/proc/{server.pid}/task"):
            assert os.sched_getaffinity(int(task)) == plan.server_cpus
        assert os.sched_getaffinity(0) == plan.other_cpus
    finally:
        plan.restore()
        server.kill()
        server.wait(10)
    assert os.sched_getaffinity(0) == original


def test_bot_fleet_stops_every_process_it_started() -> None:
    fleet = BotFleet("http://127.0.0.1:9", players=2, processes=2).start()  # nothing listens
    procs = list(fleet._procs)
    result = fleet.stop(timeout_s=10)
    assert result.processes == 2 and result.inputs_sent == 0
    assert all(p.returncode is not None for p in procs), "every bot process has exited"
    for p in procs:
        with pytest.raises(ProcessLookupError):
            os.kill(p.pid, 0)
