"""A gateway: HTTPS ingest that authenticates every request, appends the readings to the durable log
itself and answers only after the append is durable. No Thespian hop on the hot path: the log is the
hand-off (consumers and the daily job read it), and the actor is a thin shell for supervision,
placement and stats.

Several gateways serve one port with ``SO_REUSEPORT``: the kernel spreads new connections over the
listening sockets, so there is no balancing process to add a hop, a copy of every byte, and a
single point of failure; when a gateway dies, its socket closes and new connections go to the
others (connections it held are reset, and their unacknowledged readings are retried by the
sensor, stored once thanks to ``(sensor, seq)``).

Group commit: requests that arrive while an append runs wait and go together in the next one, so
one SQLite transaction (or one JetStream publish window) carries many requests' readings.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from actors._loop_thread import LoopThread
from actors.base import Actor
from actors.grid.ca import GridCA, fingerprint
from actors.grid.registry import Authenticator, SensorRegistry
from actors.grid.store import add_fates, open_log, pack_reading
from actors.storage import DurableLog, make_engine
from protocols.errors import StorageError
from protocols.grid import (
    STATUS_OF_REASON,
    GatewayStats,
    GetGatewayStats,
    ReadingBody,
    RefusalReason,
)
from protocols.message import ActorArgs

log = logging.getLogger("ptr.grid.gateway")

_BODY = TypeAdapter(ReadingBody | list[ReadingBody])
MAX_BODY_BYTES = 1 << 20
FATE_FLUSH_S = 1.0
REBALANCE_EVERY = 256
"""Every this many answers a gateway closes the connection after answering (see post_readings)."""


class GroupCommitter:
    """Appends for many concurrent requests, one sequenced append at a time (on its own thread)."""

    def __init__(self, log_: DurableLog, topic: str, executor: ThreadPoolExecutor) -> None:
        self.log = log_
        self.topic = topic
        self.executor = executor
        self.pending: list[tuple[list[tuple[str, int, bytes]], asyncio.Future[list[int | None]]]] = []
        self.wake = asyncio.Event()
        self.appends = 0

    async def submit(self, items: list[tuple[str, int, bytes]]) -> list[int | None]:
        future: asyncio.Future[list[int | None]] = asyncio.get_running_loop().create_future()
        self.pending.append((items, future))
        self.wake.set()
        return await future

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.pending = self.pending, []
            if not batch:
                continue
            flat = [item for items, _future in batch for item in items]
            try:
                offsets = await loop.run_in_executor(self.executor, self.log.append_sequenced,
                                                     self.topic, flat)
            except StorageError as exc:
                for _items, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.appends += 1
            start = 0
            for items, future in batch:
                if not future.done():
                    future.set_result(offsets[start:start + len(items)])
                start += len(items)


class GatewayServer:
    """The HTTPS server of one gateway (plain object; the actor owns it). ``start`` binds
    ``host:port`` with ``SO_REUSEPORT`` and returns once it listens."""

    def __init__(self, gateway_id: str, host: str, port: int, context: ssl.SSLContext | None,
                 authenticator: Authenticator, log_: DurableLog, topic: str,
                 fates_engine: Any, mqtt: dict[str, Any] | None = None) -> None:
        self.gateway_id = gateway_id
        self.host, self.port, self.context = host, port, context
        self.auth = authenticator
        self.log = log_
        self.topic = topic
        self.fates_engine = fates_engine
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.totals: Counter[str] = Counter()
        self.answered = 0
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"grid-{gateway_id}-log")
        self.loop_thread = LoopThread(name=f"grid-{gateway_id}")
        self.runner: web.AppRunner | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.committer = GroupCommitter(log_, topic, self.executor)
        self.mqtt_settings = mqtt
        self.mqtt: Any = None

    @property
    def url(self) -> str:
        return f"{'https' if self.context else 'http'}://{self.host}:{self.port}"

    def start(self) -> None:
        self.loop_thread.start()
        self.loop_thread.run(self._start(), 10)
        if self.mqtt_settings is not None:
            from actors.grid.mqtt import MqttIngest
            self.mqtt = MqttIngest(self, **self.mqtt_settings)
            self.mqtt.start()

    async def _start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post("/readings", self.post_readings)
        app.router.add_get("/health", self.health)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((self.host, self.port))
        sock.listen(1024)
        site = web.SockSite(self.runner, sock, ssl_context=self.context)
        await site.start()
        self.tasks = [asyncio.create_task(self.committer.run()),
                      asyncio.create_task(self._flush_fates_every())]

    def stop(self) -> None:
        if self.mqtt is not None:
            self.mqtt.stop()
        if self.loop_thread.running:
            try:
                self.loop_thread.run(self._stop(), 10)
            finally:
                self.loop_thread.stop()
        self.flush_fates()
        self.executor.shutdown(wait=True)

    async def _stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.runner is not None:
            await self.runner.cleanup()

    # --- the route ------------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"gateway": self.gateway_id, "pid": os.getpid()})

    async def post_readings(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
        cert_fp = None
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        if ssl_object is not None:
            der = ssl_object.getpeercert(binary_form=True)
            if der:
                cert_fp = fingerprint(der)
        status, answer = await self.accept(request.headers.get("X-Sensor-Id", ""), token, cert_fp,
                                           await request.read())
        response = web.json_response(answer, status=status)
        self.answered += 1
        if self.answered % REBALANCE_EVERY == 0:
            # the client reconnects, and the kernel may hand the new connection to another
            # gateway: kept-alive connections would otherwise stay where they are for ever
            # (after a gateway's restart, every connection would sit on the others)
            response.force_close()
        return response

    async def accept(self, sensor_id: str, token: str | None, cert_fp: str | None,
                     body: bytes) -> tuple[int, dict[str, Any]]:
        """Authenticate, validate, append and answer (status, JSON body): the one path of HTTP
        and MQTT readings. 200 means every reading in ``body`` is durably in the log (stored now,
        or before: a duplicate)."""
        if not sensor_id:
            return self.refuse("-", RefusalReason.MISSING_CREDENTIALS,
                               "name the sensor (X-Sensor-Id header, or the MQTT topic)")
        verdict = self.auth.check(sensor_id, token, cert_fp)
        if isinstance(verdict, RefusalReason):
            # an unknown id is counted under "-": a stranger must not grow the fates table
            who = "-" if verdict is RefusalReason.UNKNOWN_SENSOR else sensor_id
            return self.refuse(who, verdict, _EXPLAIN[verdict])
        try:
            parsed = _BODY.validate_json(body)
        except ValidationError as exc:
            return self.refuse(sensor_id, RefusalReason.INVALID, "not a reading or a list of them",
                               errors=[{"loc": list(e["loc"]), "msg": e["msg"]}
                                       for e in exc.errors()[:5]])
        readings = parsed if isinstance(parsed, list) else [parsed]
        if not readings:
            return self.refuse(sensor_id, RefusalReason.INVALID, "an empty list")
        if any(r.sensor_id != sensor_id for r in readings):
            return self.refuse(sensor_id, RefusalReason.SENSOR_MISMATCH,
                               "a reading names a sensor other than the authenticated one",
                               count=len(readings))
        items = [(sensor_id, r.seq, pack_reading(r, self.gateway_id)) for r in readings]
        try:
            offsets = await self.committer.submit(items)
        except StorageError as exc:
            return self.refuse(sensor_id, RefusalReason.UNAVAILABLE, f"the log is unavailable: {exc}",
                               count=len(readings))
        stored = sum(1 for offset in offsets if offset is not None)
        duplicates = len(offsets) - stored
        self._count(sensor_id, "accepted", stored)
        self._count(sensor_id, "duplicate", duplicates)
        return 200, {"acked": len(offsets), "stored": stored, "duplicates": duplicates,
                     "gateway": self.gateway_id}

    def refuse(self, sensor_id: str, reason: RefusalReason, text: str, *, count: int = 1,
               **extra: Any) -> tuple[int, dict[str, Any]]:
        self._count(sensor_id, f"refused_{reason.value}", count)
        return STATUS_OF_REASON[reason], {"error": reason.value, "detail": text,
                                          "gateway": self.gateway_id, **extra}

    def _count(self, sensor_id: str, fate: str, n: int) -> None:
        if n:
            self.counts[(self.gateway_id, sensor_id, fate)] += n
            self.totals[fate] += n

    # --- fate counts ------------------------------------------------------------------------------

    async def _flush_fates_every(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(FATE_FLUSH_S)  # a period, not a synchronisation
            await loop.run_in_executor(self.executor, self.flush_fates)

    def flush_fates(self) -> None:
        counts, self.counts = self.counts, Counter()
        try:
            add_fates(self.fates_engine, counts)
        except StorageError as exc:
            log.warning("%s: fate counts kept for the next flush: %s", self.gateway_id, exc)
            self.counts.update(counts)


_EXPLAIN = {
    RefusalReason.MISSING_CREDENTIALS: "send Authorization: Bearer <token> or a client certificate",
    RefusalReason.UNKNOWN_SENSOR: "no such sensor in the registry",
    RefusalReason.WRONG_TOKEN: "the token does not match the sensor's",
    RefusalReason.WRONG_CERTIFICATE: "the client certificate is not the sensor's",
    RefusalReason.REVOKED: "the sensor's credentials are revoked",
}


class GatewayArgs(ActorArgs):
    gateway_id: str
    host: str = "127.0.0.1"
    port: int
    tls: bool = True
    ca_dir: str
    server_names: tuple[str, ...] = ("localhost", "127.0.0.1")
    database_url: str
    log_url: str
    version_file: str
    topic: str = "grid_readings"
    mqtt: bool = False
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_prefix: str = "ptr/grid"
    mqtt_client_id: str = "ptr-grid"


class GridGateway(Actor):
    """One gateway process: owns a ``GatewayServer``. If the server cannot start (port, log), the
    actor exits with the error and its supervisor restarts it."""

    Args = GatewayArgs

    def on_start(self) -> Any:
        args: GatewayArgs = self.typed_args()
        self.engine = make_engine(args.database_url)
        registry = SensorRegistry(self.engine, args.version_file)
        self.grid_log = open_log(args.log_url)
        context = GridCA(args.ca_dir, args.server_names).server_context() if args.tls else None
        mqtt = ({"host": args.mqtt_host, "port": args.mqtt_port, "prefix": args.mqtt_prefix,
                 "client_id": f"{args.mqtt_client_id}-{args.gateway_id}"} if args.mqtt else None)
        self.server = GatewayServer(args.gateway_id, args.host, args.port, context,
                                    Authenticator(registry), self.grid_log, args.topic, self.engine,
                                    mqtt)
        self.server.start()
        return None

    def on_stop(self, reason: Any) -> None:
        server = getattr(self, "server", None)
        if server is not None:
            server.stop()
        if getattr(self, "grid_log", None) is not None:
            self.grid_log.close()
        if getattr(self, "engine", None) is not None:
            self.engine.dispose()

    def receiveMsg_GetGatewayStats(self, msg: GetGatewayStats, sender: Any) -> GatewayStats:
        totals = self.server.totals
        refused = {k[len("refused_"):]: v for k, v in totals.items() if k.startswith("refused_")}
        return GatewayStats(gateway=self.server.gateway_id, pid=os.getpid(), url=self.server.url,
                            accepted=totals["accepted"], duplicates=totals["duplicate"],
                            refused=refused, appends=self.server.committer.appends)
