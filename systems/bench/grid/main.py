"""``ptr bench grid``: sensors posting readings over HTTPS to the grid's gateways, with a SIGKILL of
one gateway halfway, beside a bare aiohttp + token check + JetStream append server under the same
load, in the same run.

Load: ``sensors`` closed-loop sensors (each posts ``batch`` readings, waits for the answer, posts the
next) over ``connections`` kept-alive TLS connections for ``seconds``. A request that fails (a reset
from the killed gateway) is retried with the same sequence numbers until it is acknowledged.
``acked_readings_per_s``: readings acknowledged / seconds. ``ack_p99_ms``: per request, the retried
ones included (from first attempt to 200).

Afterwards (ptr only): the log is read back (``duplicated`` counts a (sensor, seq) stored twice),
the daily job copies it into the database (``daily_job_rows_per_s``), and ``acked_lost`` counts
acknowledged readings missing from the database.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa

from actors.grid import GridCA, SensorRegistry, open_log
from actors.grid.daily import DailyJob
from actors.storage import make_engine
from protocols.grid import GatewayStats, GetGatewayStats, SensorRecord
from systems.grid import SYSTEM, gateway_name
from systems.runtime import ActorRuntime, free_port

ROOT = Path(__file__).resolve().parents[3]
TARGETS = {"acked_readings_per_s": 5000, "acked_readings_per_s_mark": 10000, "ack_p99_ms": 250,
           "acked_lost": 0, "duplicated": 0}


class Load:
    def __init__(self, url: str, tokens: dict[str, str], context: Any, batch: int) -> None:
        self.url, self.tokens, self.context, self.batch = url + "/readings", tokens, context, batch
        self.acked: dict[str, list[int]] = {sid: [] for sid in tokens}
        self.latencies: list[float] = []
        self.retries = 0

    async def run(self, seconds: float, connections: int,
                  at_half: Callable[[], None] | None = None) -> float:
        connector = aiohttp.TCPConnector(limit=connections, ssl=self.context)
        async with aiohttp.ClientSession(connector=connector) as session:
            start = time.monotonic()
            end = start + seconds
            tasks = [asyncio.create_task(self.sensor(session, sid, end)) for sid in self.tokens]
            if at_half is not None:
                await asyncio.sleep(seconds / 2)  # the kill's moment, not a synchronisation
                await asyncio.get_running_loop().run_in_executor(None, at_half)
            await asyncio.gather(*tasks)
            return time.monotonic() - start

    async def sensor(self, session: aiohttp.ClientSession, sensor_id: str, end: float) -> None:
        headers = {"X-Sensor-Id": sensor_id, "Authorization": f"Bearer {self.tokens[sensor_id]}",
                   "Content-Type": "application/json"}
        seq = 1
        while time.monotonic() < end:
            now = time.time()
            body = json.dumps([{"sensor_id": sensor_id, "seq": s, "ts": now, "voltage_v": 231.0,
                                "current_a": 120.0, "temperature_c": 40.0}
                               for s in range(seq, seq + self.batch)])
            began = time.monotonic()
            while True:
                try:
                    async with session.post(self.url, data=body, headers=headers) as response:
                        await response.read()
                        if response.status == 200:
                            break
                except (TimeoutError, aiohttp.ClientError, OSError):
                    pass
                self.retries += 1
                await asyncio.sleep(0.01)  # back off before the retry
            self.latencies.append(time.monotonic() - began)
            self.acked[sensor_id].extend(range(seq, seq + self.batch))
            seq += self.batch

    def figures(self, elapsed: float) -> dict[str, Any]:
        acked = sum(len(v) for v in self.acked.values())
        lat = sorted(self.latencies) or [0.0]
        return {"acked_readings_per_s": round(acked / elapsed), "acked": acked,
                "ack_p50_ms": round(statistics.median(lat) * 1000, 2),
                "ack_p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 2),
                "retries": self.retries}


def _provision(root: Path, sensors: int) -> tuple[dict[str, str], Any]:
    engine = make_engine(f"sqlite:///{root / 'grid.db'}")
    registry = SensorRegistry(engine, root / "grid-registry.version")
    tokens = registry.add_many([SensorRecord(sensor_id=f"s{i:05d}", substation=f"sub{i % 50}",
                                             kind="cable") for i in range(sensors)])
    return tokens, engine


def measure_ptr(root: Path, seconds: float, sensors: int, batch: int, gateways: int,
                connections: int, kill: bool, log_url: str) -> dict[str, Any]:
    tokens, engine = _provision(root, sensors)
    ca = GridCA(root / "grid-ca")
    settings = SYSTEM.settings(overrides={"data_dir": str(root), "port": free_port(),
                                          "gateways": gateways, "log_url": log_url,
                                          "daily_check_every_s": 86400, "mqtt": False})
    runtime = ActorRuntime(SYSTEM.tree(settings), base="multiproc", name="grid-bench").start()
    try:
        stats = [runtime.ask(gateway_name(i), GetGatewayStats(), 30) for i in range(1, gateways + 1)]
        assert all(isinstance(s, GatewayStats) for s in stats)
        load = Load(stats[0].url, tokens, ca.client_context(), batch)
        killed: list[int] = []

        def kill_one() -> None:
            os.kill(stats[0].pid, signal.SIGKILL)
            killed.append(stats[0].pid)
        elapsed = asyncio.run(load.run(seconds, connections, kill_one if kill else None))
        out = load.figures(elapsed)
    finally:
        runtime.shutdown(timeout_s=60)
    log = open_log(settings.log())
    try:
        keys: list[tuple[str, int]] = []
        offset = 1
        while entries := log.read("grid_readings", offset, 10000):
            keys += [(v["sensor_id"], v["seq"]) for v in (json.loads(e.payload) for e in entries)]
            offset = entries[-1].offset + 1
        began = time.monotonic()
        reports = DailyJob(log, engine, batch=5000).run(until_day="2999-12-31", now=4e9)
        copy_s = time.monotonic() - began
    finally:
        log.close()
    stored: set[tuple[str, int]] = set()
    rows = 0
    with engine.connect() as connection:
        for report in reports:
            table = f"grid_readings_{report.day.replace('-', '')}"
            got = [(r[0], r[1]) for r in connection.execute(sa.text(f"SELECT sensor_id, seq FROM {table}"))]
            rows += len(got)
            stored.update(got)
    engine.dispose()
    acked = {(sid, seq) for sid, seqs in load.acked.items() for seq in seqs}
    out.update({"killed_gateway_pid": killed[0] if killed else None,
                "log_entries": len(keys),
                "duplicated": (len(keys) - len(set(keys))) + (rows - len(stored)),
                "acked_lost": len(acked - stored),
                "daily_job_rows_per_s": round(rows / copy_s) if copy_s > 0 else None,
                "daily_job_verified": all(r.verified for r in reports)})
    return out


def measure_bare(root: Path, seconds: float, sensors: int, batch: int, processes: int,
                 connections: int, nats_url: str) -> dict[str, Any]:
    tokens, engine = _provision(root, sensors)
    engine.dispose()
    ca = GridCA(root / "grid-ca")
    (root / "tokens.json").write_text(json.dumps(tokens))
    stream = f"PTR_GRID_BARE_{uuid.uuid4().hex[:8].upper()}"
    _make_stream(nats_url, stream)
    port = free_port()
    children = [subprocess.Popen([sys.executable, "-m", "systems.bench.grid.bare", str(port),
                                  str(root / "tokens.json"), str(ca.server_cert),
                                  str(ca.server_key), nats_url, stream],
                                 cwd=ROOT, stdout=subprocess.PIPE, text=True)
                for _ in range(processes)]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        load = Load(f"https://127.0.0.1:{port}", tokens, ca.client_context(), batch)
        elapsed = asyncio.run(load.run(seconds, connections))
        return load.figures(elapsed)
    finally:
        for child in children:
            child.kill()
            child.wait(10)
        _delete_stream(nats_url, stream)


def _make_stream(url: str, stream: str) -> None:
    import nats

    async def make() -> None:
        nc = await nats.connect(url)
        await nc.jetstream().add_stream(name=stream, subjects=[f"{stream}.readings"])
        await nc.close()
    asyncio.run(make())


def _delete_stream(url: str, stream: str) -> None:
    import nats

    async def delete() -> None:
        nc = await nats.connect(url)
        await nc.jetstream().delete_stream(stream)
        await nc.close()
    asyncio.run(delete())


def run(seconds: float = 20.0, sensors: int = 64, batch: int = 10, gateways: int = 2,
        connections: int = 64, kill: bool = True, bare: bool = True, log: str = "sqlite",
        nats_url: str = "nats://127.0.0.1:4222") -> dict[str, Any]:
    """``log``: ``sqlite`` (the default log) or ``jetstream`` (the same server as the baseline)."""
    result: dict[str, Any] = {"seconds": seconds, "sensors": sensors, "batch": batch,
                              "gateways": gateways, "connections": connections, "log": log,
                              "targets": TARGETS}
    with tempfile.TemporaryDirectory(prefix="ptr-bench-grid-") as tmp:
        log_url = "" if log == "sqlite" else f"{nats_url}/PTR_GRID_B{uuid.uuid4().hex[:8].upper()}"
        ptr = measure_ptr(Path(tmp) / "ptr", seconds, sensors, batch, gateways, connections, kill,
                          log_url)
        result.update(ptr)
        if log_url:
            _delete_stream(nats_url, log_url.rsplit("/", 1)[1] + "_grid_readings")
        if bare:
            base = measure_bare(Path(tmp) / "bare", seconds, sensors, batch, gateways,
                                connections, nats_url)
            result.update({f"bare_{k}": v for k, v in base.items()})
            if base["acked_readings_per_s"]:
                result["ratio_acked_readings_per_s"] = round(
                    ptr["acked_readings_per_s"] / base["acked_readings_per_s"], 2)
    return result
