"""System 3, the online game: a lobby, a matchmaker and game servers whose rooms are supervised.

    /game (one_for_one)
    ├── lobby          HTTP: accounts, login, leaderboard, chat, queue (Lobby, a process)
    ├── matchmaker     the queue; starts rooms on servers with free slots (Matchmaker, a process)
    └── server-K       rest_for_one, one per game server
        ├── game-K     UDP socket + 60 Hz tick loop + rooms' state (GameServer, a process)
        └── rooms-K    simple_one_for_one light supervisor inside game-K
            └── room-N RoomActor, transient: restarted from its checkpoint after a crash

``ptr run game --simulate --set players=1000`` adds bot players in processes of their own.
"""

from __future__ import annotations

import itertools
import secrets
from typing import Any, Literal

from pydantic import Field

from actors.game.bots import BotFleet, SimulatedPlayers
from actors.edges.limits import RateRules
from actors.game.limits import LockoutRules
from actors.game.lobby import Lobby, LobbyLimits, lobby_routes
from actors.game.match import Matchmaker
from actors.game.server import GameServer, RoomActor
from protocols.errors import PtrError
from protocols.game import (
    TICK_BUCKETS_MS,
    GameStatsQuery,
    GameStatsReport,
    LobbyAddress,
    LobbyInfo,
    MatchReport,
    MatchStatus,
)
from supervisors.spec import ChildSpec, RestartType, Strategy, SupervisorSpec
from systems.spec import SystemSettings, SystemSpec


