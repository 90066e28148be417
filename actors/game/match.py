"""Matchmaking: a queue that forms rooms of N players and places them on game servers with room.

``MatchQueue`` is the logic (plain, with an injected clock); ``Matchmaker`` is the process actor
around it. Players queue through the lobby (``QueueOps``, one message per drain of the lobby's HTTP
bridge). Whenever ``room_size`` players wait, or the oldest has waited ``fill_wait_s`` (then with
fewer), and a server has a free room slot, the matchmaker starts a ``RoomActor`` there with OTP's
``StartChild`` to that server's dynamic room supervisor. With every slot taken, players stay queued
and learn their position; slots free up when rooms end.

What the matchmaker knows of servers it learns by asking (``ServerStatus`` every ``poll_s``): their
UDP address, their rooms and each room's newest checkpoint. So a restarted matchmaker rebuilds its
view of running rooms from the servers, and only the queue itself is lost (players see ``idle``
and queue again).

A room lost with its server's process (the server's name went down, or it came back with another
pid, or a report no longer lists it and no ``RoomEnded`` came) is *lost*: its players are told
``starting`` (never the dead room's address), and it is started again from its newest checkpoint,
on the same server as soon as that is back (``ServerUp`` from its ``on_start``) or on another with a
free slot: positions, scores and applied inputs as checkpointed. A room that cannot be restored
(no checkpoint, or ``MAX_RESTORES`` tries) hands its checkpointed scores to the lobby and its
players go back to the front of the queue.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from actors import clock as actor_clock
from actors.base import Actor
from protocols.game import (
    GameResult,
    MatchReport,
    PeerUp,
    PlayerScore,
    MatchStatus,
    QueueAnswer,
    QueueAnswers,
    QueueOps,
    RoomCheckpoint,
    RoomEnded,
    RoomList,
    RoomsQuery,
    RoomView,
    ServerReport,
    ServerStatus,
    ServerUp,
)
from protocols.message import ActorArgs
from protocols.supervision import StartChild, StartChildReply

__all__ = ["MatchQueue", "Matchmaker", "RoomPlan"]

log = logging.getLogger("ptr.game.match")

REPORT_GRACE_S = 5.0  # a room we started may be missing from a report made before it started
MAX_RESTORES = 3      # a lost room is started again from its checkpoint at most this often
LOST_TTL_S = 15.0     # a lost room not restored within this is given up


@dataclass
class RoomPlan:
    room_id: str
    server: str
    players: list[int]
    seed: int
    state: str = "starting"  # starting | running | lost
    since: float = 0.0
    checkpoint: RoomCheckpoint | None = None
    restores: int = 0
    lost_at: float = 0.0


@dataclass
class ServerSlot:
    name: str
    rooms_supervisor: str
    capacity: int
    host: str = ""
    port: int = 0
    pid: int = 0
    up: bool = False
    rooms: dict[str, RoomPlan] = field(default_factory=dict)

    @property
    def free(self) -> int:
        return self.capacity - len(self.rooms) if self.up else 0


class MatchQueue:
    """The queue, the servers' room slots and who plays where. Single-threaded."""

    def __init__(self, servers: Iterable[tuple[str, str]], *, room_size: int,
                 rooms_per_server: int, fill_wait_s: float = 3.0,
                 clock: Callable[[], float] = actor_clock.monotonic,
                 seed: int | None = None) -> None:
        if room_size < 1 or rooms_per_server < 1 or fill_wait_s < 0:
            raise ValueError("room_size and rooms_per_server must be >= 1, fill_wait_s >= 0")
        self.room_size = room_size
        self.fill_wait_s = fill_wait_s
        self.clock = clock
        self.rng = random.Random(seed)
        self.servers = {name: ServerSlot(name, sup, rooms_per_server) for name, sup in servers}
        self.queue: dict[int, float] = {}       # player -> queued at; insertion order is the queue
        self.rooms: dict[str, RoomPlan] = {}
        self.playing: dict[int, str] = {}       # player -> room id (starting or running)
        self._positions: dict[int, int] | None = None

    # --- players ------------------------------------------------------------------------------

    def join(self, player_id: int, finished_room: str = "") -> None:
        """Queue the player. ``finished_room``: the room whose GAME_OVER it saw, which it leaves
        now (the room's own ``RoomEnded`` may still be on its way)."""
        if finished_room and self.playing.get(player_id) == finished_room:
            del self.playing[player_id]
        if player_id not in self.queue and player_id not in self.playing:
            self.queue[player_id] = self.clock()
            self._positions = None

    def leave(self, player_id: int) -> None:
        if self.queue.pop(player_id, None) is not None:
            self._positions = None

    def answer(self, player_id: int) -> QueueAnswer:
        room_id = self.playing.get(player_id)
        if room_id is not None:
            plan = self.rooms[room_id]
            if plan.state != "running":  # starting, or lost and being restored
                return QueueAnswer(player_id=player_id, status="starting", room_id=room_id)
            server = self.servers[plan.server]
            return QueueAnswer(player_id=player_id, status="matched", room_id=room_id,
                               server_host=server.host, server_port=server.port)
        if player_id in self.queue:
            if self._positions is None:
                self._positions = {p: i for i, p in enumerate(self.queue, 1)}
            return QueueAnswer(player_id=player_id, status="queued",
                               position=self._positions[player_id], queue_length=len(self.queue))
        return QueueAnswer(player_id=player_id, status="idle")

    # --- rooms --------------------------------------------------------------------------------

    def plan_rooms(self) -> list[RoomPlan]:
        """Take players off the queue into new rooms while servers have free slots: full rooms
        first; a partial room only when its oldest player waited ``fill_wait_s``."""
        plans: list[RoomPlan] = []
        now = self.clock()
        while self.queue:
            server = max(self.servers.values(), key=lambda s: s.free)
            if server.free <= 0:
                break
            if len(self.queue) < self.room_size:
                oldest = next(iter(self.queue.values()))
                if now - oldest < self.fill_wait_s:
                    break
            players = [p for p, _ in zip(list(self.queue), range(self.room_size))]
            for p in players:
                del self.queue[p]
            plan = RoomPlan(uuid.uuid4().hex[:12], server.name, players,
                            self.rng.randrange(1, 2**31), since=now)
            server.rooms[plan.room_id] = plan
            self.rooms[plan.room_id] = plan
            for p in players:
                self.playing[p] = plan.room_id
            plans.append(plan)
        if plans:
            self._positions = None
        return plans

    def room_started(self, room_id: str) -> None:
        plan = self.rooms.get(room_id)
        if plan is not None:
            plan.state, plan.since = "running", self.clock()

    # --- rooms lost with their server ---------------------------------------------------------

    def room_lost(self, room_id: str) -> None:
        """The room went with its server's process: restored from its checkpoint, or (with none)
        its players go back to the front of the queue at once."""
        plan = self.rooms.get(room_id)
        if plan is None or plan.state == "lost":
            return
        if plan.checkpoint is None:
            self.room_start_failed(room_id)
        else:
            plan.state, plan.lost_at = "lost", self.clock()

    def restorations(self) -> list[RoomPlan]:
        """Lost rooms to start again now, each from its checkpoint: on its own server if that is
        up, else moved to the server with the most free slots (if any). They are ``starting``."""
        plans = []
        for plan in self.rooms.values():
            if plan.state != "lost" or plan.checkpoint is None or plan.restores >= MAX_RESTORES:
                continue
            server = self.servers[plan.server]
            if not server.up:
                other = max(self.servers.values(), key=lambda s: s.free)
                if other.free <= 0:
                    continue
                del server.rooms[plan.room_id]
                other.rooms[plan.room_id] = plan
                plan.server = other.name
            plan.state, plan.since = "starting", self.clock()
            plan.restores += 1
            plans.append(plan)
        return plans

    def restore_failed(self, room_id: str) -> None:
        plan = self.rooms.get(room_id)
        if plan is not None:
            plan.state = "lost"

    def given_up(self) -> list[RoomPlan]:
        """Lost rooms that will not come back (no checkpoint, too many tries, or lost too long):
        forgotten, their players at the front of the queue; the caller records their scores."""
        now = self.clock()
        gone = [p for p in self.rooms.values() if p.state == "lost" and (
            p.checkpoint is None or p.restores >= MAX_RESTORES or now - p.lost_at > LOST_TTL_S)]
        for plan in gone:
            self.room_start_failed(plan.room_id)
        return gone

    def room_start_failed(self, room_id: str) -> None:
        """The server did not start it: its players go back to the front of the queue."""
        plan = self._forget(room_id)
        if plan is None:
            return
        now = self.clock()
        rest = self.queue
        self.queue = {p: now - self.fill_wait_s for p in plan.players}
        self.queue.update(rest)
        self._positions = None

    def room_ended(self, room_id: str) -> None:
        self._forget(room_id)

    def _forget(self, room_id: str) -> RoomPlan | None:
        plan = self.rooms.pop(room_id, None)
        if plan is None:
            return None
        self.servers[plan.server].rooms.pop(room_id, None)
        for p in plan.players:
            if self.playing.get(p) == room_id:
                del self.playing[p]
        return plan

    # --- servers ------------------------------------------------------------------------------

    def server_report(self, report: ServerReport) -> None:
        """Reconcile with what a server says it runs: learn its address, adopt rooms we did not
        know (a restarted matchmaker), drop rooms it no longer has (ended or lost)."""
        server = self.servers.get(report.server)
        if server is None:
            return
        self.server_up(report.server, report.udp_host, report.udp_port, report.pid)
        now = self.clock()
        present = {r.room_id: r for r in report.rooms}
        for room_id, plan in list(server.rooms.items()):
            info = present.get(room_id)
            if info is None:
                if plan.state == "running" and now - plan.since > REPORT_GRACE_S:
                    self.room_lost(room_id)  # no RoomEnded came: it went with a crash
            elif info.checkpoint is not None and (plan.checkpoint is None
                                                  or info.checkpoint.tick >= plan.checkpoint.tick):
                plan.checkpoint = info.checkpoint
        for room_id, info in present.items():
            if room_id not in self.rooms:
                plan = RoomPlan(room_id, server.name, list(info.players), 0, "running", now,
                                info.checkpoint)
                server.rooms[room_id] = plan
                self.rooms[room_id] = plan
                for p in plan.players:
                    self.queue.pop(p, None)
                    self.playing[p] = room_id
                self._positions = None

    def server_up(self, name: str, host: str, port: int, pid: int) -> None:
        """The server answered (a report) or announced itself (``ServerUp``): another pid than
        before means a new process, and the rooms of the old one are lost."""
        server = self.servers.get(name)
        if server is None:
            return
        if server.pid and pid != server.pid:
            self.server_lost(name)
        server.host, server.port, server.pid, server.up = host, port, pid, True

    def server_down(self, name: str) -> None:
        """The server did not answer: no new rooms go there for now (its rooms are not lost:
        it may be busy)."""
        server = self.servers.get(name)
        if server is not None:
            server.up = False

    def server_lost(self, name: str) -> None:
        """The server's process is gone (its name went down): its rooms are lost."""
        server = self.servers.get(name)
        if server is None:
            return
        server.up = False
        for room_id in list(server.rooms):
            self.room_lost(room_id)

    def running_rooms(self, room_id: str = "") -> RoomList:
        views = []
        for plan in self.rooms.values():
            if plan.state != "running" or (room_id and plan.room_id != room_id):
                continue
            server = self.servers[plan.server]
            views.append(RoomView(room_id=plan.room_id, server=plan.server, players=plan.players,
                                  server_host=server.host, server_port=server.port,
                                  checkpoint=plan.checkpoint))
        return RoomList(rooms=views)

    def report(self) -> MatchReport:
        return MatchReport(
            queued=len(self.queue),
            starting=sum(1 for r in self.rooms.values() if r.state == "starting"),
            matched=sum(len(r.players) for r in self.rooms.values() if r.state == "running"),
            rooms=len(self.rooms),
            room_capacity=sum(s.capacity for s in self.servers.values() if s.up),
            servers_up=sum(1 for s in self.servers.values() if s.up),
            restoring=sum(1 for r in self.rooms.values() if r.state == "lost" or r.restores
                          and r.state == "starting"),
            checkpoint_ticks={r.room_id: r.checkpoint.tick for r in self.rooms.values()
                              if r.checkpoint is not None})


