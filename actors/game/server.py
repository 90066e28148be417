"""A game server: one process actor that owns a UDP socket, a 60 Hz tick loop and its rooms.

``GameServer`` is a ``LightHost``: its rooms are ``RoomActor`` light actors under a dynamic
(simple_one_for_one) light supervisor in the same process, so the matchmaker starts a room with
OTP's ``StartChild`` and a crashed room is restarted by OTP's rules (restart type, intensity).

The hot path never touches Thespian. A ``RoomActor`` is the room's identity in the supervision
tree; the room's state and simulation live in the ``TickEngine`` on the server's loop thread (see
``actors.game.engine`` for why one thread). Between the two threads:

* actor thread -> loop: ``loop.call_soon_threadsafe`` (attach, detach) or ``LoopThread.run``
  (queries), a handful per room lifetime;
* loop -> actor thread: engine events (``RoomFailed``, ``RoomFinished``, ``EngineFailed``) through
  an ``EdgeBridge`` whose wake fd Thespian watches.

Lifecycle: a ``RoomActor`` attaches its room on start (the engine resumes it from its checkpoint if
it has one) and detaches it on stop. If the room's tick raises, the room actor crashes with
``RoomCrashedError`` and its supervisor starts a new incarnation, which resumes from the checkpoint.
When the round ends, the room hands its result to the lobby, tells the matchmaker and stops
normally (transient: not restarted). If the tick loop itself fails, the whole server crashes and
its supervisor restarts it and, rest_for_one, its rooms' supervisor.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from actors.edges import BridgeClosedError, EdgeBridge, LoopThread, SaturatedError
from actors.game.auth import SessionTokens
from actors.game.engine import (
    GC_THRESHOLDS,
    EngineFailed,
    EngineSettings,
    RoomFailed,
    RoomFinished,
    TickEngine,
)
from actors.game.room import RoomConfig, RoomSnapshot
from actors.light import LightActor, LightHost
from protocols.game import (
    GameEngineError,
    CrashRoom,
    GameResult,
    GameStatsQuery,
    GameStatsReport,
    PlayerScore,
    RoomCrashedError,
    RoomEnded,
    RoomCheckpoint,
    RoomInfo,
    ServerReport,
    ServerStatus,
    ServerUp,
    WatchRoom,
)
from protocols.message import ActorArgs
from protocols.supervision import ExitReason

__all__ = ["GameEngineError", "GameServer", "GameServerArgs", "RoomActor"]

log = logging.getLogger("ptr.game.server")

DRAIN_POLL_S = 0.05  # where Thespian cannot watch a file descriptor (simpleSystemBase)
WATCHED_DRAIN_POLL_S = 1.0  # a safety net where it can: the loop thread is not disturbed for it
SWITCH_INTERVAL_S = 0.0005  # the GIL hand-over wait (Python's default: 5 ms), see on_start
RESTARTING_TTL_S = 30.0
RESULT_ATTEMPTS = 3


@dataclass(frozen=True)
class DrainEvents:
    """Timer message: look at the engine's events even if no wake-up came."""


@dataclass
class _RoomEntry:
    lid: int
    incarnation: int
    players: list[int]
    state: str  # "running" | "restarting"
    since: float


async def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a plain function on the loop thread (``LoopThread.run`` takes a coroutine)."""
    return fn(*args, **kwargs)


class GameServerArgs(ActorArgs):
    """A game server's arguments, each with its one default (the system passes its settings)."""

    lobby: str                      # registered names of its peers
    matchmaker: str
    token_secret: str = Field(min_length=16)
    token_ttl_s: float = Field(default=3600.0, gt=0)
    udp_host: str = "127.0.0.1"
    udp_port: int = Field(default=0, ge=0, le=65535)
    tick_hz: float = Field(default=60.0, gt=0, le=1000)
    snapshot_every: int = Field(default=2, ge=1)
    checkpoint_every: int = Field(default=1, ge=1)
    idle_timeout_s: float = Field(default=10.0, gt=0)
    reads_per_tick: int = Field(default=4, ge=1)
    loop_cpu: int | None = Field(default=None, ge=0)   # pin the tick loop's thread alone to it
    loop_priority: int = Field(default=0, ge=0, le=99)  # SCHED_FIFO priority for it (0: none)


