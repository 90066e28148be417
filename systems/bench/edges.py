"""``ptr bench edges``: the supervised edges and the Batcher beside bare Python, in one run.

Three figures, each with its bare baseline measured in the same run and the ratio ptr / bare:

* ``http_records_per_s``: ``connections`` aiohttp clients in this process POST batches of
  ``http_batch`` JSON ``SensorReading`` records (unique ids) to a REPLY route of an ``HttpEdgeActor``
  for ``http_seconds``; a record counts once its 200 came back, i.e. after the ``Batcher`` committed
  it to SQLite. Bare: the same clients against an aiohttp app in another process whose handler
  validates the batch and writes it with ``RowWriter`` in one transaction per request.
* ``udp_datagrams_per_s``: a sender in another OS process sends ``udp_datagrams`` 100-byte msgpack
  datagrams as fast as it can (loopback, bounded by count and ``udp_seconds``) to a
  ``UdpEdgeActor``; the figure is datagrams decoded and delivered to a ``DatagramSink`` in the tree,
  divided by the time from the first send to the last delivery. Bare: a blocking ``recvfrom`` +
  ``msgpack.unpackb`` loop in a thread here, timed the same way. With two or more CPUs the
  receiving process (the edge's, or this one for the baseline) is pinned to one CPU and the sender
  to another: "on one core". Losses are reported (UDP drops what a receiver cannot take).
* ``batcher_rows_per_s``: ``StoreRows`` requests of ``rows_batch`` rows asked one after another of
  a ``Batcher`` (``max_rows`` = ``rows_batch``, so each is one flush) until ``rows_total`` rows are
  committed. Bare: ``RowWriter.write_batch`` of the same batches in this process.

Every database is a fresh SQLite file in a temporary directory (WAL, synchronous=NORMAL).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

from actors.storage.batcher import READINGS_TABLE, Batcher
from actors.edges import Answer, Route
from actors.edges.http_edge import HttpEdgeActor
from actors.storage import RowWriter, make_engine
from actors.edges.udp_edge import DatagramSink, UdpEdgeActor, decode_msgpack
from protocols.edges import DatagramCounts, GetDatagramCounts, GetEdgeInfo, GetUdpEdgeStats
from protocols.storage import SensorReading, Stored, StoreRows
from supervisors.spec import ChildSpec, SupervisorSpec
from systems.runtime import ActorRuntime
from systems.bench._helper import BenchHelper

TARGETS = {"http_records_per_s": 5_000, "udp_datagrams_per_s": 60_000}
DATAGRAM_BYTES = 100
HTTP_PATH = "/readings"


def bench_spec(data_dir: Path, rows_batch: int, max_age_s: float = 0.001,
               window: int = 4) -> SupervisorSpec:
    route = Route("POST", HTTP_PATH, list[SensorReading], Answer.REPLY, timeout_s=10)
    return SupervisorSpec(intensity=10, children=[
        ChildSpec("http-batcher", Batcher, {"storage_url": _sqlite(data_dir / "http.db"),
                                            "table": READINGS_TABLE, "max_rows": 1000,
                                            "max_age_s": max_age_s}, name="http-batcher"),
        ChildSpec("http", HttpEdgeActor, {"routes": [route], "target": "http-batcher",
                                          "max_in_flight": 512, "max_body_bytes": 4 << 20,
                                          "window": window}, name="http-edge"),
        ChildSpec("rows-batcher", Batcher, {"storage_url": _sqlite(data_dir / "rows.db"),
                                            "table": READINGS_TABLE, "max_rows": rows_batch},
                  name="rows-batcher"),
        ChildSpec("sink", DatagramSink, {"keep_last": 0}, name="udp-sink"),
        ChildSpec("udp", UdpEdgeActor, {"target": "udp-sink", "max_batch": 4096,
                                        "max_in_flight": 256}, name="udp-edge"),
    ])


def _sqlite(path: Path) -> str:
    return f"sqlite:///{path}"


def _ratio(ptr: float, bare: float) -> float:
    return round(ptr / bare, 3) if bare else 0.0


# --- HTTP ---------------------------------------------------------------------------------------

def _batch_body(prefix: str, seq: int, size: int) -> bytes:
    return ("[" + ",".join(f'{{"message_id":"{prefix}-{seq}-{n}","sensor":"s{n % 16}",'
                           f'"value":{n}.5}}' for n in range(size)) + "]").encode()


async def _http_load(url: str, seconds: float, connections: int, batch: int,
                     prefix: str) -> dict[str, Any]:
    """``connections`` clients POSTing batches until ``seconds`` pass; counts 2xx records."""
    import aiohttp

    acked = failed = 0
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async def client(worker: int) -> None:
            nonlocal acked, failed
            seq = 0
            while time.monotonic() < deadline:
                body = _batch_body(f"{prefix}{worker}", seq, batch)
                seq += 1
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        status = response.status
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    status = 0
                statuses[status] = statuses.get(status, 0) + 1
                if 200 <= status < 300:
                    acked += batch
                else:
                    failed += 1

        began = time.monotonic()
        await asyncio.gather(*(client(n) for n in range(connections)))
        elapsed = time.monotonic() - began
    return {"records": acked, "elapsed_s": elapsed, "failed_requests": failed,
            "statuses": {str(k): v for k, v in sorted(statuses.items())}}


def _bare_http_server(db_url: str) -> None:
    """Another process: aiohttp + pydantic batch validation + one RowWriter transaction a request.

    Prints its port on stdout, then serves until killed.
    """
    from aiohttp import web
    from pydantic import TypeAdapter

    writer = RowWriter(make_engine(db_url), READINGS_TABLE)
    writer.create()
    adapter = TypeAdapter(list[SensorReading])

    async def store(request: web.Request) -> web.Response:
        records = adapter.validate_json(await request.read())
        writer.write_batch([r.model_dump() for r in records])
        return web.json_response({"records": len(records)})

    async def main() -> None:
        app = web.Application(client_max_size=4 << 20)
        app.router.add_post(HTTP_PATH, store)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(json.dumps({"port": runner.addresses[0][1]}), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


HELPER_MODULE = "systems.bench.edges"  # helpers run this module's __main__ with a role


def measure_http(rt: ActorRuntime, data_dir: Path, seconds: float, connections: int,
                 batch: int, tag: str = "") -> dict[str, Any]:
    edge = rt.ask("http-edge", GetEdgeInfo())
    warm_s = min(0.5, seconds)
    asyncio.run(_http_load(edge.url + HTTP_PATH, warm_s, connections, batch, tag + "warm"))
    ptr = asyncio.run(_http_load(edge.url + HTTP_PATH, seconds, connections, batch, tag + "ptr"))
    ptr_rows = _count_rows(_sqlite(data_dir / "http.db"), tag + "ptr")

    with BenchHelper(HELPER_MODULE, "http-server", _sqlite(data_dir / "bare-http.db")) as server:
        url = f"http://127.0.0.1:{server.line(30)['port']}{HTTP_PATH}"
        asyncio.run(_http_load(url, warm_s, connections, batch, tag + "warm"))
        bare = asyncio.run(_http_load(url, seconds, connections, batch, tag + "bare"))
    ptr_rate = ptr["records"] / ptr["elapsed_s"]
    bare_rate = bare["records"] / bare["elapsed_s"]
    return {
        "http_records_per_s": round(ptr_rate),
        "http_bare_records_per_s": round(bare_rate),
        "http_ratio": _ratio(ptr_rate, bare_rate),
        "http_batch": batch, "http_connections": connections, "http_seconds": seconds,
        "http_statuses": ptr["statuses"], "http_bare_statuses": bare["statuses"],
        "http_acked_missing_from_db": max(0, ptr["records"] - ptr_rows),
    }


def _count_rows(db_url: str, prefix: str) -> int:
    import sqlalchemy as sa
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text(
                "SELECT count(*) FROM readings WHERE message_id LIKE :p"), {"p": prefix + "%"}
            ).scalar_one())
    finally:
        engine.dispose()


# --- UDP ----------------------------------------------------------------------------------------

def _datagram(seq: int, pad: str) -> bytes:
    return msgpack.packb({"v": 1, "k": "Input", "d": {"player": seq % 1000, "seq": seq,
                                                      "pad": pad}})


def _pad_for(size: int) -> str:
    pad = ""
    while len(_datagram(10**6, pad)) < size:
        pad += "x"
    return pad


def _udp_sender(host: str, port: int, count: int, seconds: float, cpu: int | None) -> None:
    """Another process: send ``count`` datagrams (or for ``seconds``) as fast as possible."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    pad = _pad_for(DATAGRAM_BYTES)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sendto, address, pack = sock.sendto, (host, port), _datagram
    began = time.monotonic()
    deadline = began + seconds
    sent = 0
    while sent < count:
        try:
            sendto(pack(sent, pad), address)
        except OSError:  # a full send buffer: the datagram is lost like any other
            pass
        sent += 1
        if sent % 4096 == 0 and time.monotonic() > deadline:
            break
    elapsed = time.monotonic() - began
    sock.close()
    print(json.dumps({"sent": sent, "first_send_at": began, "elapsed_s": elapsed}), flush=True)


