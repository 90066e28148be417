"""The WebSocket edge: browsers cannot send UDP, so each browser player's WebSocket is relayed to a
game server over a UDP socket of its own, frame for datagram, byte for byte (the protocol page,
docs/systems/game-protocol.md section 3).

Runs on the lobby's HTTP loop (``Lobby.configure_app`` mounts ``GET /play``): no actor message per
frame, and the game server sees one address per browser player, so the session rules (one owner,
the sequence window) hold unchanged. A relay serves a handful of browser players; the bots and any
native client speak UDP to the game servers directly.

Rules: only to a game server the lobby handed out in a ``matched`` answer (``allow``; others close
4403); binary frames of at most ``MAX_CLIENT_DATAGRAM`` bytes (larger: 1009; text: 1003); a game
server that is gone (ICMP port unreachable on the connected socket) closes the WebSocket with
4502 at once, so the browser asks the lobby where its room went.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from protocols.game import MAX_CLIENT_DATAGRAM

__all__ = ["CLOSE_FORBIDDEN", "CLOSE_SERVER_GONE", "WsRelay"]

log = logging.getLogger("ptr.game.ws")

CLOSE_FORBIDDEN = 4403
CLOSE_SERVER_GONE = 4502
MAX_RELAYS = 256  # browser players one lobby relays at once (more: 503)


class _Datagrams(asyncio.DatagramProtocol):
    """The relay's UDP side: what the game server sends goes to the WebSocket as one frame.
    (A ``DatagramProtocol`` is fine here: ~30 datagrams a second per browser player, not the
    game server's 60,000.)"""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending: set[asyncio.Task[Any]] = set()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.ws.closed:
            task = asyncio.ensure_future(self.ws.send_bytes(data))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

    def error_received(self, exc: Exception) -> None:  # ECONNREFUSED: the server is gone
        if not self.gone.done():
            self.gone.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.gone.done():
            self.gone.set_result(None)


class WsRelay:
    """``GET /play?server=HOST:PORT``: relay one browser player. ``allow`` is replaced wholesale
    (never mutated) by the lobby's actor thread, so the loop reads a consistent set."""

    def __init__(self) -> None:
        self.allow: frozenset[tuple[str, int]] = frozenset()
        self.active = 0
        self.frames_in = self.frames_out = 0

    def allow_server(self, host: str, port: int) -> None:
        if (host, port) not in self.allow:
            self.allow = self.allow | {(host, port)}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        server = _parse_server(request.query.get("server", ""))
        if self.active >= MAX_RELAYS:
            return web.json_response({"error": "too many browser players on this lobby",
                                      "refusal": "unavailable"}, status=503,
                                     headers={"Retry-After": "5"})
        ws = web.WebSocketResponse(max_msg_size=MAX_CLIENT_DATAGRAM, heartbeat=20.0)
        await ws.prepare(request)
        if server is None or server not in self.allow:
            await ws.close(code=CLOSE_FORBIDDEN, message=b"not a game server of this lobby")
            return ws
        loop = asyncio.get_running_loop()
        self.active += 1
        transport: asyncio.DatagramTransport | None = None
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _Datagrams(ws), remote_addr=server)
            reader = asyncio.ensure_future(self._pump(ws, transport))
            done, _ = await asyncio.wait({reader, protocol.gone},
                                         return_when=asyncio.FIRST_COMPLETED)
            if protocol.gone in done and not ws.closed:
                await ws.close(code=CLOSE_SERVER_GONE, message=b"game server unreachable")
            reader.cancel()
        finally:
            self.active -= 1
            if transport is not None:
                transport.close()
        return ws

    async def _pump(self, ws: web.WebSocketResponse, transport: asyncio.DatagramTransport) -> None:
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                self.frames_in += 1
                transport.sendto(message.data)
            elif message.type == WSMsgType.TEXT:
                await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"binary frames only")
                return
            elif message.type == WSMsgType.ERROR:
                return


def _parse_server(text: str) -> tuple[str, int] | None:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)
