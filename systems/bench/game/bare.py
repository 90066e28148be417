"""The bare game server of ``ptr bench game``: the same game with no framework, in one process.

What a competent Python developer would write without ptr, so that the benchmark can say what ptr
costs on this machine in the same run, played by the same bots:

* one asyncio process, no actor thread, no supervision;
* a minimal HTTP lobby (``/accounts``, ``/login``, ``/queue``, ``/queue/status``: any name may play,
  rooms of ``room_size`` are formed in arrival order, a partial one after 1 s) so the bots need no
  change;
* one UDP socket read ``reads_per_tick`` times a tick and at each tick, like ptr's, decoded with
  the same ``decode_client``, the same rules (``RoomSim``), the same snapshot datagrams, rate and
  turn-taking of rooms.

What it leaves out is what ptr adds: per-tick checkpoints (a crashed room resumes), the rooms'
actors and their supervisor, idle-session housekeeping, ``REJOIN``, rate-limited logs.

``GET /stats`` (``?reset=1`` starts a new window) answers the counters ``ptr bench game`` reads from
a ptr game server. Run as ``python -m systems.bench.game.bare ROOM_SIZE TICK_HZ SNAPSHOT_EVERY
READS_PER_TICK ROUND_TICKS PRIORITY``: prints ``{"lobby_url": ...}`` and serves until killed.

Two more roles measure the machine itself: ``floor WORK_MS SECONDS TICK_HZ PRIORITY`` (a loop that only
burns CPU, see ``floor``) and ``spin`` (a busy CPU, standing in for the bots' load).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import secrets
import socket
import sys
import time
from typing import Any

import msgpack

from actors.game.auth import SessionTokens
from actors.game.engine import GC_THRESHOLDS, make_realtime, slot_after
from actors.game.room import InputCounters, PlayerState, RoomConfig, RoomSim
from protocols.game import (
    InputDatagram,
    InvalidTokenError,
    JoinDatagram,
    Welcome,
    decode_client,
    encode_welcome,
    snapshot_head,
)

FILL_WAIT_S = 1.0


class _Player:
    __slots__ = ("addr", "state", "pending")

    def __init__(self, addr: Any, state: PlayerState) -> None:
        self.addr = addr
        self.state = state
        self.pending: list[InputDatagram] = []


class _Room:
    __slots__ = ("room_id", "sim", "players", "phase")

    def __init__(self, room_id: str, sim: RoomSim, phase: int) -> None:
        self.room_id = room_id
        self.sim = sim
        self.players: dict[int, _Player] = {}  # by player id
        self.phase = phase


class BareGame:
    def __init__(self, room_size: int, tick_hz: float, snapshot_every: int, reads_per_tick: int,
                 round_ticks: int) -> None:
        self.room_size, self.tick_hz = room_size, tick_hz
        self.snapshot_every, self.reads_per_tick = snapshot_every, reads_per_tick
        self.round_ticks = round_ticks
        self.tokens = SessionTokens(secrets.token_hex(16))
        self.names: dict[str, int] = {}
        self.waiting: list[int] = []
        self.waiting_since = 0.0
        self.assigned: dict[int, _Room] = {}
        self.rooms: list[_Room] = []
        self.conns: dict[int, _Player] = {}
        self.counters = InputCounters()
        self.inputs_received = self.dropped = self.snapshots_sent = self.ticks = 0
        self.late_ticks = 0
        self.tick_ms: list[float] = []
        self.lag_ms: list[float] = []
        self.lag_busy_ms: list[float] = []  # start lag split as ptr's engine splits it
        self.lag_wake_ms: list[float] = []
        self.read_ms: list[float] = []
        self.send_ms: list[float] = []
        self.window_began = time.monotonic()
        self.window_cpu = time.process_time()
        self.window_values = self.values()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)

    # --- the lobby --------------------------------------------------------------------------

    def player_of(self, body: dict[str, Any]) -> int:
        return self.tokens.verify(str(body.get("token", "")))

    def queue(self, player_id: int, join: bool) -> dict[str, Any]:
        room = self.assigned.get(player_id)
        if room is None and join and player_id not in self.waiting:
            if not self.waiting:
                self.waiting_since = time.monotonic()
            self.waiting.append(player_id)
        if room is None and self.waiting and (
                len(self.waiting) >= self.room_size
                or time.monotonic() - self.waiting_since >= FILL_WAIT_S):
            self.form_room()
            room = self.assigned.get(player_id)
        if room is None:
            if player_id not in self.waiting:
                return {"status": "idle"}
            return {"status": "queued", "position": self.waiting.index(player_id) + 1,
                    "queue_length": len(self.waiting)}
        host, port = self.sock.getsockname()
        return {"status": "matched", "room_id": room.room_id, "server_host": host,
                "server_port": port}

    def form_room(self) -> None:
        players, self.waiting = self.waiting[:self.room_size], self.waiting[self.room_size:]
        self.waiting_since = time.monotonic()
        n = len(self.rooms)
        config = RoomConfig(room_id=f"bare-{n}", players=tuple(players), seed=n,
                            round_ticks=self.round_ticks)
        room = _Room(config.room_id, RoomSim(config), n % self.snapshot_every)
        self.rooms.append(room)
        for player_id in players:
            self.assigned[player_id] = room

    # --- datagrams ----------------------------------------------------------------------------

    def read(self) -> None:
        recvfrom, conns = self.sock.recvfrom, self.conns
        received = dropped = 0
        while True:
            try:
                data, addr = recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                break
            try:
                item = decode_client(data)
            except Exception:  # noqa: BLE001 - a bad datagram is dropped and counted
                dropped += 1
                continue
            if type(item) is InputDatagram:
                player = conns.get(item.conn)
                if player is not None and player.addr == addr:
                    player.pending.append(item)
                    received += 1
                else:
                    dropped += 1
            elif type(item) is JoinDatagram:
                self.join(addr, item)
            else:
                dropped += 1
        self.inputs_received += received
        self.dropped += dropped

    def join(self, addr: Any, join: JoinDatagram) -> None:
        try:
            player_id = self.tokens.verify(join.token)
        except InvalidTokenError:
            self.dropped += 1
            return
        room = self.assigned.get(player_id)
        if room is None or room.room_id != join.room_id:
            self.dropped += 1
            return
        state = room.sim.player(player_id)
        assert state is not None
        conn = secrets.randbits(31) or 1
        player = _Player(addr, state)
        self.conns[conn] = player
        room.players[player_id] = player
        self.sock.sendto(encode_welcome(Welcome(conn, room.room_id, player_id, room.sim.tick,
                                                state.last_seq, room.sim.config.arena)), addr)

    # --- the loop -----------------------------------------------------------------------------

    def tick(self) -> None:
        began = time.perf_counter()
        self.read()
        self.read_ms.append((time.perf_counter() - began) * 1000)
        send_s = 0.0
        self.ticks += 1
        tick, every, counters = self.ticks, self.snapshot_every, self.counters
        packb, sendto = msgpack.packb, self.sock.sendto
        sent = 0
        for room in self.rooms:
            sim = room.sim
            batch = []
            for player in room.players.values():
                if player.pending:
                    batch.append((player.state, player.pending))
                    player.pending = []
            sim.step(batch, counters)
            if (tick + room.phase) % every == 0 and room.players:
                head, tail = snapshot_head(sim.tick), sim.snapshot_tail()
                sending = time.perf_counter()
                for player in room.players.values():
                    sendto(head + packb(player.state.last_seq) + tail, player.addr)
                    sent += 1
                send_s += time.perf_counter() - sending
        self.snapshots_sent += sent
        self.send_ms.append(send_s * 1000)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.tick_hz
        read_every = period / self.reads_per_tick if self.reads_per_tick else 0.0
        next_at = loop.time() + period
        busy_until = 0.0  # when the loop last finished work (a read or a tick)
        while True:
            for k in range(1, self.reads_per_tick):  # at fixed points of the slot, like ptr's
                at = next_at - period + k * read_every
                if at > loop.time():
                    await asyncio.sleep(at - loop.time())
                self.read()
                busy_until = loop.time()
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            began = loop.time()
            busy = max(0.0, min(began, busy_until) - next_at) * 1000
            self.lag_busy_ms.append(busy)
            self.lag_wake_ms.append((began - next_at) * 1000 - busy)
            self.tick()
            ended = busy_until = loop.time()
            self.tick_ms.append((ended - began) * 1000)
            self.lag_ms.append((began - next_at) * 1000)
            next_at, late, skipped = slot_after(next_at, ended, period)
            self.late_ticks += late
            self.ticks += skipped

    # --- what the benchmark reads -------------------------------------------------------------

    def values(self) -> dict[str, int]:
        c = self.counters
        return {"ticks": self.ticks, "late_ticks": self.late_ticks,
                "inputs_received": self.inputs_received, "inputs_applied": c.applied,
                "dropped": self.dropped, "snapshots_sent": self.snapshots_sent,
                "executed": len(self.tick_ms)}

    def stats(self, reset: bool) -> dict[str, Any]:
        now = self.values()
        result: dict[str, Any] = {k: v - self.window_values[k] for k, v in now.items()}
        run = result.pop("executed")
        ticks = sorted(self.tick_ms[len(self.tick_ms) - run:]) if run > 0 else [0.0]
        lags = sorted(self.lag_ms[len(self.lag_ms) - run:]) if run > 0 else [0.0]
        window = slice(len(self.tick_ms) - run, None) if run > 0 else slice(0, 0)
        phases = {"read": self.read_ms[window], "send": self.send_ms[window],
                  "lag_busy": self.lag_busy_ms[window], "lag_wake": self.lag_wake_ms[window],
                  "rooms": [t - r - s for t, r, s in zip(self.tick_ms[window], self.read_ms[window],
                                                         self.send_ms[window], strict=True)]}
        result.update(window_s=time.monotonic() - self.window_began,
                      cpu_s=time.process_time() - self.window_cpu,
                      tick_p50_ms=round(ticks[int(0.5 * len(ticks))], 3),
                      tick_p99_ms=round(ticks[min(len(ticks) - 1, int(0.99 * len(ticks)))], 3),
                      tick_max_ms=round(ticks[-1], 3),
                      start_lag_p99_ms=round(lags[min(len(lags) - 1, int(0.99 * len(lags)))], 3),
                      start_lag_p50_ms=round(lags[int(0.5 * len(lags))], 3),
                      phases_ms={name: {"p50": _percentile(values, 0.5),
                                        "p99": _percentile(values, 0.99)}
                                 for name, values in phases.items()},
                      players=len(self.conns), rooms=len(self.rooms), pid=os.getpid())
        if reset:
            self.window_began, self.window_cpu = time.monotonic(), time.process_time()
            self.window_values = self.values()
        return result


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values) or [0.0]
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


async def main(game: BareGame) -> None:
    from aiohttp import web

    async def body(request: web.Request) -> dict[str, Any]:
        return dict(await request.json())

    async def accounts(request: web.Request) -> web.Response:
        name = str((await body(request)).get("name", ""))
        player_id = game.names.setdefault(name, len(game.names) + 1)
        return web.json_response({"player_id": player_id, "name": name})

    async def login(request: web.Request) -> web.Response:
        name = str((await body(request)).get("name", ""))
        if name not in game.names:
            return web.json_response({"error": "unknown name"}, status=401)
        player_id = game.names[name]
        token, expires_at = game.tokens.issue(player_id)
        return web.json_response({"player_id": player_id, "name": name, "token": token,
                                  "expires_at": expires_at})

    def queue_route(join: bool) -> Any:
        async def route(request: web.Request) -> web.Response:
            try:
                player_id = game.player_of(await body(request))
            except InvalidTokenError as exc:
                return web.json_response({"error": exc.reason}, status=401)
            return web.json_response(game.queue(player_id, join))
        return route

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(game.stats(request.query.get("reset") == "1"))

    app = web.Application()
    app.router.add_post("/accounts", accounts)
    app.router.add_post("/login", login)
    app.router.add_post("/queue", queue_route(True))
    app.router.add_post("/queue/status", queue_route(False))
    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(json.dumps({"lobby_url": f"http://127.0.0.1:{runner.addresses[0][1]}"}), flush=True)
    await game.run()


def floor(work_ms: float, seconds: float, tick_hz: float) -> dict[str, Any]:
    """The machine's own floor for late ticks: a loop that only burns ``work_ms`` of CPU per
    tick (no sockets, no Python objects), scheduled like the game loops and counted the same way.
    Whatever it misses, no game server on this CPU at this moment could have made."""
    period = 1.0 / tick_hz
    clock = time.perf_counter
    next_at = clock() + period
    ticks = late = 0
    lags: list[float] = []
    end = next_at + seconds
    while next_at < end:
        delay = next_at - clock()
        if delay > 0:
            time.sleep(delay)
        began = clock()
        lags.append((began - next_at) * 1000)
        until = began + work_ms / 1000
        while clock() < until:
            pass
        next_at, late_now, skipped = slot_after(next_at, clock(), period)
        ticks, late = ticks + 1 + skipped, late + late_now
    return {"work_ms": work_ms, "ticks": ticks, "late_ticks": late,
            "late_tick_ratio": round(late / max(1, ticks), 5),
            "start_lag_p99_ms": _percentile(lags, 0.99), "start_lag_max_ms": _percentile(lags, 1)}


def spin() -> None:
    """Keep a CPU busy (as the bots keep theirs) until killed."""
    print(json.dumps({"spinning": os.getpid()}), flush=True)
    while True:
        pass


if __name__ == "__main__":
    if sys.argv[1] == "floor":
        if int(sys.argv[5]):  # SCHED_FIFO, as ptr's ``loop_priority`` gives its loop thread
            make_realtime(int(sys.argv[5]))
        print(json.dumps(floor(float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))),
              flush=True)
    elif sys.argv[1] == "spin":
        spin()
    else:
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        room_size, tick_hz, every, reads, round_ticks, priority = sys.argv[1:7]
        if int(priority):  # the same placement and GC settings as ptr's game server: the
            make_realtime(int(priority))  # comparison is the framework, not the tuning
        asyncio.run(main(BareGame(int(room_size), float(tick_hz), int(every), int(reads),
                                  int(round_ticks))))
