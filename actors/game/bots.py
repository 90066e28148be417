"""Bot players: log in over HTTP, queue, and play over real UDP, measuring what a player feels.

A ``BotFleet`` (in the caller's process) starts ``processes`` bot processes (``python -m
actors.game.bots CONFIG``), each running many bots on one asyncio loop, and talks to them over
their stdin/stdout: ``measure`` starts a measurement window, ``stop`` ends it; each process prints
JSON lines (``progress`` twice a second, one ``result`` at the end).

Why separate processes: the bots must not share a core's GIL with the server they measure, and one
Python process cannot both send and receive 60,000 datagrams a second.

How a bot process reads: each bot has its own socket (the server tells players apart by address),
all in one epoll set that the process polls (timeout 0) at each frame slot, as a game client reads
its socket once per frame. Nobody ever *waits* on those sockets, and that matters on loopback: a
``sendto`` to a socket whose process sleeps in ``epoll_wait`` pays for waking that process (~6 us on
this machine, more than the send itself), a cost a real server sending over a network card never
pays. Reading late does not skew the figure: the kernel stamps each datagram on arrival
(``SO_TIMESTAMP``) and latency is taken from that stamp.

Each bot sends one input per frame (``frame_hz``), frames staggered over ``buckets`` slots so a
process does not send its whole burst at once. It measures *input to snapshot*: from sending input
``seq`` to the arrival of the first snapshot whose ``ack`` covers it (wall clock of the bot's own
machine on both ends). Bots move toward
the nearest coin, rejoin when the server says ``REJOIN`` or goes silent, and queue again after a
round. Load is bounded: at most ``http_concurrency`` requests in flight per process, retries back
off, and every loop waits between rounds.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import msgpack

from protocols.game import (
    GAME_OVER,
    REJECT,
    REJECT_UNKNOWN_ROOM,
    REJOIN,
    SNAPSHOT,
    WELCOME,
    encode_input,
    encode_join,
)

__all__ = ["BotConfig", "BotFleet", "FleetResult", "LatencyHistogram"]

BIN_MS = 0.1
BINS = 20_000  # 0..2 s in 0.1 ms bins; slower answers land in the overflow count
SEQ_RING = 1024
SILENCE_S = 2.0
JOIN_RETRY_S = 0.5
JOIN_GIVE_UP_S = 15.0
SO_TIMESTAMP = getattr(socket, "SO_TIMESTAMP", 29)  # Linux; Python does not export it
ANCILLARY_BYTES = socket.CMSG_SPACE(16)
_timeval = struct.Struct("qq")


class LatencyHistogram:
    """Fixed 0.1 ms bins: exact merging across processes, percentiles to 0.1 ms."""

    def __init__(self) -> None:
        self.bins = [0] * BINS
        self.overflow = 0
        self.count = 0

    def add(self, seconds: float) -> None:
        index = max(0, int(seconds * 1000.0 / BIN_MS))  # a clock step back counts as 0
        if index < BINS:
            self.bins[index] += 1
        else:
            self.overflow += 1
        self.count += 1

    def sparse(self) -> dict[str, int]:
        return {str(i): n for i, n in enumerate(self.bins) if n}

    def merge_sparse(self, sparse: dict[str, int], overflow: int) -> None:
        for i, n in sparse.items():
            self.bins[int(i)] += n
            self.count += n
        self.overflow += overflow
        self.count += overflow

    def percentile(self, q: float) -> float | None:
        """The upper edge of the bin holding the q-quantile, in ms (None without samples)."""
        if not self.count:
            return None
        rank = max(1, int(q * self.count + 0.999999))
        seen = 0
        for i, n in enumerate(self.bins):
            seen += n
            if seen >= rank:
                return round((i + 1) * BIN_MS, 1)
        return float("inf")


@dataclass
class BotConfig:
    """One bot process: bots ``first`` .. ``first + count - 1``."""

    lobby_url: str
    first: int
    count: int
    name_prefix: str = "bot"
    password: str = "bot-password-not-secret"
    frame_hz: float = 60.0
    buckets: int = 4
    snapshot_every: int = 1
    http_concurrency: int = 8
    poll_s: float = 0.5
    report_s: float = 0.5
    seed: int = 1


class _Bot:
    __slots__ = ("index", "name", "player_id", "token", "state", "room_id", "finished_room",
                 "sock", "conn",
                 "seq", "sent_at", "last_ack", "last_tick", "x", "y", "tx", "ty", "own",
                 "heard_at", "join_at", "joining_since", "over", "rejects")

    def __init__(self, index: int, name: str) -> None:
        self.index = index
        self.name = name
        self.player_id = 0
        self.token = ""
        self.state = "http"  # http | joining | playing
        self.room_id = ""
        self.finished_room = ""  # the room whose GAME_OVER it saw: left when queueing again
        self.sock: socket.socket | None = None
        self.conn = 0
        self.seq = 0
        self.sent_at = [0.0] * SEQ_RING
        self.last_ack = 0
        self.last_tick = 0
        self.x = self.y = self.tx = self.ty = 0
        self.own = -1
        self.heard_at = 0.0
        self.join_at = 0.0
        self.joining_since = 0.0
        self.over: asyncio.Event | None = None
        self.rejects = 0


class _Window:
    def __init__(self) -> None:
        self.began = time.monotonic()
        self.cpu = time.process_time()
        self.inputs_sent = 0
        self.send_errors = 0
        self.snapshots = 0
        self.snapshot_gaps = 0
        self.slots = 0
        self.late_slots = 0
        self.latency = LatencyHistogram()
        self.ended: float | None = None
        self.cpu_end = 0.0

    def close(self) -> None:
        """End the window now (on ``stop``): what happens while the process winds down is not in it."""
        if self.ended is None:
            self.ended, self.cpu_end = time.monotonic(), time.process_time()


class BotRunner:
    """The bots of one process (see the module docstring)."""

    def __init__(self, config: BotConfig, emit: Callable[[dict[str, Any]], None]) -> None:
        self.config = config
        self.emit = emit
        self.bots = [_Bot(i, f"{config.name_prefix}{i}")
                     for i in range(config.first, config.first + config.count)]
        self.by_fd: dict[int, _Bot] = {}
        self.buckets: list[list[_Bot]] = [[] for _ in range(max(1, config.buckets))]
        for n, bot in enumerate(self.bots):
            self.buckets[n % len(self.buckets)].append(bot)
        self.window = _Window()
        self.logged_in = self.joins = self.rejoins = self.http_errors = self.rounds = 0
        self.rng = random.Random(config.seed)
        self.stopping = asyncio.Event()
        self.epoll = select.epoll()
        self._slot = 0
        self._next_slot = 0.0
        self._slot_handle: asyncio.TimerHandle | asyncio.Handle | None = None

    # --- the process --------------------------------------------------------------------------

    async def main(self) -> None:
        import aiohttp  # here, so importing this module for the fleet stays light

        loop = asyncio.get_running_loop()
        self._next_slot = loop.time()
        self._slot_handle = loop.call_soon(self._on_slot)
        connector = aiohttp.TCPConnector(limit=self.config.http_concurrency)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            self.http = http
            tasks = [asyncio.create_task(self._life(bot)) for bot in self.bots]
            for task in tasks:
                task.add_done_callback(_report_failure)
            reporter = asyncio.create_task(self._report())
            await self.stopping.wait()
            for task in (*tasks, reporter):
                task.cancel()
            await asyncio.gather(*tasks, reporter, return_exceptions=True)
        if self._slot_handle is not None:
            self._slot_handle.cancel()
        for bot in self.bots:
            if bot.sock is not None:
                bot.sock.close()
        self.epoll.close()
        self.emit(self.result())

    def command(self, line: str) -> None:
        word = line.strip()
        if word == "measure":
            self.window = _Window()
        elif word in ("stop", ""):
            self.window.close()
            self.stopping.set()

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self.config.report_s)
            self.emit(self.progress())

    def playing(self) -> int:
        fresh = time.monotonic() - 1.0
        return sum(1 for b in self.bots if b.state == "playing" and b.heard_at > fresh)

    def progress(self) -> dict[str, Any]:
        return {"type": "progress", "bots": len(self.bots), "logged_in": self.logged_in,
                "playing": self.playing(), "joins": self.joins, "rounds": self.rounds,
                "inputs_sent": self.window.inputs_sent, "snapshots": self.window.snapshots}

    def result(self) -> dict[str, Any]:
        w = self.window
        w.close()
        assert w.ended is not None
        return {"type": "result", "bots": len(self.bots), "window_s": w.ended - w.began,
                "cpu_s": w.cpu_end - w.cpu, "inputs_sent": w.inputs_sent,
                "send_errors": w.send_errors, "snapshots": w.snapshots,
                "snapshot_gaps": w.snapshot_gaps, "slots": w.slots, "late_slots": w.late_slots,
                "latency_bins": w.latency.sparse(), "latency_overflow": w.latency.overflow,
                "logged_in": self.logged_in, "playing": self.playing(), "joins": self.joins,
                "rejoins": self.rejoins, "http_errors": self.http_errors, "rounds": self.rounds}

    # --- HTTP: account, login, queue ----------------------------------------------------------

    async def _post(self, path: str, body: dict[str, Any], ok: tuple[int, ...] = (200,)) -> Any:
        """POST until an answer in ``ok`` (or a 4xx, returned as ``(status, json)``); retries
        refusals of a busy lobby (503/504) and connection errors with a capped backoff, and waits
        out a 429 for its ``Retry-After``."""
        import aiohttp

        delay = 0.2
        while True:
            try:
                async with self.http.post(self.config.lobby_url + path, json=body) as response:
                    payload = await response.json(content_type=None)
                    if response.status == 429:  # over a lobby limit: wait as told, then again
                        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                        continue
                    if response.status in ok or 400 <= response.status < 500:
                        return response.status, payload
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                pass
            self.http_errors += 1
            await asyncio.sleep(delay * (0.5 + self.rng.random()))
            delay = min(2.0, delay * 2)

    async def _login(self, bot: _Bot) -> None:
        credentials = {"name": bot.name, "password": self.config.password}
        while True:
            status, answer = await self._post("/login", credentials)
            if status == 200:
                bot.player_id, bot.token = answer["player_id"], answer["token"]
                self.logged_in += 1
                return
            status, answer = await self._post("/accounts", credentials)
            if status not in (200, 409):
                raise RuntimeError(f"bot {bot.name} cannot register: {status} {answer}")

    async def _queue(self, bot: _Bot) -> dict[str, Any]:
        token = {"token": bot.token}
        status, answer = await self._post("/queue", {**token, "finished_room": bot.finished_room})
        while True:
            if status == 401:  # token expired: log in again
                await self._login(bot)
                token = {"token": bot.token}
                status, answer = await self._post("/queue", token)
                continue
            if status == 200 and answer["status"] == "matched":
                return dict(answer)
            if status == 200 and answer["status"] == "idle":
                status, answer = await self._post("/queue", token)
                continue
            await asyncio.sleep(self.config.poll_s * (0.5 + self.rng.random()))
            status, answer = await self._post("/queue/status", token)

    async def _life(self, bot: _Bot) -> None:
        await asyncio.sleep(self.rng.random() * 0.5)
        await self._login(bot)
        while True:
            assignment = await self._queue(bot)
            await self._play(bot, assignment)
            self.rounds += 1
            await asyncio.sleep(0.2 + self.rng.random() * 0.3)

    # --- UDP: play ----------------------------------------------------------------------------

    async def _play(self, bot: _Bot, assignment: dict[str, Any]) -> None:
        address = (assignment["server_host"], int(assignment["server_port"]))
        if bot.sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
            sock.bind(("127.0.0.1", 0))
            bot.sock = sock
            self.by_fd[sock.fileno()] = bot
            self.epoll.register(sock.fileno(), select.EPOLLIN)
        bot.sock.connect(address)  # a connected socket hears only its server
        bot.room_id = assignment["room_id"]
        bot.over = asyncio.Event()
        bot.last_tick = bot.last_ack = 0
        bot.own, bot.rejects = -1, 0
        bot.joining_since = time.monotonic()
        bot.state = "joining"
        self._send_join(bot)
        await bot.over.wait()
        bot.state = "http"

    def _send_join(self, bot: _Bot) -> None:
        bot.join_at = time.monotonic()
        try:
            assert bot.sock is not None
            bot.sock.send(encode_join(bot.token, bot.room_id))
        except OSError:
            self.window.send_errors += 1

    def _end_round(self, bot: _Bot) -> None:
        bot.state = "http"
        if bot.over is not None:
            bot.over.set()

    def _on_slot(self) -> None:
        """Every 1/(frame_hz * buckets) s: the bots of one bucket send their frame's input."""
        loop = asyncio.get_running_loop()
        period = 1.0 / (self.config.frame_hz * len(self.buckets))
        now_loop = loop.time()
        window = self.window
        if window.ended is not None:
            return
        window.slots += 1
        if now_loop - self._next_slot > period:
            window.late_slots += 1
        self._read_datagrams()
        bucket = self.buckets[self._slot % len(self.buckets)]
        self._slot += 1
        now = time.monotonic()
        wall = time.time
        sent = errors = 0
        for bot in bucket:
            if bot.state == "playing":
                if now - bot.heard_at > SILENCE_S:
                    bot.state = "joining"
                    bot.joining_since = now
                    self.rejoins += 1
                    self._send_join(bot)
                    continue
                bot.seq += 1
                seq = bot.seq
                dx = (bot.tx > bot.x + 2) - (bot.tx < bot.x - 2)
                dy = (bot.ty > bot.y + 2) - (bot.ty < bot.y - 2)
                bot.sent_at[seq % SEQ_RING] = wall()
                try:
                    bot.sock.send(encode_input(bot.conn, seq, dx, dy))  # type: ignore[union-attr]
                    sent += 1
                except OSError:
                    errors += 1
            elif bot.state == "joining":
                if now - bot.joining_since > JOIN_GIVE_UP_S:
                    self._end_round(bot)
                elif now - bot.join_at > JOIN_RETRY_S:
                    self._send_join(bot)
        window.inputs_sent += sent
        window.send_errors += errors
        self._next_slot += period
        if now_loop - self._next_slot > 10 * period:  # far behind: do not burst to catch up
            self._next_slot = now_loop
        if not self.stopping.is_set():
            self._slot_handle = loop.call_at(self._next_slot, self._on_slot)

    def _read_datagrams(self) -> None:
        """Read what arrived on the bots' sockets (called each slot; nothing waits on them).

        One datagram per ready socket per call: a bot gets about one per frame and the slots come
        four times a frame, so reading until ``EAGAIN`` would double the system calls (and raise
        an exception per socket); the level-triggered epoll reports a socket again if more wait.
        """
        unpackb, window, stamp = msgpack.unpackb, self.window, _timeval.unpack_from
        by_fd = self.by_fd
        for fd, _ in self.epoll.poll(0, 4096):
            bot = by_fd.get(fd)
            if bot is None or bot.sock is None:
                continue
            try:
                data, ancillary, _flags, _addr = bot.sock.recvmsg(2048, ANCILLARY_BYTES)
            except OSError:  # nothing after all, or ICMP port unreachable: a server restarting
                continue
            try:
                msg = unpackb(data)
                kind = msg[1]
                if kind == SNAPSHOT:
                    if ancillary:
                        sec, usec = stamp(ancillary[0][2])
                        arrived = sec + usec * 1e-6
                    else:
                        arrived = time.time()
                    self._on_snapshot(bot, msg, arrived, window)
                else:
                    self._on_control(bot, kind, msg)
            except (ValueError, TypeError, IndexError, KeyError, struct.error,
                    msgpack.UnpackException, msgpack.ExtraData):
                continue  # a bot ignores what it cannot read; the server is not under test

    def _on_snapshot(self, bot: _Bot, msg: list[Any], arrived: float, window: _Window) -> None:
        """Count it, time the inputs it is the first to acknowledge, and (every 4th tick) steer
        toward the nearest coin: a bot's mind need not run at 60 Hz, its measurements do."""
        if bot.state != "playing":
            return
        _, _, tick, ack, _ends, coins, players = msg
        window.snapshots += 1
        bot.heard_at = time.monotonic()
        last_tick, every = bot.last_tick, self.config.snapshot_every
        if last_tick and tick > last_tick + every:
            window.snapshot_gaps += (tick - last_tick) // every - 1
        bot.last_tick = tick
        if ack > bot.last_ack:  # every input this snapshot is the first to cover
            sent_at, latency = bot.sent_at, window.latency
            bins = latency.bins
            for seq in range(max(bot.last_ack + 1, bot.seq - SEQ_RING + 1), ack + 1):
                index = int((arrived - sent_at[seq % SEQ_RING]) * 10_000.0)  # 0.1 ms bins
                if 0 <= index < BINS:
                    bins[index] += 1
                    latency.count += 1
                else:
                    latency.add(arrived - sent_at[seq % SEQ_RING])
            bot.last_ack = ack
        if (tick + bot.index) & 3:
            return
        own = bot.own
        if own < 0 or own + 2 >= len(players) or players[own] != bot.player_id:
            own = bot.own = next((i for i in range(0, len(players), 4)
                                  if players[i] == bot.player_id), -1)
            if own < 0:
                return
        x, y = bot.x, bot.y = players[own + 1], players[own + 2]
        best = None
        for i in range(0, len(coins) - 1, 2):
            d = abs(coins[i] - x) + abs(coins[i + 1] - y)
            if best is None or d < best:
                best, bot.tx, bot.ty = d, coins[i], coins[i + 1]

    def _on_control(self, bot: _Bot, kind: int, msg: list[Any]) -> None:
        if kind == WELCOME:
            if bot.state == "joining" and msg[3] == bot.room_id:
                bot.conn = msg[2]
                bot.seq = max(bot.seq, msg[6])
                bot.last_ack = msg[6]
                bot.heard_at = time.monotonic()
                bot.state = "playing"
                self.joins += 1
        elif kind == REJOIN:
            if bot.state == "playing" and msg[2] == bot.conn:
                bot.state = "joining"
                bot.joining_since = time.monotonic()
                self.rejoins += 1
                self._send_join(bot)
        elif kind == REJECT:
            bot.rejects += 1
            if msg[2] != REJECT_UNKNOWN_ROOM:  # bad token or not our room: back to the lobby
                self._end_round(bot)
        elif kind == GAME_OVER:
            if msg[2] == bot.room_id:
                bot.finished_room = bot.room_id
                self._end_round(bot)


