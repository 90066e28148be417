"""The game's language: UDP datagrams, HTTP bodies of the lobby, and messages between its actors.

Three audiences, three forms:

* **Datagrams** (players <-> a game server, 60 a second each): msgpack arrays
  ``[WIRE_VERSION, kind, field, ...]`` decoded into ``NamedTuple``s by hand. Why not the envelope
  ``Codec`` of ``protocols.codec``: a dict envelope plus pydantic costs several microseconds per
  datagram, and the server reads 60,000 a second on one core (docs/platform.md). Every decoder raises
  ``InvalidMessageError`` for anything malformed, never something else, so an edge counts it.
* **HTTP bodies and answers** (the lobby): frozen pydantic models, validated by the edge.
* **Actor messages**: frozen pydantic ``Message``s; each crosses a process boundary a few times a
  second at most (one per room start, room end or status poll), never per input.

The game's exceptions, under the framework's (``protocols.errors``)::

    PtrError
    ├── RefusedError
    │   └── LobbyRefusedError     the lobby refuses a request, with its kind (the edge maps it)
    │       └── InvalidTokenError a session token is forged, expired or malformed
    ├── RoomCrashedError          a room's tick raised: the room restarts from its checkpoint
    └── GameEngineError           a server's tick loop failed outside any room: the server exits

Pure data: no Thespian here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import msgpack
from pydantic import BaseModel, ConfigDict, Field

from protocols.errors import InvalidMessageError, PtrError, RefusalKind, RefusedError
from protocols.message import Message, WireBody

# --- errors -------------------------------------------------------------------------------------


class LobbyRefusedError(RefusedError):
    """The lobby refuses a request for a reason the client must see: ``refusal`` is its kind
    (unauthorized: bad credentials or token, not_found, conflict: a name taken, too_many: chat
    rate, invalid, unavailable); the lobby's HTTP edge maps it to a status."""

    def __init__(self, refusal: RefusalKind | str, message: str, *,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message, refusal=refusal, retry_after_s=retry_after_s)


class InvalidTokenError(LobbyRefusedError):
    """A session token is malformed, wrongly signed or expired (raised by ``SessionTokens.verify``;
    refusal kind unauthorized; the game server answers it with ``REJECT_BAD_TOKEN``)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(RefusalKind.UNAUTHORIZED, f"invalid session token: {reason}")


class RoomCrashedError(PtrError):
    """Raised inside a room actor when its simulation failed during a tick: the room exits with
    reason error and its supervisor restarts it from its last snapshot."""


class GameEngineError(PtrError):
    """The tick loop of a game server failed outside any room; the server exits with it."""


# --- datagrams ----------------------------------------------------------------------------------

WIRE_VERSION = 1

# client -> server
JOIN = 1
INPUT = 2
LEAVE = 3
# server -> client
WELCOME = 11
SNAPSHOT = 12
REJOIN = 13
REJECT = 14
GAME_OVER = 15

MAX_CLIENT_DATAGRAM = 512
"""A client datagram longer than this is dropped before it is decoded."""
MAX_SEQ = 2**31 - 1
SEQ_WINDOW = 1024
"""An input whose ``seq`` is more than this above the last applied one is refused (counted as
``dropped_ahead``): no client can push a session's sequence out of another client's reach."""
MAX_CONN = 2**31 - 1
MAX_TOKEN_CHARS = 256
ROOM_ID_PATTERN = re.compile(r"[A-Za-z0-9-]{1,32}")

# REJECT codes
REJECT_BAD_TOKEN = 1
REJECT_UNKNOWN_ROOM = 2
REJECT_NOT_IN_ROOM = 3
REJECT_SUPERSEDED = 4
"""Sent to a session's old address when a JOIN with the same token from another address took the
session over: the client stops playing and does not join again by itself (see the protocol page)."""


class JoinDatagram(NamedTuple):
    """A player asks to be bound to ``room_id``; ``token`` is the lobby's signed session token."""

    token: str
    room_id: str


