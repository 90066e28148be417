"""The hot path of a game server: one UDP socket, a 60 Hz tick loop and every room's simulation, all
on one asyncio loop thread of one process. No Thespian message per input, none per tick.

Why one thread: a second busy thread (the actor's) would share the GIL, and a thread waiting for
the GIL waits up to ``sys.getswitchinterval()`` (5 ms), a third of a tick. So the Thespian thread of
the ``GameServer`` only starts and stops rooms; the loop thread does all per-input and per-tick work.

Flow: ``UdpEdge`` drains the socket in batches (never ``DatagramProtocol``, see docs/platform.md, Plain Python), polled
``reads_per_tick`` times a tick and at each tick rather than on readiness (see ``_poll_socket``), and
calls ``_on_batch``, which appends each input to its session's list: nothing is decided before the
tick. At each tick, every room steps once with the inputs gathered since the last tick (rules in
``actors.game.room``), is checkpointed, and sends one snapshot datagram per connected player (every
``snapshot_every`` ticks; rooms take turns, so each tick sends about ``1/snapshot_every`` of the
snapshots instead of every other tick sending all of them: the sends are the largest part of a
tick, and it is the longest tick that must fit its slot).

Failure rules:

* Bad input is counted, never raised: undecodable datagrams (``dropped_bad``, by the edge), inputs
  from unknown connections or from an address other than the one that joined, and joins with a bad
  token (``dropped_unauthenticated``); stale, duplicate, excess and ahead-of-window inputs (counted
  by the rooms). Log lines about them are rate-limited.
* One owner per session: a JOIN with a player's token from another address takes the session
  over, and the old address hears ``REJECT_SUPERSEDED`` (so a player whose address changed, or who
  takes the session back from a stolen token, is never locked out, and nobody loses a session
  without being told). An input for a connection this server never issued (it restarted) is
  answered with ``REJOIN``, at most ``UNKNOWN_REJOINS_PER_S`` a second, never larger than it.
* A room whose ``step`` raises is detached at once (its half-applied tick is discarded with it),
  its players' connections are retired (their next input is answered with ``REJOIN``), and
  ``RoomFailed`` goes to the hosting actor, whose room actor crashes so its supervisor restarts it.
  The restart calls ``attach`` again, which rebuilds the room from its last checkpoint.
* Not thread-safe by design: everything here runs on the loop thread. The owner calls ``attach``,
  ``detach``, ``stats`` and the rest through ``loop.call_soon_threadsafe`` or ``LoopThread.run``.
"""

from __future__ import annotations

import asyncio
import bisect
import cProfile
import io
import logging
import os
import pstats
import secrets
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from actors import clock
from actors.edges import Address, RateLimitedLog, UdpEdge
from actors.game.auth import SessionTokens
from actors.game.room import InputCounters, PlayerState, RoomConfig, RoomSim, RoomSnapshot
from protocols.errors import ConfigError
from protocols.game import (
    REJECT_BAD_TOKEN,
    REJECT_NOT_IN_ROOM,
    REJECT_SUPERSEDED,
    REJECT_UNKNOWN_ROOM,
    TICK_BUCKETS_MS,
    InputDatagram,
    InvalidTokenError,
    JoinDatagram,
    LeaveDatagram,
    Welcome,
    decode_client,
    encode_game_over,
    encode_join,
    encode_reject,
    encode_rejoin,
    encode_welcome,
    snapshot_head,
)

__all__ = ["GC_THRESHOLDS", "EngineFailed", "EngineSettings", "RoomFailed", "RoomFinished",
           "TickEngine", "make_realtime", "slot_after"]

log = logging.getLogger("ptr.game.engine")

REJOIN_INTERVAL_S = 0.1
UNKNOWN_REJOINS_PER_S = 2_000  # REJOINs a second to connections never issued here (a restart)
RETIRED_TTL_S = 30.0
ORPHAN_CHECKPOINT_TTL_S = 60.0
FINISHED_TTL_S = 600.0
TICK_HISTORY = 60 * 600  # ten minutes of tick times at 60 Hz
# Python collects its youngest generation when 700 more containers are alive than were: a poll
# that reads 750 datagrams holds ~2,000 (addresses, decoded inputs, the batch) for a moment and
# set that off two or three times, ~3.5 % of the loop thread measured in ``ptr bench game``. Those
# objects die by reference counting anyway; a game server collects young objects after 20,000.
GC_THRESHOLDS = (20_000, 10, 10)


