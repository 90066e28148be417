"""A game server's hot path on real loopback UDP, without actors: joining, inputs per tick,
snapshots, drops that are counted, and a crashed room resumed from its checkpoint."""

from __future__ import annotations

import os
import threading
from itertools import pairwise

import msgpack

from actors.game.engine import RoomFailed, RoomFinished, slot_after
from protocols.errors import ConfigError
from protocols.game import (
    REJECT_BAD_TOKEN,
    REJECT_NOT_IN_ROOM,
    GameOver,
    Reject,
    Rejoin,
    Snapshot,
    decode_server,
    encode_input,
    encode_join,
    encode_leave,
)

from tests.support.engine import Player, Rig, players, rig, wait_stats  # noqa: F401 (fixtures)


def test_a_player_with_a_valid_token_joins_and_gets_a_snapshot_every_tick(rig, players) -> None:
    rig.attach()
    alice = players(1)
    welcome = alice.join()
    assert (welcome.room_id, welcome.player_id, welcome.last_seq) == ("r1", 1, 0)
    ticks = [alice.expect(Snapshot).tick for _ in range(5)]
    assert ticks == list(range(ticks[0], ticks[0] + 5)), "one snapshot per tick, none missed"


def test_at_a_lower_snapshot_rate_rooms_take_turns_so_every_tick_sends_a_share() -> None:
    rig = Rig(snapshot_every=2)
    try:
        for room_id, player_id in (("r1", 1), ("r2", 2)):
            rig.attach(room_id, (player_id,))
        alice, bob = Player(rig, 1), Player(rig, 2)
        try:
            alice.join("r1")
            bob.join("r2")
            a = [alice.expect(Snapshot).tick for _ in range(4)]
            b = [bob.expect(Snapshot).tick for _ in range(4)]
        finally:
            alice.close()
            bob.close()
    finally:
        rig.close()
    assert [y - x for x, y in pairwise(a)] == [2, 2, 2], "each room: every other tick"
    assert [y - x for x, y in pairwise(b)] == [2, 2, 2]
    assert a[0] % 2 != b[0] % 2, "the two rooms send on alternate ticks"


def test_a_tick_is_late_when_it_ends_after_its_slot_and_every_slot_it_overran_is_skipped() -> None:
    assert slot_after(10.0, 10.4, 1.0) == (11.0, 0, 0)
    assert slot_after(10.0, 11.5, 1.0) == (11.0, 1, 0)   # late; the next one starts late
    assert slot_after(10.0, 13.5, 1.0) == (13.0, 3, 2)   # slots 11-12 and 12-13 never ran


def test_loop_cpu_pins_the_loop_thread_alone() -> None:
    ours = os.sched_getaffinity(0)
    cpu = max(ours)
    rig = Rig(loop_cpu=cpu)
    try:
        assert rig.engine.loop_tid not in (0, threading.get_native_id())
        assert os.sched_getaffinity(rig.engine.loop_tid) == {cpu}
        assert os.sched_getaffinity(0) == ours, "the calling thread keeps its CPUs"
        assert rig.stats()["loop_tid"] == rig.engine.loop_tid
    finally:
        rig.close()


def test_loop_priority_runs_the_loop_thread_alone_under_sched_fifo() -> None:
    try:
        rig = Rig(loop_priority=5)
    except ConfigError as exc:  # not permitted here: the refusal names what is missing
        assert "CAP_SYS_NICE" in str(exc)
        return
    try:
        assert os.sched_getscheduler(rig.engine.loop_tid) == os.SCHED_FIFO
        assert os.sched_getparam(rig.engine.loop_tid).sched_priority == 5
        assert os.sched_getscheduler(0) == os.SCHED_OTHER, "the calling thread stays ordinary"
    finally:
        rig.close()


def test_inputs_are_acknowledged_by_the_snapshot_of_the_tick_that_applied_them(rig, players) -> None:
    rig.attach(speed=10)
    alice = players(1)
    alice.join()
    start = alice.expect(Snapshot)
    x0 = start.players[1]
    alice.send(encode_input(alice.conn, 1, -1 if x0 > 500 else 1, 0))
    snap = alice.expect(Snapshot, where=lambda s: s.ack == 1)
    assert abs(snap.players[1] - x0) == 10
    stats = rig.stats()
    assert stats["inputs_received"] == stats["inputs_applied"] == 1


