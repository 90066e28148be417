"""The game itself: players run around an arena picking up coins; the simulation of one room.

Plain objects, no Thespian and no I/O: a ``RoomSim`` is stepped by the game server's tick loop and
checkpointed after every step into an immutable ``RoomSnapshot``, from which a crashed room is rebuilt.

Rules of one tick (``RoomSim.step``), the order the tests hold it to:

1. Inputs are those that arrived since the previous tick. Each player's are sorted by ``seq``.
2. An input whose ``seq`` is below the player's last applied one is *stale*; one equal to it (a
   resend, or the same seq twice in the batch) is a *duplicate*. One more than ``SEQ_WINDOW``
   above it is *ahead* (a client may skip lost frames, never jump: so nobody can push a player's
   sequence out of reach). All three are ignored and counted.
3. At most ``max_inputs_per_tick`` inputs per player are applied (a client that sends faster than
   the tick rate cannot move faster); the rest are *excess*, ignored and counted.
4. Every applied input moves its player by ``speed`` per axis, clamped to the arena.
5. Only when every player has moved are coins resolved: each coin goes to the nearest player within
   ``pickup_radius`` (ties: the lower player id), who scores one; the coin reappears elsewhere.
   So arrival order of datagrams within a tick never decides who scores.

Integer arithmetic throughout: a restored room is bit-for-bit the room that was checkpointed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from protocols.game import ROOM_ID_PATTERN, SEQ_WINDOW, InputDatagram, snapshot_tail

__all__ = ["InputCounters", "PlayerState", "RoomConfig", "RoomSim", "RoomSnapshot"]

_MASK64 = (1 << 64) - 1
_by_seq = attrgetter("seq")


def _mix(value: int) -> int:
    """splitmix64: a cheap, well-spread integer hash for deterministic coin and spawn positions."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


@dataclass(frozen=True, slots=True)
class RoomConfig:
    """What a room is: its players and rules. Built from the room actor's args; checked here."""

    room_id: str
    players: tuple[int, ...]
    seed: int = 0
    round_ticks: int = 60 * 120
    arena: int = 1000
    speed: int = 5
    coins: int = 3
    pickup_radius: int = 20
    max_inputs_per_tick: int = 4

    def __post_init__(self) -> None:
        if not ROOM_ID_PATTERN.fullmatch(self.room_id):
            raise ValueError(f"room id {self.room_id!r} must be 1-32 letters, digits or -")
        if not self.players or len(set(self.players)) != len(self.players):
            raise ValueError(f"room {self.room_id}: players must be distinct and not empty")
        if min(self.round_ticks, self.arena, self.speed, self.coins, self.pickup_radius,
               self.max_inputs_per_tick) < 1:
            raise ValueError(f"room {self.room_id}: every rule must be positive")
        if 2 * self.pickup_radius >= self.arena:
            raise ValueError(f"room {self.room_id}: the pickup radius must be under half the "
                             "arena (coins appear at least that far from its edges)")

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> RoomConfig:
        fields = {k: args[k] for k in cls.__dataclass_fields__ if k in args}
        fields["players"] = tuple(int(p) for p in fields.get("players", ()))
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class RoomSnapshot:
    """A room after a complete tick. ``players`` holds ``(id, x, y, score, last_seq)``."""

    room_id: str
    tick: int
    coins_taken: int
    coins: tuple[int, ...]
    players: tuple[tuple[int, int, int, int, int], ...]


class InputCounters:
    """What happened to inputs, summed by the tick loop over all rooms."""

    __slots__ = ("applied", "stale", "duplicate", "excess", "ahead")

    def __init__(self) -> None:
        self.applied = self.stale = self.duplicate = self.excess = self.ahead = 0


class PlayerState:
    __slots__ = ("player_id", "x", "y", "score", "last_seq")

    def __init__(self, player_id: int, x: int, y: int, score: int = 0, last_seq: int = 0) -> None:
        self.player_id = player_id
        self.x = x
        self.y = y
        self.score = score
        self.last_seq = last_seq