class GameServer(LightHost):
    """Args: ``GameServerArgs``. If its socket cannot be bound, ``on_start`` raises: the start
    fails."""

    Args = GameServerArgs

    def on_start(self) -> None:
        super().on_start()
        args: GameServerArgs = self.typed_args()
        self.lobby_name = args.lobby
        self.matchmaker = self.peer(args.matchmaker)
        self.tokens = SessionTokens(args.token_secret, ttl_s=args.token_ttl_s)
        self.events: EdgeBridge[object] = EdgeBridge(max_in_flight=65_536)
        self.engine = TickEngine(self.tokens, self._post_event, EngineSettings(
            host=args.udp_host, port=args.udp_port, tick_hz=args.tick_hz,
            snapshot_every=args.snapshot_every, checkpoint_every=args.checkpoint_every,
            idle_timeout_s=args.idle_timeout_s, reads_per_tick=args.reads_per_tick,
            loop_cpu=args.loop_cpu, loop_priority=args.loop_priority))
        self.room_actors: dict[str, _RoomEntry] = {}
        self.loop_thread = LoopThread(f"{self.child_id or 'game'}-loop")
        self.loop_thread.start()
        try:
            address = self.loop_thread.run(self.engine.start(), 10)
        except BaseException:
            self.loop_thread.stop()
            self.events.close()
            raise
        self.udp_host, self.udp_port = str(address[0]), int(address[1])
        # the matchmaker restores, at once, the rooms a previous process of this server lost
        self.matchmaker.send(ServerUp(server=self.child_id, udp_host=self.udp_host,
                                      udp_port=self.udp_port, pid=os.getpid()))
        self.watch_fds([self.events.wake_fd])
        self.start_timer(WATCHED_DRAIN_POLL_S if self.can_watch_fds else DRAIN_POLL_S,
                         DrainEvents(), repeat=True)
        # When this (actor) thread wakes while the loop thread ticks, or holds the GIL when a tick
        # is due, the other thread waits up to the switch interval for it: 5 ms by default, a
        # third of a tick. This thread works a few times a second, so a short interval costs
        # nothing and bounds that wait to 0.5 ms.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        gc.freeze()  # what exists now is never garbage: full collections skip it (shorter pauses)
        gc.set_threshold(*GC_THRESHOLDS)

    def on_stop(self, reason: ExitReason) -> None:
        loop_thread = getattr(self, "loop_thread", None)
        if loop_thread is None:
            return
        try:
            loop_thread.run(self.engine.stop(), 5)
        finally:
            loop_thread.stop()
            self.events.close()

    # --- events from the loop thread ----------------------------------------------------------

    def _post_event(self, event: object) -> None:
        """Called on the loop thread; never raises into the tick loop."""
        try:
            self.events.submit_nowait(event)
        except (SaturatedError, BridgeClosedError) as exc:
            log.error("game server %s: engine event %s lost: %s", self.child_id, event, exc)

    def receiveMsg_WatchMessage(self, msg: Any, sender: Any) -> None:
        self._drain_events()

    def receiveMsg_DrainEvents(self, msg: DrainEvents, sender: Any) -> None:
        self._drain_events()
        now = self.clock()
        for room_id in [r for r, e in self.room_actors.items()
                        if e.state == "restarting" and now - e.since > RESTARTING_TTL_S]:
            del self.room_actors[room_id]  # its supervisor gave up on it

    def _drain_events(self) -> None:
        for pending in self.events.drain(1024):
            event = pending.item
            if isinstance(event, EngineFailed):
                raise GameEngineError(event.error)
            if isinstance(event, RoomFinished):  # its players may queue again now, not after
                self.matchmaker.send(RoomEnded(server=self.child_id, room_id=event.room_id))
            if isinstance(event, (RoomFailed, RoomFinished)):
                entry = self.room_actors.get(event.room_id)
                if entry is not None and entry.incarnation == event.incarnation:
                    self.enqueue(entry.lid, self.myAddress, event)

    # --- rooms (called by RoomActor, on the actor thread) ---------------------------------------

    def attach_room(self, room: RoomActor, config: RoomConfig,
                    restore: RoomSnapshot | None = None) -> None:
        self.room_actors[config.room_id] = _RoomEntry(room.myAddress.lid, room.incarnation,
                                                      list(config.players), "running",
                                                      self.clock())
        self.loop_thread.loop.call_soon_threadsafe(self.engine.attach, config.room_id,
                                                   room.incarnation, config, restore)

    def detach_room(self, room_id: str, incarnation: int, *, ended: bool) -> None:
        if self.loop_thread.running:
            self.loop_thread.loop.call_soon_threadsafe(
                lambda: self.engine.detach(room_id, incarnation, forget=ended))
        entry = self.room_actors.get(room_id)
        if entry is None or entry.incarnation != incarnation:
            return
        if ended:
            del self.room_actors[room_id]
            self.matchmaker.send(RoomEnded(server=self.child_id, room_id=room_id))
        else:
            entry.state, entry.since = "restarting", self.clock()

    # --- questions ----------------------------------------------------------------------------

    def receiveMsg_ServerStatus(self, msg: ServerStatus, sender: Any) -> ServerReport:
        table = {r["room_id"]: r for r in self.loop_thread.run(_call(self.engine.room_table), 5)}
        rooms = []
        for room_id, entry in self.room_actors.items():
            live = table.get(room_id)
            snapshot = live["checkpoint"] if live else None
            rooms.append(RoomInfo(room_id=room_id, players=entry.players,
                                  state="running" if live else "restarting",
                                  tick=live["tick"] if live else 0,
                                  connected=live["connected"] if live else 0,
                                  checkpoint=to_checkpoint(snapshot) if snapshot else None))
        return ServerReport(server=self.child_id, udp_host=self.udp_host, udp_port=self.udp_port,
                            rooms=rooms, sessions=sum(r.connected for r in rooms),
                            pid=os.getpid())

    def receiveMsg_GameStatsQuery(self, msg: GameStatsQuery, sender: Any) -> GameStatsReport:
        stats = self.loop_thread.run(_call(self.engine.stats, reset=msg.reset,
                                           profile=msg.profile), 10)
        return GameStatsReport(**stats)

    def receiveMsg_WatchRoom(self, msg: WatchRoom, sender: Any) -> RoomCheckpoint | None:
        snapshot = self.loop_thread.run(_call(self.engine.checkpoints.get, msg.room_id), 5)
        return to_checkpoint(snapshot) if snapshot is not None else None

    def receiveMsg_CrashRoom(self, msg: CrashRoom, sender: Any) -> bool:
        return bool(self.loop_thread.run(_call(self.engine.inject_fault, msg.room_id), 5))