@dataclass(frozen=True)
class RoomFailed:
    """A room's tick raised; its actor must crash so the supervisor restarts it."""

    room_id: str
    incarnation: int
    error: str


@dataclass(frozen=True)
class RoomFinished:
    """A room played its last tick; ``scores`` are ``(player_id, score)``."""

    room_id: str
    incarnation: int
    tick: int
    scores: list[tuple[int, int]]


@dataclass(frozen=True)
class EngineFailed:
    """The tick loop itself raised (a bug outside any room): ticking stopped, the server must go."""

    error: str


@dataclass(frozen=True)
class EngineSettings:
    host: str = "127.0.0.1"
    port: int = 0
    tick_hz: float = 60.0
    snapshot_every: int = 1
    checkpoint_every: int = 1
    idle_timeout_s: float = 10.0
    reads_per_tick: int = 4
    loop_cpu: int | None = None  # pin the loop thread (only it) to this CPU
    loop_priority: int = 0       # 1-99: run the loop thread under SCHED_FIFO at this priority

    def __post_init__(self) -> None:
        if self.tick_hz <= 0 or self.snapshot_every < 1 or self.checkpoint_every < 1:
            raise ValueError("tick_hz, snapshot_every and checkpoint_every must be positive")
        if self.reads_per_tick < 0:
            raise ValueError("reads_per_tick must be >= 0 (0: read whenever data arrives)")
        if not 0 <= self.loop_priority <= 99:
            raise ValueError("loop_priority must be 0 (normal) or a SCHED_FIFO priority 1-99")


class _Session:
    __slots__ = ("conn", "addr", "player", "room", "pending", "last_heard")

    def __init__(self, conn: int, addr: Address, player: PlayerState, room: _Room,
                 tick: int) -> None:
        self.conn = conn
        self.addr = addr
        self.player = player
        self.room = room
        self.pending: list[InputDatagram] = []
        self.last_heard = tick


class _Room:
    __slots__ = ("room_id", "incarnation", "sim", "sessions", "phase")

    def __init__(self, room_id: str, incarnation: int, sim: RoomSim, phase: int = 0) -> None:
        self.room_id = room_id
        self.incarnation = incarnation
        self.sim = sim
        self.phase = phase  # snapshots go out on ticks where (tick + phase) % snapshot_every == 0
        self.sessions: dict[int, _Session] = {}  # by player id


class _Window:
    """Counters at the start of a measurement window, to report differences."""

    def __init__(self, engine: TickEngine) -> None:
        self.began = engine.clock()
        self.cpu = time.process_time()
        self.values = engine._counter_values()


