"""Registered peers: ``Peer``, the one way to reach a registered name, and ``PeerSet``, who may
send a message.

``PeerSet``: the processes of a few registered names (each a ``Peer``), for ``only_from``.

An actor declares ``only_from = {"GameResult": "game_servers"}``: a ``GameResult`` is taken only
from a process that runs one of the registered names listed in ``args["game_servers"]`` (the system
chooses them). A sender that is not known is checked once more against fresh addresses (a peer
that restarted has a new one); if it is still unknown, the message is refused: counted, logged,
and a request gets an error reply. A light actor's messages come from its host's process, so the
host's address is what is compared.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from actors.clock import backoff_delay
from protocols.light import LightAddress, MonitorName
from protocols.supervision import Whereis, WhereisReply

__all__ = ["Peer", "PeerRetry", "PeerSet", "process_of"]


def process_of(address: Any) -> Any:
    """The process actor an address lives in (a light actor's host, or the address itself)."""
    return address.host if type(address) is LightAddress else address


class PeerRetry:
    """Timer message: resolve a peer's name again (it was down or restarting)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


RESOLVE_TIMEOUT_S = 5.0
RETRY_FIRST_S = 0.02   # a restarted process actor answers ~6-10 ms after a kill (docs/platform.md)
RETRY_MAX_S = 1.0


class Peer:
    """A registered name as a handle (one way to reach a peer, used everywhere).

    The first use resolves the name through the root and subscribes to its going down (Erlang's
    monitor, by name); the address is cached until the root says the peer went down, then the next
    use resolves again. While the name is not registered (the peer is restarting), resolution is
    retried with exponential backoff (20 ms doubling to 1 s) for up to ``RESOLVE_TIMEOUT_S``; a use
    that finds no peer in that time is told so (``on_unavailable``), never left hanging.

    Made by ``ActorBehaviour.peer(name)``; the owner's ``NameDown`` and ``PeerRetry`` reach it.
    """

    def __init__(self, owner: Any, name: str, on_down: Callable[[Any], None] | None = None,
                 monitor: bool = True) -> None:
        self.owner = owner
        self.name = name
        self.on_down = on_down
        self.address: Any = None
        self.monitoring = not monitor  # a short-lived owner does not subscribe (the root keeps
        #                                subscribers); it finds a dead peer by a request's timeout
        self.resolving = False
        self.waiting: list[tuple[Callable[[Any], None], float]] = []
        self.misses = 0  # lookups in a row that found no address
        self.in_flight: dict[str, Callable[[], None]] = {}  # request id -> its on_unavailable

    # --- use ----------------------------------------------------------------------------------

    def when_up(self, then: Callable[[Any], None], timeout_s: float = RESOLVE_TIMEOUT_S) -> None:
        """``then(address)`` once the peer is known (at once if cached), ``then(None)`` if it is not
        within ``timeout_s``."""
        if self.address is not None:
            then(self.address)
            return
        self.waiting.append((then, self.owner.clock() + timeout_s))
        self._resolve()

    def send(self, message: Any, on_unavailable: Callable[[], None] | None = None) -> None:
        """Tell the peer ``message`` (at once if its address is known, else once it is); if it
        stays unavailable past ``RESOLVE_TIMEOUT_S`` the message is dropped and
        ``on_unavailable()`` runs."""
        def up(address: Any) -> None:
            if address is not None:
                self.owner.send(address, message)
            elif on_unavailable is not None:
                on_unavailable()

        self.when_up(up)

    def prefetch(self) -> None:
        """Resolve now, so the first use does not wait (a no-op once resolved)."""
        self.when_up(lambda _address: None)

    def request(self, body: Any, on_reply: Callable[[Any], None], *, timeout_s: float,
                on_unavailable: Callable[[], None]) -> None:
        """A request to the peer; ``on_unavailable()`` if it is not there or does not answer."""
        def up(address: Any) -> None:
            if address is None:
                on_unavailable()
                return

            def timed_out() -> None:
                self.in_flight.pop(cid, None)
                if self.address == address:
                    self.address = None  # it did not answer: look it up again next time
                on_unavailable()

            def replied(answer: Any) -> None:
                self.in_flight.pop(cid, None)
                on_reply(answer)

            cid = self.owner.request(address, body, replied, timeout_s=timeout_s,
                                     on_timeout=timed_out)
            self.in_flight[cid] = on_unavailable

        self.when_up(up, timeout_s)

    # --- resolution ---------------------------------------------------------------------------

    def _resolve(self) -> None:
        if self.resolving:
            return
        self.resolving = True
        if not self.monitoring:
            self.monitoring = True
            self.owner.send(self.owner.root, MonitorName(name=self.name,
                                                         subscriber=self.owner.myAddress))
        self.owner.request(self.owner.root, Whereis(name=self.name), self._resolved,
                           timeout_s=RESOLVE_TIMEOUT_S, on_timeout=lambda: self._resolved(None))

    def _resolved(self, answer: Any) -> None:
        self.resolving = False
        address = answer.address if isinstance(answer, WhereisReply) else None
        if address is not None:
            self.address, self.misses = address, 0
            waiting, self.waiting = self.waiting, []
            for then, _deadline in waiting:
                then(address)
            return
        now = self.owner.clock()
        expired = [then for then, deadline in self.waiting if deadline <= now]
        self.waiting = [(then, deadline) for then, deadline in self.waiting if deadline > now]
        for then in expired:
            then(None)
        if self.waiting:
            self.owner.start_timer(backoff_delay(RETRY_FIRST_S, RETRY_MAX_S, self.misses),
                                   PeerRetry(self.name))
            self.misses += 1

    def forget(self) -> None:
        """The cached address may be stale: the next use resolves the name again."""
        self.address = None

    def retry(self) -> None:
        if self.address is None and self.waiting:
            self._resolve()

    def went_down(self, address: Any) -> None:
        """The root says the registered address went down: forget it, and fail at once every
        request still waiting on it (no caller waits out a timeout for a dead peer). ``on_down``
        hears of it even when the address was already forgotten (a request to it timed out)."""
        if self.address is not None and address == self.address:
            self.address = None
            in_flight, self.in_flight = self.in_flight, {}
            for cid, on_unavailable in in_flight.items():
                if self.owner.abandon_request(cid):
                    on_unavailable()
        if self.on_down is not None:
            self.on_down(address)


class PeerSet:
    """Some registered peers, as the processes that may send a message type."""

    def __init__(self, peers: Iterable[Peer]) -> None:
        self.peers = tuple(peers)
        self.refused = 0

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(peer.name for peer in self.peers)

    def admits(self, sender: Any) -> bool:
        process = process_of(sender)
        return any(peer.address is not None and process_of(peer.address) == process
                   for peer in self.peers)

    def refresh(self, then: Callable[[], None]) -> None:
        """Resolve every peer again now (a restarted one has a new address), then ``then()``."""
        waiting = set(range(len(self.peers)))
        if not waiting:
            then()
            return

        def found(index: int, _address: Any) -> None:
            waiting.discard(index)
            if not waiting:
                then()

        for index, peer in enumerate(self.peers):
            peer.forget()
            peer.when_up(functools.partial(found, index), timeout_s=0.0)  # one lookup, no wait
