"""``ptr bench game``: the game system under bot players, beside the naive design and a bare
server, in one run.

All on ``multiprocTCPBase`` on this machine. Steps: (1) the naive figure: inputs sent one Thespian
message each from an edge actor to a room actor, ``naive_window`` in flight; (2) ``players`` bots in
``bot_processes`` processes register, log in, queue and join over real UDP; (3) once all play, a
``duration_s`` window: the game servers' counters and tick times (reset at its start) and the bots'
own measurements (input sent -> first snapshot acknowledging it, on the bot's clock); (4) with
``bare``, the same bots play ``game_bare``'s framework-free server (same rules, wire format and
snapshot rate) and the same window gives the ``bare_*`` figures and the ratios; (5) with
``floor``, the machine's own floor for late ticks (``measure_floor``): a loop that only burns
ptr's median tick time on the servers' CPU while the other CPU spins.

CPUs (``pin``, on by default when the machine has two or more): once the bots play, each game
server process (all its threads) is put on the first CPU and everything else (the bots, the other
actors, this process) on the others, for ptr and for the bare server alike. Without it, the bots'
~0.8 of a core and the server share both cores and the scheduler's preemptions decide the tick's
tail; with it, the server runs as it would on a machine of its own with its players elsewhere.
With ``realtime`` (on by default, only with ``pin``) the tick loop runs under SCHED_FIFO
(``loop_priority``), and so do the bare server and the floor loop: the services this machine
also runs (RabbitMQ, PostgreSQL, NATS...) and kernel workers then wait on that CPU, not the tick.

Definitions: ``inputs_per_s`` are valid inputs the servers received (authenticated, routed to a
room); ``inputs_applied_per_s`` those the rooms applied; ``tick_p99_ms`` the time a tick spends
(read the edge's batch, step every room, checkpoint, send the snapshots due); a tick is *late* when
it ends after its 1/``tick_hz`` slot (skipped slots count as late too). If the bots send less than
``players * tick_hz``, that is their ceiling on this machine: ``bots_inputs_sent_per_s`` says so.
``profile=true`` adds the game server loop thread's cProfile top functions (it slows the loop).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from actors.game.bench import NaiveInputSource, NaiveRoom
from actors.game.bots import BotFleet
from protocols.game import GameStatsQuery, GameStatsReport, LobbyAddress, LobbyInfo, NaiveDone, \
    NaiveRun
from supervisors.spec import ChildSpec, SupervisorSpec
from systems.game import SYSTEM, GameSettings, build_tree
from systems.bench._helper import BenchHelper
from systems.processes import processes_in_sessions
from systems.runtime import ActorRuntime

REALTIME_PRIORITY = 10  # SCHED_FIFO for the tick loops (ptr's and bare's), with ``pin`` only
MIN_PLAYING_SHARE = 0.95  # measure anyway if this many bots play when the warm-up times out
TARGETS = {"players": 1000, "inputs_per_s": 60_000, "tick_p99_ms": 16.7, "late_tick_ratio": 0.001}


def bench_tree(settings: GameSettings) -> SupervisorSpec:
    """The game's tree plus the naive pair, so both run in the same system."""
    tree = build_tree(settings)
    return replace(tree, children=[*tree.children,
                                   ChildSpec("naive-room", NaiveRoom, name="naive-room"),
                                   ChildSpec("naive-source", NaiveInputSource,
                                             name="naive-source")])


def bench_settings(players: int, data_dir: str, **overrides: Any) -> GameSettings:
    room_size = int(overrides.get("room_size", 10))
    servers = int(overrides.get("servers", 1))
    values = {"data_dir": data_dir, "lobby_port": 0, "udp_port": 0, "round_s": 3600.0,
              "fill_wait_s": 1.0, "poll_s": 0.5, "players": players,
              "load_limits": True,  # the bots all log in from 127.0.0.1
              # room for partial rooms formed while bots trickle in from their logins
              "rooms_per_server": math.ceil(1.5 * players / room_size / servers) + 2, **overrides}
    settings = SYSTEM.settings(overrides=values)
    assert isinstance(settings, GameSettings)
    return settings


