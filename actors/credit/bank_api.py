"""Simulated bank APIs over HTTP: one aiohttp server per process serves many banks of a
``BankWorld`` (``BankApiServer``, plain asyncio), and ``BankSimActor`` runs one in the tree, each in
its own OS process, as the banks' own servers would be.

    GET  /banks/{id}/products                          json format
    GET  /banks/{id}/open-banking/v3.1/products?page=  openbanking format, paginated
    GET  /banks/{id}/offers.csv                        csv format
    POST /control/{id}   {"down": bool, "slow_s": s, "bump": true}   outages, slowness, new rates
    GET  /calls          {"calls": n, "violations": n, "per_bank": {...}}   the call record

A bank answers only on its own format's path (404 elsewhere). Slowness is an ``asyncio.sleep``
before the answer; the fetchers' timeout turns a slow bank into a failed fetch.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from actors._loop_thread import LoopThread
from actors.base import Actor
from actors.credit.world import BankWorld, SimAnswer, bank_path
from protocols.credit import BankConfig, BankSimInfo, GetBankSimInfo
from protocols.message import ActorArgs
from protocols.supervision import ExitReason

__all__ = ["BankApiServer", "BankSimActor", "BankSimArgs"]


class BankApiServer:
    """The banks of ``world`` over HTTP on ``host:port`` (0: a free port)."""

    def __init__(self, world: BankWorld, host: str = "127.0.0.1", port: int = 0) -> None:
        self.world = world
        self.host, self.port = host, port
        self.runner: web.AppRunner | None = None
        self.url = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/banks/{bank_id}/products", self.products)
        app.router.add_get("/banks/{bank_id}/open-banking/v3.1/products", self.products)
        app.router.add_get("/banks/{bank_id}/offers.csv", self.products)
        app.router.add_post("/control/{bank_id}", self.control)
        app.router.add_get("/calls", self.calls)
        return app

    async def start(self) -> str:
        self.runner = web.AppRunner(self.app(), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        self.port = sockets[0].getsockname()[1]
        self.url = f"http://{self.host}:{self.port}"
        return self.url

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def products(self, request: web.Request) -> web.Response:
        bank_id = request.match_info["bank_id"]
        bank = self.world.banks.get(bank_id)
        if bank is None or request.path != bank_path(bank):
            return web.json_response({"error": "no such product endpoint"}, status=404)
        try:
            page = int(request.query.get("page", "1"))
        except ValueError:
            return web.json_response({"error": "page must be an integer"}, status=400)
        answer: SimAnswer = self.world.call(bank_id, max(1, page), self.url)
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers,
                            content_type=answer.content_type)

    async def control(self, request: web.Request) -> web.Response:
        bank_id = request.match_info["bank_id"]
        if bank_id not in self.world.banks:
            return web.json_response({"error": "no such bank"}, status=404)
        body = await request.json()
        if "down" in body:
            self.world.set_down(bank_id, bool(body["down"]))
        if "slow_s" in body:
            self.world.set_slow(bank_id, float(body["slow_s"]))
        if body.get("bump"):
            self.world.bump(bank_id)
        return web.json_response({"bank_id": bank_id, "ok": True})

    async def calls(self, request: web.Request) -> web.Response:
        return web.json_response({
            "calls": self.world.calls, "violations": self.world.violations,
            "per_bank": {b: {"calls": s.calls, "violations": s.violations}
                         for b, s in self.world.state.items()}})


class BankSimArgs(ActorArgs):
    banks: list[BankConfig]
    host: str = "127.0.0.1"
    port: int = 0
    busy_rate: float = 0.0
    seed: int = 3


class BankSimActor(Actor):
    """A process of simulated banks. Restarting it starts a fresh world (new call record) on a new
    port; fetchers ask for the URL again (``GetBankSimInfo``) when a call fails to connect."""

    Args = BankSimArgs
    loop_thread: LoopThread | None = None
    server: BankApiServer | None = None

    def on_start(self) -> None:
        args: BankSimArgs = self.typed_args()
        world = BankWorld(list(args.banks), time.time, seed=args.seed, busy_rate=args.busy_rate)
        self.loop_thread = LoopThread(name=f"ptr-banks{self.path}")
        self.loop_thread.start()
        self.server = BankApiServer(world, args.host, args.port)
        self.url = self.loop_thread.run(self.server.start(), 10)

    def on_stop(self, reason: ExitReason) -> None:
        if self.loop_thread is not None:
            if self.server is not None and self.loop_thread.running:
                self.loop_thread.run(self.server.stop(), 5)
            self.loop_thread.stop()

    def receiveMsg_GetBankSimInfo(self, msg: GetBankSimInfo, sender: Any) -> BankSimInfo:
        assert self.server is not None
        return BankSimInfo(url=self.url, banks=len(self.server.world.banks))


def control_body(down: bool | None = None, slow_s: float | None = None,
                 bump: bool = False) -> bytes:
    body: dict[str, Any] = {}
    if down is not None:
        body["down"] = down
    if slow_s is not None:
        body["slow_s"] = slow_s
    if bump:
        body["bump"] = True
    return json.dumps(body).encode()