class RoomSim:
    """One room's authoritative state. ``step`` may raise (a bug, or ``fault`` injected by a test):
    the caller then throws this object away and rebuilds the room from its last ``checkpoint``."""

    __slots__ = ("config", "tick", "coins", "coins_taken", "players", "by_id", "fault")

    def __init__(self, config: RoomConfig, snapshot: RoomSnapshot | None = None) -> None:
        self.config = config
        self.fault = False
        if snapshot is None:
            self.tick = 0
            self.coins_taken = 0
            self.coins: list[int] = []
            for n in range(config.coins):
                self.coins.extend(self._position(1_000_000 + n))
            self.coins_taken = config.coins
            ordered = sorted(config.players)
            self.players = [PlayerState(pid, *self._position(n)) for n, pid in enumerate(ordered)]
        else:
            if snapshot.room_id != config.room_id:
                raise ValueError(f"snapshot of {snapshot.room_id} cannot restore {config.room_id}")
            self.tick = snapshot.tick
            self.coins_taken = snapshot.coins_taken
            self.coins = list(snapshot.coins)
            self.players = [PlayerState(*p) for p in snapshot.players]
        self.by_id = {p.player_id: p for p in self.players}

    def _position(self, n: int) -> tuple[int, int]:
        arena, margin = self.config.arena, self.config.pickup_radius
        h = _mix(self.config.seed * 1_000_003 + n)
        span = arena - 2 * margin
        return margin + (h & 0xFFFFFFFF) % span, margin + (h >> 32) % span

    @property
    def finished(self) -> bool:
        return self.tick >= self.config.round_ticks

    def player(self, player_id: int) -> PlayerState | None:
        return self.by_id.get(player_id)

    def step(self, batch: Sequence[tuple[PlayerState, list[InputDatagram]]],
             counters: InputCounters) -> None:
        """Apply one tick: each ``(player, inputs)`` of ``batch``, then the coins (module rules)."""
        if self.finished:
            return
        config = self.config
        speed, top, cap, window = (config.speed, config.arena, config.max_inputs_per_tick,
                                   SEQ_WINDOW)
        applied = stale = duplicate = excess = ahead = 0
        for player, inputs in batch:
            if len(inputs) > 1:
                inputs.sort(key=_by_seq)
            last, x, y, used = player.last_seq, player.x, player.y, 0
            for item in inputs:
                seq = item.seq
                if seq <= last:
                    if seq == last:
                        duplicate += 1
                    else:
                        stale += 1
                    continue
                if seq > last + window:
                    ahead += 1
                    continue
                if used == cap:
                    excess += 1
                    continue
                x += item.dx * speed
                y += item.dy * speed
                x = 0 if x < 0 else top if x > top else x
                y = 0 if y < 0 else top if y > top else y
                last = seq
                used += 1
            player.x, player.y, player.last_seq = x, y, last
            applied += used
        counters.applied += applied
        counters.stale += stale
        counters.duplicate += duplicate
        counters.excess += excess
        counters.ahead += ahead
        if self.fault:
            self.fault = False
            raise RuntimeError(f"fault injected into room {config.room_id} at tick {self.tick + 1}")
        self._resolve_coins()
        self.tick += 1

    def _resolve_coins(self) -> None:
        coins, players = self.coins, self.players
        reach = self.config.pickup_radius ** 2
        for i in range(0, len(coins), 2):
            cx, cy = coins[i], coins[i + 1]
            best: PlayerState | None = None
            best_d = reach + 1
            for p in players:  # ascending player id: a tie keeps the lower id
                dx, dy = p.x - cx, p.y - cy
                d = dx * dx + dy * dy
                if d < best_d:
                    best, best_d = p, d
            if best is not None:
                best.score += 1
                coins[i], coins[i + 1] = self._position(1_000_000 + self.coins_taken)
                self.coins_taken += 1

    def checkpoint(self) -> RoomSnapshot:
        return RoomSnapshot(self.config.room_id, self.tick, self.coins_taken, tuple(self.coins),
                            tuple((p.player_id, p.x, p.y, p.score, p.last_seq)
                                  for p in self.players))

    def snapshot_tail(self) -> bytes:
        """The room's part of this tick's snapshot datagrams, packed once for all its players."""
        flat: list[int] = []
        for p in self.players:
            flat += (p.player_id, p.x, p.y, p.score)
        return snapshot_tail(self.config.round_ticks, self.coins, flat)

    def scores(self) -> list[tuple[int, int]]:
        return [(p.player_id, p.score) for p in self.players]
