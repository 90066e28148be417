"""``ptr bench game``: the game system under bot players, beside the naive design, in one run.

All on ``multiprocTCPBase`` on this machine. Steps: (1) the naive figure: inputs sent one Thespian
message each from an edge actor to a room actor, ``naive_window`` in flight; (2) ``players`` bots in
``bot_processes`` processes register, log in, queue and join over real UDP; (3) once all play, a
``duration_s`` window: the game servers' counters and tick times (reset at its start) and the bots'
own measurements (input sent -> first snapshot acknowledging it, on the bot's clock).

Definitions: ``inputs_per_s`` are valid inputs the servers received (authenticated, routed to a
room); ``inputs_applied_per_s`` those the rooms applied; ``tick_p99_ms`` the time a tick spends
(read the edge's batch, step every room, checkpoint, send every snapshot); a tick is *late* when it
ends after its 1/``tick_hz`` slot (skipped slots count as late too). If the bots send less than
``players * tick_hz``, that is their ceiling on this machine: ``bots_inputs_sent_per_s`` says so.
``profile=true`` adds the game server loop thread's cProfile top functions (it slows the loop).
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import replace
from typing import Any

from actors.game_bench import NaiveInputSource, NaiveRoom
from actors.game_bots import BotFleet
from protocols.game import GameStatsQuery, GameStatsReport, LobbyAddress, LobbyInfo, NaiveDone, \
    NaiveRun
from supervisors.spec import ChildSpec, SupervisorSpec
from systems.game import SYSTEM, GameSettings, build_tree
from systems.runtime import ActorRuntime

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


def measure(rt: ActorRuntime, settings: GameSettings, *, duration_s: float = 20.0,
            warmup_timeout_s: float = 240.0, settle_s: float = 2.0, naive_inputs: int = 5000,
            naive_window: int = 8, profile: bool = False) -> dict[str, Any]:
    """Run the measurement on a running game system (see the module docstring)."""
    players = settings.players
    result: dict[str, Any] = {"base": "multiprocTCPBase", "players": players,
                              "bot_processes": settings.bot_processes, "tick_hz": settings.tick_hz,
                              "snapshot_every": settings.snapshot_every,
                              "reads_per_tick": settings.reads_per_tick,
                              "room_size": settings.room_size, "servers": settings.servers,
                              "hash_profile": settings.hash_profile, "duration_s": duration_s}
    result["naive_inputs_per_s"] = round(measure_naive(rt, naive_inputs, naive_window))
    lobby = rt.ask("lobby", LobbyInfo(), 10)
    assert isinstance(lobby, LobbyAddress)
    fleet = BotFleet(lobby.url, players, processes=settings.bot_processes,
                     frame_hz=settings.tick_hz, snapshot_every=settings.snapshot_every).start()
    stopped = False
    try:
        began = time.monotonic()
        if not fleet.wait_until(lambda p: p["logged_in"] >= players, warmup_timeout_s):
            raise TimeoutError(f"bots not logged in within {warmup_timeout_s} s: "
                               f"{fleet.progress()}")
        result["login_s"] = round(time.monotonic() - began, 1)
        left = max(1.0, warmup_timeout_s - (time.monotonic() - began))
        if not fleet.wait_until(lambda p: p["playing"] >= players, left):
            playing = fleet.progress()["playing"]
            if playing < players * MIN_PLAYING_SHARE:
                raise TimeoutError(f"only {playing} of {players} bots playing after "
                                   f"{warmup_timeout_s} s: {fleet.progress()}")
        result["warmup_s"] = round(time.monotonic() - began, 1)
        time.sleep(settle_s)  # let the join burst pass before the window opens
        _server_stats(rt, settings, reset=True, profile="start" if profile else "")
        result["players_playing"] = fleet.progress()["playing"]
        fleet.measure()
        time.sleep(duration_s)  # the measurement window itself
        servers = _server_stats(rt, settings, profile="stop" if profile else "")
        bots = fleet.stop()
        stopped = True
    finally:
        if not stopped:
            fleet.stop()

    window = max(s.window_s for s in servers)
    total = {k: sum(getattr(s, k) for s in servers) for k in (
        "ticks", "late_ticks", "datagrams", "inputs_received", "inputs_applied", "dropped_bad",
        "dropped_unauthenticated", "dropped_stale", "dropped_duplicate", "dropped_excess",
        "snapshots_sent", "send_dropped", "room_crashes", "sessions", "rooms")}
    result.update({
        "inputs_per_s": round(total["inputs_received"] / window),
        "inputs_applied_per_s": round(total["inputs_applied"] / window),
        "tick_p50_ms": max(s.tick_p50_ms for s in servers),
        "tick_p99_ms": max(s.tick_p99_ms for s in servers),
        "tick_max_ms": max(s.tick_max_ms for s in servers),
        "tick_start_lag_p99_ms": max(s.start_lag_p99_ms for s in servers),
        "late_tick_ratio": round(total["late_ticks"] / max(1, total["ticks"]), 5),
        "ticks": total["ticks"], "late_ticks": total["late_ticks"],
        "input_to_snapshot_p50_ms": bots.latency_p50_ms,
        "input_to_snapshot_p99_ms": bots.latency_p99_ms,
        "latency_samples": bots.latency_samples,
        "snapshots_sent_per_s": round(total["snapshots_sent"] / window),
        "server_cpu_pct": [round(100 * s.cpu_s / s.window_s, 1) for s in servers],
        "sessions": total["sessions"], "rooms": total["rooms"],
        "dropped": {k[len("dropped_"):]: total[k] for k in total if k.startswith("dropped_")},
        "send_dropped": total["send_dropped"], "room_crashes": total["room_crashes"],
        "bots_target_inputs_per_s": round(players * settings.tick_hz),
        "bots_inputs_sent_per_s": round(bots.inputs_sent / max(bots.window_s, 1e-9)),
        "bots_snapshots_received_per_s": round(bots.snapshots / max(bots.window_s, 1e-9)),
        "bots_snapshot_loss_ratio": round(bots.snapshot_gaps
                                          / max(1, bots.snapshots + bots.snapshot_gaps), 5),
        "bots_late_slot_ratio": round(bots.late_slots / max(1, bots.slots), 4),
        "bots_cpu_pct": bots.per_process_cpu_pct,
        "bots_rejoins": bots.rejoins,
        "input_loss_ratio": round(1 - total["inputs_received"] / max(1, bots.inputs_sent), 5),
        "naive_vs_game": round(total["inputs_received"] / window
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


def run(players: int = 1000, duration_s: float = 20.0, bot_processes: int = 2,
        room_size: int = 10, servers: int = 1, tick_hz: float = 60.0, snapshot_every: int = 1,
        reads_per_tick: int = 4,
        hash_profile: str = "owasp", naive_inputs: int = 5000, naive_window: int = 8,
        warmup_timeout_s: float = 240.0, profile: bool = False) -> dict[str, Any]:
    data_dir = tempfile.mkdtemp(prefix="ptr-bench-game-")
    try:
        settings = bench_settings(players, data_dir, bot_processes=bot_processes,
                                  room_size=room_size, servers=servers, tick_hz=tick_hz,
                                  snapshot_every=snapshot_every, reads_per_tick=reads_per_tick,
                                  hash_profile=hash_profile)
        with ActorRuntime(bench_tree(settings), base="multiproc", name="game") as rt:
            result = measure(rt, settings, duration_s=duration_s,
                             warmup_timeout_s=warmup_timeout_s, naive_inputs=naive_inputs,
                             naive_window=naive_window, profile=profile)
        result["processes_left"] = len(rt.wait_until_gone())
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return result