def _report_failure(task: asyncio.Task[None]) -> None:
    """A bot that gave up says why on stderr (the fleet's stderr is the caller's)."""
    if not task.cancelled() and task.exception() is not None:
        print(f"bot failed: {task.exception()!r}", file=sys.stderr, flush=True)


def _process_main(config: BotConfig) -> None:
    """Entry point of a bot process: stdin gives commands, stdout gets JSON lines."""
    out_lock = threading.Lock()

    def emit(record: dict[str, Any]) -> None:
        with out_lock:
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()

    async def run() -> None:
        runner = BotRunner(config, emit)
        loop = asyncio.get_running_loop()
        fd = sys.stdin.fileno()
        os.set_blocking(fd, False)
        buffer = b""

        def on_stdin() -> None:
            nonlocal buffer
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                return
            if not chunk:  # the fleet went away: stop
                loop.remove_reader(fd)
                runner.command("stop")
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                runner.command(line.decode())

        loop.add_reader(fd, on_stdin)
        await runner.main()

    asyncio.run(run())


# --- the fleet, in the caller's process ---------------------------------------------------------

@dataclass
class FleetResult:
    """What the bots measured in the window, merged over processes."""

    bots: int = 0
    window_s: float = 0.0
    inputs_sent: int = 0
    snapshots: int = 0
    snapshot_gaps: int = 0
    send_errors: int = 0
    slots: int = 0
    late_slots: int = 0
    cpu_s: float = 0.0
    joins: int = 0
    rejoins: int = 0
    http_errors: int = 0
    rounds: int = 0
    playing: int = 0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_samples: int = 0
    processes: int = 0
    per_process_cpu_pct: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class BotFleet:
    """Starts, steers and stops bot processes. ``stop`` always ends every process it started."""

    def __init__(self, lobby_url: str, players: int, *, processes: int = 2,
                 name_prefix: str = "bot", frame_hz: float = 60.0, snapshot_every: int = 1,
                 password: str = "bot-password-not-secret", http_concurrency: int = 8) -> None:
        if players < 1 or processes < 1:
            raise ValueError("players and processes must be >= 1")
        self.processes = min(processes, players)
        per, extra = divmod(players, self.processes)
        self.configs = []
        first = 1
        for n in range(self.processes):
            count = per + (1 if n < extra else 0)
            self.configs.append(BotConfig(lobby_url=lobby_url, first=first, count=count,
                                          name_prefix=name_prefix, password=password,
                                          frame_hz=frame_hz, snapshot_every=snapshot_every,
                                          http_concurrency=http_concurrency, seed=n + 1))
            first += count
        self.players = players
        self._procs: list[subprocess.Popen[str]] = []
        self._readers: list[threading.Thread] = []
        self._progress: dict[int, dict[str, Any]] = {}
        self._results: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def start(self) -> BotFleet:
        for n, config in enumerate(self.configs):
            proc = subprocess.Popen([sys.executable, "-m", "actors.game.bots",
                                     json.dumps(asdict(config))],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                    bufsize=1)
            self._procs.append(proc)
            reader = threading.Thread(target=self._read, args=(n, proc), daemon=True,
                                      name=f"bots-{n}-reader")
            reader.start()
            self._readers.append(reader)
        return self

    @property
    def pids(self) -> list[int]:
        """The bot processes' pids (to place them on CPUs, say); empty before ``start``."""
        return [proc.pid for proc in self._procs]

    def _read(self, n: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            with self._changed:
                if record.get("type") == "result":
                    self._results[n] = record
                else:
                    self._progress[n] = record
                self._changed.notify_all()

    _PROGRESS_KEYS = ("bots", "logged_in", "playing", "joins", "rounds", "inputs_sent",
                      "snapshots")

    def _merged_progress(self) -> dict[str, int]:
        records = list(self._progress.values())
        return {k: sum(int(r.get(k, 0)) for r in records) for k in self._PROGRESS_KEYS}

    def progress(self) -> dict[str, int]:
        """The bots' latest reports, summed over processes."""
        with self._lock:
            return self._merged_progress()

    def wait_until(self, predicate: Callable[[dict[str, int]], bool], timeout_s: float) -> bool:
        """Wait (on the processes' progress reports, not a sleep) until ``predicate(progress)``;
        False at the deadline or when every bot process has ended."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not predicate(self._merged_progress()):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or all(p.poll() is not None for p in self._procs):
                    return False
                self._changed.wait(min(remaining, 0.5))
            return True

    def _tell(self, word: str) -> None:
        for proc in self._procs:
            if proc.poll() is None and proc.stdin is not None:
                try:
                    proc.stdin.write(word + "\n")
                    proc.stdin.flush()
                except (BrokenPipeError, OSError):
                    pass

    def measure(self) -> None:
        """Start the measurement window in every bot process now."""
        self._tell("measure")

    def stop(self, timeout_s: float = 15.0) -> FleetResult:
        """End the window, collect each process's result and end every process."""
        self._tell("stop")
        deadline = time.monotonic() + timeout_s
        for proc in self._procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for proc in self._procs:
            if proc.stdin is not None:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
        for reader in self._readers:
            reader.join(5)
        for proc in self._procs:
            if proc.stdout is not None:
                proc.stdout.close()
        return self.merged()

    def merged(self) -> FleetResult:
        with self._lock:
            results = list(self._results.values())
        merged = FleetResult(processes=len(results))
        histogram = LatencyHistogram()
        for r in results:
            merged.bots += r["bots"]
            merged.window_s = max(merged.window_s, r["window_s"])
            for key in ("inputs_sent", "snapshots", "snapshot_gaps", "send_errors", "slots",
                        "late_slots", "joins", "rejoins", "http_errors", "rounds", "playing"):
                setattr(merged, key, getattr(merged, key) + int(r[key]))
            merged.cpu_s += r["cpu_s"]
            merged.per_process_cpu_pct.append(round(100 * r["cpu_s"] / max(r["window_s"], 1e-9), 1))
            histogram.merge_sparse(r["latency_bins"], r["latency_overflow"])
        merged.latency_p50_ms = histogram.percentile(0.50)
        merged.latency_p99_ms = histogram.percentile(0.99)
        merged.latency_samples = histogram.count
        return merged

    def summary(self) -> str:
        r = self.merged()
        rate = r.inputs_sent / r.window_s if r.window_s else 0.0
        return (f"bots {r.bots} in {r.processes} processes: {rate:,.0f} inputs/s sent, "
                f"{r.snapshots:,} snapshots, input->snapshot p50 {r.latency_p50_ms} ms "
                f"p99 {r.latency_p99_ms} ms, rejoins {r.rejoins}, rounds {r.rounds}")


class SimulatedPlayers:
    """What ``ptr run game --simulate`` gets: a started fleet whose ``stop`` prints its summary."""

    def __init__(self, fleet: BotFleet) -> None:
        self.fleet = fleet

    def stop(self) -> None:
        self.fleet.stop()
        print(f"game: {self.fleet.summary()}", flush=True)


if __name__ == "__main__":
    _process_main(BotConfig(**json.loads(sys.argv[1])))
