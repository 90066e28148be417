"""Faults of the outside world as data: which storage failures are the disk's or a server's (not a
bug), and when to try such a store again.

* ``storage_error`` turns a driver's exception into a ``StorageError`` whose reason is one line;
  disk full, a read-only file, a database that cannot be opened, a lock held past the busy timeout,
  a server that refuses or drops the connection become ``StorageUnavailableError``. Everything else
  (no such table, a constraint, a syntax error) stays a plain ``StorageError``: a bug, let it crash.
* ``StorageBackoff`` is what an actor keeps instead of crashing on ``StorageUnavailableError``: it
  refuses work with the reason and tries the store again after 0.1 s, 0.2 s, ... at most 2 s.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from actors.clock import backoff_delay
from protocols.errors import StorageError, StorageUnavailableError

__all__ = ["StorageBackoff", "storage_error", "unavailable_os_error"]

log = logging.getLogger("ptr.storage")

# sqlite3 raises OperationalError for faults of the file and for mistakes alike ("no such table"):
# only these messages are the outside world's.
_SQLITE_OUTSIDE = ("database or disk is full", "readonly database", "unable to open database",
                   "disk i/o error", "database is locked")
_OS_OUTSIDE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.ECONNREFUSED,
                         errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT})


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def storage_error(exc: SQLAlchemyError, what: str) -> StorageError:
    """The ``StorageError`` to raise for a failed database call; ``what`` says which call failed
    ("append of 2 payloads to topic 'x' failed"). An outside fault's message is ``what`` and the
    driver's first line, without SQLAlchemy's statement and parameters: it may reach a client."""
    if _is_outside(exc):
        original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        return StorageUnavailableError(f"{what}: {_first_line(original)}")
    return StorageError(f"{what}: {exc}")


def _is_outside(exc: SQLAlchemyError) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True  # the server dropped the connection (restart, shutdown, network)
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    module = type(exc.orig).__module__
    if module.startswith("sqlite3"):
        return any(text in str(exc.orig).lower() for text in _SQLITE_OUTSIDE)
    # psycopg raises OperationalError for a refused or dropped connection, a shutdown, a full disk,
    # and InterfaceError for a connection closed under it; its mistakes are ProgrammingError & co.
    return module.startswith("psycopg")


def unavailable_os_error(exc: OSError) -> bool:
    """Whether an ``OSError`` is the outside world's: no space, read-only, I/O, unreachable."""
    return exc.errno in _OS_OUTSIDE


class StorageBackoff:
    """Whether a store answers, and when to ask it again after it did not.

    ``attempt(step)`` runs ``step`` unless the store is backing off. If ``step`` raises
    ``StorageUnavailableError`` the store counts as unavailable (``reason`` says why) and is tried
    again after ``first_s``, doubled after each further failure up to ``max_s``; the first success
    ends the outage. Any other exception passes through: a bug crashes the actor. The clock is
    injected, so tests advance time instead of sleeping. ``name`` prefixes the two log lines an
    outage writes (begun, over).
    """

    def __init__(self, name: str, *, first_s: float = 0.1, max_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < first_s <= max_s:
            raise ValueError(f"backoff needs 0 < first_s <= max_s, got {first_s}, {max_s}")
        self.name = name
        self.first_s, self.max_s = first_s, max_s
        self._clock = clock
        self.reason: str | None = None   # None while the store answers
        self.failures = 0                # consecutive failed attempts
        self.outages = 0                 # outages begun
        self.retry_at = 0.0

    @property
    def available(self) -> bool:
        return self.reason is None

    def ready(self) -> bool:
        """True when a step may touch the store: it answers, or its backoff is over."""
        return self.reason is None or self._clock() >= self.retry_at

    def wait_s(self) -> float:
        """Seconds until ``ready``: 0 while the store answers or its backoff is over."""
        return 0.0 if self.reason is None else max(0.0, self.retry_at - self._clock())

    def attempt(self, step: Callable[[], object]) -> bool:
        """Run ``step`` if ``ready``; True if it ran to the end, False if the store is out."""
        if not self.ready():
            return False
        try:
            step()
        except StorageUnavailableError as exc:
            self.failed(str(exc))
            return False
        self.succeeded()
        return True

    def failed(self, reason: str) -> float:
        """Record a failed attempt; returns the delay before the next one."""
        if self.reason is None:
            self.outages += 1
            log.warning("%s: storage unavailable, refusing work and retrying: %s", self.name,
                        reason)
        self.reason = reason
        delay = backoff_delay(self.first_s, self.max_s, self.failures)
        self.failures += 1
        self.retry_at = self._clock() + delay
        return delay

    def succeeded(self) -> None:
        if self.reason is not None:
            log.warning("%s: storage available again after %d failed attempts", self.name,
                        self.failures)
        self.reason = None
        self.failures = 0