class InputDatagram(NamedTuple):
    """One frame of input: move by ``(dx, dy)``, each -1, 0 or 1. ``seq`` grows by one per frame
    for the whole session; ``conn`` is the connection id the server gave in ``Welcome``."""

    conn: int
    seq: int
    dx: int
    dy: int


class LeaveDatagram(NamedTuple):
    conn: int


ClientDatagram = JoinDatagram | InputDatagram | LeaveDatagram


class Welcome(NamedTuple):
    """The server bound the player: send inputs with ``conn``; inputs with ``seq <= last_seq`` are
    already applied (after a room restart, the snapshot's value) and would be ignored."""

    conn: int
    room_id: str
    player_id: int
    tick: int
    last_seq: int
    arena: int


class Snapshot(NamedTuple):
    """The room after ``tick``. ``ack`` is the last input seq of the receiver applied so far.
    ``coins`` is flat ``[x, y, ...]``; ``players`` flat ``[player_id, x, y, score, ...]``."""

    tick: int
    ack: int
    ends_at: int
    coins: list[int]
    players: list[int]


class Rejoin(NamedTuple):
    """The server no longer knows connection ``conn`` (its room restarted): send ``JOIN`` again."""

    conn: int


class Reject(NamedTuple):
    code: int
    text: str


class GameOver(NamedTuple):
    """The round of ``room_id`` ended; ``scores`` is flat ``[player_id, score, ...]``."""

    room_id: str
    scores: list[int]


ServerDatagram = Welcome | Snapshot | Rejoin | Reject | GameOver

_packb: Callable[[Any], bytes] = msgpack.packb
_unpackb = msgpack.unpackb


def _bad(text: str) -> InvalidMessageError:
    return InvalidMessageError(text, kind="datagram")


