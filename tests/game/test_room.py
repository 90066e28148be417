"""The game's rules, as a room applies one tick: order, stale and duplicate inputs, coins, restore."""

from __future__ import annotations

import pytest

from actors.game.room import InputCounters, RoomConfig, RoomSim
from protocols.game import InputDatagram


def room(players: tuple[int, ...] = (1, 2), **rules: int) -> RoomSim:
    return RoomSim(RoomConfig(room_id="r1", players=players, seed=7, **rules))


def place(sim: RoomSim, player_id: int, x: int, y: int) -> None:
    p = sim.player(player_id)
    assert p is not None
    p.x, p.y = x, y


def inputs(*seqs_and_moves: tuple[int, int, int]) -> list[InputDatagram]:
    return [InputDatagram(1, seq, dx, dy) for seq, dx, dy in seqs_and_moves]


def test_inputs_of_a_tick_are_applied_in_sequence_order_whatever_their_arrival_order() -> None:
    sim, counters = room(speed=10), InputCounters()
    place(sim, 1, 500, 500)
    player = sim.player(1)
    # arrived 3, 1, 2: applied 1, 2, 3; the last applied seq is 3 and every move counts
    sim.step([(player, inputs((3, 0, 1), (1, 1, 0), (2, 1, 0)))], counters)
    assert (player.x, player.y, player.last_seq) == (520, 510, 3)
    assert counters.applied == 3 and counters.stale == counters.duplicate == 0


def test_every_player_moves_before_any_coin_is_resolved() -> None:
    """Player 2's input arrives first and is applied first, but player 1 ends the tick nearer the
    coin, so player 1 scores: arrival order within a tick never decides."""
    sim, counters = room(speed=10, coins=1, pickup_radius=20), InputCounters()
    cx, cy = sim.coins[0], sim.coins[1]
    place(sim, 1, cx - 15, cy)   # one step away: ends at distance 5
    place(sim, 2, cx + 25, cy)   # one step away: ends at distance 15
    p1, p2 = sim.player(1), sim.player(2)
    sim.step([(p2, inputs((1, -1, 0))), (p1, inputs((1, 1, 0)))], counters)
    assert (p1.score, p2.score) == (1, 0)
    assert (sim.coins[0], sim.coins[1]) != (cx, cy), "a taken coin reappears elsewhere"


def test_a_coin_equidistant_from_two_players_goes_to_the_lower_player_id() -> None:
    sim, counters = room(players=(4, 9), coins=1), InputCounters()
    cx, cy = sim.coins[0], sim.coins[1]
    place(sim, 9, cx - 3, cy)
    place(sim, 4, cx + 3, cy)
    sim.step([], counters)
    assert (sim.player(4).score, sim.player(9).score) == (1, 0)


def test_stale_and_duplicate_inputs_are_ignored_and_counted() -> None:
    sim, counters = room(speed=1), InputCounters()
    place(sim, 1, 500, 500)
    player = sim.player(1)
    sim.step([(player, inputs((5, 1, 0)))], counters)
    # next tick: 5 again (a resend), 4 (late), 6 twice (duplicated in flight), 7
    sim.step([(player, inputs((5, 1, 0), (4, 1, 0), (6, 1, 0), (6, 1, 0), (7, 1, 0)))], counters)
    assert (player.x, player.last_seq) == (503, 7), "only 5, 6 and 7 moved the player"
    assert (counters.applied, counters.stale, counters.duplicate) == (3, 1, 2)


def test_a_player_cannot_apply_more_inputs_per_tick_than_the_cap() -> None:
    sim, counters = room(speed=1, max_inputs_per_tick=2), InputCounters()
    place(sim, 1, 500, 500)
    player = sim.player(1)
    sim.step([(player, inputs(*((seq, 1, 0) for seq in range(1, 6))))], counters)
    assert (player.x, player.last_seq) == (502, 2)
    assert (counters.applied, counters.excess) == (2, 3)


def test_players_stay_inside_the_arena() -> None:
    sim, counters = room(speed=10, arena=1000), InputCounters()
    place(sim, 1, 5, 995)
    player = sim.player(1)
    sim.step([(player, inputs((1, -1, 1)))], counters)
    assert (player.x, player.y) == (0, 1000)


def test_a_room_restored_from_its_checkpoint_continues_identically() -> None:
    original, counters = room(players=(1, 2, 3)), InputCounters()
    for seq in range(1, 40):
        original.step([(p, inputs((seq, 1, (seq % 3) - 1))) for p in original.players], counters)
    saved = original.checkpoint()
    restored = RoomSim(original.config, saved)
    assert restored.checkpoint() == saved
    for sim in (original, restored):
        for seq in range(40, 80):
            sim.step([(p, inputs((seq, -1, 1))) for p in sim.players], InputCounters())
    assert restored.checkpoint() == original.checkpoint()


def test_a_failed_step_leaves_the_checkpoint_as_the_state_to_resume_from() -> None:
    """The fault strikes after the players moved and before coins: the half-applied tick must not
    survive, so the room resumes from the last complete tick."""
    sim, counters = room(speed=10), InputCounters()
    place(sim, 1, 500, 500)
    sim.step([(sim.player(1), inputs((1, 1, 0)))], counters)
    saved = sim.checkpoint()
    sim.fault = True
    with pytest.raises(RuntimeError, match="fault injected"):
        sim.step([(sim.player(1), inputs((2, 1, 0)))], counters)
    assert sim.player(1).x == 520, "the broken tick moved the player in the broken object"
    resumed = RoomSim(sim.config, saved)
    assert (resumed.player(1).x, resumed.player(1).last_seq, resumed.tick) == (510, 1, 1)


def test_the_round_ends_after_its_last_tick() -> None:
    sim, counters = room(round_ticks=3), InputCounters()
    for _ in range(5):
        sim.step([], counters)
    assert sim.finished and sim.tick == 3


@pytest.mark.parametrize("bad", [
    {"room_id": "has space"}, {"players": ()}, {"players": (1, 1)}, {"speed": 0},
])
def test_an_impossible_room_is_refused_when_configured(bad: dict) -> None:
    fields = {"room_id": "r1", "players": (1, 2), **bad}
    with pytest.raises(ValueError):
        RoomConfig(**fields)
