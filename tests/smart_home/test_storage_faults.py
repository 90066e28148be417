"""Storage faults of the outside world are ridden out, not crashed on.

Each test runs the smart home in broker mode on multiprocTCPBase, feeds it batches of readings over
HTTPS from client threads that retry a refused batch with the same ids (as a sensor does), breaks
its storage under that load, mends it, and checks:

* while broken, what cannot be persisted is refused: 503 with ``Retry-After`` and a JSON reason;
* within 10 s of the repair a reading is acknowledged again (200), with no restart by hand;
* every acknowledged reading is in the database exactly once (and, where appends are atomic,
  every analyzer counted each stored reading exactly once);
* nothing crashed: every actor has the OS process it had before (the HTTPS edges included), no
  child restarted, so no supervisor spent restart intensity, and the root is still up.

The faults: ``var/`` on a small tmpfs filled to ENOSPC (SQLite "database or disk is full"; with
MQTT readings held unacknowledged meanwhile), PostgreSQL stopped under the database (and before the
house starts), NATS JetStream killed under the broker. Also Mosquitto stopped and started: the MQTT
edge reconnects without a restart. Each test starts whatever it stopped again, whatever happens.
"""

from __future__ import annotations

import asyncio
import errno
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nats
import pytest
import sqlalchemy as sa

from systems.smart_home import INGEST, MQTT_EDGE
from protocols.smart_home import KINDS, GetIngestStats, GetMqttStats, IngestStats, MqttStats
from systems.runtime import ActorRuntime
from tests.support.services import MOSQUITTO, NATS, POSTGRES, require_service
from tests.support.smart_home import Publisher
from tests.support.smart_home import SENSOR_OF, Home, reading, start_home

pytestmark = pytest.mark.multiproc

RECOVERY_S = 10.0  # a reading is acknowledged again this soon after the storage is back


# --- the load: sensors that retry what was refused ---------------------------------------------

class Fleet:
    """Client threads posting batches of readings to ``/readings/batch`` over HTTPS, each batch
    retried with the same ids until it is acknowledged. ``acked`` holds the database keys of what
    was acknowledged (200), ``refusals`` each 503's ``Retry-After`` and JSON body, ``unexpected``
    any other answer or a lost connection."""

    def __init__(self, home: Home, *, threads: int = 3, batch: int = 50, id_length: int = 24,
                 pause_s: float = 0.02) -> None:
        url = urlsplit(home.ingest_url)
        self.host, self.port, self.context = url.hostname or "", url.port or 0, home.context
        self.batch, self.id_length, self.pause_s = batch, id_length, pause_s
        self.acked: list[str] = []
        self.refusals: list[tuple[str | None, dict[str, Any]]] = []
        self.unexpected: list[str] = []
        self.last_ack_at = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                         for n in range(threads)]

    def start(self) -> Fleet:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop making batches; each thread first gets the batch in hand acknowledged."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout_s)
        assert not any(t.is_alive() for t in self._threads), "a batch was never acknowledged"

    def acked_count(self) -> int:
        with self._lock:
            return len(self.acked)

    def refused_count(self) -> int:
        with self._lock:
            return len(self.refusals)

    def acked_since(self, moment: float) -> bool:
        with self._lock:
            return self.last_ack_at > moment

    def _batch(self, worker: int, seq: int) -> tuple[list[str], bytes]:
        readings = []
        for n in range(self.batch):
            kind = KINDS[n % len(KINDS)]
            message_id = f"w{worker}-{seq}-{n}-".ljust(self.id_length, "x")
            readings.append(reading(kind, message_id=message_id))
        keys = [f"{SENSOR_OF[r['kind']]}/{r['message_id']}" for r in readings]
        return keys, json.dumps(readings).encode()

    def _connect(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.context,
                                           timeout=20)

    def _run(self, worker: int) -> None:
        connection = self._connect()
        seq = 0
        give_up_at = float("inf")
        while not self._stop.is_set():
            keys, body = self._batch(worker, seq)
            while True:  # the batch in hand is finished even after stop
                try:
                    connection.request("POST", "/readings/batch", body,
                                       {"Content-Type": "application/json"})
                    response = connection.getresponse()
                    answer = response.read()
                    status = response.status
                except (OSError, http.client.HTTPException) as exc:
                    status, answer = 0, str(exc).encode()
                    connection.close()
                    connection = self._connect()
                with self._lock:
                    if status == 200:
                        self.acked.extend(keys)
                        self.last_ack_at = time.monotonic()
                        break
                    if status == 503:
                        self.refusals.append((response.getheader("Retry-After"),
                                              json.loads(answer)))
                    else:
                        self.unexpected.append(f"{status}: {answer[:200]!r}")
                if self._stop.is_set():
                    give_up_at = min(give_up_at, time.monotonic() + 20)
                    if time.monotonic() > give_up_at:
                        return
                time.sleep(0.05)  # a sensor's pause before it retries (pacing, not a wait)
            seq += 1
            time.sleep(self.pause_s)  # pacing the load
        connection.close()


