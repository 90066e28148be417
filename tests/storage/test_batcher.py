"""The Batcher: flushes on size or age, writes idempotently, acknowledges only after the commit, and a
kill -9 mid-stream loses no acknowledged record."""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from actors.storage.batcher import READINGS_TABLE, Batcher
from actors.edges import Answer, Route
from actors.edges.http_edge import HttpEdgeActor
from actors.storage import make_engine
from protocols.edges import EdgeInfo, GetEdgeInfo, Refusal
from protocols.storage import FlushNow, GetBatcherStats, SensorReading, Stored, StoreRows
from protocols.supervision import ChildInfo, ExitKind
from supervisors.spec import ChildSpec, SupervisorSpec
from systems.runtime import ActorRuntime


def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'records.db'}"


def batcher_spec(url: str, **args: Any) -> SupervisorSpec:
    return SupervisorSpec(intensity=10, children=[
        ChildSpec("batcher", Batcher, {"storage_url": url, "table": READINGS_TABLE, **args},
                  name="batcher")])


def rows(prefix: str, count: int) -> list[dict[str, Any]]:
    return [{"message_id": f"{prefix}-{n}", "sensor": "s1", "value": float(n)}
            for n in range(count)]


def stored_ids(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return [r[0] for r in connection.execute(sa.text("SELECT message_id FROM readings"))]
    finally:
        engine.dispose()


def child(rt: ActorRuntime, child_id: str) -> ChildInfo:
    return next(c for c in rt.which_children().children if c.child_id == child_id)


# --- flushing and acknowledging ----------------------------------------------------------------

def test_a_full_buffer_is_flushed_at_once_and_acknowledged_after_its_commit(make_runtime,
                                                                           tmp_path) -> None:
    url = db_url(tmp_path)
    rt = make_runtime(batcher_spec(url, max_rows=10, max_age_s=60), base="simple")
    answer = rt.ask("batcher", StoreRows(rows=rows("a", 10)))
    assert answer == Stored(records=10)  # an hour-long age: only the size can have flushed it
    assert sorted(stored_ids(url)) == sorted(r["message_id"] for r in rows("a", 10))


def test_a_partial_buffer_waits_for_its_age_then_is_flushed(make_runtime, tmp_path) -> None:
    url = db_url(tmp_path)
    rt = make_runtime(batcher_spec(url, max_rows=1000, max_age_s=0.1), base="simple")
    began = time.monotonic()
    assert rt.ask("batcher", StoreRows(rows=rows("b", 3))) == Stored(records=3)
    assert time.monotonic() - began >= 0.1
    assert len(stored_ids(url)) == 3
    assert rt.ask("batcher", GetBatcherStats()).flushes == 1


def test_senders_in_one_flush_are_each_acknowledged_after_the_one_commit(make_runtime,
                                                                          tmp_path) -> None:
    url = db_url(tmp_path)
    rt = make_runtime(batcher_spec(url, max_rows=1000, max_age_s=60), base="simple")
    rt.tell("batcher", StoreRows(rows=rows("early", 5)))
    rt.wait_for(lambda: rt.ask("batcher", GetBatcherStats()).buffered_rows == 5)
    assert stored_ids(url) == []  # buffered, not committed, not acknowledged
    rt.tell("batcher", FlushNow())
    rt.wait_for(lambda: rt.ask("batcher", GetBatcherStats()).flushes == 1)
    assert len(stored_ids(url)) == 5


def test_a_retried_batch_leaves_no_duplicate(make_runtime, tmp_path) -> None:
    url = db_url(tmp_path)
    rt = make_runtime(batcher_spec(url, max_rows=4), base="simple")
    batch = StoreRows(rows=rows("c", 4))
    assert rt.ask("batcher", batch) == Stored(records=4)
    assert rt.ask("batcher", batch) == Stored(records=4)  # the retry is acknowledged too
    assert sorted(stored_ids(url)) == sorted(r["message_id"] for r in batch.rows)
    stats = rt.ask("batcher", GetBatcherStats())
    assert (stats.rows_written, stats.rows_new) == (8, 4)


def test_records_that_do_not_fit_the_table_are_refused_and_harm_no_other_sender(make_runtime,
                                                                                 tmp_path) -> None:
    url = db_url(tmp_path)
    rt = make_runtime(batcher_spec(url, max_rows=2), base="simple")
    bad = rt.ask("batcher", StoreRows(rows=[*rows("d", 1), {"message_id": "d-x", "colour": "red"}]))
    assert isinstance(bad, Refusal) and bad.reason == "invalid"
    assert bad.fields == [{"field": "1.colour", "error": "unknown column"}]
    no_id = rt.ask("batcher", StoreRows(rows=[{"sensor": "s1"}]))
    assert isinstance(no_id, Refusal) and no_id.fields[0]["field"] == "0.message_id"
    assert rt.ask("batcher", StoreRows(rows=rows("e", 2))) == Stored(records=2)
    assert sorted(stored_ids(url)) == ["e-0", "e-1"]


def test_a_graceful_stop_commits_what_is_buffered(make_runtime, tmp_path) -> None:
    url = db_url(tmp_path)
    rt = make_runtime(batcher_spec(url, max_rows=1000, max_age_s=60), base="simple")
    rt.tell("batcher", StoreRows(rows=rows("f", 7)))
    rt.wait_for(lambda: rt.ask("batcher", GetBatcherStats()).buffered_rows == 7)
    rt.shutdown()
    assert len(stored_ids(url)) == 7


def test_a_failed_write_refuses_its_senders_and_the_restart_makes_a_new_engine(make_runtime,
                                                                                tmp_path) -> None:
    url = db_url(tmp_path)
    rt = make_runtime(batcher_spec(url, max_rows=1), base="simple")
    assert rt.ask("batcher", StoreRows(rows=rows("g", 1))) == Stored(records=1)
    engine = make_engine(url)
    with engine.begin() as connection:  # the database loses the table under the Batcher
        connection.execute(sa.text("DROP TABLE readings"))
    engine.dispose()
    refused = rt.ask("batcher", StoreRows(rows=rows("h", 1)))
    assert isinstance(refused, Refusal) and refused.reason == "unavailable"
    info = rt.wait_for(lambda: (c := child(rt, "batcher")).restarts == 1 and
                       c.status == "running" and c)
    assert info.last_exit.exit_kind is ExitKind.ERROR
    assert info.last_exit.error_type == "StorageError"
    assert rt.ask("batcher", StoreRows(rows=rows("h", 1))) == Stored(records=1)
    assert stored_ids(url) == ["h-0"]


# --- kill -9 mid-stream ------------------------------------------------------------------------

class RetryingClient:
    """Threads posting batches of unique records over HTTP, each batch retried with the same ids
    until a 2xx, as a careful client would. ``acked`` holds the ids the server acknowledged."""

    def __init__(self, host: str, port: int, path: str, *, threads: int, batch: int) -> None:
        self.host, self.port, self.path, self.batch = host, port, path, batch
        self.acked: list[str] = []
        self.acked_batches = 0
        self.retries = 0
        self.errors: list[str] = []
        self.unexpected: list[int] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                         for n in range(threads)]

    def __enter__(self) -> RetryingClient:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    @property
    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def count(self) -> int:
        with self._lock:
            return self.acked_batches

    def _run(self, worker: int) -> None:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        deadline = time.monotonic() + 60
        seq = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            ids = [f"w{worker}-{seq}-{n}" for n in range(self.batch)]
            body = json.dumps([{"message_id": i, "sensor": f"s{worker}", "value": n}
                               for n, i in enumerate(ids)]).encode()
            while time.monotonic() < deadline:  # the batch in hand is finished even after stop
                try:
                    connection.request("POST", self.path, body,
                                       {"Content-Type": "application/json"})
                    response = connection.getresponse()
                    response.read()
                    status = response.status
                except (OSError, http.client.HTTPException) as exc:
                    status = 0
                    connection.close()
                    connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
                    with self._lock:
                        self.errors.append(type(exc).__name__)
                if 200 <= status < 300:
                    with self._lock:
                        self.acked.extend(ids)
                        self.acked_batches += 1
                    break
                with self._lock:
                    self.retries += 1
                    if 0 < status < 500:  # good records must never be refused
                        self.unexpected.append(status)
                        return
            seq += 1
        connection.close()


