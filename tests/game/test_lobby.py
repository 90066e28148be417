"""The lobby's rules without HTTP: accounts and login, session tokens, leaderboard ranks, chat."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from actors.game.auth import Passwords, SessionTokens
from actors.game.lobby import ACCOUNTS, ChatRules, LobbyService
from actors.storage import make_engine
from protocols.game import GameResult, InvalidTokenError, LobbyRefusedError, PlayerScore

SECRET = "test-secret-of-sixteen-bytes-or-more"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lobby(tmp_path: Path, clock: Clock) -> Iterator[LobbyService]:
    engine = make_engine(f"sqlite:///{tmp_path / 'game.db'}")
    service = LobbyService(engine, SessionTokens(SECRET, ttl_s=600, clock=clock), Passwords("fast"),
                           ChatRules(max_chars=20, burst=2, per_s=0.5, banned_words=("bogus",)),
                           clock=clock, monotonic=clock)
    service.create_tables()
    yield service
    engine.dispose()


# --- accounts and login -------------------------------------------------------------------------

def test_login_with_good_credentials_returns_a_token_the_game_server_accepts(
        lobby, clock: Clock) -> None:
    account = lobby.register("alice", "correct horse")
    answer = lobby.login("alice", "correct horse")
    assert answer.player_id == account.player_id and answer.name == "alice"
    game_server_side = SessionTokens(SECRET, clock=clock)  # another process: same secret, no db
    assert game_server_side.verify(answer.token) == account.player_id


@pytest.mark.parametrize("name, password", [("alice", "wrong password"), ("nobody", "whatever1")])
def test_login_with_bad_credentials_is_refused_alike_for_wrong_password_and_unknown_name(
        lobby, name: str, password: str) -> None:
    lobby.register("alice", "correct horse")
    with pytest.raises(LobbyRefusedError) as refused:
        lobby.login(name, password)
    assert refused.value.refusal == "unauthorized" and str(refused.value) == "bad name or password"


def test_a_name_is_taken_whatever_its_case(lobby) -> None:
    lobby.register("Alice", "correct horse")
    with pytest.raises(LobbyRefusedError) as refused:
        lobby.register("alice", "another password")
    assert refused.value.refusal == "conflict"


def test_passwords_are_stored_as_argon2id_hashes_only(lobby) -> None:
    lobby.register("alice", "correct horse")
    with lobby.engine.connect() as conn:
        (stored,) = conn.execute(sa.select(ACCOUNTS.c.password_hash)).one()
    assert stored.startswith("$argon2id$") and "correct horse" not in stored


def test_tokens_refuse_tampering_and_expiry(clock: Clock) -> None:
    tokens = SessionTokens(SECRET, ttl_s=60, clock=clock)
    token, expires_at = tokens.issue(42)
    assert expires_at == clock.now + 60 and tokens.verify(token) == 42
    version, player, expires, mac = token.split(".")
    for forged, reason in [(f"{version}.43.{expires}.{mac}", "bad signature"),
                           (f"{version}.{player}.{int(expires) + 999}.{mac}", "bad signature"),
                           (token + "x", "bad signature"),
                           ("v1.42", "malformed"), ("v1.४२.1.x", "malformed")]:
        with pytest.raises(InvalidTokenError, match=reason):
            tokens.verify(forged)
    with pytest.raises(InvalidTokenError, match="bad signature"):
        SessionTokens("another secret of enough bytes", clock=clock).verify(token)
    clock.now += 61
    with pytest.raises(InvalidTokenError, match="expired"):
        tokens.verify(token)


# --- leaderboard --------------------------------------------------------------------------------

def result(game_id: str, **scores: int) -> GameResult:
    return GameResult(game_id=game_id, room_id=game_id, ended_at=1.0,
                      scores=[PlayerScore(player_id=int(p[1:]), score=s) for p, s in scores.items()])


def test_leaderboard_ranks_totals_with_shared_ranks_for_ties(lobby) -> None:
    ids = {name: lobby.register(name, "password1").player_id for name in ("ann", "bob", "cat", "dan")}
    p = {name: f"p{pid}" for name, pid in ids.items()}
    lobby.record_game(result("g1", **{p["ann"]: 5, p["bob"]: 3, p["cat"]: 3}))
    lobby.record_game(result("g2", **{p["ann"]: 1, p["bob"]: 4, p["dan"]: 7}))
    # totals: bob 7, dan 7, ann 6, cat 3
    top = lobby.top(3).rows
    assert [(r.rank, r.name, r.total) for r in top] == [(1, "bob", 7), (1, "dan", 7), (3, "ann", 6)]
    cat = lobby.rank(ids["cat"])
    assert (cat.rank, cat.total, cat.games, cat.ranked_players) == (4, 3, 1, 4)
    assert lobby.rank(ids["ann"]).rank == 3


def test_a_resent_game_result_is_not_counted_twice(lobby) -> None:
    pid = lobby.register("ann", "password1").player_id
    assert lobby.record_game(result("g1", **{f"p{pid}": 5})).new_rows == 1
    assert lobby.record_game(result("g1", **{f"p{pid}": 5})).new_rows == 0
    assert lobby.rank(pid).total == 5


def test_a_player_without_scores_is_unranked_and_an_unknown_one_is_not_found(lobby) -> None:
    pid = lobby.register("ann", "password1").player_id
    assert lobby.rank(pid).rank is None
    with pytest.raises(LobbyRefusedError) as refused:
        lobby.rank(pid + 100)
    assert refused.value.refusal == "not_found"


# --- chat ---------------------------------------------------------------------------------------

def test_chat_is_rate_limited_per_player_and_refills_with_time(lobby, clock: Clock) -> None:
    ann = lobby.register("ann", "password1").player_id
    bob = lobby.register("bob", "password1").player_id
    lobby.post_chat(ann, "lobby", "one")
    lobby.post_chat(ann, "lobby", "two")          # burst of 2 spent
    with pytest.raises(LobbyRefusedError) as refused:
        lobby.post_chat(ann, "lobby", "three")
    assert refused.value.refusal == "too_many" and refused.value.retry_after_s == pytest.approx(2.0)
    lobby.post_chat(bob, "lobby", "bob is not limited")
    clock.now += 2.0                               # 0.5 per second: one more after 2 s
    lobby.post_chat(ann, "lobby", "three")
    with pytest.raises(LobbyRefusedError):
        lobby.post_chat(ann, "lobby", "four")
    assert [line.text for line in lobby.chat_history("lobby").lines] == \
        ["one", "two", "bob is not limited", "three"]


def test_chat_rules_mask_banned_words_and_refuse_empty_or_long_messages(lobby) -> None:
    ann = lobby.register("ann", "password1").player_id
    posted = lobby.post_chat(ann, "room-1", "so BOGUS\x07 here")
    assert (posted.text, posted.masked) == ("so ***** here", True)
    for text in ["  \x00 ", "x" * 21]:
        with pytest.raises(LobbyRefusedError) as refused:
            lobby.post_chat(ann, "room-1", text)
        assert refused.value.refusal == "invalid"


def test_chat_is_per_room_stored_and_survives_a_restart(lobby, tmp_path: Path, clock: Clock) -> None:
    ann = lobby.register("ann", "password1").player_id
    lobby.post_chat(ann, "room-1", "in one")
    lobby.post_chat(ann, "room-2", "in two")
    engine = make_engine(f"sqlite:///{tmp_path / 'game.db'}")
    again = LobbyService(engine, lobby.tokens, lobby.passwords, lobby.rules, clock=clock,
                         monotonic=clock)
    again.create_tables()
    lines = again.chat_history("room-1").lines
    assert [(line.text, line.name) for line in lines] == [("in one", "ann")]
    clock.now += 10
    assert again.post_chat(ann, "room-1", "after").seq == 3, "sequence numbers continue"
    assert [line.text for line in again.chat_history("room-1", after_seq=1).lines] == ["after"]
    engine.dispose()
