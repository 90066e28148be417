"""The lobby: accounts and login, leaderboard and chat over HTTP, for every player of every game.

``LobbyService`` is the logic over SQLAlchemy (plain, synchronous, testable without actors);
``Lobby`` is the process actor that serves it: ptr's one HTTP edge (``HttpEdgeActor``) with the
routes of ``lobby_routes()``, each answered by the ``Lobby`` method of its name.

Threads of the lobby process and what each may do:

* the loop thread: HTTP parsing and validation only (the edge);
* the actor thread: everything but password hashing, one request at a time;
* ``hash_workers`` executor threads: register and login, whose Argon2 hash costs ~32 ms of CPU
  (argon2-cffi releases the GIL, so they run in parallel and the actor thread stays responsive).

Queue requests are forwarded to the matchmaker, all those of one drain in one ``QueueOps`` message.

Failure rules: a refusal (bad credentials, taken name, rate limit, bad token) is a
``LobbyRefusedError`` with its kind; the edge answers it with the kind's HTTP status. Any other exception in the actor thread crashes
the lobby (its supervisor restarts it; requests in flight get 503 from the closing bridge); in an
executor thread it costs that one request a 500.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from pydantic import Field
from sqlalchemy.exc import IntegrityError

from actors import clock as actor_clock
from actors.edges import ANSWER_LATER, Answer, Inbound, Pending, Route
from actors.edges.http_edge import HttpEdgeActor, HttpEdgeArgs
from actors.game.auth import HashProfile, Passwords, SessionTokens
from actors.edges.limits import RateLimiter, RateRules
from actors.game.limits import Lockout, LockoutRules
from actors.game.ws import WsRelay
from actors.storage import RecordTable, RowWriter, make_engine
from protocols.errors import RefusalKind
from protocols.game import (
    AccountCreated,
    ChatHistory,
    ChatLine,
    ChatPost,
    ChatPosted,
    ChatQuery,
    Credentials,
    GameResult,
    GameResultStored,
    Leaderboard,
    LeaderRow,
    LobbyAddress,
    LobbyInfo,
    LobbyRefusedError,
    LoginAnswer,
    QueueAnswer,
    PeerUp,
    QueueAnswers,
    QueueBody,
    QueueOp,
    QueueOps,
    RankAnswer,
    RankQuery,
    RoomCheckpoint,
    RoomList,
    RoomPath,
    RoomsQuery,
    RoomView,
    TokenBody,
    TopParams,
    TopQuery,
    WatchRoom,
)
from protocols.supervision import ExitReason

__all__ = ["ChatRules", "Lobby", "LobbyArgs", "LobbyLimits", "LobbyService", "lobby_routes"]

log = logging.getLogger("ptr.game.lobby")

DEFAULT_BANNED_WORDS = ("damn", "crap", "shit", "fuck", "bastard", "asshole")


_metadata = sa.MetaData()
ACCOUNTS = sa.Table(
    "game_accounts", _metadata,
    sa.Column("player_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(24), nullable=False),
    sa.Column("name_key", sa.String(24), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)
SCORES = RecordTable("game_scores", {"game_id": sa.String(40), "player_id": sa.Integer,
                                     "score": sa.Integer, "ended_at": sa.Float})
CHAT = RecordTable("game_chat", {"seq": sa.Integer, "room": sa.String(32), "player_id": sa.Integer,
                                 "name": sa.String(24), "text": sa.String(800),
                                 "sent_at": sa.Float})


# --- chat rules ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChatRules:
    """Per player: ``burst`` messages at once, then ``per_s`` a second (a token bucket). Per
    message: 1..``max_chars`` characters once control characters are removed; banned words are
    masked with ``*`` (the message still goes out: refusing teaches players to misspell)."""

    max_chars: int = 200
    burst: int = 5
    per_s: float = 1.0
    banned_words: tuple[str, ...] = DEFAULT_BANNED_WORDS

    def __post_init__(self) -> None:
        if self.max_chars < 1 or self.burst < 1 or self.per_s <= 0:
            raise ValueError("chat rules need max_chars >= 1, burst >= 1 and per_s > 0")

    def clean(self, text: str) -> tuple[str, bool]:
        """The text as it will be stored and whether words were masked; 400 if empty or too long."""
        text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf")
                       or ch == " ").strip()
        if not text:
            raise LobbyRefusedError(RefusalKind.INVALID, "empty chat message")
        if len(text) > self.max_chars:
            raise LobbyRefusedError(RefusalKind.INVALID, f"chat message longer than {self.max_chars} characters")
        if not self.banned_words:
            return text, False
        pattern = _banned_pattern(self.banned_words)
        masked = pattern.sub(lambda m: "*" * len(m.group(0)), text)
        return masked, masked != text


_PATTERNS: dict[tuple[str, ...], re.Pattern[str]] = {}


def _banned_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    pattern = _PATTERNS.get(words)
    if pattern is None:
        alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
        pattern = _PATTERNS[words] = re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)
    return pattern


@dataclass(frozen=True)
class LobbyLimits:
    """The lobby's abuse limits (each a token bucket or a lockout, see ``actors.game.limits``).

    * ``login_per_address``: login attempts of one address, right or wrong (checked before the
      password is hashed, so a flood costs no hashing);
    * ``login_failures_per_account``: wrong passwords for one name lock that name;
    * ``login_failures_per_address``: wrong passwords from one address lock that address;
    * ``accounts_per_address``: accounts one address may create;
    * ``chat_per_address``: chat lines of one address, whatever the accounts (each account has its
      own limit too, ``ChatRules``).

    Every refusal is ``too_many`` (HTTP 429) with the seconds to wait (``Retry-After``).
    """

    login_per_address: RateRules = field(default_factory=lambda: RateRules(10, 1.0))
    login_failures_per_account: LockoutRules = field(
        default_factory=lambda: LockoutRules(5, 300.0, 60.0))
    login_failures_per_address: LockoutRules = field(
        default_factory=lambda: LockoutRules(20, 300.0, 300.0))
    accounts_per_address: RateRules = field(default_factory=lambda: RateRules(5, 1 / 60))
    chat_per_address: RateRules = field(default_factory=lambda: RateRules(10, 2.0))


def _too_many(what: str, wait_s: float) -> LobbyRefusedError:
    return LobbyRefusedError(RefusalKind.TOO_MANY, what, retry_after_s=wait_s)


# --- the service --------------------------------------------------------------------------------

class LobbyService:
    """Accounts, scores and chat in one SQL database (SQLite by default).

    ``register`` and ``login`` are thread-safe (they only use the engine and stateless helpers) and
    slow by design (one Argon2 hash each); everything else is meant for one thread.
    """

    def __init__(self, engine: sa.Engine, tokens: SessionTokens, passwords: Passwords,
                 rules: ChatRules | None = None, *, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = actor_clock.monotonic,
                 limits: LobbyLimits | None = None) -> None:
        self.engine = engine
        self.tokens = tokens
        self.passwords = passwords
        self.rules = rules or ChatRules()
        self.clock = clock
        self.limits = limits = limits or LobbyLimits()
        self.limiter = RateLimiter(RateRules(self.rules.burst, self.rules.per_s), monotonic)
        self.chat_addresses = RateLimiter(limits.chat_per_address, monotonic)
        self.login_addresses = RateLimiter(limits.login_per_address, monotonic)
        self.account_lockout = Lockout(limits.login_failures_per_account, monotonic)
        self.address_lockout = Lockout(limits.login_failures_per_address, monotonic)
        self.new_accounts = RateLimiter(limits.accounts_per_address, monotonic)
        self.scores = RowWriter(engine, SCORES)
        self.chat = RowWriter(engine, CHAT)
        self._names: dict[int, str] = {}
        self._chat_seq = 0

    def create_tables(self) -> None:
        """Create what is missing (idempotent) and pick up where the stored chat left off."""
        ACCOUNTS.create(self.engine, checkfirst=True)
        self.scores.create()
        self.chat.create()
        sa.Index("ix_game_scores_player", self.scores.table.c.player_id).create(
            self.engine, checkfirst=True)
        sa.Index("ix_game_chat_room_seq", self.chat.table.c.room, self.chat.table.c.seq).create(
            self.engine, checkfirst=True)
        with self.engine.connect() as conn:
            self._chat_seq = conn.scalar(sa.select(sa.func.max(self.chat.table.c.seq))) or 0

    # --- accounts -----------------------------------------------------------------------------

    def admit_register(self, address: str) -> None:
        """Refuses (too_many) an address over its account-creation rate; cheap, before hashing."""
        wait_s = self.new_accounts.take(address)
        if wait_s > 0:
            raise _too_many("too many accounts created from this address", wait_s)

    def admit_login(self, name: str, address: str) -> None:
        """Refuses (too_many) a login attempt of a locked name or address, or of an address over
        its attempt rate; cheap, called before the password is hashed."""
        for locked_s, what in ((self.account_lockout.locked_for(name.lower()), "account"),
                               (self.address_lockout.locked_for(address), "address")):
            if locked_s > 0:
                raise _too_many(f"too many failed logins: this {what} is locked", locked_s)
        wait_s = self.login_addresses.take(address)
        if wait_s > 0:
            raise _too_many("too many login attempts from this address", wait_s)

    def register(self, name: str, password: str) -> AccountCreated:
        """A new account; refused (conflict) if the name (case-insensitively) is taken."""
        password_hash = self.passwords.hash(password)
        try:
            with self.engine.begin() as conn:
                key = conn.execute(ACCOUNTS.insert().values(
                    name=name, name_key=name.lower(), password_hash=password_hash,
                    created_at=self.clock())).inserted_primary_key
                assert key is not None
                player_id = key[0]
        except IntegrityError:
            raise LobbyRefusedError(RefusalKind.CONFLICT, f"name {name!r} is taken") from None
        self._names[int(player_id)] = name
        return AccountCreated(player_id=int(player_id), name=name)

    def login(self, name: str, password: str, address: str = "") -> LoginAnswer:
        """A session token for good credentials; refused (unauthorized) otherwise, the same for
        unknown names. A failure counts toward the lockouts of the name and of ``address``."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(ACCOUNTS.c.player_id, ACCOUNTS.c.name,
                                         ACCOUNTS.c.password_hash)
                               .where(ACCOUNTS.c.name_key == name.lower())).first()
        if not self.passwords.verify(row.password_hash if row else None, password) or row is None:
            self.account_lockout.failed(name.lower())
            self.address_lockout.failed(address)
            raise LobbyRefusedError(RefusalKind.UNAUTHORIZED, "bad name or password")
        self.account_lockout.succeeded(name.lower())
        token, expires_at = self.tokens.issue(row.player_id)
        self._names[row.player_id] = row.name
        return LoginAnswer(player_id=row.player_id, name=row.name, token=token,
                           expires_at=expires_at)

    def player_name(self, player_id: int) -> str:
        name = self._names.get(player_id)
        if name is None:
            with self.engine.connect() as conn:
                name = conn.scalar(sa.select(ACCOUNTS.c.name)
                                   .where(ACCOUNTS.c.player_id == player_id)) or ""
            if name:
                self._names[player_id] = name
        return name

    # --- leaderboard --------------------------------------------------------------------------

    def record_game(self, result: GameResult) -> GameResultStored:
        """Store a round's scores; a resent result adds nothing (rows keyed ``game_id:player``)."""
        rows = [{"message_id": f"{result.game_id}:{s.player_id}", "game_id": result.game_id,
                 "player_id": s.player_id, "score": s.score, "ended_at": result.ended_at}
                for s in result.scores]
        return GameResultStored(game_id=result.game_id, new_rows=self.scores.write_batch(rows))

    def _totals(self) -> Any:
        c = self.scores.table.c
        return (sa.select(c.player_id, sa.func.sum(c.score).label("total"),
                          sa.func.count().label("games"))
                .group_by(c.player_id).subquery("totals"))

    def top(self, n: int) -> Leaderboard:
        """The ``n`` best players by total score; ties share a rank (1, 2, 2, 4)."""
        totals = self._totals()
        query = (sa.select(totals.c.player_id, totals.c.total, totals.c.games, ACCOUNTS.c.name)
                 .join(ACCOUNTS, ACCOUNTS.c.player_id == totals.c.player_id, isouter=True)
                 .order_by(totals.c.total.desc(), totals.c.player_id).limit(n))
        with self.engine.connect() as conn:
            found = conn.execute(query).all()
        rows: list[LeaderRow] = []
        for i, row in enumerate(found):
            rank = rows[-1].rank if rows and rows[-1].total == row.total else i + 1
            rows.append(LeaderRow(rank=rank, player_id=row.player_id, name=row.name or "",
                                  total=int(row.total), games=int(row.games)))
        return Leaderboard(rows=rows)

    def rank(self, player_id: int) -> RankAnswer:
        """A player's rank: one more than the number of players with a strictly higher total."""
        totals = self._totals()
        with self.engine.connect() as conn:
            mine = conn.execute(sa.select(totals.c.total, totals.c.games)
                                .where(totals.c.player_id == player_id)).first()
            ranked = conn.scalar(sa.select(sa.func.count()).select_from(totals)) or 0
            above = 0 if mine is None else conn.scalar(
                sa.select(sa.func.count()).select_from(totals).where(totals.c.total > mine.total))
        name = self.player_name(player_id)
        if mine is None and not name:
            raise LobbyRefusedError(RefusalKind.NOT_FOUND, f"no player {player_id}")
        return RankAnswer(player_id=player_id, name=name,
                          rank=None if mine is None else int(above or 0) + 1,
                          total=int(mine.total) if mine else 0,
                          games=int(mine.games) if mine else 0, ranked_players=int(ranked))

    # --- chat ---------------------------------------------------------------------------------

    def post_chat(self, player_id: int, room: str, text: str, address: str = "") -> ChatPosted:
        """Store a chat line in ``room``: refused too_many over the player's or the address's
        rate, invalid if the rules refuse it."""
        cleaned, masked = self.rules.clean(text)
        wait_s = max(self.chat_addresses.take(address), self.limiter.take(player_id))
        if wait_s > 0:
            raise _too_many("chat rate limit: slow down", wait_s)
        self._chat_seq += 1
        seq = self._chat_seq
        self.chat.write_batch([{"message_id": uuid.uuid4().hex, "seq": seq, "room": room,
                                "player_id": player_id, "name": self.player_name(player_id),
                                "text": cleaned, "sent_at": self.clock()}])
        return ChatPosted(seq=seq, text=cleaned, masked=masked)

    def chat_history(self, room: str, after_seq: int = 0, limit: int = 50) -> ChatHistory:
        """The latest ``limit`` lines of ``room`` after ``after_seq``, oldest first."""
        c = self.chat.table.c
        query = (sa.select(c.seq, c.room, c.player_id, c.name, c.text, c.sent_at)
                 .where(c.room == room, c.seq > after_seq).order_by(c.seq.desc()).limit(limit))
        with self.engine.connect() as conn:
            found = conn.execute(query).all()
        return ChatHistory(room=room, lines=[
            ChatLine(seq=r.seq, room=r.room, player_id=r.player_id, name=r.name or "",
                     text=r.text, sent_at=r.sent_at) for r in reversed(found)])