def _is_int(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def encode_join(token: str, room_id: str) -> bytes:
    return _packb([WIRE_VERSION, JOIN, token, room_id])


def encode_input(conn: int, seq: int, dx: int, dy: int) -> bytes:
    return _packb([WIRE_VERSION, INPUT, conn, seq, dx, dy])


def encode_leave(conn: int) -> bytes:
    return _packb([WIRE_VERSION, LEAVE, conn])


def decode_client(data: bytes) -> ClientDatagram:
    """A client datagram, or ``InvalidMessageError`` saying what is wrong with it."""
    if len(data) > MAX_CLIENT_DATAGRAM:
        raise _bad(f"datagram of {len(data)} bytes exceeds {MAX_CLIENT_DATAGRAM}")
    try:
        msg = _unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # noqa: BLE001 - msgpack raises several unrelated types for garbage
        raise _bad(f"not msgpack: {type(exc).__name__}") from None
    if type(msg) is not list or len(msg) < 3 or msg[0] != WIRE_VERSION or type(msg[0]) is not int:
        raise _bad("not a version-1 game datagram")
    kind = msg[1]
    if kind == INPUT and len(msg) == 6:
        _, _, conn, seq, dx, dy = msg
        # inlined checks (this runs 60,000 times a second): ints only, bools excluded
        if (type(conn) is int and type(seq) is int and type(dx) is int and type(dy) is int
                and 0 < conn <= MAX_CONN and 0 < seq <= MAX_SEQ and -1 <= dx <= 1
                and -1 <= dy <= 1):
            return InputDatagram(conn, seq, dx, dy)
        raise _bad("input fields out of range")
    if kind == JOIN and len(msg) == 4:
        _, _, token, room_id = msg
        if (type(token) is str and 0 < len(token) <= MAX_TOKEN_CHARS and type(room_id) is str
                and ROOM_ID_PATTERN.fullmatch(room_id)):
            return JoinDatagram(token, room_id)
        raise _bad("join fields invalid")
    if kind == LEAVE and len(msg) == 3:
        if _is_int(msg[2], 1, MAX_CONN):
            return LeaveDatagram(msg[2])
        raise _bad("leave fields invalid")
    raise _bad(f"unknown kind {kind!r} or wrong field count")


def encode_welcome(w: Welcome) -> bytes:
    return _packb([WIRE_VERSION, WELCOME, *w])


def snapshot_tail(ends_at: int, coins: list[int], players: list[int]) -> bytes:
    """The part of a snapshot shared by every player of a room, packed once per room and tick."""
    return _packb(ends_at) + _packb(coins) + _packb(players)


_SNAPSHOT_HEAD = bytes([0x90 | 7]) + _packb(WIRE_VERSION) + _packb(SNAPSHOT)


def snapshot_head(tick: int) -> bytes:
    """The array header, version, kind and tick: shared by a room's datagrams of one tick."""
    return _SNAPSHOT_HEAD + _packb(tick)


def encode_snapshot(head: bytes, ack: int, tail: bytes) -> bytes:
    """One player's snapshot from the shared ``head`` and ``tail``: only ``ack`` is packed here."""
    return head + _packb(ack) + tail


def encode_rejoin(conn: int) -> bytes:
    return _packb([WIRE_VERSION, REJOIN, conn])


def encode_reject(code: int, text: str) -> bytes:
    return _packb([WIRE_VERSION, REJECT, code, text])


def encode_game_over(room_id: str, scores: list[int]) -> bytes:
    return _packb([WIRE_VERSION, GAME_OVER, room_id, scores])


def _ints(value: Any) -> bool:
    return type(value) is list and all(type(v) is int for v in value)


def decode_server(data: bytes) -> ServerDatagram:
    """A server datagram (what a client reads), or ``InvalidMessageError``."""
    try:
        msg = _unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # noqa: BLE001 - msgpack raises several unrelated types for garbage
        raise _bad(f"not msgpack: {type(exc).__name__}") from None
    if type(msg) is not list or len(msg) < 3 or msg[0] != WIRE_VERSION:
        raise _bad("not a version-1 game datagram")
    kind, n = msg[1], len(msg)
    if kind == SNAPSHOT and n == 7 and all(type(v) is int for v in msg[2:5]) \
            and _ints(msg[5]) and _ints(msg[6]):
        return Snapshot(msg[2], msg[3], msg[4], msg[5], msg[6])
    if kind == WELCOME and n == 8 and type(msg[3]) is str \
            and all(type(v) is int for v in (msg[2], *msg[4:8])):
        return Welcome(msg[2], msg[3], msg[4], msg[5], msg[6], msg[7])
    if kind == REJOIN and n == 3 and type(msg[2]) is int:
        return Rejoin(msg[2])
    if kind == REJECT and n == 4 and type(msg[2]) is int and type(msg[3]) is str:
        return Reject(msg[2], msg[3])
    if kind == GAME_OVER and n == 4 and type(msg[2]) is str and _ints(msg[3]):
        return GameOver(msg[2], msg[3])
    raise _bad(f"unknown kind {kind!r} or malformed fields")


# --- HTTP bodies and answers (the lobby) ---------------------------------------------------------

NAME_PATTERN = r"^[A-Za-z0-9_-]{3,24}$"
CHAT_ROOM_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"


class Body(WireBody):
    """Base of the lobby's request bodies: the strict JSON wire base."""


class Credentials(Body):
    name: str = Field(pattern=NAME_PATTERN)
    password: str = Field(min_length=8, max_length=128)


class TokenBody(Body):
    token: str = Field(min_length=1, max_length=MAX_TOKEN_CHARS)


class QueueBody(Body):
    """``POST /queue``: ``finished_room`` is the room whose GAME_OVER the client just saw (if
    any)."""

    token: str = Field(min_length=1, max_length=MAX_TOKEN_CHARS)
    finished_room: str = Field(default="", pattern=r"^[A-Za-z0-9-]{0,32}$")


class ChatPost(Body):
    token: str = Field(min_length=1, max_length=MAX_TOKEN_CHARS)
    room: str = Field(pattern=CHAT_ROOM_PATTERN)
    text: str = Field(max_length=2000)


class ChatQuery(Body):
    room: str = Field(pattern=CHAT_ROOM_PATTERN)
    after_seq: int = Field(default=0, ge=0)
    limit: int = Field(default=50, ge=1, le=200)


class TopQuery(Body):
    n: int = Field(default=10, ge=1, le=100)


class TopParams(BaseModel):
    """``GET /leaderboard/top?n=10``: query strings are text, so ``n`` is read from one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n: int = Field(default=10, ge=1, le=100)


class RankQuery(Body):
    player_id: int = Field(ge=1)


class AccountCreated(Message):
    player_id: int
    name: str


class LoginAnswer(Message):
    player_id: int
    name: str
    token: str
    expires_at: int


QueueStatus = Literal["queued", "starting", "matched", "idle"]


class QueueAnswer(Message):
    """Where a player stands: ``queued`` at ``position`` (1 = next) of ``queue_length``; ``starting``
    while its room is being started; ``matched`` with the room and the game server's UDP address;
    ``idle`` when not queued (never queued, left, or its room ended)."""

    player_id: int
    status: QueueStatus
    position: int = 0
    queue_length: int = 0
    room_id: str = ""
    server_host: str = ""
    server_port: int = 0


class LeaderRow(Message):
    rank: int
    player_id: int
    name: str
    total: int
    games: int


class Leaderboard(Message):
    rows: list[LeaderRow]


class RankAnswer(Message):
    """``rank`` is None for a player with no score yet; ties share a rank (1, 2, 2, 4)."""

    player_id: int
    name: str
    rank: int | None
    total: int
    games: int
    ranked_players: int


class ChatLine(Message):
    seq: int
    room: str
    player_id: int
    name: str
    text: str
    sent_at: float


class ChatPosted(Message):
    seq: int
    text: str
    masked: bool


class ChatHistory(Message):
    room: str
    lines: list[ChatLine]


# --- messages between actors --------------------------------------------------------------------

class QueueOp(Message):
    """``finished_room`` (join only): the room whose GAME_OVER the player saw; a player still
    counted in it is released from it and queued (the room's own end may not have arrived yet)."""

    player_id: int
    op: Literal["join", "status", "leave"]
    finished_room: str = ""


class QueueOps(Message):
    """The lobby's queue requests of one drain of its HTTP bridge, in one message (answered with
    ``QueueAnswers`` in the same order): a Thespian hop costs ~0.3 ms, so never one per request."""

    ops: list[QueueOp]


class QueueAnswers(Message):
    answers: list[QueueAnswer]


class ServerStatus(Message):
    """Ask a game server about itself: answered with ``ServerReport``."""


class RoomCheckpoint(Message):
    """A room after a complete tick, as it travels to the matchmaker (in every ``ServerReport``):
    what a room lost with its server's process is restored from, and whose scores are kept.
    ``players`` holds ``[player_id, x, y, score, last_seq]`` rows."""

    room_id: str
    tick: int
    coins_taken: int
    coins: list[int]
    players: list[list[int]]


class RoomInfo(Message):
    room_id: str
    players: list[int]
    state: Literal["running", "restarting", "finished"]
    tick: int = 0
    connected: int = 0
    checkpoint: RoomCheckpoint | None = None


class ServerUp(Message):
    """A game server (re)started: sent to the matchmaker from its ``on_start``, so rooms lost with
    the previous process are restored at once rather than at the next poll."""

    server: str
    udp_host: str
    udp_port: int
    pid: int


class PeerUp(Message):
    """A registered actor (re)started: whoever holds a ``Peer`` of ``name`` looks it up now rather
    than at its next backoff step."""

    name: str


class ServerReport(Message):
    server: str
    udp_host: str
    udp_port: int
    rooms: list[RoomInfo]
    sessions: int
    pid: int


class RoomsQuery(Message):
    """Ask the matchmaker for its running rooms (``room_id``: just that one): ``RoomList``."""

    room_id: str = ""


class WatchRoom(Message):
    """Ask a game server for a room's newest checkpoint (a spectator's view): answered with a
    ``RoomCheckpoint``, or None if the room is not there."""

    room_id: str


class RoomView(Message):
    """A running room as spectators see it: where it plays (``server``: the game server's name),
    who is in it (``names`` filled in by the lobby) and its newest checkpoint (the matchmaker's
    copy in ``GET /rooms``, at most ``poll_s`` old; the game server's own in ``GET /rooms/{id}``,
    at most a tick old)."""

    room_id: str
    server: str = ""
    players: list[int]
    names: dict[int, str] = {}
    server_host: str
    server_port: int
    checkpoint: RoomCheckpoint | None = None


class RoomList(Message):
    rooms: list[RoomView]


class RoomPath(BaseModel):
    """``GET /rooms/{room_id}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    room_id: str = Field(pattern=r"^[A-Za-z0-9-]{1,32}$")


class MatchStatus(Message):
    """Ask the matchmaker how it is doing: answered with ``MatchReport``."""


class MatchReport(Message):
    queued: int
    starting: int
    matched: int
    rooms: int
    room_capacity: int
    servers_up: int
    restoring: int = 0   # rooms lost with their server, waiting to be restored
    checkpoint_ticks: dict[str, int] = {}  # room id -> tick of its newest checkpoint here


class RoomEnded(Message):
    """A room left its server for good (round over or stopped): its players may queue again."""

    server: str
    room_id: str


class PlayerScore(Message):
    player_id: int
    score: int


class GameResult(Message):
    """Final scores of one round, sent by the room to the lobby; ``game_id`` makes a resent result
    idempotent (each row's key is ``game_id:player_id``)."""

    game_id: str
    room_id: str
    ended_at: float
    scores: list[PlayerScore]


class GameResultStored(Message):
    game_id: str
    new_rows: int


class CrashRoom(Message):
    """Fault injection (tests, chaos runs): make ``room_id``'s simulation raise in its next tick."""

    room_id: str


class GameStatsQuery(Message):
    """Ask a game server for its counters. ``reset`` starts a new measurement window (tick times and
    counters since then); ``profile`` starts or stops cProfile on its loop thread."""

    reset: bool = False
    profile: Literal["", "start", "stop"] = ""


TICK_BUCKETS_MS = (1.0, 2.0, 4.0, 8.0, 12.0, 16.7, 33.3, 50.0, 100.0)
"""Upper bounds of the tick-duration histogram's buckets (a tick at 60 Hz has 16.7 ms)."""


class GameStatsReport(Message):
    window_s: float
    ticks: int
    late_ticks: int
    tick_p50_ms: float
    tick_p99_ms: float
    tick_max_ms: float
    start_lag_p99_ms: float
    start_lag_p50_ms: float = 0.0
    phases_ms: dict[str, dict[str, float]] = {}  # a tick's read / rooms / send times, p50 and p99
    datagrams: int
    inputs_received: int
    inputs_applied: int
    dropped_bad: int
    dropped_unauthenticated: int
    dropped_stale: int
    dropped_duplicate: int
    dropped_excess: int
    dropped_ahead: int = 0
    sessions_taken_over: int = 0
    snapshots_sent: int
    send_dropped: int
    rooms: int
    sessions: int
    room_crashes: int
    cpu_s: float
    pid: int
    loop_tid: int = 0  # the tick loop thread's native id (to place it on a CPU)
    profile: list[str] = []
    # since the server started (not per window): ticks per TICK_BUCKETS_MS bucket, the last one
    # past every bound; and the seconds all ticks took: a Prometheus histogram's counts and sum
    tick_bucket_counts: list[int] = []
    tick_seconds_sum: float = 0.0


class LobbyInfo(Message):
    """Ask the lobby where it listens: answered with ``LobbyAddress``."""


class LobbyAddress(Message):
    url: str


class NaiveRun(Message):
    """Benchmark: send ``count`` inputs to ``target``, one Thespian message each, at most ``window``
    unacknowledged."""

    target: Any
    count: int
    window: int


class NaiveInput(Message):
    player_id: int
    seq: int
    dx: int
    dy: int


class NaiveAck(Message):
    seq: int


class NaiveDone(Message):
    count: int
    applied: int
    elapsed_s: float