class TickEngine:
    """Owns the UDP edge, the sessions, the rooms and their checkpoints. See the module docstring."""

    def __init__(self, tokens: SessionTokens, emit: Callable[[object], None],
                 settings: EngineSettings | None = None,
                 clock_fn: Callable[[], float] = clock.monotonic) -> None:
        self.settings = settings or EngineSettings()
        self.clock = clock_fn  # TTLs, REJOIN pacing and windows (the tick itself: the loop's time)
        self.tokens = tokens
        self._emit = emit
        polled = self.settings.reads_per_tick > 0
        self.edge: UdpEdge[Any] = UdpEdge(decode_client, self._on_batch, host=self.settings.host,
                                          port=self.settings.port, interval_s=0.002,
                                          max_batch=4096,
                                          reads_per_wake=1_000_000 if polled else 256,
                                          watch=not polled)
        self.rooms: dict[str, _Room] = {}
        self._attached = 0  # rooms attached so far: spreads their snapshot phases
        self.checkpoints: dict[str, RoomSnapshot] = {}
        self._orphaned: dict[str, float] = {}  # room id -> when its checkpoint lost its room
        self._finished: dict[str, tuple[float, RoomFinished]] = {}  # room id -> (when, result)
        self.sessions: dict[int, _Session] = {}
        self._retired: dict[int, float] = {}  # conn -> earliest next REJOIN (monotonic)
        self._unknown_rejoins = 0  # REJOINs to never-issued connections this second
        self._superseded: dict[int, float] = {}  # conn taken over -> when (never told REJOIN)
        self.taken_over = 0
        self.counters = InputCounters()
        self.inputs_received = 0
        self.unauthenticated = 0
        self.snapshots_sent = 0
        self.room_crashes = 0
        self.ticks = 0
        self.executed = 0
        self.late_ticks = 0
        self.tick_ms: deque[float] = deque(maxlen=TICK_HISTORY)
        self.tick_buckets = [0] * (len(TICK_BUCKETS_MS) + 1)  # since start, per bucket
        self.tick_seconds_sum = 0.0
        self.lag_ms: deque[float] = deque(maxlen=TICK_HISTORY)
        self.read_ms: deque[float] = deque(maxlen=TICK_HISTORY)  # of each tick: reading inputs
        self.send_ms: deque[float] = deque(maxlen=TICK_HISTORY)  # ... and sending snapshots
        # a tick's start lag, split: the loop was still busy with a poll when the tick came due
        # (busy), or idle but woke late (wake: the GIL held by another thread, or the OS)
        self.lag_busy_ms: deque[float] = deque(maxlen=TICK_HISTORY)
        self._busy_until = 0.0
        self._send_s = 0.0
        self._window = _Window(self)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._read_handles: list[asyncio.TimerHandle] = []
        self._next_at = 0.0
        self._profiler: cProfile.Profile | None = None
        self._sendto: Callable[[bytes, Address], int] = self._not_started
        self._auth_log = RateLimitedLog(log)
        self.address: Address | None = None
        self.loop_tid = 0  # the loop thread's native id, once started

    # --- lifecycle (coroutines run on the loop) -----------------------------------------------

    async def start(self) -> Address:
        """Bind the UDP socket and start ticking; returns the bound address."""
        self._loop = asyncio.get_running_loop()
        self.loop_tid = threading.get_native_id()
        if self.settings.loop_cpu is not None:
            # On Linux this pins the calling thread only: the loop thread gets the CPU, the
            # actor thread beside it (and whatever else the host runs) can be kept off it.
            os.sched_setaffinity(0, {self.settings.loop_cpu})
        if self.settings.loop_priority:
            make_realtime(self.settings.loop_priority)
        self.address = await self.edge.start()
        sock = self.edge.socket
        assert sock is not None
        self._sendto = sock.sendto
        self._next_at = self._loop.time() + 1.0 / self.settings.tick_hz
        self._handle = self._loop.call_at(self._next_at, self._on_tick)
        self._window = _Window(self)
        return self.address

    async def stop(self) -> None:
        """Stop ticking and close the socket; idempotent."""
        for handle in (self._handle, *self._read_handles):
            if handle is not None:
                handle.cancel()
        self._handle = None
        self._read_handles = []
        if self._profiler is not None:
            self._profiler.disable()
            self._profiler = None
        await self.edge.stop()

    def _schedule_polls(self, slot_start: float) -> None:
        """Poll the socket ``reads_per_tick - 1`` times between this tick and the next, at fixed
        points of the slot (``slot_start + k * period / reads_per_tick``), not ``period /
        reads_per_tick`` after the previous poll ended: polls that drift run into the tick and
        delay it, and a poll just after a long tick reads that tick's whole backlog."""
        loop, reads = self._loop, self.settings.reads_per_tick
        if loop is None or reads <= 1:
            return
        step = 1.0 / (self.settings.tick_hz * reads)
        self._read_handles = [loop.call_at(slot_start + k * step, self._poll_socket)
                              for k in range(1, reads)]

    def _poll_socket(self) -> None:
        """Read everything the socket holds now (``reads_per_tick`` times a tick, and at each tick).

        Why poll instead of reading when data arrives: inputs are applied only at the tick, so
        reading earlier gains nothing, while a loop that sleeps on the socket is woken by almost
        every datagram. Each wake-up costs this thread its event-loop round, and costs every
        sender (on loopback: the bots) the wake-up of this process inside its ``sendto``.
        """
        if self.edge.running:
            self.edge.drain()
        if self._loop is not None:
            self._busy_until = self._loop.time()

    @staticmethod
    def _not_started(data: bytes, addr: Address) -> int:
        raise RuntimeError("the game server's socket is not bound yet")

    # --- rooms (called by the owner, on the loop thread) --------------------------------------

    def attach(self, room_id: str, incarnation: int, config: RoomConfig,
               restore: RoomSnapshot | None = None) -> None:
        """Start ticking a room: from its checkpoint if it has one (a restart), else from
        ``restore`` (a room lost with another process, restored by the matchmaker), else fresh.

        A room that already played its last tick is not played again: its actor, restarted after
        the end (say, while handing over the result), hears ``RoomFinished`` once more instead.
        """
        finished = self._finished.get(room_id)
        if finished is not None:
            event = finished[1]
            self._emit(RoomFinished(room_id, incarnation, event.tick, event.scores))
            return
        current = self.rooms.get(room_id)
        if current is not None:
            if current.incarnation >= incarnation:
                return
            self._drop_room(current, retire=True)
        snapshot = self.checkpoints.get(room_id) or restore
        try:
            sim = RoomSim(config, snapshot)
        except ValueError as exc:  # a checkpoint that does not fit the room cannot be resumed
            log.error("room %s: cannot restore its checkpoint: %s", room_id, exc)
            self.checkpoints.pop(room_id, None)
            self._emit(RoomFailed(room_id, incarnation, f"restore failed: {exc}"))
            return
        self._orphaned.pop(room_id, None)
        self._attached += 1
        self.rooms[room_id] = _Room(room_id, incarnation, sim,
                                    self._attached % self.settings.snapshot_every)
        if snapshot is not None:
            log.warning("room %s (incarnation %d) resumed from its checkpoint of tick %d",
                        room_id, incarnation, snapshot.tick)

    def detach(self, room_id: str, incarnation: int, *, forget: bool) -> None:
        """Stop ticking a room's ``incarnation``. ``forget`` drops its checkpoint (it will not
        restart); otherwise the checkpoint waits for the next incarnation's ``attach``."""
        room = self.rooms.get(room_id)
        if room is not None and room.incarnation <= incarnation:
            self._drop_room(room, retire=not forget)
            room = None
        if room is None:
            if forget:
                self.checkpoints.pop(room_id, None)
                self._orphaned.pop(room_id, None)
            elif room_id in self.checkpoints:
                self._orphaned[room_id] = self.clock()

    def inject_fault(self, room_id: str) -> bool:
        room = self.rooms.get(room_id)
        if room is None:
            return False
        room.sim.fault = True
        return True

    def _drop_room(self, room: _Room, *, retire: bool) -> None:
        if self.rooms.get(room.room_id) is room:
            del self.rooms[room.room_id]
        now = self.clock()
        for session in room.sessions.values():
            self.sessions.pop(session.conn, None)
            if retire:
                self._retired[session.conn] = now
        room.sessions.clear()

    # --- datagrams in -------------------------------------------------------------------------

    def _on_batch(self, batch: list[tuple[Address, Any]]) -> None:
        sessions = self.sessions
        received = unauthenticated = 0
        for addr, item in batch:
            if type(item) is InputDatagram:
                session = sessions.get(item.conn)
                if session is not None and session.addr == addr:
                    session.pending.append(item)
                    received += 1
                    continue
                unauthenticated += 1
                if session is None and item.conn in self._retired:
                    self._send_rejoin(item.conn, addr)
                elif (session is None and self._unknown_rejoins < UNKNOWN_REJOINS_PER_S
                      and item.conn not in self._superseded):
                    # never issued here (this server restarted): "join again" is smaller than
                    # the input, and paced, so it amplifies nothing
                    self._unknown_rejoins += 1
                    self.edge.send(addr, encode_rejoin(item.conn))
                else:
                    self._auth_log.warning("game server %s: input for connection %d from %s "
                                           "dropped: unknown connection or wrong address",
                                           self.address, item.conn, addr)
            elif type(item) is JoinDatagram:
                if not self._join(addr, item):
                    unauthenticated += 1
            elif type(item) is LeaveDatagram:
                session = sessions.get(item.conn)
                if session is not None and session.addr == addr:
                    self._end_session(session)
                else:
                    unauthenticated += 1
        self.inputs_received += received
        self.unauthenticated += unauthenticated

    def _send_rejoin(self, conn: int, addr: Address) -> None:
        now = self.clock()
        if now >= self._retired[conn]:
            self._retired[conn] = now + REJOIN_INTERVAL_S
            self.edge.send(addr, encode_rejoin(conn))

    def _join(self, addr: Address, join: JoinDatagram) -> bool:
        """Bind ``addr`` to the token's player in the room; False (and a REJECT) if it may not."""
        try:
            player_id = self.tokens.verify(join.token)
        except InvalidTokenError as exc:
            self._auth_log.warning("game server %s: join from %s refused: %s", self.address, addr,
                                   exc.reason)
            self._reject(addr, join, REJECT_BAD_TOKEN, exc.reason)
            return False
        room = self.rooms.get(join.room_id)
        if room is None:
            self._reject(addr, join, REJECT_UNKNOWN_ROOM, "no such room here")
            return True
        player = room.sim.player(player_id)
        if player is None:
            self._auth_log.warning("game server %s: player %d is not in room %s", self.address,
                                   player_id, join.room_id)
            self._reject(addr, join, REJECT_NOT_IN_ROOM, "not in this room")
            return False
        old = room.sessions.get(player_id)
        if old is not None:
            if old.addr != addr:  # taken over: the old address is told, never left guessing
                self.taken_over += 1
                log.warning("game server %s: player %d's session in room %s moved from %s to %s",
                            self.address, player_id, room.room_id, old.addr, addr)
                self.edge.send(old.addr, encode_reject(REJECT_SUPERSEDED,
                                                       "session taken over by another address"))
                self._superseded[old.conn] = self.clock()
            self._end_session(old)
        conn = secrets.randbits(31) or 1
        while conn in self.sessions or conn in self._retired or conn in self._superseded:
            conn = secrets.randbits(31) or 1
        session = _Session(conn, addr, player, room, self.ticks)
        self.sessions[conn] = session
        room.sessions[player_id] = session
        sim = room.sim
        self.edge.send(addr, encode_welcome(Welcome(conn, room.room_id, player_id, sim.tick,
                                                    player.last_seq, sim.config.arena)))
        return True

    def _reject(self, addr: Address, join: JoinDatagram, code: int, text: str) -> None:
        """Say why a join failed, but never with more bytes than the join had: a forged source
        address must not turn this server into an amplifier."""
        reply = encode_reject(code, text)
        if len(reply) > len(encode_join(join.token, join.room_id)):
            reply = encode_reject(code, "")
        if len(reply) <= len(encode_join(join.token, join.room_id)):
            self.edge.send(addr, reply)

    def _end_session(self, session: _Session) -> None:
        self.sessions.pop(session.conn, None)
        room_sessions = session.room.sessions
        if room_sessions.get(session.player.player_id) is session:
            del room_sessions[session.player.player_id]

    # --- the tick -----------------------------------------------------------------------------

    def _on_tick(self) -> None:
        """One tick of every room, then schedule the next slot. A bug here (outside any room)
        stops ticking and tells the owner, whose process then exits: let it crash."""
        try:
            self._run_tick()
        except Exception as exc:  # noqa: BLE001 - handed to the owner, which crashes with it
            log.exception("game server %s: tick loop failed", self.address)
            self._handle = None
            self._emit(EngineFailed(f"{type(exc).__name__}: {exc}"))

    def _run_tick(self) -> None:
        loop = self._loop
        assert loop is not None
        scheduled = self._next_at
        began = loop.time()
        if self.settings.reads_per_tick:
            self.edge.drain()  # every input that arrived before the tick belongs to it
        else:
            self.edge.flush()
        read = loop.time() - began
        self._send_s = 0.0
        self.ticks += 1
        tick = self.ticks
        settings = self.settings
        every = settings.snapshot_every
        keep = tick % settings.checkpoint_every == 0
        for room in list(self.rooms.values()):
            self._tick_room(room, tick, (tick + room.phase) % every == 0, keep)
        if tick % max(1, int(settings.tick_hz)) == 0:
            self._housekeeping(tick)
        ended = loop.time()
        period = 1.0 / settings.tick_hz
        self.executed += 1
        took_ms = (ended - began) * 1000.0
        self.tick_ms.append(took_ms)
        self.tick_buckets[bisect.bisect_left(TICK_BUCKETS_MS, took_ms)] += 1
        self.tick_seconds_sum += ended - began
        self.lag_ms.append((began - scheduled) * 1000.0)
        self.lag_busy_ms.append(max(0.0, min(began, self._busy_until) - scheduled) * 1000.0)
        self._busy_until = ended
        self.read_ms.append(read * 1000.0)
        self.send_ms.append(self._send_s * 1000.0)
        next_at, late, skipped = slot_after(scheduled, ended, period)
        self.late_ticks += late
        self.ticks += skipped
        self._next_at = next_at
        self._handle = loop.call_at(next_at, self._on_tick)
        if settings.reads_per_tick:  # polled, not watched: see _poll_socket
            self._schedule_polls(next_at - period)

    def _tick_room(self, room: _Room, tick: int, send: bool, keep: bool) -> None:
        sim = room.sim
        batch = []
        for session in room.sessions.values():
            if session.pending:
                batch.append((session.player, session.pending))
                session.pending = []
                session.last_heard = tick
        try:
            sim.step(batch, self.counters)
        except Exception as exc:  # noqa: BLE001 - the one place a room's bug is caught: ends that room
            self._fail(room, exc)
            return
        if keep or sim.finished:
            self.checkpoints[room.room_id] = sim.checkpoint()
        if sim.finished:
            self._finish(room)
            return
        if send and room.sessions:
            self._send_snapshots(room, sim)

    def _send_snapshots(self, room: _Room, sim: RoomSim) -> None:
        """One datagram per connected player: the room's shared head and tail, the player's ack.

        The socket is used directly (not ``UdpEdge.send``): at 60,000 sends a second the wrapper's
        call shows in the profile. Failures are counted like the edge counts them."""
        head = snapshot_head(sim.tick)
        tail = sim.snapshot_tail()
        packb, sendto = msgpack.packb, self._sendto
        failed = 0
        began = time.perf_counter()
        for session in room.sessions.values():
            try:
                sendto(head + packb(session.player.last_seq) + tail, session.addr)
            except OSError:
                failed += 1
        self._send_s += time.perf_counter() - began
        sent = len(room.sessions) - failed
        self.snapshots_sent += sent
        stats = self.edge.stats
        stats.sent += sent
        stats.send_dropped += failed

    def _fail(self, room: _Room, exc: Exception) -> None:
        self.room_crashes += 1
        text = f"{type(exc).__name__}: {exc}"
        log.error("room %s (incarnation %d) crashed in tick %d: %s\n%s", room.room_id,
                  room.incarnation, room.sim.tick + 1, text,
                  "".join(traceback.format_exception(exc))[-4000:])
        self._drop_room(room, retire=True)
        self._orphaned[room.room_id] = self.clock()
        self._emit(RoomFailed(room.room_id, room.incarnation, text))

    def _finish(self, room: _Room) -> None:
        scores = room.sim.scores()
        flat = [v for pair in scores for v in pair]
        datagram = encode_game_over(room.room_id, flat)
        for session in room.sessions.values():
            self.edge.send(session.addr, datagram)
        self._drop_room(room, retire=False)
        self.checkpoints.pop(room.room_id, None)
        event = RoomFinished(room.room_id, room.incarnation, room.sim.tick, scores)
        self._finished[room.room_id] = (self.clock(), event)
        self._emit(event)

    def _housekeeping(self, tick: int) -> None:
        """Once a second: end silent sessions, forget old retired connections and checkpoints
        whose room never came back (its supervisor gave up)."""
        idle_ticks = self.settings.idle_timeout_s * self.settings.tick_hz
        for session in [s for s in self.sessions.values() if tick - s.last_heard > idle_ticks]:
            self._end_session(session)
        self._unknown_rejoins = 0
        now = self.clock()
        for conn in [c for c, t in self._retired.items() if now - t > RETIRED_TTL_S]:
            del self._retired[conn]
        for conn in [c for c, t in self._superseded.items() if now - t > RETIRED_TTL_S]:
            del self._superseded[conn]
        for room_id in [r for r, (t, _) in self._finished.items() if now - t > FINISHED_TTL_S]:
            del self._finished[room_id]
        for room_id in [r for r, t in self._orphaned.items() if now - t > ORPHAN_CHECKPOINT_TTL_S]:
            del self._orphaned[room_id]
            if room_id not in self.rooms:
                self.checkpoints.pop(room_id, None)

    # --- what the owner asks ------------------------------------------------------------------

    def _counter_values(self) -> dict[str, int]:
        c, edge = self.counters, self.edge.stats
        return {"ticks": self.ticks, "executed": self.executed, "late_ticks": self.late_ticks,
                "datagrams": edge.received,
                "inputs_received": self.inputs_received, "inputs_applied": c.applied,
                "dropped_bad": edge.dropped_bad, "dropped_unauthenticated": self.unauthenticated,
                "dropped_stale": c.stale, "dropped_duplicate": c.duplicate,
                "dropped_excess": c.excess, "dropped_ahead": c.ahead,
                "sessions_taken_over": self.taken_over, "snapshots_sent": self.snapshots_sent,
                "send_dropped": edge.send_dropped, "room_crashes": self.room_crashes}

    def stats(self, *, reset: bool = False, profile: str = "") -> dict[str, Any]:
        """Counters and tick times since the window began; ``reset`` begins a new window after."""
        window = self._window
        now = self._counter_values()
        run = min(now["executed"] - window.values["executed"], len(self.tick_ms))
        executed = list(self.tick_ms)[len(self.tick_ms) - run:] if run > 0 else []
        lags = list(self.lag_ms)[len(self.lag_ms) - run:] if run > 0 else []
        reads = list(self.read_ms)[len(self.read_ms) - run:] if run > 0 else []
        sends = list(self.send_ms)[len(self.send_ms) - run:] if run > 0 else []
        busy = list(self.lag_busy_ms)[len(self.lag_busy_ms) - run:] if run > 0 else []
        wake = [lag - b for lag, b in zip(lags, busy, strict=True)]
        rooms = [t - r - s for t, r, s in zip(executed, reads, sends, strict=True)]
        result: dict[str, Any] = {k: v - window.values[k] for k, v in now.items()}
        del result["executed"]
        result.update(window_s=self.clock() - window.began,
                      cpu_s=time.process_time() - window.cpu,
                      tick_p50_ms=_percentile(executed, 0.50),
                      tick_p99_ms=_percentile(executed, 0.99),
                      tick_max_ms=round(max(executed, default=0.0), 3),
                      start_lag_p99_ms=_percentile(lags, 0.99),
                      start_lag_p50_ms=_percentile(lags, 0.50),
                      phases_ms={name: {"p50": _percentile(values, 0.50),
                                        "p99": _percentile(values, 0.99)}
                                 for name, values in (("read", reads), ("rooms", rooms),
                                                      ("send", sends), ("lag_busy", busy),
                                                      ("lag_wake", wake))},
                      rooms=len(self.rooms), sessions=len(self.sessions), pid=os.getpid(),
                      loop_tid=self.loop_tid,
                      tick_bucket_counts=list(self.tick_buckets),
                      tick_seconds_sum=round(self.tick_seconds_sum, 6),
                      profile=[])
        if profile == "start" and self._profiler is None:
            self._profiler = cProfile.Profile()
            self._profiler.enable()
        elif profile == "stop" and self._profiler is not None:
            self._profiler.disable()
            result["profile"] = _top_functions(self._profiler)
            self._profiler = None
        if reset:
            self._window = _Window(self)
        return result

    def room_table(self) -> list[dict[str, Any]]:
        """Each running room with its newest checkpoint (what the matchmaker keeps)."""
        return [{"room_id": r.room_id, "players": list(r.sim.config.players), "tick": r.sim.tick,
                 "connected": len(r.sessions), "checkpoint": self.checkpoints.get(r.room_id)}
                for r in self.rooms.values()]