# --- the actor ----------------------------------------------------------------------------------

class LobbyArgs(HttpEdgeArgs):
    """The lobby's arguments: its own, and its HTTP edge's with the lobby's defaults."""

    storage_url: str
    token_secret: str = Field(min_length=16)
    token_ttl_s: float = Field(default=3600.0, gt=0)
    hash_profile: HashProfile = "owasp"
    hash_workers: int = Field(default=2, ge=1)
    matchmaker: str                      # registered names of its peers
    game_servers: list[str]              # who may hand in a GameResult (servers, matchmaker)
    chat: dict[str, Any] = Field(default_factory=dict)  # ChatRules fields
    limits: LobbyLimits = LobbyLimits()
    # the HTTP edge's, with the lobby's defaults
    title: str | None = "ptr game lobby"
    allow: list[str] = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
    max_body_bytes: int = Field(default=8192, ge=1)
    max_in_flight: int = Field(default=2048, ge=1)
    drain_max: int = Field(default=512, ge=1)


class Lobby(HttpEdgeActor):
    """The lobby's HTTP edge and its service: each route's ``handler`` is a method here, run in
    the actor thread (register and login hand their Argon2 hash to the ``hash_workers`` executor and
    answer later; the queue routes of one drain go to the matchmaker in one ``QueueOps``).

    Args: ``LobbyArgs``. A ``GameResult`` is taken from the processes of ``game_servers`` only (and
    the matchmaker's, which hands over the checkpointed scores of a room it could not restore).

    Every body must be sent as ``Content-Type: application/json`` (415 otherwise: a web page of
    another origin cannot post here without a CORS preflight), and every answer says
    ``X-Content-Type-Options: nosniff``."""

    Args = LobbyArgs
    only_from = {"GameResult": "game_servers"}

    def on_start(self) -> None:
        args: LobbyArgs = self.typed_args()
        self.matchmaker = self.peer(args.matchmaker)
        self.tokens = SessionTokens(args.token_secret, ttl_s=args.token_ttl_s,
                                    clock=time.time)
        self.db = make_engine(args.storage_url)
        self.service = LobbyService(self.db, self.tokens, Passwords(args.hash_profile),
                                    ChatRules(**args.chat), limits=args.limits)
        self.service.create_tables()
        self.executor = ThreadPoolExecutor(max_workers=args.hash_workers,
                                           thread_name_prefix="lobby-hash")
        self.queue_ops: list[tuple[Pending[Inbound], QueueOp]] = []
        self.relay = WsRelay()
        super().on_start()
        self.matchmaker.send(PeerUp(name=self.child_id or "lobby"))  # reach me, not my corpse

    def configure_app(self, app: web.Application) -> None:
        """JSON bodies only, nosniff on every answer; the browser client's page and script, and
        its WebSocket edge (``GET /play``), served on the loop beside the API."""
        app.middlewares.append(_json_bodies_only)
        app.on_response_prepare.append(_nosniff)
        app.router.add_get("/play", self.relay.handle)
        for path, (name, media_type) in WEB_FILES.items():
            app.router.add_get(path, _static(name, media_type))

    def on_stop(self, reason: ExitReason) -> None:
        try:
            super().on_stop(reason)
        finally:
            if getattr(self, "executor", None) is not None:
                self.executor.shutdown(wait=False, cancel_futures=True)
            if getattr(self, "db", None) is not None:
                self.db.dispose()

    # --- route handlers (the system's route table names them) ---------------------------------

    def register(self, inbound: Inbound) -> Any:
        self.service.admit_register(inbound.peer)
        self.executor.submit(self._authenticate, inbound.pending, "register", inbound.body,
                             inbound.peer)
        return ANSWER_LATER

    def login(self, inbound: Inbound) -> Any:
        self.service.admit_login(inbound.body.name, inbound.peer)
        self.executor.submit(self._authenticate, inbound.pending, "login", inbound.body,
                             inbound.peer)
        return ANSWER_LATER

    def queue_join(self, inbound: Inbound) -> Any:
        return self._queue(inbound, "join", inbound.body.finished_room)

    def queue_status(self, inbound: Inbound) -> Any:
        return self._queue(inbound, "status")

    def queue_leave(self, inbound: Inbound) -> Any:
        return self._queue(inbound, "leave")

    def top(self, inbound: Inbound) -> Leaderboard:
        return self.service.top(inbound.body.n)

    def top_get(self, inbound: Inbound) -> Leaderboard:
        return self.service.top(inbound.params.n)

    def rank(self, inbound: Inbound) -> RankAnswer:
        return self.service.rank(inbound.body.player_id)

    def chat_send(self, inbound: Inbound) -> ChatPosted:
        body = inbound.body
        return self.service.post_chat(self.tokens.verify(body.token), body.room, body.text,
                                      inbound.peer)

    def chat_history(self, inbound: Inbound) -> ChatHistory:
        body = inbound.body
        return self.service.chat_history(body.room, body.after_seq, body.limit)

    def _queue(self, inbound: Inbound, op: str, finished_room: str = "") -> Any:
        player_id = self.tokens.verify(inbound.body.token)  # refused here if the token is bad
        self.queue_ops.append((inbound.pending, QueueOp(player_id=player_id, op=op,
                                                        finished_room=finished_room)))
        return ANSWER_LATER

    def handled_drain(self) -> None:
        if self.queue_ops:
            ops, self.queue_ops = self.queue_ops, []
            self._forward(ops)

    def _authenticate(self, pending: Pending[Inbound], route: str, body: Credentials,
                      address: str) -> None:
        """Executor thread: one register or login. The one guard of this thread: an unexpected
        failure costs this request a 500 (the edge logs it), not the lobby."""
        try:
            if route == "register":
                result: Any = self.service.register(body.name, body.password)
            else:
                result = self.service.login(body.name, body.password, address)
        except LobbyRefusedError as exc:
            pending.fail(exc)
            return
        except Exception as exc:  # noqa: BLE001 - see the docstring
            log.exception("lobby: %s failed", route)
            pending.fail(exc)
            return
        pending.resolve(result)

    def rooms(self, inbound: Inbound) -> Any:
        self._ask_rooms(inbound.pending, "")
        return ANSWER_LATER

    def room(self, inbound: Inbound) -> Any:
        self._ask_rooms(inbound.pending, inbound.params.room_id)
        return ANSWER_LATER

    def _ask_rooms(self, pending: Pending[Inbound], room_id: str) -> None:
        """The matchmaker's running rooms (one, for ``room_id``) with the players' names."""
        def unavailable() -> None:
            pending.fail(LobbyRefusedError(RefusalKind.UNAVAILABLE, "matchmaker unavailable",
                                           retry_after_s=1))

        def answered(reply: Any) -> None:
            if not isinstance(reply, RoomList):
                unavailable()
                return
            views = [view.model_copy(update={"names": {p: self.service.player_name(p)
                                                       for p in view.players}})
                     for view in reply.rooms]
            for view in views:
                self.relay.allow_server(view.server_host, view.server_port)
            if not room_id:
                pending.resolve(RoomList(rooms=views))
            elif views:
                self._spectate(pending, views[0])
            else:
                pending.fail(LobbyRefusedError(RefusalKind.NOT_FOUND, f"no running room {room_id}"))

        self.matchmaker.request(RoomsQuery(room_id=room_id), answered, timeout_s=3.0,
                                on_unavailable=unavailable)

    def _spectate(self, pending: Pending[Inbound], view: RoomView) -> None:
        """A spectator's view: the room's checkpoint of the last tick, from its game server (the
        matchmaker's copy, up to ``poll_s`` old, if the server does not answer)."""
        def answered(reply: Any) -> None:
            fresh = reply if isinstance(reply, RoomCheckpoint) else None
            pending.resolve(view.model_copy(update={"checkpoint": fresh}) if fresh else view)

        def stale() -> None:
            pending.resolve(view)

        self.peer(view.server).request(WatchRoom(room_id=view.room_id), answered, timeout_s=1.0,
                                       on_unavailable=stale)

    def _forward(self, ops: list[tuple[Pending[Inbound], QueueOp]]) -> None:
        """One ``QueueOps`` to the matchmaker for the whole drain; 503s if it does not answer."""
        pendings = [p for p, _ in ops]
        message = QueueOps(ops=[op for _, op in ops])

        def unavailable() -> None:
            for p in pendings:
                p.fail(LobbyRefusedError(RefusalKind.UNAVAILABLE, "matchmaker unavailable",
                                         retry_after_s=1))

        def answered(reply: Any) -> None:
            if isinstance(reply, QueueAnswers) and len(reply.answers) == len(pendings):
                assert self.bridge is not None
                for answer in reply.answers:  # a browser's WebSocket may go to these servers
                    if answer.status == "matched":
                        self.relay.allow_server(answer.server_host, answer.server_port)
                self.bridge.resolve_many(zip(pendings, reply.answers))
            else:
                unavailable()

        self.matchmaker.request(message, answered, timeout_s=3.0, on_unavailable=unavailable)

    # --- from other actors --------------------------------------------------------------------

    def receiveMsg_GameResult(self, msg: GameResult, sender: Any) -> GameResultStored:
        return self.service.record_game(msg)

    def receiveMsg_PeerUp(self, msg: PeerUp, sender: Any) -> None:
        """The matchmaker (re)started: reach the new one now, not at a backoff step."""
        handle = self.peer(msg.name)
        if handle.address != sender:
            handle.forget()
            handle.prefetch()

    def receiveMsg_LobbyInfo(self, msg: LobbyInfo, sender: Any) -> LobbyAddress:
        return LobbyAddress(url=f"{self.scheme}://{self.host}:{self.port}")


