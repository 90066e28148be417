"""The log's sequenced append (Kafka's idempotent producer, one sequence per key): a retry or an
older sequence is not appended, keys stay in order; SQLite exactly, JetStream by message id."""

from __future__ import annotations

import uuid

import pytest

from actors.storage import JetStreamLog, SqliteLog
from tests.support.services import NATS, require_service


def test_sqlite_appends_each_key_and_seq_once_and_in_order(tmp_path) -> None:
    with SqliteLog(f"sqlite:///{tmp_path / 'log.db'}") as log:
        first = log.append_sequenced("t", [("a", 1, b"a1"), ("b", 1, b"b1"), ("a", 2, b"a2")])
        assert first == [1, 2, 3]
        again = log.append_sequenced("t", [("a", 2, b"a2"), ("a", 3, b"a3"), ("b", 1, b"b1"),
                                          ("a", 3, b"a3-again"), ("a", 1, b"old")])
        assert again == [None, 4, None, None, None]
        assert [e.payload for e in log.read("t", 1, 10)] == [b"a1", b"b1", b"a2", b"a3"]
        assert log.append_sequenced("other", [("a", 1, b"x")]) == [1]  # sequences are per topic
        with pytest.raises(ValueError, match="seq >= 1"):
            log.append_sequenced("t", [("a", 0, b"x")])


def test_two_logs_on_one_file_never_store_a_sequence_twice(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with SqliteLog(url) as one, SqliteLog(url) as two:
        for seq in range(1, 50):
            one.append_sequenced("t", [("k", seq, b"1")])
            two.append_sequenced("t", [("k", seq, b"2"), ("k", seq + 1, b"2")])
        payload_seqs = len(one.read("t", 1, 1000))
        assert payload_seqs == 50


def test_jetstream_drops_a_retried_sequence() -> None:
    require_service(*NATS)
    prefix = f"PTR_GRID_T{uuid.uuid4().hex[:8].upper()}"
    log = JetStreamLog("nats://127.0.0.1:4222", stream_prefix=prefix)
    try:
        assert log.append_sequenced("r", [("a", 1, b"a1"), ("a", 2, b"a2")]) == [1, 2]
        assert log.append_sequenced("r", [("a", 2, b"a2"), ("a", 3, b"a3")]) == [None, 3]
        assert [e.payload for e in log.read("r", 1, 10)] == [b"a1", b"a2", b"a3"]
    finally:
        log._run("cleanup", log._js.delete_stream(log.stream_name("r")))
        log._run("cleanup", log._js.delete_key_value(log.offsets_bucket))
        log.close()
