"""``ptr bench smart-home``: the smart home under a house of ~1,000 sensors, beside a bare-Python
monolith doing the same work, measured in the same run.

What is measured (ptr in broker mode on multiprocTCPBase; every figure also for the bare server):

1. **History**: ``history_hours`` of one-per-second readings for the four sensors of ``room-0000``
   are posted in batches, so that the day window behind the stats query is full.
2. **Load**: ``4 * rooms + 1`` simulated sensors each POST one JSON reading a second over HTTPS
   (one request per reading, spread over the second, ``connections`` kept-alive TLS connections)
   for ``seconds``; then they stop measuring and deliver what they still hold. ``readings_per_s``
   is the load's readings found in the database afterwards, divided by ``seconds``; ``sent_per_s``
   is what the sensors sent. The default house has 1,025 sensors, a little above the target of
   1,000 readings/s, so that meeting it does not hang on the last reading of the window. ``ingest_to_db`` is
   ``stored_at - ts`` of each of those readings: from the moment the sensor measured (and sent)
   to the writer's transaction, so it includes the HTTPS request; ``ack`` is measured to the 2xx.
   ``cpu_cores`` is the CPU time of every process of the system (or the bare server) during the
   load, per second; ``cpu_us_per_reading`` the same per stored reading.
3. **Stats query**: ``stats_queries`` sequential ``GET /rooms/room-0000/stats`` over HTTPS: min, max
   and mean over the last minute, hour and day of four sensors (about 345,600 readings for a full
   day). ``stats_query_24h_ms`` is the median, ``stats_query_24h_p99_ms`` the slowest but one.

The bare baseline is one aiohttp HTTPS process (same certificate, same validation) that writes each
request's readings to SQLite in one transaction before answering, and feeds the same
``KindAnalysis`` objects in-process; its stats route answers from them (``bare_stats_query_24h_ms``)
and a second route answers the same question with SQL over the raw readings
(``bare_sql_stats_query_24h_ms``), which is what a service without analyzers would do. Ratios are
ptr / bare.

Memory per sensor is measured for each kind (traced allocations of the state objects), and the
analyzers' resident memory (RSS and PSS) after the run is read from /proc: most of it is the
interpreter and its imports, the same in every actor process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from actors.edges import client_context, ensure_self_signed
from systems.smart_home import API, HTTP_EDGE, WRITER, analyzer_name
from actors.smart_home.simulator import HouseModel, HttpsFleet
from actors.smart_home.state import state_bytes_per_sensor
from actors.smart_home.store import READINGS_TOPIC, open_broker
from actors.storage import make_engine
from protocols.smart_home import (
    KINDS,
    METRICS,
    AnalyzerStats,
    CheckNow,
    GetWriterStats,
    HouseConfig,
    generated_house,
)
from protocols.edges import GetEdgeInfo
from systems.processes import processes_in_sessions
from systems.bench.observe import observing
from systems.runtime import ActorRuntime
from systems.smart_home import SYSTEM, SmartHomeSettings
from systems.bench._helper import BenchHelper

TARGETS = {"readings_per_s": 1000, "ingest_to_db_p99_ms": 250, "stats_query_24h_ms": 200,
           "cpu_per_reading_ratio": 1.2}
ROOM = "room-0000"


def _ratio(ptr: float, bare: float) -> float:
    return round(ptr / bare, 3) if bare else 0.0


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# --- the load -------------------------------------------------------------------------------------

def history_readings(house: HouseConfig, hours: float, until: float) -> list[dict[str, Any]]:
    """One reading a second for each sensor of ``ROOM`` over ``hours`` ending at ``until``."""
    sensors = [s for s in house.sensors if s.room == ROOM]
    out: list[dict[str, Any]] = []
    start = until - hours * 3600
    for n in range(int(hours * 3600)):
        ts = start + n
        wave = math.sin(2 * math.pi * n / 86400)
        for s in sensors:
            body: dict[str, Any] = {"kind": s.kind, "sensor_id": s.sensor_id,
                                    "message_id": f"h-{n}", "ts": ts}
            if s.kind == "heating":
                body.update(temperature=20 + 2 * wave, setpoint=21.0, valve=30 + 20 * wave)
            elif s.kind == "motion":
                body["motion"] = n % 7 == 0
            else:
                body.update(power=200 + 150 * wave, energy=1e5 + n * 0.05)
            out.append(body)
    return out


async def _post_batches(url: str, context: Any, readings: list[dict[str, Any]],
                        batch: int = 2000, parallel: int = 4) -> int:
    import aiohttp
    connector = aiohttp.TCPConnector(limit=parallel, ssl=context or False)
    posted = 0
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=120)) as session:
        chunks = [readings[i:i + batch] for i in range(0, len(readings), batch)]
        queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
        for chunk in chunks:
            queue.put_nowait(chunk)

        async def worker() -> None:
            nonlocal posted
            while not queue.empty():
                chunk = queue.get_nowait()
                body = json.dumps(chunk).encode()
                for _ in range(20):
                    async with session.post(url + "/readings/batch", data=body,
                                            headers={"Content-Type": "application/json"}) as r:
                        await r.read()
                        if r.status < 300:
                            posted += len(chunk)
                            break
                    await asyncio.sleep(0.2)
                else:
                    raise RuntimeError(f"history batch refused: {r.status}")

        await asyncio.gather(*(worker() for _ in range(parallel)))
    return posted


async def _load(url: str, context: Any, house: HouseConfig, seconds: float,
                connections: int) -> tuple[HttpsFleet, float, float]:
    fleet = HttpsFleet(HouseModel(house, seed=11), url, context, connections=connections,
                       set_mode=False, record_latency=True)
    task = asyncio.create_task(fleet.run())
    began = time.time()
    await asyncio.sleep(seconds)
    fleet.stop(drain=True)  # what was sent in the window is delivered, so it may be counted
    ended = time.time()
    await asyncio.wait_for(task, 30)
    return fleet, began, ended


async def _stats_queries(url: str, context: Any, count: int) -> tuple[list[float], Any]:
    import aiohttp
    times: list[float] = []
    last: Any = None
    connector = aiohttp.TCPConnector(limit=1, ssl=context or False)
    async with aiohttp.ClientSession(connector=connector) as session:
        for n in range(count + 1):
            began = time.perf_counter()
            async with session.get(url) as response:
                last = await response.json()
                assert response.status == 200, last
            if n:  # the first one opens the connection
                times.append((time.perf_counter() - began) * 1000)
    return times, last


def _day_count(stats: Any, sensor_id: str, metric: str) -> int:
    for sensor in stats["sensors"]:
        if sensor["sensor_id"] == sensor_id:
            return int(sensor["windows"].get("day", {}).get(metric, {}).get("count", 0))
    return 0


def _latencies(db_url: str, since: float, until: float) -> tuple[int, list[float]]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text(
                "SELECT stored_at - ts FROM smart_home_readings WHERE ts >= :a AND ts < :b"),
                {"a": since, "b": until}).all()
    finally:
        engine.dispose()
    return len(rows), [r[0] * 1000 for r in rows]


def _cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each of ``pids`` so far (processes gone meanwhile: absent)."""
    out: dict[int, float] = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` so far (processes gone meanwhile count 0)."""
    return sum(_cpu_by_pid(pids).values())


def _measure(url: str, api_url: str, context: Any, house: HouseConfig, db_url: str,
             seconds: float, connections: int, history: list[dict[str, Any]],
             stats_queries: int, wait_idle: Any, stats_path: str,
             server_pids: Any, pid_names: Any = None) -> dict[str, Any]:
    began = time.perf_counter()
    asyncio.run(_post_batches(url, context, history))
    wait_idle()
    history_s = time.perf_counter() - began
    pids = server_pids()
    by_pid_before = _cpu_by_pid(pids)
    fleet, start, end = asyncio.run(_load(url, context, house, seconds, connections))
    by_pid = {pid: cpu - by_pid_before.get(pid, 0.0) for pid, cpu in _cpu_by_pid(pids).items()}
    cpu = sum(by_pid.values())
    wait_idle()
    stored, latencies = _latencies(db_url, start - 1, end + 1)  # ts are rounded to 1 ms
    times, stats = asyncio.run(_stats_queries(api_url + stats_path, context, stats_queries))
    names = pid_names() if pid_names is not None else {}
    per_process: dict[str, float] = {}
    for pid, used in by_pid.items():
        name = names.get(pid, "other (admin, logger)")
        per_process[name] = per_process.get(name, 0.0) + used
    return {
        "cpu_us_per_reading_by_process": {
            name: round(used / max(1, stored) * 1e6) for name, used in
            sorted(per_process.items(), key=lambda item: -item[1])},
        "readings_per_s": round(stored / (end - start)),
        "sent_per_s": round(fleet.sent / (end - start)), "acked": fleet.acked, "stored": stored,
        "ack_p50_ms": round(_percentile(fleet.latencies_ms, 0.5), 1),
        "ack_p99_ms": round(_percentile(fleet.latencies_ms, 0.99), 1),
        "failed_attempts": fleet.failed_attempts, "refused": fleet.refused,
        "dropped_at_sensors": fleet.dropped,
        "p50_ms": round(_percentile(latencies, 0.5), 1),
        "p99_ms": round(_percentile(latencies, 0.99), 1),
        "stats_ms": round(statistics.median(times), 2) if times else float("nan"),
        "stats_p99_ms": round(_percentile(times, 0.95 if len(times) < 50 else 0.99), 2),
        "day_count": _day_count(stats, f"heating-{ROOM[5:]}", "temperature"),
        "history_s": round(history_s, 1),
        "cpu_cores": round(cpu / (end - start), 2),
        "cpu_us_per_reading": round(cpu / max(1, stored) * 1e6),
    }


# --- ptr ----------------------------------------------------------------------------------------

def _wait_ptr_idle(rt: ActorRuntime, broker_url: str, kinds: list[str],
                   timeout_s: float = 300) -> None:
    """Until the writer and every analyzer have consumed the whole broker topic."""
    broker = open_broker(broker_url)
    try:
        end = broker.end_offset(READINGS_TOPIC)
        deadline = time.monotonic() + timeout_s

        def done() -> bool:
            if rt.ask(WRITER, GetWriterStats(), 10).lag_entries > 0:
                return False
            for kind in kinds:
                stats = rt.ask(analyzer_name(kind), CheckNow(), 30)
                assert isinstance(stats, AnalyzerStats)
                if stats.next_offset <= end:
                    return False
            return True
        rt.wait_for(done, max(1.0, deadline - time.monotonic()), interval_s=0.05,
                    what="the tree caught up")
    finally:
        broker.close()


def _actor_pids(rt: ActorRuntime) -> dict[int, str]:
    """Each actor process's pid and its path in the tree (``writer``, ``analyzers/heating``)."""
    out: dict[int, str] = {}

    def walk(address: Any, prefix: str) -> None:
        for child in rt.which_children(address).children:
            name = f"{prefix}{child.child_id}"
            if child.pid:
                out[child.pid] = name
            if child.is_supervisor:
                walk(child.address, f"{name}/")
    walk(None, "")
    return out


def _memory_mb(pid: int) -> dict[str, float]:
    """RSS and PSS (shared pages divided among their sharers) of one process, in MB."""
    out = {"rss": 0.0, "pss": 0.0}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key = line.split(":")[0].lower()
            if key in out:
                out[key] = round(int(line.split()[1]) / 1024, 1)
    return out


def measure_ptr(data_dir: Path, house: HouseConfig, history: list[dict[str, Any]], seconds: float,
                connections: int, stats_queries: int,
                overrides: dict[str, Any] | None = None, observe: bool = False) -> dict[str, Any]:
    """ptr in broker mode; ``overrides`` are settings (``broker_synchronous``, edge knobs).
    ``observe``: with the web observer attached and scraped every second; its process's CPU
    counts with the system's."""
    settings = SYSTEM.settings(overrides={
        "data_dir": str(data_dir), "http_port": 0, "api_port": 0, "mqtt": False,
        "simulate": False, "house": house, "max_in_flight": 4096, **(overrides or {})})
    assert isinstance(settings, SmartHomeSettings)
    tls_dir = settings.tls_dir()
    assert tls_dir is not None
    kinds = [k for k in KINDS if house.of_kind(k)]
    with ActorRuntime(SYSTEM.tree(settings), base="multiproc", name="smart-home") as rt, \
            contextlib.ExitStack() as extra:
        observer = [extra.enter_context(observing(rt))] if observe else []
        url = rt.ask(HTTP_EDGE, GetEdgeInfo(), 10).url
        api_url = rt.ask(API, GetEdgeInfo(), 10).url
        result = _measure(url, api_url, client_context(tls_dir), house, settings.database(),
                          seconds, connections, history, stats_queries,
                          lambda: _wait_ptr_idle(rt, settings.broker(), kinds),
                          f"/rooms/{ROOM}/stats",
                          lambda: processes_in_sessions(rt.session_ids - {os.getsid(0)})
                          + observer,
                          lambda: _actor_pids(rt))
        analyzers = {c.child_id: c.pid for c in rt.which_children(
            next(c.address for c in rt.which_children().children if c.child_id == "analyzers")
        ).children}
        result["analyzer_memory_mb"] = {kind: _memory_mb(pid) for kind, pid in analyzers.items()}
    return result


# --- bare Python --------------------------------------------------------------------------------

def _bare_server(data_dir: str, rooms: int, synchronous: str = "FULL") -> None:
    """Another process: aiohttp over HTTPS, validation, one SQLite transaction per request, the
    same ``KindAnalysis`` objects in-process. Prints its port, serves until killed."""
    from aiohttp import web
    from pydantic import TypeAdapter, ValidationError

    from actors.edges import self_signed_context
    from actors.smart_home.state import KindAnalysis
    from actors.smart_home.store import reading_db_row, writers
    from protocols.smart_home import ReadingBody

    house = generated_house(rooms)
    config = house.by_id()
    engine = make_engine(f"sqlite:///{Path(data_dir) / 'bare.db'}", synchronous=synchronous)
    table = writers(engine)["readings"]
    analyses = {k: KindAnalysis(k, house, started_at=time.time()) for k in KINDS}
    one, many = TypeAdapter(ReadingBody), TypeAdapter(list[ReadingBody])

    def store(readings: list[Any]) -> web.Response:
        now = time.time()
        rows, alerts, rollups = [], [], []
        for r in readings:
            reading = r.root
            if reading.sensor_id not in config:
                return web.json_response({"error": "unknown sensor"}, status=400)
            rows.append(reading_db_row(reading.model_dump(), config[reading.sensor_id].room, now,
                                       now))
        table.write_batch(rows)
        for row in rows:
            analyses[row["kind"]].ingest({**row, "message_id": row["message_id"]}, now, alerts,
                                         rollups)
        return web.json_response({"records": len(rows)})

    async def post_one(request: web.Request) -> web.Response:
        try:
            return store([one.validate_json(await request.read())])
        except ValidationError as exc:
            return web.json_response({"error": str(exc)}, status=400)

    async def post_many(request: web.Request) -> web.Response:
        try:
            return store(many.validate_json(await request.read()))
        except ValidationError as exc:
            return web.json_response({"error": str(exc)}, status=400)

    async def stats(request: web.Request) -> web.Response:
        room, now = request.match_info["room"], time.time()
        sensors = [s.model_dump() for a in analyses.values() for s in a.room_stats(room, now)]
        return web.json_response({"room": room, "at": now, "sensors": sensors})

    async def sql_stats(request: web.Request) -> web.Response:
        room, now = request.match_info["room"], time.time()
        out = []
        with engine.connect() as connection:
            for s in (s for s in house.sensors if s.room == room):
                windows: dict[str, Any] = {}
                for name, span in (("minute", 60), ("hour", 3600), ("day", 86400)):
                    cols = ", ".join(f"MIN({m}), MAX({m}), AVG({m})" for m in METRICS[s.kind])
                    row = connection.execute(sa.text(
                        f"SELECT COUNT(*), {cols} FROM smart_home_readings "
                        f"WHERE sensor_id = :s AND ts > :t"), {"s": s.sensor_id,
                                                               "t": now - span}).one()
                    if row[0]:
                        windows[name] = {m: {"count": row[0], "min": row[1 + 3 * i],
                                             "max": row[2 + 3 * i], "mean": row[3 + 3 * i]}
                                         for i, m in enumerate(METRICS[s.kind])}
                out.append({"sensor_id": s.sensor_id, "windows": windows})
        return web.json_response({"room": room, "at": now, "sensors": out})

    async def main() -> None:
        app = web.Application(client_max_size=8 << 20)
        app.router.add_post("/readings", post_one)
        app.router.add_post("/readings/batch", post_many)
        app.router.add_get("/rooms/{room}/stats", stats)
        app.router.add_get("/rooms/{room}/sql-stats", sql_stats)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0,
                           ssl_context=self_signed_context(Path(data_dir) / "tls"))
        await site.start()
        print(json.dumps({"port": runner.addresses[0][1]}), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


HELPER_MODULE = "systems.bench.smart_home.main"  # helpers run this module's __main__ with a role


def measure_bare(data_dir: Path, house: HouseConfig, rooms: int, history: list[dict[str, Any]],
                 seconds: float, connections: int, stats_queries: int,
                 synchronous: str = "FULL") -> dict[str, Any]:
    ensure_self_signed(data_dir / "tls")
    context = client_context(data_dir / "tls")
    with BenchHelper(HELPER_MODULE, "bare-server", data_dir, rooms, synchronous) as server:
        url = f"https://127.0.0.1:{server.line(60)['port']}"
        result = _measure(url, url, context, house, f"sqlite:///{data_dir / 'bare.db'}", seconds,
                          connections, history, stats_queries, lambda: None,
                          f"/rooms/{ROOM}/stats", lambda: [server.process.pid])
        times, stats = asyncio.run(_stats_queries(f"{url}/rooms/{ROOM}/sql-stats", context,
                                                  stats_queries))
        result["sql_stats_ms"] = round(statistics.median(times), 2) if times else float("nan")
        result["sql_day_count"] = _day_count(stats, f"heating-{ROOM[5:]}", "temperature")
    return result


# --- the benchmark ------------------------------------------------------------------------------

def run(rooms: int = 256, seconds: float = 30.0, history_hours: float = 24.0,
        connections: int = 128, stats_queries: int = 20, bare: bool = True,
        edge_window: int | None = None, edge_linger_s: float | None = None,
        synchronous: str = "FULL", observe: bool = False) -> dict[str, Any]:
    """``edge_window`` and ``edge_linger_s`` override the system's settings of those names
    (batches in flight from the HTTPS edge to the ingest, and how long a batch waits for more
    readings), to measure their effect. ``synchronous`` (FULL: every acknowledged write fsynced,
    as the smart home runs; NORMAL to measure what that costs) applies to ptr's broker and to
    the bare monolith's database alike."""
    synchronous = synchronous.upper()
    if synchronous not in ("FULL", "NORMAL"):
        raise ValueError(f"synchronous is FULL or NORMAL, not {synchronous!r}")
    knobs: dict[str, Any] = {key: value for key, value in (
        ("edge_window", edge_window), ("edge_linger_s", edge_linger_s)) if value is not None}
    knobs["broker_synchronous"] = synchronous
    house = generated_house(rooms)
    until = time.time() - 120
    history = history_readings(house, history_hours, until)
    result: dict[str, Any] = {
        "base": "multiprocTCPBase", "mode": "broker", "sensors": len(house.sensors),
        "offered_readings_per_s": len(house.sensors), "seconds": seconds,
        "history_hours": history_hours, "history_readings": len(history),
        "connections": connections, "targets": TARGETS, "settings": knobs,
        "bytes_per_sensor": {k: round(state_bytes_per_sensor(k, 500)) for k in KINDS},
    }
    with tempfile.TemporaryDirectory(prefix="ptr-bench-smart-home-") as tmp:
        ptr = measure_ptr(Path(tmp) / "ptr", house, history, seconds, connections, stats_queries,
                          knobs)
        result.update({
            "readings_per_s": ptr["readings_per_s"], "sent_per_s": ptr["sent_per_s"],
            "ack_p50_ms": ptr["ack_p50_ms"], "ack_p99_ms": ptr["ack_p99_ms"],
            "ingest_to_db_p50_ms": ptr["p50_ms"], "ingest_to_db_p99_ms": ptr["p99_ms"],
            "stats_query_24h_ms": ptr["stats_ms"], "stats_query_24h_p99_ms": ptr["stats_p99_ms"],
            "stats_day_count": ptr["day_count"], "history_load_s": ptr["history_s"],
            "acked": ptr["acked"], "acked_not_stored": max(0, ptr["acked"] - ptr["stored"]),
            "failed_attempts": ptr["failed_attempts"], "refused": ptr["refused"],
            "dropped_at_sensors": ptr["dropped_at_sensors"],
            "analyzer_memory_mb": ptr["analyzer_memory_mb"],
            "cpu_cores": ptr["cpu_cores"], "cpu_us_per_reading": ptr["cpu_us_per_reading"],
            "cpu_us_per_reading_by_process": ptr["cpu_us_per_reading_by_process"],
        })
        if observe:  # the same load again, observed: the cost of observing, in one run
            seen = measure_ptr(Path(tmp) / "observed", house, history, seconds, connections,
                               stats_queries, knobs, observe=True)
            result.update({
                "observed_readings_per_s": seen["readings_per_s"],
                "observed_cpu_us_per_reading": seen["cpu_us_per_reading"],
                "observed_ingest_to_db_p99_ms": seen["p99_ms"],
                "observe_cpu_cost": round(_ratio(seen["cpu_us_per_reading"],
                                                 ptr["cpu_us_per_reading"]) - 1, 3)})
        if bare:
            b = measure_bare(Path(tmp) / "bare", house, rooms, history, seconds, connections,
                             stats_queries, synchronous)
            result.update({
                "bare_readings_per_s": b["readings_per_s"], "bare_sent_per_s": b["sent_per_s"],
                "bare_ack_p99_ms": b["ack_p99_ms"],
                "bare_ingest_to_db_p50_ms": b["p50_ms"], "bare_ingest_to_db_p99_ms": b["p99_ms"],
                "bare_stats_query_24h_ms": b["stats_ms"],
                "bare_sql_stats_query_24h_ms": b["sql_stats_ms"],
                "bare_history_load_s": b["history_s"],
                "bare_cpu_cores": b["cpu_cores"],
                "bare_cpu_us_per_reading": b["cpu_us_per_reading"],
                "cpu_per_reading_ratio": _ratio(ptr["cpu_us_per_reading"],
                                                b["cpu_us_per_reading"]),
                "readings_ratio": _ratio(ptr["readings_per_s"], b["readings_per_s"]),
                "ingest_to_db_p99_ratio": _ratio(ptr["p99_ms"], b["p99_ms"]),
                "stats_query_ratio": _ratio(ptr["stats_ms"], b["stats_ms"]),
                "stats_query_vs_sql_ratio": _ratio(ptr["stats_ms"], b["sql_stats_ms"]),
            })
    result["meets_targets"] = {
        "readings_per_s": result["readings_per_s"] >= TARGETS["readings_per_s"],
        "ingest_to_db_p99_ms": result["ingest_to_db_p99_ms"] <= TARGETS["ingest_to_db_p99_ms"],
        "stats_query_24h_ms": result["stats_query_24h_ms"] <= TARGETS["stats_query_24h_ms"],
    }
    if bare:
        result["meets_targets"]["cpu_per_reading_ratio"] = (
            result["cpu_per_reading_ratio"] <= TARGETS["cpu_per_reading_ratio"])
    return result


if __name__ == "__main__":
    if sys.argv[1:2] == ["bare-server"]:
        _bare_server(sys.argv[2], int(sys.argv[3]), *sys.argv[4:5])
    else:
        print(json.dumps(run()))