_UNAUTHORIZED = (RefusalKind.UNAUTHORIZED,)
WEB_FILES = {"/": ("index.html", "text/html"), "/client.js": ("client.js", "text/javascript"),
             "/msgpack.js": ("msgpack.js", "text/javascript")}
_WEB_DIR = Path(__file__).resolve().parent / "web"


def _static(name: str, media_type: str) -> Any:
    body = (_WEB_DIR / name).read_bytes()  # read once, when the lobby starts

    async def serve(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, content_type=media_type, charset="utf-8",
                            headers={"Cache-Control": "no-store",
                                     "Content-Security-Policy": _CSP})

    return serve


# the page loads its own scripts only, and talks to its own origin only (the WebSocket included)
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _json_bodies_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """415 for a body sent as anything but ``application/json``: ``text/plain`` and form posts
    are what a page of another origin may send without a CORS preflight."""
    if request.method in _BODY_METHODS and request.content_type != "application/json":
        return web.json_response(
            {"error": "send the body as Content-Type: application/json",
             "refusal": RefusalKind.INVALID.value, "content_type": request.content_type},
            status=415)
    return await handler(request)


async def _nosniff(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["X-Content-Type-Options"] = "nosniff"


def lobby_routes() -> list[Route]:
    """The lobby's HTTP API: each route answered by the ``Lobby`` method of its name."""
    return [
        Route("POST", "/accounts", Credentials, Answer.REPLY, name="register", timeout_s=30,
              response=AccountCreated, refuses=(RefusalKind.CONFLICT, RefusalKind.TOO_MANY),
              handler=Lobby.register),
        Route("POST", "/login", Credentials, Answer.REPLY, name="login", timeout_s=30,
              response=LoginAnswer, refuses=(RefusalKind.UNAUTHORIZED, RefusalKind.TOO_MANY),
              handler=Lobby.login),
        Route("POST", "/queue", QueueBody, Answer.REPLY, name="queue_join", response=QueueAnswer,
              refuses=_UNAUTHORIZED, handler=Lobby.queue_join),
        Route("POST", "/queue/status", TokenBody, Answer.REPLY, name="queue_status",
              response=QueueAnswer, refuses=_UNAUTHORIZED, handler=Lobby.queue_status),
        Route("POST", "/queue/leave", TokenBody, Answer.REPLY, name="queue_leave",
              response=QueueAnswer, refuses=_UNAUTHORIZED, handler=Lobby.queue_leave),
        Route("POST", "/leaderboard/top", TopQuery, Answer.REPLY, name="top",
              response=Leaderboard, handler=Lobby.top),
        Route("GET", "/leaderboard/top", answer=Answer.REPLY, name="top_get", params=TopParams,
              response=Leaderboard, handler=Lobby.top_get, summary="the n best (?n=10)"),
        Route("POST", "/leaderboard/rank", RankQuery, Answer.REPLY, name="rank",
              response=RankAnswer, refuses=(RefusalKind.NOT_FOUND,), handler=Lobby.rank),
        Route("POST", "/chat/send", ChatPost, Answer.REPLY, name="chat_send", response=ChatPosted,
              refuses=(RefusalKind.UNAUTHORIZED, RefusalKind.TOO_MANY), handler=Lobby.chat_send),
        Route("POST", "/chat/history", ChatQuery, Answer.REPLY, name="chat_history",
              response=ChatHistory, handler=Lobby.chat_history),
        Route("GET", "/rooms", answer=Answer.REPLY, name="rooms", response=RoomList,
              handler=Lobby.rooms, summary="running rooms, for spectators"),
        Route("GET", "/rooms/{room_id}", answer=Answer.REPLY, name="room", params=RoomPath,
              response=RoomView, refuses=(RefusalKind.NOT_FOUND,), handler=Lobby.room,
              summary="one running room and its newest checkpoint"),
    ]