def measure_naive(rt: ActorRuntime, count: int, window: int) -> float:
    room, source = rt.whereis("naive-room"), rt.whereis("naive-source")
    rt.ask(source, NaiveRun(target=room, count=min(200, count), window=window), 60)  # warm up
    done = rt.ask(source, NaiveRun(target=room, count=count, window=window), 600)
    assert isinstance(done, NaiveDone) and done.applied == count, done
    return count / done.elapsed_s


def _server_stats(rt: ActorRuntime, settings: GameSettings, **query: Any) -> list[GameStatsReport]:
    reports = []
    for k in range(1, settings.servers + 1):
        report = rt.ask(f"game-{k}", GameStatsQuery(**query), 30)
        assert isinstance(report, GameStatsReport)
        reports.append(report)
    return reports


@dataclass(frozen=True)
class _Window:
    """What one measurement window saw: what ``read`` returned, and the bots' result."""

    server: Any
    bots: Any
    playing: int
    login_s: float
    warmup_s: float


def _play(fleet: BotFleet, players: int, *, warmup_timeout_s: float, settle_s: float,
          duration_s: float, reset: Callable[[], Any], read: Callable[[], Any],
          pin: Callable[[], None]) -> _Window:
    """Start the bots, wait until they play, pin, then one window: ``reset`` the server's
    counters, let ``duration_s`` pass, ``read`` them. The bots are stopped whatever happens."""
    fleet.start()
    stopped = False
    try:
        began = time.monotonic()
        if not fleet.wait_until(lambda p: p["logged_in"] >= players, warmup_timeout_s):
            raise TimeoutError(f"bots not logged in within {warmup_timeout_s} s: "
                               f"{fleet.progress()}")
        login_s = time.monotonic() - began
        left = max(1.0, warmup_timeout_s - (time.monotonic() - began))
        if not fleet.wait_until(lambda p: p["playing"] >= players, left):
            playing = fleet.progress()["playing"]
            if playing < players * MIN_PLAYING_SHARE:
                raise TimeoutError(f"only {playing} of {players} bots playing after "
                                   f"{warmup_timeout_s} s: {fleet.progress()}")
        warmup_s = time.monotonic() - began
        pin()
        time.sleep(settle_s)  # let the join burst (and a move to another CPU) pass
        reset()
        playing = fleet.progress()["playing"]
        fleet.measure()
        time.sleep(duration_s)  # the measurement window itself
        server = read()
        bots = fleet.stop()
        stopped = True
    finally:
        if not stopped:
            fleet.stop()
    return _Window(server, bots, playing, login_s, warmup_s)