def test_stale_and_duplicate_datagrams_are_dropped_and_counted(rig, players) -> None:
    rig.attach()
    alice = players(1)
    alice.join()
    alice.send(encode_input(alice.conn, 5, 1, 0))
    alice.expect(Snapshot, where=lambda s: s.ack == 5)
    for seq in (5, 5, 3):  # two resends and one that arrives late
        alice.send(encode_input(alice.conn, seq, 1, 0))
    stats = wait_stats(rig, lambda s: s["dropped_duplicate"] + s["dropped_stale"] == 3)
    assert (stats["dropped_duplicate"], stats["dropped_stale"], stats["inputs_applied"]) == (2, 1, 1)


def test_bad_and_unauthenticated_datagrams_are_dropped_counted_and_harmless(rig, players) -> None:
    rig.attach()
    alice, mallory = players(1), players(2)
    alice.join()
    mallory.send(b"\xc1garbage")
    mallory.send(msgpack.packb([1, 2, 1, 1, 9, 9]))                   # decodes badly: out of range
    mallory.send(encode_input(alice.conn, 1, 1, 0))                  # alice's conn, wrong address
    mallory.send(encode_input(123456, 1, 1, 0))                      # a connection never issued
    mallory.send(encode_leave(alice.conn))                           # ending alice's session
    forged = alice.token.rsplit(".", 1)[0] + ".forged"
    mallory.send(encode_join(forged, "r1"))
    assert mallory.expect(Reject).code == REJECT_BAD_TOKEN
    outsider = players(99)
    outsider.send(encode_join(outsider.token, "r1"))
    assert outsider.expect(Reject).code == REJECT_NOT_IN_ROOM
    stats = wait_stats(rig, lambda s: s["dropped_bad"] == 2 and s["dropped_unauthenticated"] == 5)
    assert stats["inputs_received"] == 0
    alice.send(encode_input(alice.conn, 1, 1, 0))
    alice.expect(Snapshot, where=lambda s: s.ack == 1)  # alice still plays


def test_a_refused_join_is_answered_with_no_more_bytes_than_it_had(rig, players) -> None:
    """A forged source address must not make the server an amplifier."""
    rig.attach()
    mallory = players(2)
    for request in (encode_join("x", "r"), encode_join("v1.1.1.x" * 10, "r1")):
        mallory.send(request)
        mallory.sock.settimeout(3)
        reply = mallory.sock.recv(4096)
        assert isinstance(decode_server(reply), Reject) and len(reply) <= len(request)


def test_a_crashed_room_resumes_from_its_checkpoint_and_its_players_rejoin(rig, players) -> None:
    rig.attach(speed=10)
    alice = players(1)
    alice.join()
    for seq in (1, 2, 3):
        alice.send(encode_input(alice.conn, seq, 1, 1))
    before = alice.expect(Snapshot, where=lambda s: s.ack == 3)
    assert rig.call(rig.engine.inject_fault, "r1")
    failed = rig.event()
    assert isinstance(failed, RoomFailed) and (failed.room_id, failed.incarnation) == ("r1", 1)
    alice.send(encode_input(alice.conn, 4, 1, 1))
    assert alice.expect(Rejoin).conn == alice.conn, "the server tells the player to join again"
    rig.attach(incarnation=2, speed=10)  # what the supervisor's restart does
    welcome = alice.join()
    assert welcome.last_seq == 3, "the restored room knows which inputs it applied"
    snap = alice.expect(Snapshot)
    assert snap.players[1:4] == before.players[1:4], "position and score as checkpointed"
    assert snap.tick >= before.tick
    alice.send(encode_input(welcome.conn, 4, 1, 1))
    assert alice.expect(Snapshot, where=lambda s: s.ack == 4).players[1] == before.players[1] + 10
    assert rig.stats()["room_crashes"] == 1


def test_a_finished_room_says_game_over_and_reports_its_scores_once(rig, players) -> None:
    rig.attach(round_ticks=30)
    alice = players(1)
    alice.join()
    over = alice.expect(GameOver)
    finished = rig.event()
    assert isinstance(finished, RoomFinished) and finished.tick == 30
    assert over.scores == [v for pair in finished.scores for v in pair]
    rig.attach(incarnation=2, round_ticks=30)  # a restart after the end replays the result only
    again = rig.event()
    assert isinstance(again, RoomFinished) and (again.incarnation, again.scores) == \
        (2, finished.scores)
    assert rig.stats()["rooms"] == 0
