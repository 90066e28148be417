"""``Observer``: serves one running system's page, live events, ``/metrics`` and faults.

Two threads, one rule: only the thread that owns the ``ActorRuntime`` (``ptr run``'s main loop)
talks to the actor system. It calls ``service()`` a few times a second; that takes a snapshot of
the tree every ``snapshot_every_s`` while a page watches (every ``idle_snapshot_every_s``
otherwise, which is what ``/metrics`` reads: a snapshot asks every actor for its figures, so an
unwatched system is not asked every second) and runs the faults the page asked for. The aiohttp server runs
in a loop thread and only reads what ``service()`` published (under a lock) or queues a fault and
waits for its outcome. Server-sent events push each new snapshot to every open page.

Bound to loopback by default. Bound anywhere else it requires a token (printed in its URL; the
page keeps it in a cookie). Faults are refused (403) unless the system was started with chaos
allowed, and each one lands in the timeline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import hmac
import ipaddress
import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import Metric
from pydantic import ValidationError

from actors.behaviour import node_name
from actors.edges import LoopThread
from protocols.errors import ConfigError, PtrError
from systems import inspect
from systems.chaos import Chaos
from systems.observer.metrics import TreeCollector
from systems.observer.state import FaultRequest, ObservedState, ProcessSampler
from systems.runtime import ActorRuntime

log = logging.getLogger("ptr.observer")

FAULT_WAIT_S = 15.0
KEEPALIVE_S = 15.0
STATIC = ("index.html", "observer.js", "observer.css")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_TYPES = {"html": "text/html", "js": "text/javascript", "css": "text/css"}


HOT_AFTER_FAULT_S = 10.0  # after a fault, snapshots at the watched rate: its restarts show at once


@dataclass(frozen=True)
class ObserverConfig:
    host: str = "127.0.0.1"
    port: int = 0
    allow_chaos: bool = False
    snapshot_every_s: float = 1.0     # while a page watches (server-sent events)
    idle_snapshot_every_s: float = 10.0  # while none does: what /metrics and inspect read
    limit: int = 50                   # children shown per supervisor (as ptr inspect)
    port_setting: str = "--observe-port"
    require_token: bool | None = None  # None: when bound beyond loopback


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Observer:
    """Start with ``start()`` (binds its port), call ``service()`` from the runtime's thread,
    ``stop()`` at the end."""

    def __init__(self, runtime: ActorRuntime, config: ObserverConfig = ObserverConfig(),
                 system_metrics: Callable[[ActorRuntime], Iterable[Metric]] | None = None,
                 find_node_sid: Callable[[str], int] | None = None) -> None:
        self.runtime = runtime
        self.config = config
        needs_token = (not _is_loopback(config.host) if config.require_token is None
                       else config.require_token)
        self.token = secrets.token_urlsafe(18) if needs_token else ""
        self.state = ObservedState(system=runtime.name, chaos_allowed=config.allow_chaos,
                                   local_node=node_name())
        self.lock = threading.Lock()
        self.system_metrics = system_metrics
        self.find_node_sid = find_node_sid
        self._system_families: list[Metric] = []
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(TreeCollector(self.state, self.lock, lambda: self._system_families))
        ProcessCollector(registry=self.registry)
        self.sampler = ProcessSampler()
        self.faults: queue.Queue[tuple[FaultRequest, concurrent.futures.Future[dict[str, Any]]]] \
            = queue.Queue()
        self.loop = LoopThread("ptr-observer")
        self.port = 0
        self._payload = b"{}"
        self._version = 0
        self._changed: asyncio.Event | None = None
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._next_snapshot = self._next_watched = self._hot_until = 0.0
        self._watchers = 0                 # open event streams (the loop thread counts them)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Observer:
        self.loop.start()
        try:
            self.port = self.loop.run(self._serve(), timeout_s=10)
        except OSError as exc:
            self.loop.stop()
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {self.config.port} ({self.config.port_setting}) is in use: another "
                    f"instance may be running; stop it, or choose another port with "
                    f"{self.config.port_setting}") from None
            raise ConfigError(f"the observer cannot listen on {self.config.host}:"
                              f"{self.config.port}: {exc.strerror}") from None
        return self

    @property
    def url(self) -> str:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    @property
    def metrics_url(self) -> str:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"http://{host}:{self.port}/metrics" + (f"?token={self.token}" if self.token else "")

    def stop(self) -> None:
        if not self.loop.running:
            return
        self._closing = True
        try:
            self.loop.run(self._close(), timeout_s=5)
        except Exception:  # the loop goes away regardless; stop() below is what counts
            log.exception("observer: closing the server failed")
        self.loop.stop()

    def __enter__(self) -> Observer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the runtime's thread -----------------------------------------------------------------

    def service(self, now: float | None = None) -> None:
        """Run queued faults; take a snapshot when one is due. Call it from the runtime's thread."""
        now = time.time() if now is None else now
        while True:
            try:
                fault, future = self.faults.get_nowait()
            except queue.Empty:
                break
            future.set_result(self._inject(fault))
            self._next_snapshot = 0.0  # show its effect at once, and its aftermath at full rate
            self._hot_until = now + HOT_AFTER_FAULT_S
        watched = self._watchers > 0 or now < self._hot_until
        if now >= self._next_snapshot or (watched and now >= self._next_watched):
            self._next_snapshot = now + self.config.idle_snapshot_every_s
            self._next_watched = now + self.config.snapshot_every_s
            self.snapshot(now)

    def snapshot(self, now: float) -> None:
        try:
            views = inspect.live_tree(self.runtime, self.config.limit)
        except PtrError as exc:  # the root is busy or going: keep the last snapshot
            log.debug("observer: no snapshot: %s", exc)
            return
        node_list = inspect.node_views(inspect.nodes(self.runtime))
        pids = {v.pid for v in views if v.pid and not v.light_host
                and v.node in ("", self.state.local_node)}
        processes = self.sampler.sample(pids, now)
        families: list[Metric] | None = None
        if self.system_metrics is not None:
            try:
                families = list(self.system_metrics(self.runtime))
            except PtrError as exc:  # a part is restarting: its figures come back next time
                log.debug("observer: no system metrics: %s", exc)
        with self.lock:
            self.state.update(views, node_list, processes, now)
            if families is not None:
                self._system_families = families
            payload = json.dumps(self.state.as_json()).encode()
            version = self.state.version
        if self.loop.running:
            self.loop.loop.call_soon_threadsafe(self._publish, version, payload)

    def _inject(self, fault: FaultRequest) -> dict[str, Any]:
        chaos = Chaos(self.runtime)
        ok, text = self._run_fault(chaos, fault)
        with self.lock:
            self.state.record_fault(fault, text if ok else f"refused: {text}", time.time())
        return {"ok": ok, "text": text}

    def _run_fault(self, chaos: Chaos, fault: FaultRequest) -> tuple[bool, str]:
        try:
            if fault.kind == "kill-node":
                if self.find_node_sid is None:
                    raise PtrError("this observer cannot reach other nodes' processes")
                killed = chaos.kill_node(self.find_node_sid(fault.target))
                return True, f"killed node {fault.target}: {len(killed)} processes"
            else:
                if fault.kind == "crash":
                    info = chaos.crash(fault.target)
                elif fault.kind == "kill":
                    info = chaos.kill(fault.target)
                elif fault.kind == "delay":
                    info = chaos.delay(fault.target, fault.ms, fault.for_s)
                else:
                    info = chaos.drop(fault.target, fault.for_s)
                return True, (f"{fault.kind} {fault.target} "
                              f"(pid {info.pid or '-'}, node {info.node or '-'})")
        except PtrError as exc:
            return False, str(exc)

    # --- the loop thread ----------------------------------------------------------------------

    async def _serve(self) -> int:
        self._changed = asyncio.Event()
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._static("index.html"))
        for name in STATIC:
            app.router.add_get(f"/static/{name}", self._static(name))
        app.router.add_get("/api/snapshot", self._snapshot)
        app.router.add_get("/api/events", self._events)
        app.router.add_post("/api/faults", self._fault)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port, reuse_address=False)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            raise
        server = site._server
        assert server is not None
        return int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    async def _close(self) -> None:
        if self._changed is not None:
            self._changed.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def _publish(self, version: int, payload: bytes) -> None:
        self._version, self._payload = version, payload
        assert self._changed is not None
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self.token:
            return await handler(request)
        given = (request.query.get("token") or request.cookies.get("ptr_observer")
                 or request.headers.get("Authorization", "").removeprefix("Bearer "))
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return web.json_response({"error": "this observer needs its token (see the URL "
                                               "ptr printed)", "kind": "unauthorized"}, status=401)
        response = await handler(request)
        if request.query.get("token") and not response.prepared:
            response.set_cookie("ptr_observer", self.token, httponly=True, samesite="Strict")
        return response

    def _static(self, name: str) -> Any:
        body = resources.files("systems.observer").joinpath("static", name).read_bytes()
        content_type = _TYPES[name.rsplit(".", 1)[1]]

        async def serve(request: web.Request) -> web.Response:
            return web.Response(body=body, content_type=content_type,
                                headers={"Cache-Control": "no-cache"})
        return serve

    async def _snapshot(self, request: web.Request) -> web.Response:
        return web.Response(body=self._payload, content_type="application/json")

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        sent = -1
        self._watchers += 1  # a page watches: snapshots every snapshot_every_s while it does
        try:
            while not self._closing:
                changed = self._changed
                assert changed is not None
                if self._version != sent:
                    sent = self._version
                    await response.write(b"event: snapshot\ndata: " + self._payload + b"\n\n")
                    continue
                try:
                    await asyncio.wait_for(changed.wait(), KEEPALIVE_S)
                except TimeoutError:
                    await response.write(b": keepalive\n\n")
        finally:
            self._watchers -= 1
        return response

    async def _fault(self, request: web.Request) -> web.Response:
        if not self.config.allow_chaos:
            return web.json_response({"error": "faults are off: start the system with "
                                               "--allow-chaos to inject them from the observer",
                                      "kind": "forbidden"}, status=403)
        origin = request.headers.get("Origin")
        if request.content_type != "application/json" or (
                origin is not None and origin.split("://", 1)[-1] != request.host):
            # JSON only, from the page itself: another site's page in the same browser can
            # neither send JSON across origins (no CORS here) nor pass as this origin
            return web.json_response({"error": "faults are JSON posted by the observer's own "
                                               "page", "kind": "forbidden"}, status=403)
        try:
            fault = FaultRequest.model_validate_json(await request.read())
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            return web.json_response({"error": f"{where}: {first['msg']}", "kind": "invalid"},
                                     status=400)
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        self.faults.put((fault, future))
        try:
            outcome = await asyncio.wait_for(asyncio.wrap_future(future), FAULT_WAIT_S)
        except TimeoutError:
            return web.json_response({"error": "the system did not take the fault in time",
                                      "kind": "unavailable"}, status=503)
        return web.json_response(outcome, status=200 if outcome["ok"] else 404)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = await asyncio.get_running_loop().run_in_executor(None, generate_latest,
                                                                self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
