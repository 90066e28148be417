"""Matchmaking: rooms of N form when N wait and a server has a free slot; otherwise players wait
in order and know their position."""

from __future__ import annotations

from actors.game.match import LOST_TTL_S, REPORT_GRACE_S, MatchQueue, RoomPlan
from protocols.game import RoomCheckpoint, RoomInfo, ServerReport


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def server_up(queue: MatchQueue, name: str = "game-1", rooms: list[RoomInfo] | None = None) -> None:
    queue.server_report(ServerReport(server=name, udp_host="127.0.0.1", udp_port=7700,
                                     rooms=rooms or [], sessions=0, pid=1))


def make(room_size: int = 2, rooms_per_server: int = 1, fill_wait_s: float = 3.0,
         servers: int = 1) -> tuple[MatchQueue, Clock]:
    clock = Clock()
    queue = MatchQueue([(f"game-{k}", f"rooms-{k}") for k in range(1, servers + 1)],
                       room_size=room_size, rooms_per_server=rooms_per_server,
                       fill_wait_s=fill_wait_s, clock=clock, seed=1)
    for k in range(1, servers + 1):
        server_up(queue, f"game-{k}")
    return queue, clock


def test_a_room_forms_when_room_size_players_wait() -> None:
    queue, _ = make(room_size=3)
    for p in (1, 2):
        queue.join(p)
    assert queue.plan_rooms() == []
    queue.join(3)
    (plan,) = queue.plan_rooms()
    assert (plan.players, plan.server) == ([1, 2, 3], "game-1")
    assert queue.answer(1).status == "starting"
    queue.room_started(plan.room_id)
    answer = queue.answer(2)
    assert (answer.status, answer.room_id, answer.server_host, answer.server_port) == \
        ("matched", plan.room_id, "127.0.0.1", 7700)


def test_when_servers_are_full_players_queue_with_their_position() -> None:
    queue, _ = make(room_size=2, rooms_per_server=1)
    for p in range(1, 7):
        queue.join(p)
    (first,) = queue.plan_rooms()  # one slot: players 1 and 2 play, 3..6 wait in order
    assert first.players == [1, 2]
    assert [(queue.answer(p).status, queue.answer(p).position) for p in (3, 4, 5, 6)] == \
        [("queued", 1), ("queued", 2), ("queued", 3), ("queued", 4)]
    assert queue.answer(6).queue_length == 4
    queue.leave(4)
    assert queue.answer(5).position == 2, "a player who leaves frees a place"
    queue.room_started(first.room_id)
    queue.room_ended(first.room_id)
    (second,) = queue.plan_rooms()
    assert second.players == [3, 5]
    assert (queue.answer(6).status, queue.answer(6).position) == ("queued", 1)
    assert queue.answer(1).status == "idle", "after the round a player may queue again"


def test_a_partial_room_starts_once_the_oldest_player_waited_fill_wait_s() -> None:
    queue, clock = make(room_size=4, rooms_per_server=2, fill_wait_s=3.0)
    queue.join(1)
    clock.now += 1
    queue.join(2)
    clock.now += 1.9
    assert queue.plan_rooms() == []
    clock.now += 0.2
    (plan,) = queue.plan_rooms()
    assert plan.players == [1, 2]


def test_rooms_spread_over_servers_by_free_slots() -> None:
    queue, _ = make(room_size=1, rooms_per_server=2, servers=2)
    for p in range(1, 5):
        queue.join(p)
    plans = queue.plan_rooms()
    assert sorted(p.server for p in plans) == ["game-1", "game-1", "game-2", "game-2"]


def test_a_room_that_fails_to_start_puts_its_players_back_at_the_front() -> None:
    queue, _ = make(room_size=2)
    for p in (1, 2, 3):
        queue.join(p)
    (plan,) = queue.plan_rooms()
    queue.room_start_failed(plan.room_id)
    assert [queue.answer(p).position for p in (1, 2, 3)] == [1, 2, 3]


def test_no_room_is_placed_on_a_server_that_never_reported() -> None:
    queue = MatchQueue([("game-1", "rooms-1")], room_size=1, rooms_per_server=5)
    queue.join(1)
    assert queue.plan_rooms() == [] and queue.answer(1).status == "queued"


