"""Who may send a message: the processes of a few registered names, resolved and kept current.

An actor declares ``only_from = {"GameResult": "game_servers"}``: a ``GameResult`` is taken only
from a process that runs one of the registered names listed in ``args["game_servers"]`` (the system
chooses them). A sender that is not known is checked once more against fresh addresses (a peer
that restarted has a new one); if it is still unknown, the message is refused: counted, logged,
and a request gets an error reply. A light actor's messages come from its host's process, so the
host's address is what is compared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from protocols.light import LightAddress

__all__ = ["PeerSet", "process_of"]


def process_of(address: Any) -> Any:
    """The process actor an address lives in (a light actor's host, or the address itself)."""
    return address.host if type(address) is LightAddress else address


class PeerSet:
    """The current process addresses of some registered names, resolved through the root."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(names)
        self.known: dict[str, Any] = {}
        self.refused = 0

    def admits(self, sender: Any) -> bool:
        process = process_of(sender)
        return any(process == known for known in self.known.values())

    def refresh(self, resolve: Callable[[str, Callable[[Any], None]], None],
                then: Callable[[], None]) -> None:
        """Resolve every name again (``resolve(name, on_address)``), then call ``then()``."""
        waiting = set(self.names)
        if not waiting:
            then()
            return

        def found(name: str, address: Any) -> None:
            if address is None:
                self.known.pop(name, None)
            else:
                self.known[name] = process_of(address)
            waiting.discard(name)
            if not waiting:
                then()

        for name in self.names:
            resolve(name, lambda address, n=name: found(n, address))