def _run_sender(host: str, port: int, count: int, seconds: float,
                cpu: int | None) -> dict[str, Any]:
    with BenchHelper(HELPER_MODULE, "udp-sender", host, port, count, seconds,
                     -1 if cpu is None else cpu) as sender:
        return sender.line(seconds + 30)


def _settled(read: Callable[[], int], expected: int, quiet_s: float = 0.3,
             timeout_s: float = 15.0) -> int:
    """Poll ``read()`` until it reaches ``expected`` or stops growing for ``quiet_s``."""
    deadline = time.monotonic() + timeout_s
    last, last_change = read(), time.monotonic()
    while last < expected and time.monotonic() < deadline:
        time.sleep(0.05)  # polling a counter in another process: there is nothing to wait on
        value = read()
        if value != last:
            last, last_change = value, time.monotonic()
        elif time.monotonic() - last_change > quiet_s:
            break
    return last


class _BareReceiver:
    """A blocking recvfrom + msgpack decode loop in a thread: the UDP baseline."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.decoded = self.bad = 0
        self.last_at = 0.0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="bare-udp", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        """Counters are published every 1024 datagrams and when the socket goes quiet, so the
        loop itself stays as lean as a bare loop would be."""
        recvfrom, decode, now = self.sock.recvfrom, decode_msgpack, time.monotonic
        decoded = bad = 0
        last_at = 0.0
        while not self._stop.is_set():
            try:
                data, _ = recvfrom(65535)
            except TimeoutError:
                self.decoded, self.bad, self.last_at = decoded, bad, last_at
                continue
            last_at = now()
            try:
                decode(data)
                decoded += 1
            except Exception:  # noqa: BLE001 - a bad datagram, as the edge counts it
                bad += 1
            if not decoded & 1023:
                self.decoded, self.bad, self.last_at = decoded, bad, last_at

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()


def measure_udp(rt: ActorRuntime, count: int, seconds: float) -> dict[str, Any]:
    cpus = sorted(os.sched_getaffinity(0))
    pinned = len(cpus) >= 2
    receiver_cpu, sender_cpu = (cpus[0], cpus[1]) if pinned else (None, None)

    edge = rt.ask("udp-edge", GetEdgeInfo())
    edge_pid = next(c.pid for c in rt.which_children().children if c.child_id == "udp")
    if pinned:
        os.sched_setaffinity(edge_pid, {receiver_cpu})
    _run_sender(edge.host, edge.port, min(count, 5000), seconds, sender_cpu)  # warm up
    warm = _settled(lambda: rt.ask("udp-sink", GetDatagramCounts()).datagrams, min(count, 5000))
    before_stats = rt.ask("udp-edge", GetUdpEdgeStats())
    sender = _run_sender(edge.host, edge.port, count, seconds, sender_cpu)
    delivered = _settled(lambda: rt.ask("udp-sink", GetDatagramCounts()).datagrams,
                         warm + sender["sent"]) - warm
    sink: DatagramCounts = rt.ask("udp-sink", GetDatagramCounts())
    after_stats = rt.ask("udp-edge", GetUdpEdgeStats())
    ptr_rate = delivered / max(1e-9, sink.last_at - sender["first_send_at"])

    original = os.sched_getaffinity(0)
    bare = _BareReceiver()
    try:
        if pinned:
            os.sched_setaffinity(0, {receiver_cpu})
        _run_sender("127.0.0.1", bare.port, min(count, 5000), seconds, sender_cpu)
        warm_bare = _settled(lambda: bare.decoded, min(count, 5000))
        bare_sender = _run_sender("127.0.0.1", bare.port, count, seconds, sender_cpu)
        bare_decoded = _settled(lambda: bare.decoded, warm_bare + bare_sender["sent"]) - warm_bare
        bare_rate = bare_decoded / max(1e-9, bare.last_at - bare_sender["first_send_at"])
    finally:
        os.sched_setaffinity(0, original)
        bare.close()
    return {
        "udp_datagrams_per_s": round(ptr_rate),
        "udp_bare_datagrams_per_s": round(bare_rate),
        "udp_ratio": _ratio(ptr_rate, bare_rate),
        "udp_sent": sender["sent"],
        "udp_sender_per_s": round(sender["sent"] / sender["elapsed_s"]),
        "udp_delivered": delivered,
        "udp_loss": round(1 - delivered / sender["sent"], 4) if sender["sent"] else 0.0,
        "udp_edge_dropped_saturated": after_stats.dropped_saturated - before_stats.dropped_saturated,
        "udp_bare_sent": bare_sender["sent"],
        "udp_bare_loss": round(1 - bare_decoded / bare_sender["sent"], 4)
        if bare_sender["sent"] else 0.0,
        "udp_pinned_to_one_cpu": pinned,
    }


# --- Batcher ------------------------------------------------------------------------------------

def measure_rows(rt: ActorRuntime, data_dir: Path, total: int, batch: int,
                 tag: str = "") -> dict[str, Any]:
    def batches(prefix: str) -> list[list[dict[str, Any]]]:
        return [[{"message_id": f"{prefix}-{b}-{n}", "sensor": f"s{n % 16}", "value": n + 0.5}
                 for n in range(batch)] for b in range(max(1, total // batch))]

    rt.ask("rows-batcher", StoreRows(rows=batches(tag + "warm")[0]), 30)
    requests = [StoreRows(rows=rows) for rows in batches(tag + "ptr")]
    address = rt.whereis("rows-batcher")
    began = time.perf_counter()
    answers = [rt.ask(address, request, 30) for request in requests]
    ptr_elapsed = time.perf_counter() - began
    ptr_rows = sum(a.records for a in answers if isinstance(a, Stored))

    writer = RowWriter(make_engine(_sqlite(data_dir / "bare-rows.db")), READINGS_TABLE)
    writer.create()
    writer.write_batch(batches(tag + "warm")[0])
    bare_batches = batches(tag + "bare")
    began = time.perf_counter()
    for rows in bare_batches:
        writer.write_batch(rows)
    bare_elapsed = time.perf_counter() - began
    writer.engine.dispose()
    ptr_rate = ptr_rows / ptr_elapsed
    bare_rate = sum(len(rows) for rows in bare_batches) / bare_elapsed
    return {"batcher_rows_per_s": round(ptr_rate), "batcher_bare_rows_per_s": round(bare_rate),
            "batcher_ratio": _ratio(ptr_rate, bare_rate), "rows_total": ptr_rows,
            "rows_batch": batch}


# --- the run ------------------------------------------------------------------------------------

def run(http_seconds: float = 3.0, connections: int = 16, http_batch: int = 100,
        udp_datagrams: int = 300_000, udp_seconds: float = 5.0, rows_total: int = 100_000,
        rows_batch: int = 1000, rounds: int = 1) -> dict[str, Any]:
    """All three figures; with ``rounds`` > 1 each figure is the median of its rounds."""
    http_seconds, udp_seconds = float(http_seconds), float(udp_seconds)
    connections, http_batch, udp_datagrams = int(connections), int(http_batch), int(udp_datagrams)
    rows_total, rows_batch, rounds = int(rows_total), int(rows_batch), max(1, int(rounds))
    started = time.monotonic()
    samples: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ptr-bench-edges-") as tmp:
        data_dir = Path(tmp)
        with ActorRuntime(bench_spec(data_dir, rows_batch), base="multiproc") as rt:
            for n in range(rounds):
                tag = f"r{n}-"  # every round stores new ids, never a skipped duplicate
                sample: dict[str, Any] = {}
                sample.update(measure_rows(rt, data_dir, rows_total, rows_batch, tag))
                sample.update(measure_http(rt, data_dir, http_seconds, connections, http_batch,
                                           tag))
                sample.update(measure_udp(rt, udp_datagrams, udp_seconds))
                samples.append(sample)
            sessions = set(rt.session_ids)
    from systems.processes import processes_in_sessions
    result = _median_of(samples)
    result["base"] = "multiprocTCPBase"
    result["rounds"] = rounds
    result["targets"] = TARGETS
    result["meets_targets"] = {name: result[name] >= target for name, target in TARGETS.items()}
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    result["processes_left"] = len(processes_in_sessions(sessions))
    return result


def _median_of(samples: list[dict[str, Any]]) -> dict[str, Any]:
    if len(samples) == 1:
        return samples[0]
    merged = dict(samples[-1])
    for key, value in samples[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            merged[key] = statistics.median(s[key] for s in samples)
    merged["runs"] = samples
    return merged


def _helper_main(argv: list[str]) -> None:
    """Entry point of the helper processes (see ``BenchHelper``)."""
    role, *rest = argv
    if role == "udp-sender":
        host, port, count, seconds, cpu = rest
        _udp_sender(host, int(port), int(count), float(seconds), None if cpu == "-1" else int(cpu))
    elif role == "http-server":
        _bare_http_server(rest[0])
    else:
        raise SystemExit(f"unknown bench helper role {role!r}")


if __name__ == "__main__":
    _helper_main(sys.argv[1:])