# --- the tree: nothing restarted -----------------------------------------------------------------

def processes(rt: ActorRuntime) -> dict[str, tuple[int, int]]:
    """Every actor under the root, by path: (OS pid, restarts). Fails naming the last exit
    reason of any actor that is not running or has restarted."""
    out: dict[str, tuple[int, int]] = {}
    exits: dict[str, Any] = {}

    def walk(supervisor: Any, path: str) -> None:
        for child in rt.which_children(supervisor).children:
            child_path = f"{path}/{child.child_id}"
            out[child_path] = (child.pid, child.restarts)
            if child.status != "running" or child.restarts:
                exits[child_path] = (child.status, child.last_exit)
            if child.is_supervisor:
                walk(child.address, child_path)

    walk(rt.root, "")
    assert not exits, f"restarted or not running: {exits}"
    return out


def ingest_stats(home: Home) -> IngestStats:
    stats = home.rt.ask(INGEST, GetIngestStats(), 5)
    assert isinstance(stats, IngestStats)
    return stats


def mqtt_stats(home: Home) -> MqttStats:
    stats = home.rt.ask(MQTT_EDGE, GetMqttStats(), 5)
    assert isinstance(stats, MqttStats)
    return stats


# --- the scenario every test runs ----------------------------------------------------------------

def ride_out(home: Home, fleet: Fleet, break_storage: Callable[[], None],
             mend_storage: Callable[[], None], *, refused: bool,
             while_broken: Callable[[], None] = lambda: None) -> float:
    """Load, break, (see the refusals), mend, see a reading acknowledged again; returns how long
    after the repair that took. The fleet is stopped at the end, its last batches acknowledged."""
    before = processes(home.rt)
    fleet.start()
    try:
        home.rt.wait_for(lambda: fleet.acked_count() >= 300, 20, what="readings acknowledged")
        break_storage()
        if refused:
            home.rt.wait_for(fleet.refused_count, 20, what="a reading refused with 503")
        while_broken()
        mend_storage()
        mended_at = time.monotonic()
        home.rt.wait_for(lambda: fleet.acked_since(mended_at), 20,
                         what="a reading acknowledged after the repair")
        recovered_s = time.monotonic() - mended_at
        count = fleet.acked_count()
        home.rt.wait_for(lambda: fleet.acked_count() >= count + 200, 20,
                         what="readings acknowledged after the repair")
    finally:
        fleet.stop()
    assert fleet.unexpected == []
    assert processes(home.rt) == before  # same processes, no restart anywhere: no intensity spent
    return recovered_s


def assert_refusals_say_why(fleet: Fleet, *words: str) -> None:
    assert fleet.refusals
    for retry_after, body in fleet.refusals:
        assert retry_after is not None and int(retry_after) >= 1
        assert body["error"].startswith("storage unavailable: "), body
        assert body["retry_after_s"] == int(retry_after)
    reasons = " ".join(body["error"] for _, body in fleet.refusals).lower()
    assert any(word in reasons for word in words), reasons


