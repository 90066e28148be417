"""The lobby's abuse limits: login attempts per account and per address with lockouts, account
creation per address, chat per address and per account; each refusal too_many (429) with the wait.
Rules on the mock clock; the HTTP answers (429 + Retry-After, 415, nosniff) against the real
lobby."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.clock import MockClock
from actors.game.auth import Passwords, SessionTokens
from actors.edges.limits import RateLimiter, RateRules
from actors.game.limits import Lockout, LockoutRules
from actors.game.lobby import ChatRules, LobbyLimits, LobbyService
from actors.storage import make_engine
from protocols.game import LobbyRefusedError
from systems.game import SYSTEM
from tests.support.game import Http, settings

SECRET = "test-secret-of-sixteen-bytes-or-more"


@pytest.fixture
def clock() -> MockClock:
    return MockClock()


@pytest.fixture
def lobby(tmp_path: Path, clock: MockClock) -> Iterator[LobbyService]:
    engine = make_engine(f"sqlite:///{tmp_path / 'game.db'}")
    limits = LobbyLimits(login_per_address=RateRules(6, 1.0),
                         login_failures_per_account=LockoutRules(3, 60.0, 30.0),
                         login_failures_per_address=LockoutRules(5, 60.0, 120.0),
                         accounts_per_address=RateRules(2, 1 / 60),
                         chat_per_address=RateRules(3, 1.0))
    service = LobbyService(engine, SessionTokens(SECRET), Passwords("fast"),
                           ChatRules(burst=2, per_s=0.5), monotonic=clock, limits=limits)
    service.create_tables()
    yield service
    engine.dispose()


def refused_wait(fn, *args) -> float:
    with pytest.raises(LobbyRefusedError) as refused:
        fn(*args)
    assert refused.value.refusal == "too_many"
    assert refused.value.retry_after_s is not None
    return float(refused.value.retry_after_s)


def test_wrong_passwords_lock_the_account_and_the_lock_ends_on_time(lobby, clock) -> None:
    lobby.register("alice", "correct horse")
    for n in range(3):
        lobby.admit_login("alice", f"10.0.0.{n}")   # three addresses: the account is the key
        with pytest.raises(LobbyRefusedError):
            lobby.login("alice", "wrong password", f"10.0.0.{n}")
    assert refused_wait(lobby.admit_login, "ALICE", "10.0.0.9") == pytest.approx(30.0)
    lobby.admit_login("bob", "10.0.0.9")  # another name from the same address may go on
    clock.advance(30.0)
    lobby.admit_login("alice", "10.0.0.9")
    assert lobby.login("alice", "correct horse", "10.0.0.9").name == "alice"


def test_a_success_clears_the_account_s_failures(lobby) -> None:
    lobby.register("alice", "correct horse")
    for _ in range(2):
        with pytest.raises(LobbyRefusedError):
            lobby.login("alice", "wrong password", "10.0.0.1")
    lobby.login("alice", "correct horse", "10.0.0.1")
    for _ in range(2):
        with pytest.raises(LobbyRefusedError):
            lobby.login("alice", "wrong password", "10.0.0.1")
    lobby.admit_login("alice", "10.0.0.2")  # 2 + 2 failures, but never 3 in a row


def test_wrong_passwords_from_one_address_lock_that_address_for_every_name(lobby, clock) -> None:
    for n in range(5):  # five names, one address: no account reaches its own lockout
        with pytest.raises(LobbyRefusedError):
            lobby.login(f"name{n}", "wrong password", "10.6.6.6")
    assert refused_wait(lobby.admit_login, "someone", "10.6.6.6") == pytest.approx(120.0)
    lobby.admit_login("someone", "10.0.0.1")
    clock.advance(120.0)
    lobby.admit_login("someone", "10.6.6.6")


def test_login_attempts_of_one_address_are_rate_limited_before_any_hashing(lobby, clock) -> None:
    for _ in range(6):
        lobby.admit_login("alice", "10.0.0.1")
    assert refused_wait(lobby.admit_login, "alice", "10.0.0.1") == pytest.approx(1.0)
    lobby.admit_login("alice", "10.0.0.2")
    clock.advance(1.0)
    lobby.admit_login("alice", "10.0.0.1")


def test_accounts_created_per_address_are_limited(lobby, clock) -> None:
    lobby.admit_register("10.0.0.1")
    lobby.admit_register("10.0.0.1")
    assert refused_wait(lobby.admit_register, "10.0.0.1") == pytest.approx(60.0)
    lobby.admit_register("10.0.0.2")
    clock.advance(60.0)
    lobby.admit_register("10.0.0.1")


def test_chat_is_limited_per_address_across_accounts_and_per_account(lobby, clock) -> None:
    for player in (1, 2, 3):  # three fresh accounts, one line each, one address
        lobby.post_chat(player, "lobby", "hello", "10.0.0.1")
    assert refused_wait(lobby.post_chat, 4, "lobby", "hello", "10.0.0.1") == pytest.approx(1.0)
    lobby.post_chat(5, "lobby", "hello", "10.0.0.2")
    lobby.post_chat(5, "lobby", "hello", "10.0.0.3")
    assert refused_wait(lobby.post_chat, 5, "lobby", "hello", "10.0.0.4") == pytest.approx(2.0)


def test_limiters_forget_nothing_they_need_and_refuse_bad_rules() -> None:
    clock = MockClock()
    bucket = RateLimiter(RateRules(1, 0.5), clock)
    assert bucket.take("k") == 0.0 and bucket.take("k") == pytest.approx(2.0)
    lockout = Lockout(LockoutRules(2, 10.0, 5.0), clock)
    assert lockout.failed("k") == 0.0
    clock.advance(11.0)  # the first failure fell out of the window
    assert lockout.failed("k") == 0.0 and lockout.failed("k") == 5.0
    with pytest.raises(ValueError):
        RateRules(0, 1.0)
    with pytest.raises(ValueError):
        LockoutRules(1, 0.0, 1.0)


# --- over HTTP, the real lobby ------------------------------------------------------------------

def _raw(url: str, data: bytes, content_type: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data, {"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.multiproc
def test_the_lobby_answers_limits_with_429_and_retry_after_and_takes_json_only(
        make_runtime, tmp_path) -> None:
    rt = make_runtime(SYSTEM.tree(settings(tmp_path, account_lockout_failures=3,
                                           account_lockout_s=45, accounts_burst=2,
                                           chat_address_burst=2)), base="multiproc")
    http = Http(rt)
    alice = http.player("alice")
    bob = http.player("bob")
    status, body, _ = http.post("/accounts", {"name": "carol", "password": "password-carol"})
    assert status == 429 and "accounts" in body["error"]
    for _ in range(3):
        assert http.post("/login", {"name": "alice", "password": "wrong-password"})[0] == 401
    status, body, headers = http.post("/login", {"name": "alice", "password": "password-alice"})
    assert status == 429 and 40 <= int(headers["Retry-After"]) <= 45, "locked, even for her"
    assert http.post("/chat/send", {"token": alice["token"], "room": "lobby", "text": "a"})[0] \
        == 200
    assert http.post("/chat/send", {"token": bob["token"], "room": "lobby", "text": "b"})[0] == 200
    status, _, headers = http.post("/chat/send", {"token": bob["token"], "room": "lobby",
                                                  "text": "c"})
    assert status == 429 and int(headers["Retry-After"]) >= 1, "per address, across accounts"

    status, headers, raw = _raw(http.url + "/leaderboard/top", b'{"n": 3}', "text/plain")
    assert status == 415 and b"application/json" in raw
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, _ = _raw(http.url + "/leaderboard/top", b'{"n": 3}',
                              "application/json; charset=utf-8")
    assert status == 200 and headers["X-Content-Type-Options"] == "nosniff"
    with urllib.request.urlopen(http.url + "/leaderboard/top?n=2", timeout=10) as response:
        assert response.status == 200 and response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.read().startswith(b'{"rows":')
