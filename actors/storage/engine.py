"""SQLAlchemy engines for ptr's two databases: SQLite embedded in the process, PostgreSQL as a server.

SQLite is tuned for many small, concurrent, durable writes (WAL, synchronous=NORMAL, a busy timeout);
PostgreSQL needs nothing beyond the psycopg 3 driver and a pre-ping for restarted servers.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from protocols.errors import ConfigError

SQLITE_BUSY_TIMEOUT_MS = 5_000
"""How long a SQLite writer waits for another writer's lock before failing with "database is locked"."""


def default_url(data_dir: str | Path = "var") -> str:
    """The embedded database URL: ``sqlite:///<data_dir>/ptr.db`` (relative dirs resolve at connect)."""
    return f"sqlite:///{Path(data_dir) / 'ptr.db'}"


DEFAULT_URL = default_url()
"""``sqlite:///var/ptr.db``: where ptr keeps its data when nothing is configured."""


SQLITE_SYNCHRONOUS = ("NORMAL", "FULL", "EXTRA")


def make_engine(url: str, *, echo: bool = False, synchronous: str = "NORMAL") -> sa.Engine:
    """Build an engine for a ``sqlite:///path`` or ``postgresql[+psycopg]://...`` URL.

    A SQLite file's parent directories are created, so a fresh data dir needs no set-up step.
    ``postgresql://`` means psycopg 3 (the installed driver), not SQLAlchemy's psycopg2 default.
    ``synchronous`` (SQLite only): ``FULL`` fsyncs the WAL at every commit, so a commit survives
    an OS crash or power cut, not only a process crash (``NORMAL``).
    Raises ConfigError for a URL that does not parse or names another database.
    """
    parsed = _parse(url)
    if synchronous not in SQLITE_SYNCHRONOUS:
        raise ConfigError(f"synchronous={synchronous!r}: one of {', '.join(SQLITE_SYNCHRONOUS)}")
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, echo, synchronous)
    return sa.create_engine(parsed, echo=echo, pool_pre_ping=True)


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"database URL {url!r} does not parse: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"database URL {parsed.render_as_string(hide_password=True)!r} names {backend!r}; "
            "ptr supports sqlite:/// and postgresql+psycopg://"
        )
    return parsed


def _sqlite_engine(url: URL, echo: bool, synchronous: str = "NORMAL") -> sa.Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file:")
    if not in_memory:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, echo=echo)
    sa.event.listen(engine, "connect", _tune_sqlite_connection)
    if synchronous != "NORMAL":
        sa.event.listen(engine, "connect", functools.partial(_set_synchronous, synchronous))
    return engine


def _set_synchronous(level: str, dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA synchronous={level}")
    finally:
        cursor.close()


def _tune_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    """Per-connection pragmas: WAL lets readers run beside the writer; NORMAL syncs at checkpoints,
    which under WAL still survives a process crash (only an OS crash may lose the last commits)."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()