def assert_every_acknowledged_reading_stored_once(home: Home, fleet: Fleet, *,
                                                  analyzers_exact: bool = True) -> None:
    home.rt.wait_for(lambda: home.writer_stats().lag_entries == 0, 30, what="writer caught up")
    stored = [key for (key,) in home.sql("SELECT message_id FROM smart_home_readings")]
    assert len(stored) == len(set(stored))
    acked = set(fleet.acked)
    assert len(acked) == len(fleet.acked)            # no batch was acknowledged twice
    missing = acked - set(stored)
    assert not missing, f"{len(missing)} acknowledged readings are not stored"
    if analyzers_exact:  # appends are atomic: a refused batch left nothing to count twice
        for kind in KINDS:
            in_db = dict(home.sql("SELECT sensor_id, COUNT(*) FROM smart_home_readings "
                                  "WHERE kind = :kind GROUP BY sensor_id", kind=kind))
            home.rt.wait_for(lambda k=kind, db=in_db: home.check(k).window_counts == db, 10,
                             what=f"the {kind} analyzer counted each stored reading once")


# --- 1. the disk fills up ------------------------------------------------------------------------

@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB tmpfs for the system's ``var/``; unmounted after the system stopped (request it
    before ``make_runtime``: fixtures are torn down in reverse)."""
    if os.geteuid() != 0:
        reason = "mounting a tmpfs needs root"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    var = tmp_path / "var"
    var.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m,mode=0700", "tmpfs", str(var)],
                   check=True)
    try:
        yield var
    finally:
        if subprocess.run(["umount", str(var)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(var)], check=True)


def fill(path: Path) -> None:
    """Write ``path`` until the file system says ENOSPC (big chunks, then small ones)."""
    with open(path, "wb", buffering=0) as filler:
        for chunk in (1 << 20, 4096, 512):
            block = b"\0" * chunk
            while True:
                try:
                    filler.write(block)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break


def test_a_full_disk_is_refused_with_503_and_served_again_once_space_returns(
        small_tmpfs: Path, make_runtime: Any) -> None:
    home = start_home(make_runtime, small_tmpfs, base="multiproc")
    filler = small_tmpfs / "filler"
    fleet = Fleet(home, batch=100, id_length=100)   # long ids: the disk fills in seconds
    try:
        recovered_s = ride_out(home, fleet, lambda: fill(filler), filler.unlink, refused=True,
                               while_broken=lambda: home.rt.wait_for(
                                   lambda: fleet.refused_count() >= 30, 20, what="30 refusals"))
        assert_refusals_say_why(fleet, "database or disk is full", "disk i/o error")
        assert recovered_s < RECOVERY_S
        stats = ingest_stats(home)
        assert stats.unavailable > 0 and stats.storage_outages >= 1
        assert stats.storage_unavailable == ""            # available again
        assert_every_acknowledged_reading_stored_once(home, fleet)
    finally:
        home.close()


def test_mqtt_readings_refused_for_a_full_disk_are_held_unacknowledged_and_stored_later(
        small_tmpfs: Path, make_runtime: Any) -> None:
    require_service(*MOSQUITTO)
    prefix = f"ptr-test/{uuid.uuid4().hex[:10]}"
    home = start_home(make_runtime, small_tmpfs, base="multiproc", mqtt=True, mqtt_prefix=prefix,
                      mqtt_client_id=f"ingest-{uuid.uuid4().hex[:8]}", mqtt_session_expiry_s=60)
    home.rt.wait_for(lambda: mqtt_stats(home).connected, 20, what="subscribed")
    filler = small_tmpfs / "filler"
    fleet = Fleet(home, batch=100, id_length=100)
    published = [reading("motion", message_id=f"mqtt-{n}") for n in range(100)]

    def publish_while_full() -> None:
        publish(prefix, published)
        home.rt.wait_for(lambda: mqtt_stats(home).held > 0, 20, what="MQTT readings held")

    try:
        ride_out(home, fleet, lambda: fill(filler), filler.unlink, refused=True,
                 while_broken=publish_while_full)
        home.rt.wait_for(lambda: mqtt_stats(home).held == 0, 20, what="held readings offered")
        keys = {f"{r['sensor_id']}/{r['message_id']}" for r in published}
        assert_every_acknowledged_reading_stored_once(home, fleet)
        stored = {key for (key,) in home.sql("SELECT message_id FROM smart_home_readings "
                                             "WHERE message_id LIKE '%/mqtt-%'")}
        assert stored == keys
        stats = mqtt_stats(home)
        assert stats.rejected == 0 and stats.incarnation == 1 and stats.acked >= 100
    finally:
        home.close()


MOSQUITTO_START = ["mosquitto", "-d", "-c", "/etc/mosquitto/mosquitto.conf"]


def test_mosquitto_going_away_and_coming_back_costs_the_mqtt_edge_no_restart(
        make_runtime: Any, tmp_path: Path) -> None:
    require_service(*MOSQUITTO)
    prefix = f"ptr-test/{uuid.uuid4().hex[:10]}"
    home = start_home(make_runtime, tmp_path, base="multiproc", mqtt=True, mqtt_prefix=prefix,
                      mqtt_client_id=f"ingest-{uuid.uuid4().hex[:8]}", mqtt_session_expiry_s=60)
    try:
        home.rt.wait_for(lambda: mqtt_stats(home).connected, 20, what="subscribed")
        before = processes(home.rt)
        published = [reading("motion", message_id=f"mqtt-{n}") for n in range(40)]
        publish(prefix, published[:20])
        home.wait_stored(20)
        pid = int(Path("/run/mosquitto/mosquitto.pid").read_text())
        os.kill(pid, signal.SIGTERM)  # it saves its sessions, ours included
        home.rt.wait_for(lambda: not mqtt_stats(home).connected, 20, what="MQTT edge disconnected")
        subprocess.run(MOSQUITTO_START, check=True, timeout=30)
        home.rt.wait_for(lambda: mqtt_stats(home).connected, RECOVERY_S, what="reconnected")
        publish(prefix, published[20:])
        home.wait_stored(40)
        assert processes(home.rt) == before
        assert mqtt_stats(home).incarnation == 1
    finally:
        home.close()
        if not port_open(MOSQUITTO[2]):
            subprocess.run(MOSQUITTO_START, check=True, timeout=30)


def publish(prefix: str, readings: list[dict[str, Any]]) -> None:
    publisher = Publisher(prefix)
    try:
        for body in readings:
            publisher.publish(body["sensor_id"], body)
    finally:
        publisher.close()


# --- 2. PostgreSQL stops ------------------------------------------------------------------------

PG_CLUSTER = ["pg_ctlcluster", "--skip-systemctl-redirect"]


def postgres(action: str) -> None:
    version = min(os.listdir("/etc/postgresql"))
    subprocess.run([*PG_CLUSTER, version, "main", action], check=True, timeout=60,
                   capture_output=True)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema in PostgreSQL's ``test`` database, dropped afterwards; PostgreSQL is
    running again at the end whatever the test did to it."""
    require_service(*POSTGRES)
    schema = f"ptrtest_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    finally:
        if not port_open(POSTGRES[2]):
            postgres("start")
        admin.dispose()
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.mark.postgres
def test_postgresql_stopped_under_the_writer_is_ridden_out_and_loses_nothing(
        postgres_url: str, make_runtime: Any, tmp_path: Path) -> None:
    home = start_home(make_runtime, tmp_path, base="multiproc", storage_url=postgres_url)
    fleet = Fleet(home)

    def database_refused() -> None:
        home.rt.wait_for(lambda: home.writer_stats().storage_unavailable, 20,
                         what="the writer sees PostgreSQL gone")
        answer = home.get("/sensors/heating-living/readings")   # the query API reads it too
        assert answer.status == 503 and answer.headers["Retry-After"] == "1", answer
        assert answer.json["error"].startswith("reading stored readings failed: "), answer

    try:
        # The broker is a local file: readings are still acknowledged while the database is
        # down, and the writer stores them once it is back.
        recovered_s = ride_out(home, fleet, lambda: postgres("stop"), lambda: postgres("start"),
                               refused=False, while_broken=database_refused)
        assert recovered_s < RECOVERY_S
        assert fleet.refusals == []
        assert_every_acknowledged_reading_stored_once(home, fleet)
        writer = home.writer_stats()
        assert writer.storage_outages >= 1 and writer.storage_unavailable == ""
        assert home.get("/sensors/heating-living/readings").status == 200
    finally:
        home.close()
        if not port_open(POSTGRES[2]):
            postgres("start")