def edge_and_batcher_spec(url: str) -> SupervisorSpec:
    route = Route("POST", "/readings", list[SensorReading], Answer.REPLY, timeout_s=5)
    return SupervisorSpec(intensity=10, children=[
        ChildSpec("batcher", Batcher, {"storage_url": url, "table": READINGS_TABLE, "max_rows": 200,
                                       "max_age_s": 0.002}, name="batcher"),
        ChildSpec("http", HttpEdgeActor, {"routes": [route], "target": "batcher",
                                          "max_in_flight": 64}, name="http-edge"),
    ])


@pytest.mark.multiproc
def test_kill_9_of_the_batcher_mid_stream_loses_no_acknowledged_record(make_runtime,
                                                                       tmp_path) -> None:
    url = db_url(tmp_path)
    rt = make_runtime(edge_and_batcher_spec(url), base="multiproc")
    edge: EdgeInfo = rt.ask("http-edge", GetEdgeInfo())
    victim = child(rt, "batcher")
    with RetryingClient(edge.host, edge.port, "/readings", threads=3, batch=25) as client:
        rt.wait_for(lambda: client.count() >= 30, 20, what="a stream of acknowledged batches")
        os.kill(victim.pid, signal.SIGKILL)
        replacement = rt.wait_for(lambda: (c := child(rt, "batcher")).status == "running" and
                                  c.pid != victim.pid and c, 20, what="batcher restarted")
        after_kill = client.count()
        rt.wait_for(lambda: client.count() >= after_kill + 30, 20,
                    what="acknowledged batches after the restart")
    assert not client.alive and client.unexpected == []
    assert replacement.restarts == 1 and replacement.last_exit.exit_kind is ExitKind.KILLED
    stored = stored_ids(url)
    assert len(stored) == len(set(stored))
    assert sorted(stored) == sorted(client.acked)  # every acknowledged record, exactly once
    assert len(client.acked) == len(set(client.acked)) >= 60 * 25


def test_an_unavailable_database_refuses_its_senders_and_costs_no_restart(make_runtime,
                                                                         tmp_path) -> None:
    url = db_url(tmp_path)
    rt = make_runtime(batcher_spec(url, max_rows=1), base="simple")
    assert rt.ask("batcher", StoreRows(rows=rows("i", 1))) == Stored(records=1)
    rt.shutdown()
    path = tmp_path / "records.db"   # the same database, now read-only (as a remounted disk)
    rt = make_runtime(batcher_spec(f"sqlite:///file:{path}?mode=ro&uri=true", max_rows=1),
                      base="simple")
    refused = rt.ask("batcher", StoreRows(rows=rows("j", 1)))
    assert isinstance(refused, Refusal) and refused.reason == "unavailable"
    assert "readonly database" in refused.error
    assert rt.ask("batcher", GetBatcherStats()).incarnation == 1
    assert child(rt, "batcher").restarts == 0
    assert stored_ids(url) == ["i-0"]