@dataclass(frozen=True)
class PollServers:
    """Timer message: ask every server for its report, place waiting players."""


class MatchmakerArgs(ActorArgs):
    """The matchmaker's arguments, each with its one default."""

    servers: list[tuple[str, str]]  # [game server name, its rooms supervisor's name] (registered)
    lobby: str = ""                 # registered name: told when this matchmaker (re)starts
    room_size: int = Field(default=10, ge=1)
    rooms_per_server: int = Field(default=100, ge=1)
    fill_wait_s: float = Field(default=3.0, ge=0)
    poll_s: float = Field(default=1.0, gt=0)


class Matchmaker(Actor):
    """Args: ``MatchmakerArgs``."""

    Args = MatchmakerArgs

    def on_start(self) -> None:
        args: MatchmakerArgs = self.typed_args()
        self.queue = MatchQueue(list(args.servers), room_size=args.room_size,
                                rooms_per_server=args.rooms_per_server,
                                fill_wait_s=args.fill_wait_s)
        self.poll_s = args.poll_s
        self.lobby = args.lobby
        for name, _rooms in args.servers:  # a server's process gone: its rooms are lost at once
            self.peer(name, on_down=self._on_server_down(name))
        if self.lobby:
            self.peer(self.lobby).send(PeerUp(name=self.child_id or "matchmaker"))
        self.start_timer(self.poll_s, PollServers(), repeat=True)
        self.receiveMsg_PollServers(PollServers(), self.myAddress)

    # --- players (from the lobby) -------------------------------------------------------------

    def receiveMsg_QueueOps(self, msg: QueueOps, sender: Any) -> QueueAnswers:
        queue = self.queue
        for op in msg.ops:
            if op.op == "join":
                queue.join(op.player_id, op.finished_room)
            elif op.op == "leave":
                queue.leave(op.player_id)
        self._place()
        return QueueAnswers(answers=[queue.answer(op.player_id) for op in msg.ops])

    def receiveMsg_MatchStatus(self, msg: MatchStatus, sender: Any) -> MatchReport:
        return self.queue.report()

    def receiveMsg_RoomsQuery(self, msg: RoomsQuery, sender: Any) -> RoomList:
        return self.queue.running_rooms(msg.room_id)

    # --- rooms and servers --------------------------------------------------------------------

    def _place(self) -> None:
        for plan in self.queue.restorations():
            log.warning("room %s, lost with its server, restored on %s from its checkpoint of "
                        "tick %d", plan.room_id, plan.server,
                        plan.checkpoint.tick if plan.checkpoint else 0)
            self._start(plan, restore=True)
        for plan in self.queue.plan_rooms():
            self._start(plan)

    def _on_server_down(self, name: str) -> Callable[[Any], None]:
        return lambda _address: self._server_lost(name)

    def _server_lost(self, name: str) -> None:
        log.info("game server %s went down: its rooms wait to be restored", name)
        self.queue.server_lost(name)

    def receiveMsg_ServerUp(self, msg: ServerUp, sender: Any) -> None:
        self.queue.server_up(msg.server, msg.udp_host, msg.udp_port, msg.pid)
        handle = self.peer(msg.server)
        if handle.address != sender:
            handle.forget()
            handle.prefetch()
        self._place()

    def receiveMsg_PeerUp(self, msg: PeerUp, sender: Any) -> None:
        handle = self.peer(msg.name)
        if handle.address != sender:
            handle.forget()
            handle.prefetch()

    def _give_up_lost(self) -> None:
        for plan in self.queue.given_up():
            log.error("room %s could not be restored; its players queue again", plan.room_id)
            if plan.checkpoint is not None and self.lobby:
                scores = [PlayerScore(player_id=p[0], score=p[3]) for p in plan.checkpoint.players]
                self.peer(self.lobby).send(GameResult(game_id=plan.room_id, room_id=plan.room_id,
                                                      ended_at=time.time(), scores=scores))

    def _start(self, plan: RoomPlan, restore: bool = False) -> None:
        server = self.queue.servers[plan.server]
        room_id = plan.room_id

        def failed(why: str) -> None:
            log.warning("room %s not started on %s: %s", room_id, plan.server, why)
            if restore:
                self.queue.restore_failed(room_id)
            else:
                self.queue.room_start_failed(room_id)

        def answered(reply: Any) -> None:
            if isinstance(reply, StartChildReply) and not reply.error:
                self.queue.room_started(room_id)
            else:
                failed(getattr(reply, "error", "no answer"))

        def unavailable() -> None:
            self.queue.server_down(plan.server)
            failed(f"{server.rooms_supervisor} is down or did not answer")

        args: dict[str, Any] = {"room_id": room_id, "players": plan.players, "seed": plan.seed}
        if restore and plan.checkpoint is not None:
            args["checkpoint"] = plan.checkpoint
        self.peer(server.rooms_supervisor).request(StartChild(args=args), answered, timeout_s=5.0,
                                                   on_unavailable=unavailable)

    def receiveMsg_RoomEnded(self, msg: RoomEnded, sender: Any) -> None:
        self.queue.room_ended(msg.room_id)
        self._place()

    def receiveMsg_PollServers(self, msg: PollServers, sender: Any) -> None:
        for name in self.queue.servers:
            self._poll(name)
        self._give_up_lost()
        self._place()

    def _poll(self, name: str) -> None:
        def reported(report: Any) -> None:
            if isinstance(report, ServerReport):
                self.queue.server_report(report)
                self._place()

        self.peer(name).request(ServerStatus(), reported, timeout_s=self.poll_s * 2,
                                on_unavailable=lambda: self.queue.server_down(name))