@pytest.mark.postgres
def test_the_smart_home_starts_while_postgresql_is_down_and_stores_everything_once_it_is_up(
        postgres_url: str, make_runtime: Any, tmp_path: Path) -> None:
    postgres("stop")
    try:
        # Nothing crash-loops at start: the writer and the analyzers wait for their tables.
        home = start_home(make_runtime, tmp_path, base="multiproc", storage_url=postgres_url)
        before = processes(home.rt)
        fleet = Fleet(home).start()
        try:
            home.rt.wait_for(lambda: fleet.acked_count() >= 300, 20, what="readings acknowledged")
            assert "failed" in home.writer_stats().storage_unavailable
            assert home.check("heating").storage_unavailable
            postgres("start")
            home.rt.wait_for(lambda: home.writer_stats().storage_unavailable == "", RECOVERY_S,
                             what="the writer has its database")
        finally:
            fleet.stop()
        assert fleet.refusals == [] and fleet.unexpected == []
        assert_every_acknowledged_reading_stored_once(home, fleet)
        assert processes(home.rt) == before
        home.close()
    finally:
        if not port_open(POSTGRES[2]):
            postgres("start")


# --- 3. NATS JetStream stops under the broker ----------------------------------------------------

NATS_START = ["start-stop-daemon", "--start", "--oknodo", "--background",
              "--exec", "/usr/sbin/nats-server", "--", "-a", "127.0.0.1", "-p", "4222", "-js",
              "-sd", "/var/lib/nats-server", "-l", "/var/log/nats-server.log"]


