"""DurableLog: the same specification run against every backend (embedded SQLite and NATS JetStream).

Offsets start at 1 and increase per topic; any offset can be replayed; each consumer group keeps its
own committed offset, durably, and ``poll`` reads from the one after it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import pytest
import sqlalchemy as sa

from actors.storage import DurableLog, JetStreamLog, LogEntry, SqliteLog, default_url
from protocols.errors import StorageError
from tests.support.services import NATS, require_service

OpenLog = Callable[[], DurableLog]


@pytest.fixture(params=["sqlite", pytest.param("jetstream", marks=pytest.mark.nats)])
def open_log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenLog]:
    """Opens a log on this test's own storage; every log it opened is closed at the end, and the
    JetStream streams and offsets bucket are deleted."""
    opened: list[DurableLog] = []
    prefix = f"PTRTEST_{uuid.uuid4().hex[:10]}"
    if request.param == "jetstream":
        require_service(*NATS)

    def open_one() -> DurableLog:
        if request.param == "jetstream":
            log: DurableLog = JetStreamLog(f"nats://{NATS[1]}:{NATS[2]}", stream_prefix=prefix)
        else:
            log = SqliteLog(default_url(tmp_path / "data"))
        opened.append(log)
        return log

    yield open_one
    for log in opened:
        log.close()
    if request.param == "jetstream":
        asyncio.run(_delete_streams_starting_with(prefix))
        leftover = [thread.name for thread in threading.enumerate() if prefix in thread.name]
        assert leftover == [], "a closed log left its event loop thread running"


async def _delete_streams_starting_with(prefix: str) -> None:
    nc = await nats.connect(f"nats://{NATS[1]}:{NATS[2]}")
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            name = info.config.name or ""
            if name.startswith(prefix) or name.startswith(f"KV_{prefix}"):
                await js.delete_stream(name)
    finally:
        await nc.close()


@pytest.fixture
def log(open_log: OpenLog) -> DurableLog:
    return open_log()


def _payloads(entries: list[LogEntry]) -> list[bytes]:
    return [entry.payload for entry in entries]


def _offsets(entries: list[LogEntry]) -> list[int]:
    return [entry.offset for entry in entries]


def test_offsets_start_at_one_and_increase_per_topic(log: DurableLog) -> None:
    assert log.append("orders", [b"a", b"b", b"c"]) == [1, 2, 3]
    assert log.append("orders", [b"d"]) == [4]
    assert log.append("audit", [b"x", b"y"]) == [1, 2]
    assert log.end_offset("orders") == 4
    assert log.end_offset("audit") == 2


def test_read_replays_payloads_in_order_from_any_offset(log: DurableLog) -> None:
    log.append("orders", [b"a", b"b", b"c", b"d", b"e"])
    assert _payloads(log.read("orders", 1, 100)) == [b"a", b"b", b"c", b"d", b"e"]
    replay = log.read("orders", 3, 100)
    assert _offsets(replay) == [3, 4, 5]
    assert _payloads(replay) == [b"c", b"d", b"e"]
    assert _offsets(log.read("orders", 2, 2)) == [2, 3]


def test_a_long_read_returns_every_entry_in_order(log: DurableLog) -> None:
    payloads = [str(i).encode() for i in range(1, 601)]  # JetStream reads in windows of 256
    assert log.append("orders", payloads) == list(range(1, 601))
    entries = log.read("orders", 2, 1000)
    assert _offsets(entries) == list(range(2, 601))
    assert _payloads(entries) == payloads[1:]
    assert _offsets(log.read("orders", 100, 300)) == list(range(100, 400))


def test_binary_and_empty_payloads_round_trip(log: DurableLog) -> None:
    payloads = [b"", b"\x00\xff\x00", bytes(range(256)) * 40]
    log.append("raw", payloads)
    assert _payloads(log.read("raw", 1, 10)) == payloads


def test_reading_past_the_end_or_an_unknown_topic_is_empty(log: DurableLog) -> None:
    log.append("orders", [b"a", b"b"])
    assert log.read("orders", 3, 10) == []
    assert log.read("orders", 1000, 10) == []
    assert log.read("never-written", 1, 10) == []
    assert log.end_offset("never-written") == 0


def test_entries_carry_the_time_they_were_appended(log: DurableLog) -> None:
    before = time.time()
    log.append("orders", [b"a"])
    after = time.time()
    (entry,) = log.read("orders", 1, 1)
    assert before - 1.0 <= entry.timestamp <= after + 1.0  # the server's clock may differ slightly


def test_poll_starts_at_the_beginning_and_repeats_until_commit(log: DurableLog) -> None:
    log.append("orders", [b"a", b"b", b"c"])
    assert log.committed("billing", "orders") == 0
    assert _offsets(log.poll("billing", "orders", 2)) == [1, 2]
    assert _offsets(log.poll("billing", "orders", 2)) == [1, 2], "poll alone does not move the group"
    log.commit("billing", "orders", 2)
    assert log.committed("billing", "orders") == 2
    assert _payloads(log.poll("billing", "orders", 10)) == [b"c"]
    log.commit("billing", "orders", 3)
    assert log.poll("billing", "orders", 10) == []


def test_two_consumer_groups_keep_independent_offsets(log: DurableLog) -> None:
    log.append("orders", [b"a", b"b", b"c"])
    log.commit("billing", "orders", 3)
    log.commit("shipping", "orders", 1)
    assert log.committed("billing", "orders") == 3
    assert log.committed("shipping", "orders") == 1
    assert log.poll("billing", "orders", 10) == []
    assert _offsets(log.poll("shipping", "orders", 10)) == [2, 3]


def test_a_group_offset_is_kept_per_topic(log: DurableLog) -> None:
    log.append("orders", [b"a", b"b"])
    log.append("audit", [b"x", b"y"])
    log.commit("billing", "orders", 2)
    assert log.committed("billing", "audit") == 0
    assert _offsets(log.poll("billing", "audit", 10)) == [1, 2]


def test_committing_a_lower_offset_rewinds_the_group_for_replay(log: DurableLog) -> None:
    log.append("orders", [b"a", b"b", b"c"])
    log.commit("billing", "orders", 3)
    log.commit("billing", "orders", 0)
    assert _payloads(log.poll("billing", "orders", 10)) == [b"a", b"b", b"c"]


def test_committing_past_the_end_is_refused(log: DurableLog) -> None:
    log.append("orders", [b"a"])
    with pytest.raises(ValueError, match="ends at 1"):
        log.commit("billing", "orders", 2)
    assert log.committed("billing", "orders") == 0


def test_truncation_drops_the_oldest_entries_and_keeps_every_offset(log: DurableLog) -> None:
    log.append("t", [f"p{n}".encode() for n in range(1, 11)])
    log.commit("g", "t", 7)
    log.truncate("t", 6)
    assert [e.offset for e in log.read("t", 1, 100)] == [6, 7, 8, 9, 10]
    assert log.read("t", 6, 1)[0].payload == b"p6"
    assert (log.end_offset("t"), log.committed("g", "t")) == (10, 7)
    assert log.append("t", [b"p11"]) == [11], "offsets go on where they were"
    log.truncate("t", 3)  # below what is already gone: nothing changes
    assert [e.offset for e in log.poll("g", "t", 100)] == [8, 9, 10, 11]
    log.truncate("t", 12)  # everything
    assert log.read("t", 1, 100) == [] and log.end_offset("t") == 11
    with pytest.raises(ValueError, match="ends at 11"):
        log.truncate("t", 13)
    log.truncate("never-written", 1)  # nothing to drop, no error


def test_entries_and_committed_offsets_survive_reopening_the_log(open_log: OpenLog) -> None:
    first = open_log()
    first.append("orders", [b"a", b"b", b"c"])
    first.commit("billing", "orders", 2)
    first.close()

    reopened = open_log()
    assert reopened.committed("billing", "orders") == 2
    assert _payloads(reopened.poll("billing", "orders", 10)) == [b"c"]
    assert reopened.append("orders", [b"d"]) == [4]


def test_appending_nothing_stores_nothing(log: DurableLog) -> None:
    assert log.append("orders", []) == []
    assert log.end_offset("orders") == 0


@pytest.mark.parametrize("topic", ["", "a.b", "a b", "x" * 129, "*", "a>"])
def test_a_topic_name_every_backend_cannot_store_is_refused(log: DurableLog, topic: str) -> None:
    with pytest.raises(ValueError, match="topic"):
        log.append(topic, [b"a"])


def test_bad_arguments_are_refused_before_anything_is_stored(log: DurableLog) -> None:
    with pytest.raises(TypeError, match="payload 1"):
        log.append("orders", [b"a", "b"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="from_offset"):
        log.read("orders", 0, 10)
    with pytest.raises(ValueError, match="max_count"):
        log.read("orders", 1, 0)
    with pytest.raises(ValueError, match="group"):
        log.commit("bad.group", "orders", 0)
    assert log.end_offset("orders") == 0


def test_every_call_after_close_raises_storage_error(log: DurableLog) -> None:
    log.append("orders", [b"a"])
    log.close()
    log.close()
    with pytest.raises(StorageError, match="closed"):
        log.read("orders", 1, 1)
    with pytest.raises(StorageError, match="closed"):
        log.append("orders", [b"b"])


def test_sqlite_log_refuses_a_non_sqlite_engine() -> None:
    with pytest.raises(ValueError, match="sqlite"):
        SqliteLog(sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"))


@pytest.mark.nats
def test_jetstream_log_reports_an_unreachable_server_as_storage_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    with pytest.raises(StorageError, match="connect"):
        JetStreamLog(f"nats://127.0.0.1:{free_port}", stream_prefix="PTRTEST_unreachable", timeout=1.0)


@pytest.mark.nats
def test_jetstream_log_refuses_a_payload_over_the_server_limit_before_publishing() -> None:
    require_service(*NATS)
    log = JetStreamLog(f"nats://{NATS[1]}:{NATS[2]}", stream_prefix=f"PTRTEST_{uuid.uuid4().hex[:10]}")
    try:
        with pytest.raises(StorageError, match="at most"):
            log.append("big", [b"small", b"x" * (2 * 1024 * 1024)])
        assert log.end_offset("big") == 0
    finally:
        log.close()
        asyncio.run(_delete_streams_starting_with(log.stream_prefix))
