"""ptr's exceptions: one base, each raised at one kind of place, each carrying its context.

    PtrError
    ├── SpecError                 a system, supervisor or child spec is impossible (names the child)
    ├── InvalidMessageError       bytes or a dict at an edge do not make a valid message (names the field)
    ├── RequestTimeoutError       a request got no reply within its timeout (names target and message kind)
    ├── RequestFailedError        the target of a request crashed handling it (actors.behaviour)
    ├── ChaosInjectedError        raised inside an actor by ``ptr chaos crash`` (actors.behaviour)
    ├── MailboxOverflowError      a light actor's mailbox overflowed under policy crash (actors.light)
    ├── LobbyRefusedError         the game lobby refuses a request: 4xx with a reason (protocols.game)
    │   └── InvalidTokenError     a game session token is forged, expired or malformed
    ├── RoomCrashedError          a game room's tick raised: the room restarts from its checkpoint
    ├── NoSuchNameError           a registered name resolves to no live actor
    ├── ActorSystemError          the Thespian actor system could not be started, reached, or stopped
    ├── ConfigError               a user's configuration (file or flag) is invalid
    ├── SaturatedError            an edge cannot take more: its bridge is full, or the tree behind it is
    │                             saturated or restarting; answered 503 + Retry-After (actors.edges.bridge)
    ├── BridgeClosedError         an edge's bridge is closed: its actor is stopping (actors.edges.bridge)
    ├── UnavailableError          the tree refuses a request for now, with a reason (a store it needs is
    │                             unavailable); an HTTP edge answers 503 + Retry-After (actors.edges.http_edge)
    └── StorageError              a database, blob or log operation failed in a way the caller must see
        ├── StorageUnavailableError  disk full, read-only file, server gone: the outside world's
        │                         fault, not a bug; refuse and retry (also an UnavailableError)
        ├── BlobLinkError         a string is not a blob link (also a ValueError; actors.storage.blobs)
        ├── BlobNotFoundError     a well-formed link names no stored blob (also a KeyError)
        └── BlobCorruptedError    a blob's bytes no longer hash to its link (verified reads)

Failures *inside* the actor tree are not exceptions but exit reasons (see ``protocols.supervision``):
an actor that raises exits, and its supervisor decides what happens next.
"""

from __future__ import annotations

from typing import Any


class PtrError(Exception):
    """Base of every exception ptr raises to code outside the actor tree."""


class SpecError(PtrError):
    """A spec is invalid; raised when the spec is built, never later at run time."""

    def __init__(self, message: str, *, child_id: str | None = None) -> None:
        self.child_id = child_id
        super().__init__(f"{message} (child {child_id!r})" if child_id else message)


class InvalidMessageError(PtrError):
    """Input at an edge does not decode into a valid message.

    ``errors`` lists ``{"field": dotted.path, "error": text}``; edges turn it into an HTTP 400 body
    or a counted UDP drop.
    """

    def __init__(self, message: str, *, kind: str | None = None,
                 errors: list[dict[str, Any]] | None = None, status: int = 400) -> None:
        self.kind = kind
        self.errors = errors or []
        self.status = status  # the HTTP status an edge answers: 400, or 404/409/422 for content
        super().__init__(message)

    def as_json(self) -> dict[str, Any]:
        return {"error": str(self), "kind": self.kind, "fields": self.errors}


class RequestTimeoutError(PtrError):
    """A request/reply exchange timed out. Inside an actor, unhandled, it crashes the caller (OTP)."""

    def __init__(self, target: str, kind: str, timeout_s: float) -> None:
        self.target = target
        self.kind = kind
        self.timeout_s = timeout_s
        super().__init__(f"no reply from {target} to {kind} within {timeout_s:g} s")


class NoSuchNameError(PtrError):
    """A name is not registered (not started yet, or its actor is down and not restarted)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no live actor is registered as {name!r}")


class ActorSystemError(PtrError):
    """The actor system could not be started, reached or shut down."""


class ConfigError(PtrError):
    """A configuration file or flag is invalid; the CLI prints it as one line."""


class UnavailableError(PtrError):
    """A request cannot be served now for a reason outside the program (a store is unavailable);
    the sender may retry it later. An HTTP edge answers 503 with ``Retry-After`` and the reason."""


class StorageError(PtrError):
    """A storage backend failed in a way the caller must handle."""


class StorageUnavailableError(StorageError, UnavailableError):
    """A store is out of reach for a reason of the outside world: the disk is full, the file is
    read-only, the database server or NATS is down or unreachable. Raised by ``actors.storage``
    (``storage_error`` classifies driver errors). Not a bug: an actor refuses work with the reason
    and retries with backoff (``StorageBackoff``) instead of crashing."""
