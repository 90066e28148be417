"""A registered peer as a handle (``Peer``): resolved once and cached, resolved again after the
peer restarts, a request to a peer that goes down fails at once (no caller waits out a timeout),
and a name that is not registered yet is tried again with backoff until it is, or until the caller's
deadline. And ``only_from``: a message type taken only from named peers."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from actors.base import Actor
from actors.testing.scripted import ScriptedActor
from protocols.errors import RequestFailedError
from protocols.message import Message
from protocols.scripted import Crash, Hang, Ping
from protocols.supervision import ActorStats, GetActorStats, StartChild
from supervisors.spec import ChildSpec, RestartType, SupervisorSpec
from systems.runtime import ActorRuntime


class AskPeer(Message):
    """Ask the peer ``name`` for a ``Pong``; answered with ``("pong", pid, incarnation)`` or
    ``("unavailable",)``."""

    name: str
    timeout_s: float = 5.0


class AskPeerLater(Message):
    """Like ``AskPeer``, but the answer is kept (``GetAnswers``) instead of replied."""

    name: str


class GetAnswers(Message):
    pass


class PeerStats(Message):
    """How many Whereis lookups this actor made, and how many replies it got."""


class Vouched(Message):
    """Taken only from the process registered as ``voucher`` (``only_from``)."""

    text: str


class PeerUser(Actor):
    only_from = {"Vouched": "vouchers"}

    def on_start(self) -> None:
        self.lookups = 0
        self.vouched: list[str] = []
        self.answers: list[Any] = []

    def receiveMsg_AskPeerLater(self, msg: AskPeerLater, sender: Any) -> None:
        self.peer(msg.name).request(Ping(), lambda p: self.answers.append(("pong", p.path)),
                                    timeout_s=10,
                                    on_unavailable=lambda: self.answers.append(("unavailable",)))

    def receiveMsg_GetAnswers(self, msg: GetAnswers, sender: Any) -> list[Any]:
        return self.answers

    def receiveMsg_AskPeer(self, msg: AskPeer, sender: Any) -> None:
        to = self.defer_reply(sender)
        handle = self.peer(msg.name)
        if handle.address is None:
            self.lookups += 1
        handle.request(Ping(), lambda p: self.reply_later(to, ("pong", p.pid, p.incarnation)),
                       timeout_s=msg.timeout_s,
                       on_unavailable=lambda: self.reply_later(to, ("unavailable",)))

    def receiveMsg_PeerStats(self, msg: PeerStats, sender: Any) -> int:
        return self.lookups

    def receiveMsg_Vouched(self, msg: Vouched, sender: Any) -> list[str]:
        self.vouched.append(msg.text)
        return self.vouched


class Voucher(Actor):
    """Sends ``Vouched`` to the user on request, so it comes from this process."""

    def receiveMsg_str(self, text: str, sender: Any) -> None:
        to = self.defer_reply(sender)
        self.peer("user").request(Vouched(text=text), lambda r: self.reply_later(to, r),
                                  timeout_s=5, on_unavailable=lambda: self.reply_later(to, None))


def tree() -> SupervisorSpec:
    return SupervisorSpec(intensity=50, period_s=5, children=[
        ChildSpec("target", ScriptedActor, name="target"),
        ChildSpec("user", PeerUser, {"vouchers": ["voucher"]}, name="user"),
        ChildSpec("voucher", Voucher, name="voucher"),
    ])


@pytest.fixture
def rt(make_runtime: Callable[..., ActorRuntime], base: str) -> ActorRuntime:
    return make_runtime(tree(), base=base, name="peers")


def test_a_peer_is_resolved_once_and_cached(rt: ActorRuntime) -> None:
    first = rt.ask("user", AskPeer(name="target"))
    second = rt.ask("user", AskPeer(name="target"))
    assert first[0] == "pong" and first == second
    assert rt.ask("user", PeerStats()) == 1


def test_a_restarted_peer_is_found_at_its_new_address(rt: ActorRuntime) -> None:
    before = rt.ask("user", AskPeer(name="target"))
    rt.tell("target", Crash())
    after = rt.wait_for(lambda: (a := rt.ask("user", AskPeer(name="target")))[0] == "pong"
                        and a[2] == before[2] + 1 and a, what="the new incarnation answers")
    assert after[2] == before[2] + 1


def test_a_name_not_registered_yet_is_tried_again_until_it_is(rt: ActorRuntime) -> None:
    rt.tell("user", AskPeerLater(name="late"))
    assert rt.ask("user", GetAnswers()) == []  # "late" does not exist yet: still trying
    late = ChildSpec("late", ScriptedActor, name="late", restart=RestartType.TEMPORARY)
    rt.ask(rt.root, StartChild(spec=late))
    answers = rt.wait_for(lambda: rt.ask("user", GetAnswers()), what="an answer")
    assert answers == [("pong", "/peers/late")]


def test_a_peer_that_never_appears_is_unavailable_by_the_deadline(rt: ActorRuntime) -> None:
    assert rt.ask("user", AskPeer(name="nobody", timeout_s=0.3)) == ("unavailable",)


@pytest.mark.multiproc
def test_a_request_to_a_peer_that_dies_fails_at_once_not_at_its_timeout(
        make_runtime: Callable[..., ActorRuntime]) -> None:
    rt = make_runtime(tree(), base="multiproc", name="peers")
    pid = rt.ask("user", AskPeer(name="target"))[1]
    rt.tell("target", Hang())  # the request below waits: the target never answers
    killer = threading.Timer(0.5, lambda: os.kill(pid, signal.SIGKILL))
    began = time.monotonic()
    killer.start()
    try:
        answer = rt.ask("user", AskPeer(name="target", timeout_s=30), 40)
    finally:
        killer.cancel()
    assert answer == ("unavailable",)
    assert time.monotonic() - began < 10, "failed when the peer went down, not after 30 s"


def test_only_the_named_peer_may_send_a_vouched_message(rt: ActorRuntime) -> None:
    assert rt.ask("voucher", "from the voucher") == ["from the voucher"]
    with pytest.raises(RequestFailedError, match="refused: Vouched is taken only from vouchers"):
        rt.ask("user", Vouched(text="forged"))
    stats = rt.ask("user", GetActorStats())
    assert isinstance(stats, ActorStats) and stats.refused_senders == 1
    assert rt.ask("voucher", "again") == ["from the voucher", "again"]