def _pin_threads(pid: int, cpus: set[int], keep: frozenset[int] = frozenset()) -> None:
    """Every thread of ``pid`` but those in ``keep`` onto ``cpus`` (``sched_setaffinity`` on a
    pid moves one thread)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return
    for task in tasks:
        if int(task) in keep:
            continue
        try:
            os.sched_setaffinity(int(task), cpus)
        except (ProcessLookupError, PermissionError):
            pass


class CpuPlan:
    """The game servers on a CPU of their own, everything else (bots, this process, the other
    actors) on the rest: how a server would run on a machine of its own, with its players
    elsewhere. A server is pinned whole: ptr's tick loop thread (which pins itself, ``loop_cpus``,
    and runs SCHED_FIFO) *and* its actor thread, as the bare server's one thread is.

    Why the actor thread goes with its loop: it holds the GIL for a moment a few times a second
    (a status poll, a room starting). On the bots' CPU it can be preempted while holding it, and
    the tick loop then waits for the GIL until the scheduler runs that thread again: a priority
    inversion of up to a scheduler slice (milliseconds), seen as tick start lag. On the loop's
    CPU, a loop thread that wakes and finds the GIL taken leaves the CPU to the holder, which
    runs at once and hands the GIL over within the switch interval (0.5 ms).
    ``active`` is False on a machine with one CPU (then nothing is pinned)."""

    def __init__(self, enabled: bool) -> None:
        self.original = os.sched_getaffinity(0)
        cpus = sorted(self.original)
        self.active = enabled and len(cpus) >= 2
        self.server_cpus = {cpus[0]}
        self.other_cpus = set(cpus[1:])

    def apply(self, server_pids: list[int], other_pids: list[int],
              keep: frozenset[int] = frozenset()) -> None:
        if not self.active:
            return
        for pid in other_pids:
            _pin_threads(pid, self.other_cpus, keep)
        _pin_threads(os.getpid(), self.other_cpus)
        for pid in server_pids:
            _pin_threads(pid, self.server_cpus)

    def restore(self) -> None:
        if self.active:
            _pin_threads(os.getpid(), self.original)

    def describe(self) -> dict[str, Any] | None:
        if not self.active:
            return None
        return {"servers": sorted(self.server_cpus), "bots_and_the_rest": sorted(self.other_cpus)}


def measure(rt: ActorRuntime, settings: GameSettings, *, duration_s: float = 20.0,
            warmup_timeout_s: float = 240.0, settle_s: float = 2.0, naive_inputs: int = 5000,
            naive_window: int = 8, profile: bool = False,
            cpu_plan: CpuPlan | None = None) -> dict[str, Any]:
    """Run the measurement on a running game system (see the module docstring)."""
    players = settings.players
    plan = cpu_plan or CpuPlan(False)
    result: dict[str, Any] = {"base": "multiprocTCPBase", "players": players,
                              "bot_processes": settings.bot_processes, "tick_hz": settings.tick_hz,
                              "snapshot_every": settings.snapshot_every,
                              "reads_per_tick": settings.reads_per_tick,
                              "room_size": settings.room_size, "servers": settings.servers,
                              "hash_profile": settings.hash_profile, "duration_s": duration_s,
                              "pinned": plan.describe(), "loop_priority": settings.loop_priority}
    result["naive_inputs_per_s"] = round(measure_naive(rt, naive_inputs, naive_window))
    lobby = rt.ask("lobby", LobbyInfo(), 10)
    assert isinstance(lobby, LobbyAddress)
    fleet = BotFleet(lobby.url, players, processes=settings.bot_processes,
                     frame_hz=settings.tick_hz, snapshot_every=settings.snapshot_every)

    def pin() -> None:
        servers = _server_stats(rt, settings)
        pids = [s.pid for s in servers]
        others = [pid for pid in processes_in_sessions(rt.session_ids - {os.getsid(0)})
                  + fleet.pids if pid not in pids]
        plan.apply(pids, others)  # each server whole, its loop and actor threads (CpuPlan)

    window = _play(fleet, players, warmup_timeout_s=warmup_timeout_s, settle_s=settle_s,
                   duration_s=duration_s, pin=pin,
                   read=lambda: _server_stats(rt, settings, profile="stop" if profile else ""),
                   reset=lambda: _server_stats(rt, settings, reset=True,
                                               profile="start" if profile else ""))
    servers: list[GameStatsReport] = window.server
    bots = window.bots
    result["login_s"] = round(window.login_s, 1)
    result["warmup_s"] = round(window.warmup_s, 1)
    result["players_playing"] = window.playing
    span = max(s.window_s for s in servers)
    total = {k: sum(getattr(s, k) for s in servers) for k in (
        "ticks", "late_ticks", "datagrams", "inputs_received", "inputs_applied", "dropped_bad",
        "dropped_unauthenticated", "dropped_stale", "dropped_duplicate", "dropped_excess",
        "snapshots_sent", "send_dropped", "room_crashes", "sessions", "rooms")}
    result.update({
        "inputs_per_s": round(total["inputs_received"] / span),
        "inputs_applied_per_s": round(total["inputs_applied"] / span),
        "tick_p50_ms": max(s.tick_p50_ms for s in servers),
        "tick_p99_ms": max(s.tick_p99_ms for s in servers),
        "tick_max_ms": max(s.tick_max_ms for s in servers),
        "tick_start_lag_p50_ms": max(s.start_lag_p50_ms for s in servers),
        "tick_start_lag_p99_ms": max(s.start_lag_p99_ms for s in servers),
        "tick_phases_ms": servers[0].phases_ms,
        "late_tick_ratio": round(total["late_ticks"] / max(1, total["ticks"]), 5),
        "ticks": total["ticks"], "late_ticks": total["late_ticks"],
        "input_to_snapshot_p50_ms": bots.latency_p50_ms,
        "input_to_snapshot_p99_ms": bots.latency_p99_ms,
        "latency_samples": bots.latency_samples,
        "snapshots_sent_per_s": round(total["snapshots_sent"] / span),
        "server_cpu_pct": [round(100 * s.cpu_s / s.window_s, 1) for s in servers],
        "sessions": total["sessions"], "rooms": total["rooms"],
        "dropped": {k[len("dropped_"):]: total[k] for k in total if k.startswith("dropped_")},
        "send_dropped": total["send_dropped"], "room_crashes": total["room_crashes"],
        "bots_target_inputs_per_s": round(players * settings.tick_hz),
        **_bot_figures(bots),
        "input_loss_ratio": round(1 - total["inputs_received"] / max(1, bots.inputs_sent), 5),
        "naive_vs_game": round(total["inputs_received"] / span
                               / max(1, result["naive_inputs_per_s"]), 1),
    })
    if profile:
        result["profile"] = [line for s in servers for line in s.profile]
    result["targets"] = TARGETS
    result["meets_targets"] = {
        "players": result["players_playing"] >= TARGETS["players"],
        "inputs_per_s": result["inputs_per_s"] >= TARGETS["inputs_per_s"],
        "tick_p99_ms": result["tick_p99_ms"] <= TARGETS["tick_p99_ms"],
        "late_tick_ratio": result["late_tick_ratio"] <= TARGETS["late_tick_ratio"],
    }
    return result


def _bot_figures(bots: Any, prefix: str = "") -> dict[str, Any]:
    return {
        f"{prefix}bots_inputs_sent_per_s": round(bots.inputs_sent / max(bots.window_s, 1e-9)),
        f"{prefix}bots_snapshots_received_per_s": round(bots.snapshots
                                                        / max(bots.window_s, 1e-9)),
        f"{prefix}bots_snapshot_loss_ratio": round(bots.snapshot_gaps
                                                   / max(1, bots.snapshots + bots.snapshot_gaps),
                                                   5),
        f"{prefix}bots_late_slot_ratio": round(bots.late_slots / max(1, bots.slots), 4),
        f"{prefix}bots_cpu_pct": bots.per_process_cpu_pct,
        f"{prefix}bots_rejoins": bots.rejoins,
    }


def measure_bare(settings: GameSettings, *, duration_s: float, warmup_timeout_s: float,
                 settle_s: float = 2.0, cpu_plan: CpuPlan | None = None) -> dict[str, Any]:
    """The same bots against ``game_bare``'s server (same rules, wire format, snapshot rate):
    the figures a framework-free server reaches on this machine in this run, as ``bare_*``."""
    plan = cpu_plan or CpuPlan(False)
    round_ticks = max(1, round(settings.round_s * settings.tick_hz))
    with BenchHelper("systems.bench.game.bare", settings.room_size, settings.tick_hz,
                     settings.snapshot_every, settings.reads_per_tick, round_ticks,
                     settings.loop_priority) as server:
        lobby_url = str(server.line(30)["lobby_url"])

        def stats(reset: bool = False) -> dict[str, Any]:
            query = "?reset=1" if reset else ""
            with urllib.request.urlopen(f"{lobby_url}/stats{query}", timeout=10) as response:
                return dict(json.loads(response.read()))

        fleet = BotFleet(lobby_url, settings.players, processes=settings.bot_processes,
                         frame_hz=settings.tick_hz, snapshot_every=settings.snapshot_every,
                         name_prefix="bare")
        window = _play(fleet, settings.players, warmup_timeout_s=warmup_timeout_s,
                       settle_s=settle_s, duration_s=duration_s,
                       pin=lambda: plan.apply([server.process.pid], fleet.pids),
                       reset=lambda: stats(reset=True), read=stats)
    s, bots = window.server, window.bots
    return {
        "bare_players_playing": window.playing,
        "bare_inputs_per_s": round(s["inputs_received"] / s["window_s"]),
        "bare_inputs_applied_per_s": round(s["inputs_applied"] / s["window_s"]),
        "bare_tick_p50_ms": s["tick_p50_ms"], "bare_tick_p99_ms": s["tick_p99_ms"],
        "bare_tick_max_ms": s["tick_max_ms"], "bare_tick_start_lag_p50_ms": s["start_lag_p50_ms"],
        "bare_tick_start_lag_p99_ms": s["start_lag_p99_ms"], "bare_tick_phases_ms": s["phases_ms"],
        "bare_late_tick_ratio": round(s["late_ticks"] / max(1, s["ticks"]), 5),
        "bare_input_to_snapshot_p50_ms": bots.latency_p50_ms,
        "bare_input_to_snapshot_p99_ms": bots.latency_p99_ms,
        "bare_server_cpu_pct": round(100 * s["cpu_s"] / s["window_s"], 1),
        **_bot_figures(bots, "bare_"),
    }


def measure_floor(work_ms: float, seconds: float, tick_hz: float,
                  cpu_plan: CpuPlan | None = None, priority: int = 0) -> dict[str, Any]:
    """The machine's floor for late ticks in this run: ``game_bare``'s ``floor`` loop burning
    ``work_ms`` a tick on the servers' CPU while a spinning process keeps the other CPUs as busy
    as the bots keep them. A vCPU whose sibling is busy loses time to the host; what this loop
    misses, a game server on that CPU misses too."""
    plan = cpu_plan or CpuPlan(False)
    with BenchHelper("systems.bench.game.bare", "spin") as spinner:
        spinner.line(30)
        with BenchHelper("systems.bench.game.bare", "floor", work_ms, seconds,
                         tick_hz, priority) as loop:
            plan.apply([loop.process.pid], [spinner.process.pid])
            result = loop.line(seconds + 60)
    plan.restore()
    return {"floor_work_ms": result["work_ms"], "floor_ticks": result["ticks"],
            "floor_late_tick_ratio": result["late_tick_ratio"],
            "floor_start_lag_p99_ms": result["start_lag_p99_ms"],
            "floor_start_lag_max_ms": result["start_lag_max_ms"]}


def run(players: int = 1024, duration_s: float = 20.0, bot_processes: int = 2,
        room_size: int = 10, servers: int = 1, tick_hz: float = 60.0, snapshot_every: int = 2,
        reads_per_tick: int = 4,
        hash_profile: str = "owasp", naive_inputs: int = 5000, naive_window: int = 8,
        warmup_timeout_s: float = 240.0, profile: bool = False, pin: bool = True,
        realtime: bool = True, bare: bool = True, floor: bool = True) -> dict[str, Any]:
    data_dir = tempfile.mkdtemp(prefix="ptr-bench-game-")
    plan = CpuPlan(pin)
    try:
        settings = bench_settings(players, data_dir, bot_processes=bot_processes,
                                  room_size=room_size, servers=servers, tick_hz=tick_hz,
                                  snapshot_every=snapshot_every, reads_per_tick=reads_per_tick,
                                  hash_profile=hash_profile,
                                  loop_cpus=sorted(plan.server_cpus) if plan.active else [],
                                  loop_priority=REALTIME_PRIORITY if realtime and plan.active
                                  else 0)
        try:
            with ActorRuntime(bench_tree(settings), base="multiproc", name="game") as rt:
                result = measure(rt, settings, duration_s=duration_s,
                                 warmup_timeout_s=warmup_timeout_s, naive_inputs=naive_inputs,
                                 naive_window=naive_window, profile=profile, cpu_plan=plan)
            result["processes_left"] = len(rt.wait_until_gone())
            plan.restore()
            if bare:
                result.update(measure_bare(settings, duration_s=duration_s,
                                           warmup_timeout_s=warmup_timeout_s, cpu_plan=plan))
                result["tick_p99_ratio"] = round(result["tick_p99_ms"]
                                                 / max(1e-9, result["bare_tick_p99_ms"]), 2)
                result["server_cpu_ratio"] = round(sum(result["server_cpu_pct"])
                                                   / max(1e-9, result["bare_server_cpu_pct"]), 2)
            if floor:
                result.update(measure_floor(result["tick_p50_ms"], duration_s, tick_hz, plan,
                                            settings.loop_priority))
        finally:
            plan.restore()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return result