class GameSettings(SystemSettings):
    """Every knob of the game system; ``--set KEY=VALUE`` or a TOML ``[game]`` table sets them.

    ``snapshot_every`` defaults to 2: the rooms simulate at ``tick_hz`` (60) and send snapshots at
    30 Hz, taking turns so that each tick sends half of them (as Fortnite sends at 30 Hz and
    Source-engine servers send fewer updates than they tick). A snapshot datagram is the largest
    cost of a tick on loopback; ``snapshot_every=1`` sends one per player per tick.

    ``loop_cpus`` gives each game server's tick loop a CPU of its own (the loop thread alone: the
    server's actor thread stays free to run elsewhere), the usual way to keep a real-time loop off
    a core that other work preempts; keep that CPU free of everything else (``taskset``, cgroups).
    ``loop_priority`` (1-99) runs those loop threads under SCHED_FIFO, so that on their CPU they
    run before any ordinary thread the moment a tick is due (needs CAP_SYS_NICE; Linux keeps 5 %
    of each second for ordinary threads). Both are off by default: they are deployment choices.
    """

    lobby_host: str = "127.0.0.1"
    lobby_port: int = Field(default=8700, ge=0, le=65535)
    allow_networks: list[str] = ["127.0.0.1/32", "::1/128"]
    udp_host: str = "127.0.0.1"
    udp_port: int = Field(default=7700, ge=0, le=65535)   # server K binds udp_port + K - 1
    servers: int = Field(default=1, ge=1, le=16)
    rooms_per_server: int = Field(default=100, ge=1)
    room_size: int = Field(default=10, ge=1, le=64)
    fill_wait_s: float = Field(default=3.0, ge=0)
    poll_s: float = Field(default=1.0, gt=0)
    tick_hz: float = Field(default=60.0, gt=0, le=240)
    snapshot_every: int = Field(default=2, ge=1)
    checkpoint_every: int = Field(default=1, ge=1)
    reads_per_tick: int = Field(default=4, ge=0)          # 0: read the socket whenever data arrives
    loop_cpus: list[int] = []  # server K pins its tick loop's thread to loop_cpus[(K-1) % len]
    loop_priority: int = Field(default=0, ge=0, le=99)  # 1-99: the tick loops under SCHED_FIFO
    round_s: float = Field(default=120.0, gt=0)
    arena: int = Field(default=1000, ge=100)
    speed: int = Field(default=5, ge=1)
    coins: int = Field(default=3, ge=1)
    pickup_radius: int = Field(default=20, ge=1)
    max_inputs_per_tick: int = Field(default=4, ge=1)
    idle_timeout_s: float = Field(default=10.0, gt=0)
    room_restart_intensity: int = Field(default=10, ge=0)
    room_restart_period_s: float = Field(default=5.0, gt=0)
    token_secret: str = Field(default_factory=lambda: secrets.token_hex(32), min_length=16)
    token_ttl_s: float = Field(default=3600.0, gt=0)
    hash_profile: Literal["owasp", "fast"] = "owasp"
    hash_workers: int = Field(default=2, ge=1)
    chat_max_chars: int = Field(default=200, ge=1)
    chat_burst: int = Field(default=5, ge=1)
    chat_per_s: float = Field(default=1.0, gt=0)
    # abuse limits of the lobby (429 + Retry-After past them; see LobbyLimits)
    login_burst: int = Field(default=10, ge=1)            # login attempts per address ...
    login_per_s: float = Field(default=1.0, gt=0)         # ... then this many a second
    account_lockout_failures: int = Field(default=5, ge=1)  # wrong passwords for one name ...
    account_lockout_s: float = Field(default=60.0, gt=0)    # ... lock it this long
    address_lockout_failures: int = Field(default=20, ge=1)  # wrong passwords from one address
    address_lockout_s: float = Field(default=300.0, gt=0)
    lockout_window_s: float = Field(default=300.0, gt=0)  # failures counted within this window
    accounts_burst: int = Field(default=5, ge=1)          # accounts created per address ...
    accounts_per_min: float = Field(default=1.0, gt=0)    # ... then this many a minute
    chat_address_burst: int = Field(default=10, ge=1)     # chat lines per address ...
    chat_address_per_s: float = Field(default=2.0, gt=0)  # ... then this many a second
    load_limits: bool = False  # lift the per-address limits: bots all come from one address
    players: int = Field(default=100, ge=1)        # --simulate: how many bots
    bot_processes: int = Field(default=2, ge=1)    # --simulate: in how many processes

    def lobby_limits(self) -> LobbyLimits:
        if self.load_limits:  # --simulate and the benchmark: thousands of bots on one address
            lifted = RateRules(1_000_000, 1_000_000.0)
            return LobbyLimits(login_per_address=lifted, accounts_per_address=lifted,
                               chat_per_address=lifted,
                               login_failures_per_address=LockoutRules(1_000_000, 1.0, 1.0))
        return LobbyLimits(
            login_per_address=RateRules(self.login_burst, self.login_per_s),
            login_failures_per_account=LockoutRules(self.account_lockout_failures,
                                                    self.lockout_window_s, self.account_lockout_s),
            login_failures_per_address=LockoutRules(self.address_lockout_failures,
                                                    self.lockout_window_s, self.address_lockout_s),
            accounts_per_address=RateRules(self.accounts_burst, self.accounts_per_min / 60.0),
            chat_per_address=RateRules(self.chat_address_burst, self.chat_address_per_s))

    def udp_port_of(self, k: int) -> int:
        return self.udp_port + k - 1 if self.udp_port else 0


