"""Faults of the outside world as data: which storage failures are ``StorageUnavailableError`` (the
disk's, a server's) and which stay plain ``StorageError`` (a bug), and ``StorageBackoff`` driven by
a fake clock."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from actors.storage import (
    RecordTable,
    RowWriter,
    SqliteLog,
    StorageBackoff,
    make_engine,
    storage_error,
)
from protocols.errors import StorageError, StorageUnavailableError, UnavailableError
from tests.support.services import POSTGRES, require_service

TABLE = RecordTable("faults", {"value": sa.Float()})


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _read_only(tmp_path: Path) -> sa.Engine:
    """A SQLite database opened read-only (root ignores file modes, so the URI says it)."""
    path = tmp_path / "ro.db"
    writer = RowWriter(make_engine(f"sqlite:///{path}"), TABLE)
    writer.create()
    writer.engine.dispose()
    return sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")


def test_a_read_only_database_is_unavailable_not_a_bug(tmp_path: Path) -> None:
    with pytest.raises(StorageUnavailableError, match="readonly database") as caught:
        RowWriter(_read_only(tmp_path), TABLE).write_batch([{"message_id": "a", "value": 1.0}])
    assert isinstance(caught.value, UnavailableError)
    assert "INSERT" not in str(caught.value)  # one line a client may see, not the statement


def test_a_missing_table_is_still_a_bug(tmp_path: Path) -> None:
    writer = RowWriter(make_engine(f"sqlite:///{tmp_path / 'x.db'}"), TABLE)
    with pytest.raises(StorageError) as caught:
        writer.write_batch([{"message_id": "a", "value": 1.0}])
    assert not isinstance(caught.value, StorageUnavailableError)
    assert "no such table" in str(caught.value)


def test_a_log_in_a_file_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    log = SqliteLog(f"sqlite:///{tmp_path / 'log.db'}")
    (tmp_path / "log.db").unlink()
    (tmp_path / "log.db").mkdir()  # the file is gone and its name is a directory now
    log.engine.dispose()
    with pytest.raises(StorageUnavailableError, match="unable to open database"):
        log.append("t", [b"x"])
    log.close()


@pytest.mark.postgres
def test_a_postgresql_server_that_refuses_connections_is_unavailable() -> None:
    require_service(*POSTGRES)  # the driver and the URL shape of the real server's tests
    engine = make_engine("postgresql://postgres@127.0.0.1:1/test")  # nothing listens on port 1
    with pytest.raises(StorageUnavailableError, match="failed"):
        RowWriter(engine, TABLE).write_batch([{"message_id": "a", "value": 1.0}])


def test_sqlite_full_is_recognised_by_its_message() -> None:
    full = OperationalError("INSERT ...", {}, sqlite3.OperationalError("database or disk is full"))
    syntax = OperationalError("SELEC", {}, sqlite3.OperationalError('near "SELEC": syntax error'))
    assert isinstance(storage_error(full, "append failed"), StorageUnavailableError)
    assert str(storage_error(full, "append failed")) == "append failed: database or disk is full"
    assert type(storage_error(syntax, "query failed")) is StorageError


# --- the backoff ----------------------------------------------------------------------------------

def _fail() -> None:
    raise StorageUnavailableError("append failed: database or disk is full")


def _bug() -> None:
    raise StorageError("no such table: x")


def test_backoff_doubles_from_a_tenth_of_a_second_to_two_seconds() -> None:
    clock = FakeClock()
    backoff = StorageBackoff("t", clock=clock)
    assert backoff.attempt(lambda: None) and backoff.available
    delays = []
    for _ in range(7):
        clock.now = backoff.retry_at
        assert backoff.attempt(_fail) is False
        delays.append(round(backoff.retry_at - clock.now, 3))
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert backoff.reason == "append failed: database or disk is full" and backoff.outages == 1


def test_backoff_refuses_without_trying_until_its_time_then_one_success_ends_the_outage() -> None:
    clock = FakeClock()
    backoff = StorageBackoff("t", clock=clock)
    backoff.attempt(_fail)
    tried: list[int] = []
    assert backoff.attempt(lambda: tried.append(1)) is False and tried == []  # not yet
    assert backoff.wait_s() == pytest.approx(0.1)
    clock.now += 0.1
    assert backoff.attempt(lambda: tried.append(1)) is True and tried == [1]
    assert backoff.available and backoff.failures == 0 and backoff.wait_s() == 0
    backoff.attempt(_fail)
    assert backoff.outages == 2 and backoff.wait_s() == pytest.approx(0.1)  # starts over


def test_backoff_lets_a_bug_through() -> None:
    backoff = StorageBackoff("t", clock=FakeClock())
    with pytest.raises(StorageError, match="no such table"):
        backoff.attempt(_bug)
    with pytest.raises(KeyError):
        backoff.attempt(lambda: {"a": 1}["x"])
    assert backoff.available