def stop_nats() -> None:
    """SIGKILL the NATS server (found by its pid), as a crash would end it."""
    pids = subprocess.run(["pidof", "nats-server"], capture_output=True, text=True,
                          check=True).stdout.split()
    assert len(pids) == 1, pids
    os.kill(int(pids[0]), signal.SIGKILL)


def start_nats() -> None:
    subprocess.run(NATS_START, check=True, timeout=30)


async def _delete_streams(prefix: str) -> None:
    nc = await nats.connect(f"nats://{NATS[1]}:{NATS[2]}")
    try:
        js = nc.jetstream()
        for name in [info.config.name for info in await js.streams_info()]:
            if name and name.startswith((prefix, f"KV_{prefix}")):
                await js.delete_stream(name)
    finally:
        await nc.close()


@pytest.fixture
def jetstream_broker() -> Iterator[str]:
    """A broker URL on NATS JetStream with streams of its own, deleted afterwards; the NATS
    server is running again at the end whatever the test did to it."""
    require_service(*NATS)
    prefix = f"PTRTEST_{uuid.uuid4().hex[:10]}"
    try:
        yield f"nats://{NATS[1]}:{NATS[2]}/{prefix}"
    finally:
        if not port_open(NATS[2]):
            start_nats()
        deadline = time.monotonic() + 20
        while True:
            try:
                asyncio.run(_delete_streams(prefix))
                break
            except (OSError, nats.errors.Error) as exc:   # JetStream still starting
                if time.monotonic() > deadline:
                    raise AssertionError(f"could not delete the test's streams: {exc!r}") from exc
                time.sleep(0.2)  # polling a starting server


@pytest.mark.nats
def test_nats_jetstream_killed_under_the_broker_is_refused_with_503_and_loses_nothing(
        jetstream_broker: str, make_runtime: Any, tmp_path: Path) -> None:
    home = start_home(make_runtime, tmp_path, base="multiproc", broker_url=jetstream_broker)
    fleet = Fleet(home)
    try:
        recovered_s = ride_out(home, fleet, stop_nats, start_nats, refused=True)
        assert_refusals_say_why(fleet, "nats", "jetstream")
        assert recovered_s < RECOVERY_S
        # A publish the dying server stored without acknowledging is refused and sent again by
        # its client: the database keys store it once, an analyzer may count it twice.
        assert_every_acknowledged_reading_stored_once(home, fleet, analyzers_exact=False)
        assert ingest_stats(home).storage_outages >= 1
    finally:
        home.close()
        if not port_open(NATS[2]):
            start_nats()
