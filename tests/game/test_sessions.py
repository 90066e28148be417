"""One owner per session and bounded sequence numbers: a replayed token takes the session over and
the old address is told; no client can push a player's sequence out of reach."""

from __future__ import annotations

import msgpack

from actors.game.room import InputCounters, RoomConfig, RoomSim
from protocols.game import (
    REJECT_SUPERSEDED,
    SEQ_WINDOW,
    InputDatagram,
    Reject,
    Snapshot,
    encode_input,
)
from tests.support.engine import Player, Rig, players, rig, wait_stats  # noqa: F401 (fixtures)


def test_a_join_from_another_address_takes_the_session_over_and_the_old_address_is_told(
        rig: Rig, players) -> None:
    rig.attach()
    owner = players(1)
    owner.join()
    thief = Player(rig, 1)  # the same token, replayed from another address
    thief.token = owner.token
    try:
        taken = thief.join()
        assert taken.conn != owner.conn
        reject = owner.expect(Reject)
        assert reject.code == REJECT_SUPERSEDED, "the old owner hears at once why it lost it"
        owner.send(encode_input(owner.conn, 1, 1, 0))  # the old connection is dead, silently
        stats = wait_stats(rig, lambda s: s["dropped_unauthenticated"] >= 1)
        assert stats["sessions_taken_over"] == 1 and stats["inputs_received"] == 0
        welcome = owner.join()  # the owner takes it back the same way
        assert thief.expect(Reject).code == REJECT_SUPERSEDED
        owner.send(encode_input(welcome.conn, welcome.last_seq + 1, 1, 0))
        owner.expect(Snapshot, where=lambda s: s.ack == welcome.last_seq + 1)
    finally:
        thief.close()


def test_a_rejoin_from_the_same_address_is_not_a_takeover(rig: Rig, players) -> None:
    rig.attach()
    alice = players(1)
    first = alice.join()
    second = alice.join()  # say, the first WELCOME was lost
    assert second.conn != first.conn
    assert rig.stats()["sessions_taken_over"] == 0


def test_a_hijacker_cannot_freeze_a_player_by_jumping_the_sequence(rig: Rig, players) -> None:
    rig.attach()
    owner = players(1)
    owner.join()
    thief = Player(rig, 1)
    thief.token = owner.token
    try:
        thief.join()
        thief.send(encode_input(thief.conn, 2**31 - 1, 1, 0))  # the attack of the issue
        stats = wait_stats(rig, lambda s: s["dropped_ahead"] == 1)
        assert stats["inputs_applied"] == 0
        welcome = owner.join()
        assert welcome.last_seq == 0, "the jump was refused, so the owner's sequence is intact"
        owner.send(encode_input(welcome.conn, 1, 1, 0))
        owner.expect(Snapshot, where=lambda s: s.ack == 1)
    finally:
        thief.close()


def test_sequence_numbers_may_skip_lost_frames_but_not_jump_beyond_the_window() -> None:
    sim = RoomSim(RoomConfig(room_id="r", players=(1,), seed=1, max_inputs_per_tick=8))
    counters = InputCounters()
    (player,) = sim.players
    sim.step([(player, [InputDatagram(1, SEQ_WINDOW, 1, 0),      # lost frames skipped: fine
                        InputDatagram(1, 2 * SEQ_WINDOW + 1, 1, 0)])],  # a jump: refused
             counters)
    assert player.last_seq == SEQ_WINDOW
    assert (counters.applied, counters.ahead) == (1, 1)


def test_an_input_for_a_connection_this_server_never_issued_is_told_to_join_again(
        rig: Rig, players) -> None:
    """After a server restart, clients still send with their old connection: they hear REJOIN at
    once instead of silence, in a datagram no larger than theirs."""
    rig.attach()
    alice = players(1)
    request = encode_input(424242, 7, 1, 0)
    alice.send(request)
    alice.sock.settimeout(3)
    reply = alice.sock.recv(4096)
    assert len(reply) <= len(request) and msgpack.unpackb(reply)[1] == 13
    alice.join()
    assert alice.expect(Snapshot).tick >= 1, "and, joined again, plays"