def build_tree(s: GameSettings) -> SupervisorSpec:
    auth = {"token_secret": s.token_secret, "token_ttl_s": s.token_ttl_s}
    servers = [(f"game-{k}", f"rooms-{k}") for k in range(1, s.servers + 1)]
    room_rules = {"round_ticks": max(1, round(s.round_s * s.tick_hz)), "arena": s.arena,
                  "speed": s.speed, "coins": s.coins,
                  "max_inputs_per_tick": s.max_inputs_per_tick, "pickup_radius": s.pickup_radius}
    children = [
        ChildSpec("lobby", Lobby, name="lobby", args={
            **auth, "storage_url": s.resolved_storage_url("game"), "hash_profile": s.hash_profile,
            "hash_workers": s.hash_workers, "routes": lobby_routes(), "title": "ptr game lobby",
            "host": s.lobby_host, "port": s.lobby_port, "allow": list(s.allow_networks),
            "max_body_bytes": 8192, "max_in_flight": 2048, "drain_max": 512,
            "matchmaker": "matchmaker",
            # who may hand in a GameResult: the servers, and the matchmaker (the checkpointed
            # scores of a room it could not restore)
            "game_servers": [*(server for server, _ in servers), "matchmaker"],
            "chat": {"max_chars": s.chat_max_chars, "burst": s.chat_burst,
                     "per_s": s.chat_per_s},
            "limits": s.lobby_limits()}),
        ChildSpec("matchmaker", Matchmaker, name="matchmaker", args={
            "servers": [list(pair) for pair in servers], "room_size": s.room_size,
            "lobby": "lobby",
            "rooms_per_server": s.rooms_per_server, "fill_wait_s": s.fill_wait_s,
            "poll_s": s.poll_s}),
    ]
    for k, (server, rooms) in enumerate(servers, 1):
        room_supervisor = SupervisorSpec(
            Strategy.SIMPLE_ONE_FOR_ONE,
            [ChildSpec("room", RoomActor, args=room_rules, restart=RestartType.TRANSIENT)],
            intensity=s.room_restart_intensity, period_s=s.room_restart_period_s)
        pair = SupervisorSpec(Strategy.REST_FOR_ONE, [
            ChildSpec(server, GameServer, name=server, args={
                **auth, "udp_host": s.udp_host, "udp_port": s.udp_port_of(k),
                "tick_hz": s.tick_hz, "snapshot_every": s.snapshot_every,
                "checkpoint_every": s.checkpoint_every, "idle_timeout_s": s.idle_timeout_s,
                "reads_per_tick": s.reads_per_tick,
                "loop_cpu": s.loop_cpus[(k - 1) % len(s.loop_cpus)] if s.loop_cpus else None,
                "loop_priority": s.loop_priority,
                "lobby": "lobby", "matchmaker": "matchmaker"}),
            room_supervisor.as_child(rooms, host=server, name=rooms),
        ])
        children.append(pair.as_child(f"server-{k}"))
    return SupervisorSpec(Strategy.ONE_FOR_ONE, children)


def edges(s: GameSettings) -> list[str]:
    port = s.lobby_port or "(a free port)"
    lines = [f"lobby HTTP http://{s.lobby_host}:{port}"]
    lines += [f"game-{k} UDP {s.udp_host}:{s.udp_port_of(k) or '(a free port)'}"
              for k in range(1, s.servers + 1)]
    return lines


def status(runtime: Any, s: GameSettings) -> str:
    """One line a second: the queue, then each server's last second (its stats window resets)."""
    parts = []
    try:
        m = runtime.ask("matchmaker", MatchStatus(), 2)
        assert isinstance(m, MatchReport)
        parts.append(f"queued {m.queued}, playing {m.matched}, rooms {m.rooms}/{m.room_capacity}")
    except PtrError as exc:
        parts.append(f"matchmaker unavailable ({type(exc).__name__})")
    for k in range(1, s.servers + 1):
        try:
            r = runtime.ask(f"game-{k}", GameStatsQuery(reset=True), 2)
            assert isinstance(r, GameStatsReport)
            _close_window(runtime, k, r)
            per_s = r.window_s or 1.0
            parts.append(f"game-{k}: {r.sessions} connected, {r.inputs_received / per_s:,.0f} "
                         f"inputs/s, tick p99 {r.tick_p99_ms:.1f} ms, late {r.late_ticks}/"
                         f"{r.ticks}, dropped bad {r.dropped_bad} unauth "
                         f"{r.dropped_unauthenticated} stale {r.dropped_stale} dup "
                         f"{r.dropped_duplicate}")
        except PtrError as exc:
            parts.append(f"game-{k} unavailable ({type(exc).__name__})")
    return "; ".join(parts)