def test_server_reports_drop_lost_rooms_and_adopt_unknown_ones() -> None:
    queue, clock = make(room_size=2, rooms_per_server=3)
    for p in (1, 2):
        queue.join(p)
    (plan,) = queue.plan_rooms()
    queue.room_started(plan.room_id)
    server_up(queue)  # a report from before the room started: kept within the grace period
    assert queue.answer(1).status == "matched"
    clock.now += REPORT_GRACE_S + 1
    server_up(queue, rooms=[RoomInfo(room_id="adopted", players=[7, 8], state="running")])
    assert queue.answer(1).status == "queued", \
        "a room the server lost without a checkpoint: its players queue again at once"
    assert queue.answer(7).room_id == "adopted", "a restarted matchmaker learns running rooms"


# --- rooms lost with their server, restored from their checkpoints ------------------------------

def _checkpoint(room_id: str, score: int = 7) -> RoomCheckpoint:
    return RoomCheckpoint(room_id=room_id, tick=120, coins_taken=9, coins=[1, 2],
                          players=[[1, 10, 10, score, 40], [2, 20, 20, 0, 41]])


def _running_with_checkpoint(queue: MatchQueue, clock: Clock) -> RoomPlan:
    for p in (1, 2):
        queue.join(p)
    (plan,) = queue.plan_rooms()
    queue.room_started(plan.room_id)
    queue.server_report(ServerReport(
        server="game-1", udp_host="127.0.0.1", udp_port=7700, sessions=2, pid=1,
        rooms=[RoomInfo(room_id=plan.room_id, players=[1, 2], state="running",
                        checkpoint=_checkpoint(plan.room_id))]))
    return plan


def test_a_room_lost_with_its_server_is_never_pointed_at_and_comes_back_from_its_checkpoint(
        ) -> None:
    queue, clock = make(room_size=2, rooms_per_server=2)
    plan = _running_with_checkpoint(queue, clock)
    queue.server_lost("game-1")  # its registered name went down: the process is gone
    answer = queue.answer(1)
    assert (answer.status, answer.room_id, answer.server_port) == ("starting", plan.room_id, 0)
    assert queue.restorations() == [], "nowhere to restore it while no server is up"
    queue.server_up("game-1", "127.0.0.1", 7801, pid=2)  # ServerUp from the new process
    (again,) = queue.restorations()
    assert again.room_id == plan.room_id and again.checkpoint.players[0][3] == 7
    assert queue.answer(2).status == "starting"
    queue.room_started(plan.room_id)
    answer = queue.answer(1)
    assert (answer.status, answer.server_port) == ("matched", 7801), "the new server's address"


def test_a_server_that_comes_back_with_another_pid_lost_its_rooms() -> None:
    queue, clock = make(room_size=2, rooms_per_server=2)
    plan = _running_with_checkpoint(queue, clock)
    queue.server_report(ServerReport(server="game-1", udp_host="127.0.0.1", udp_port=7700,
                                     rooms=[], sessions=0, pid=99))
    assert [p.room_id for p in queue.restorations()] == [plan.room_id]


def test_a_lost_room_moves_to_another_server_when_its_own_stays_down() -> None:
    queue, clock = make(room_size=2, rooms_per_server=1, servers=2)
    plan = _running_with_checkpoint(queue, clock)
    queue.server_lost(plan.server)
    lost_on = plan.server
    (moved,) = queue.restorations()
    assert moved.room_id == plan.room_id and moved.server != lost_on
    assert plan.room_id in queue.servers[moved.server].rooms
    assert plan.room_id not in queue.servers[lost_on].rooms


def test_a_room_that_cannot_be_restored_gives_up_its_scores_and_requeues_its_players() -> None:
    queue, clock = make(room_size=2, rooms_per_server=1)
    plan = _running_with_checkpoint(queue, clock)
    queue.server_lost("game-1")
    assert queue.given_up() == []
    clock.now += LOST_TTL_S + 1
    (gone,) = queue.given_up()
    assert gone.room_id == plan.room_id and gone.checkpoint.players[0][3] == 7
    assert (queue.answer(1).status, queue.answer(1).position) == ("queued", 1)


def test_queueing_after_game_over_releases_the_finished_room_and_queues() -> None:
    queue, clock = make(room_size=2, rooms_per_server=2)
    for p in (1, 2):
        queue.join(p)
    (plan,) = queue.plan_rooms()
    queue.room_started(plan.room_id)
    queue.join(1)  # an ordinary join while matched changes nothing
    assert queue.answer(1).status == "matched"
    queue.join(1, finished_room=plan.room_id)  # GAME_OVER seen; RoomEnded not arrived yet
    assert queue.answer(1).status == "queued"
    queue.room_ended(plan.room_id)
    assert queue.answer(1).status == "queued" and queue.answer(2).status == "idle"
