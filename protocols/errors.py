"""ptr's exceptions: one base, each raised at one kind of place, each carrying its context.

    PtrError
    ├── SpecError                 a system, supervisor or child spec is impossible (names the child)
    ├── RefusedError              the tree refuses a request: a ``RefusalKind`` (invalid, not_found,
    │   │                         conflict, ...) and a reason; each edge maps the kind to its wire
    │   └── InvalidMessageError   bytes or a dict at an edge do not make a valid message (names the field)
    ├── RequestTimeoutError       a request got no reply within its timeout (names target and message kind)
    ├── RequestFailedError        the target of a request crashed handling it (in the caller, and from
    │                             ``ActorRuntime.ask``)
    ├── ChaosInjectedError        raised inside an actor by ``ptr chaos crash``
    ├── NoSuchNameError           a registered name resolves to no live actor
    ├── ActorSystemError          the Thespian actor system could not be started, reached, or stopped
    ├── ConfigError               a user's configuration (file or flag) is invalid
    ├── FrameRefusedError         a frame between processes lacked the system's MAC: dropped, counted
    ├── SaturatedError            an edge cannot take more: its bridge is full, or the tree behind it is
    │                             saturated or restarting; answered 503 + Retry-After
    ├── BridgeClosedError         an edge's bridge is closed: its actor is stopping
    ├── UnavailableError          the tree refuses a request for now, with a reason (a store it needs is
    │                             unavailable); refusal kind ``unavailable`` at every edge
    └── StorageError              a database, blob or log operation failed in a way the caller must see
        ├── StorageUnavailableError  disk full, read-only file, server gone: the outside world's
        │                         fault, not a bug; refuse and retry (also an UnavailableError)
        ├── BlobLinkError         a string is not a blob link (also a ValueError)
        ├── BlobNotFoundError     a well-formed link names no stored blob (also a KeyError)
        └── BlobCorruptedError    a blob's bytes no longer hash to its link (verified reads)

(``MailboxOverflowError``, a light actor's mailbox overflowing under policy crash, is still defined
in ``actors.light``.) Each system keeps its own small tree under ``PtrError``, drawn in its
``protocols`` module (``protocols.game``, ``protocols.smart_home``); ``tests/protocols/
test_errors.py`` checks every drawing against the code.

Failures *inside* the actor tree are not exceptions but exit reasons (see ``protocols.supervision``):
an actor that raises exits, and its supervisor decides what happens next.

Refusals carry a ``RefusalKind``, never a wire code: the HTTP edge maps kinds to statuses
(``actors.edges.http_app.HTTP_STATUS``), the game's UDP server to its reject codes, MQTT to acks.
"""

from __future__ import annotations

import enum
from typing import Any


class RefusalKind(enum.StrEnum):
    """Why a request was not carried out, in words every edge maps to its own wire."""

    INVALID = "invalid"            # the sender's content is wrong (``fields`` says where)
    UNAUTHORIZED = "unauthorized"  # who the sender is is unknown: bad credentials or token
    FORBIDDEN = "forbidden"        # the sender is known (or placed) and not allowed
    NOT_FOUND = "not_found"        # what the request names does not exist
    CONFLICT = "conflict"          # it contradicts what exists (a name taken)
    TOO_LARGE = "too_large"        # the request is over a size limit
    UNSUPPORTED = "unsupported"    # the content is of a type the receiver does not take
    TOO_MANY = "too_many"          # the sender is over its rate; retry after a while
    UNAVAILABLE = "unavailable"    # the tree cannot serve it now (a store out, saturated)
    TIMEOUT = "timeout"            # the tree did not answer in time


class PtrError(Exception):
    """Base of every exception ptr raises to code outside the actor tree."""


class RefusedError(PtrError):
    """A request is refused for a reason its sender must see: ``refusal`` is the kind, ``fields``
    the ``{"field", "error"}`` pairs at fault, ``retry_after_s`` when retrying later may work.
    Raised by handlers behind an edge; the edge answers it (HTTP: the status of the kind)."""

    refusal: RefusalKind = RefusalKind.INVALID

    def __init__(self, message: str, *, refusal: RefusalKind | str | None = None,
                 fields: list[dict[str, Any]] | None = None,
                 retry_after_s: float | None = None, **context: Any) -> None:
        if refusal is not None:
            self.refusal = RefusalKind(refusal)
        self.fields = fields or []
        self.retry_after_s = retry_after_s
        self.context = context
        super().__init__(message)

    def as_json(self) -> dict[str, Any]:
        """The JSON error body every HTTP edge answers with."""
        body: dict[str, Any] = {"error": str(self), "refusal": self.refusal.value}
        if self.fields:
            body["fields"] = self.fields
        if self.retry_after_s is not None:
            body["retry_after_s"] = self.retry_after_s
        return {**self.context, **body}


class SpecError(PtrError):
    """A spec is invalid; raised when the spec is built, never later at run time."""

    def __init__(self, message: str, *, child_id: str | None = None) -> None:
        self.child_id = child_id
        super().__init__(f"{message} (child {child_id!r})" if child_id else message)


class InvalidMessageError(RefusedError):
    """Input at an edge does not decode into a valid message (refusal kind ``invalid``).

    ``errors`` lists ``{"field": dotted.path, "error": text}``; edges turn it into an HTTP 400 body
    or a counted UDP drop.
    """

    def __init__(self, message: str, *, kind: str | None = None,
                 errors: list[dict[str, Any]] | None = None) -> None:
        self.kind = kind
        super().__init__(message, refusal=RefusalKind.INVALID, fields=errors or [])

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.fields

    def as_json(self) -> dict[str, Any]:
        return {"error": str(self), "refusal": self.refusal.value, "kind": self.kind,
                "fields": self.fields}


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


class RequestFailedError(PtrError):
    """The target of a request crashed while handling it: raised in the requesting actor (which
    then crashes, as an unhandled OTP call does) and by ``ActorRuntime.ask``."""


class ChaosInjectedError(PtrError):
    """Raised inside an actor by ``ptr chaos crash``."""


class SaturatedError(PtrError):
    """Raised by an edge bridge's ``submit`` when ``limit`` items are already in flight.

    It is back-pressure, not a fault: the HTTP edge turns it into 503 with ``Retry-After``.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"edge bridge saturated: {limit} items already in flight")


class BridgeClosedError(PtrError):
    """Raised by an edge bridge's ``submit`` after ``close``, and into every waiter the closing
    left unanswered."""


class FrameRefusedError(PtrError):
    """A frame received between processes did not carry the system's MAC: it was not sent by a
    holder of the cookie. Raised inside Thespian's transport, which drops the frame."""


class BlobLinkError(StorageError, ValueError):
    """A string is not a blob link (``blob:sha256:`` and 64 lowercase hex digits)."""

    def __init__(self, link: object) -> None:
        self.link = link
        super().__init__(f"{link!r} is not a blob link (blob:sha256:<64 lowercase hex digits>)")


class BlobNotFoundError(StorageError, KeyError):
    """A well-formed link names no blob in this store. Also a KeyError, as for a missing mapping
    key."""

    def __init__(self, link: str, root: object) -> None:
        self.link = link
        super().__init__(f"no blob {link} in {root}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class BlobCorruptedError(StorageError):
    """A blob's bytes no longer hash to its link (disk fault or tampering); raised by verified
    reads."""

    def __init__(self, link: str, actual: str) -> None:
        self.link = link
        self.actual = actual
        super().__init__(f"blob {link} now hashes to sha256:{actual}")