# counters of the stats windows that status() closed, per runtime and server, for metrics()
_COUNTED = ("ticks", "late_ticks", "inputs_received", "snapshots_sent", "datagrams")
_closed: dict[tuple[int, int], dict[str, int]] = {}


def _close_window(runtime: Any, k: int, r: GameStatsReport) -> None:
    totals = _closed.setdefault((id(runtime), k), dict.fromkeys(_COUNTED, 0))
    for key in _COUNTED:
        totals[key] += getattr(r, key)


def metrics(runtime: Any, s: GameSettings) -> list[Any]:
    """The game's own Prometheus families, for the observer's ``/metrics``: counters are the
    windows ``status`` closed plus the open one; tick durations are a histogram since the server
    started (``TICK_BUCKETS_MS``), and the open window's quantiles."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
    players = GaugeMetricFamily("ptr_game_players", "Players connected", labels=["server"])
    rooms = GaugeMetricFamily("ptr_game_rooms", "Rooms running", labels=["server"])
    rate = GaugeMetricFamily("ptr_game_inputs_per_second", "Inputs received per second over "
                             "the current stats window", labels=["server"])
    quantiles = GaugeMetricFamily("ptr_game_tick_duration_quantile_seconds", "Tick duration "
                                  "quantiles over the current stats window",
                                  labels=["server", "quantile"])
    durations = HistogramMetricFamily("ptr_game_tick_duration_seconds", "How long each tick "
                                      "took, since the server started", labels=["server"])
    counters = {key: CounterMetricFamily(f"ptr_game_{key}", f"{key.replace('_', ' ')} "
                                         "(all windows)", labels=["server"]) for key in _COUNTED}
    for k in range(1, s.servers + 1):
        r = runtime.ask(f"game-{k}", GameStatsQuery(), 2)
        assert isinstance(r, GameStatsReport)
        server = f"game-{k}"
        players.add_metric([server], r.sessions)
        rooms.add_metric([server], r.rooms)
        rate.add_metric([server], r.inputs_received / (r.window_s or 1.0))
        for q, ms in (("0.5", r.tick_p50_ms), ("0.99", r.tick_p99_ms), ("1", r.tick_max_ms)):
            quantiles.add_metric([server, q], ms / 1000)
        if r.tick_bucket_counts:
            cumulative = list(itertools.accumulate(r.tick_bucket_counts))
            bounds = [f"{ms / 1000:g}" for ms in TICK_BUCKETS_MS] + ["+Inf"]
            durations.add_metric([server], list(zip(bounds, cumulative, strict=True)),
                                 sum_value=r.tick_seconds_sum)
        closed = _closed.get((id(runtime), k), dict.fromkeys(_COUNTED, 0))
        for key in _COUNTED:
            counters[key].add_metric([server], closed[key] + getattr(r, key))
    return [players, rooms, rate, quantiles, durations, *counters.values()]


def simulator(runtime: Any, s: GameSettings) -> SimulatedPlayers:
    """``--simulate``: ``players`` bots in ``bot_processes`` processes against the lobby."""
    lobby = runtime.ask("lobby", LobbyInfo(), 10)
    assert isinstance(lobby, LobbyAddress)
    fleet = BotFleet(lobby.url, s.players, processes=s.bot_processes,
                     snapshot_every=s.snapshot_every, frame_hz=s.tick_hz)
    return SimulatedPlayers(fleet.start())


def listen_ports(s: GameSettings) -> dict[str, int]:
    """The fixed ports the game listens on (0: a free one, never in anyone's way)."""
    ports = {"lobby_port": s.lobby_port}
    for k in range(1, s.servers + 1):
        ports[f"udp_port (game-{k})"] = s.udp_port_of(k)
    return {setting: port for setting, port in ports.items() if port}


SYSTEM = SystemSpec(name="game", summary="online game: lobby over HTTP, rooms at 60 Hz over UDP",
                    build_tree=build_tree, settings_model=GameSettings, status=status,
                    edges=edges, simulator=simulator, listen_ports=listen_ports,
                    metrics=metrics)