def to_checkpoint(snapshot: RoomSnapshot) -> RoomCheckpoint:
    """Built without validation (the engine's own integers): a server reports ~100 of them a
    poll, and this thread's time holding the GIL is time the tick loop may wait for it."""
    return RoomCheckpoint.model_construct(room_id=snapshot.room_id, tick=snapshot.tick,
                                          coins_taken=snapshot.coins_taken,
                                          coins=list(snapshot.coins),
                                          players=[list(p) for p in snapshot.players])


def from_checkpoint(checkpoint: RoomCheckpoint) -> RoomSnapshot:
    return RoomSnapshot(checkpoint.room_id, checkpoint.tick, checkpoint.coins_taken,
                        tuple(checkpoint.coins),
                        tuple((p[0], p[1], p[2], p[3], p[4]) for p in checkpoint.players))


class RoomActor(LightActor):
    """One room in the supervision tree, living in a ``GameServer``. Args: ``room_id``,
    ``players``, ``seed``, the room rules of ``RoomConfig`` and, for a room lost with another
    process, ``checkpoint`` (a ``RoomCheckpoint`` or its dict) to resume from. Restart type:
    transient."""

    def on_start(self) -> None:
        server = self.host
        if not isinstance(server, GameServer):
            raise TypeError(f"a RoomActor runs in a GameServer, not in {type(server).__name__}")
        self.server = server
        self.config = RoomConfig.from_args(self.args)
        self.result: GameResult | None = None
        self.attempts = 0
        restore = self.args.get("checkpoint")
        server.attach_room(self, self.config,
                           from_checkpoint(RoomCheckpoint.model_validate(restore))
                           if restore else None)

    def on_stop(self, reason: ExitReason) -> None:
        if getattr(self, "config", None) is None:  # on_start failed before attaching
            return
        self.server.detach_room(self.config.room_id, self.incarnation,
                                ended=not reason.is_abnormal)

    def receiveMsg_RoomFailed(self, event: RoomFailed, sender: Any) -> None:
        raise RoomCrashedError(f"room {event.room_id} failed in its tick: {event.error}")

    def receiveMsg_RoomFinished(self, event: RoomFinished, sender: Any) -> None:
        self.result = GameResult(game_id=event.room_id, room_id=event.room_id,
                                 ended_at=time.time(),
                                 scores=[PlayerScore(player_id=p, score=s) for p, s in event.scores])
        self._hand_over()

    def _hand_over(self) -> None:
        """Give the result to the lobby (idempotent there), then stop; a few tries, then give up."""
        self.attempts += 1

        def give_up() -> None:
            if self.attempts < RESULT_ATTEMPTS:
                self._hand_over()
            else:
                log.error("room %s: the lobby did not take its result; scores not recorded",
                          self.config.room_id)
                self.stop("round over; result lost")

        self.peer(self.server.lobby_name, monitor=False).request(
            self.result, lambda _stored: self.stop("round over"), timeout_s=5.0,
            on_unavailable=give_up)