def slot_after(scheduled: float, ended: float, period: float) -> tuple[float, int, int]:
    """After a tick due at ``scheduled`` ended at ``ended``: when the next tick is due, how many
    ticks count as late (this one if it ended after its slot, and every slot that passed while
    it ran, which is skipped), and how many were skipped. Every loop the benchmark compares
    (this engine's, the bare server's, the floor's) counts with this one function."""
    next_at = scheduled + period
    late = 1 if ended > next_at else 0
    skipped = 0
    if ended > next_at + period:  # a whole slot already passed: skip it, count it late
        skipped = int((ended - next_at) / period)
        next_at += skipped * period
    return next_at, late + skipped, skipped


def make_realtime(priority: int) -> None:
    """Put the calling thread under SCHED_FIFO: on its CPU it then runs before every ordinary
    thread (other services, kernel workers) the moment its timer fires. Linux still keeps 5 % of
    each second for the others (``sched_rt_runtime_us``), so a runaway loop cannot lock the CPU."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except PermissionError as exc:
        raise ConfigError(f"loop_priority {priority} needs CAP_SYS_NICE (root, or "
                          f"setcap cap_sys_nice+ep on the interpreter): {exc}") from exc


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def _top_functions(profiler: cProfile.Profile, limit: int = 25) -> list[str]:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(limit)
    lines = [line.rstrip() for line in out.getvalue().splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    return lines[start:start + limit + 1]
