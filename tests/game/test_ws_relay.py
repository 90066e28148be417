"""The WebSocket edge alone (no actors): a browser's binary frames reach the game server as
datagrams and back, byte for byte; a server the lobby never handed out is refused (4403); a dead
server closes the WebSocket at once (4502), so the browser asks the lobby."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from actors.game.ws import CLOSE_FORBIDDEN, CLOSE_SERVER_GONE, WsRelay
from protocols.game import encode_input, encode_rejoin


@pytest.fixture
async def relay() -> AsyncIterator[tuple[WsRelay, str]]:
    relay = WsRelay()
    app = web.Application()
    app.router.add_get("/play", relay.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield relay, f"http://127.0.0.1:{port}/play"
    await runner.cleanup()


async def test_frames_are_datagrams_both_ways(relay) -> None:
    ws_relay, url = relay
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    host, port = server.getsockname()
    ws_relay.allow_server(host, port)
    loop = asyncio.get_running_loop()
    try:
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(f"{url}?server={host}:{port}") as ws:
            await ws.send_bytes(encode_input(5, 1, 1, 0))
            data, browser = await asyncio.wait_for(loop.sock_recvfrom(server, 2048), 5)
            assert data == encode_input(5, 1, 1, 0), "the frame, byte for byte"
            await loop.sock_sendto(server, encode_rejoin(5), browser)
            reply = await asyncio.wait_for(ws.receive(), 5)
            assert reply.type == aiohttp.WSMsgType.BINARY and reply.data == encode_rejoin(5)
    finally:
        server.close()


async def test_a_server_the_lobby_never_handed_out_is_refused(relay) -> None:
    _, url = relay
    async with aiohttp.ClientSession() as http, \
            http.ws_connect(f"{url}?server=127.0.0.1:53") as ws:
        message = await asyncio.wait_for(ws.receive(), 5)
        assert message.type == aiohttp.WSMsgType.CLOSE and ws.close_code == CLOSE_FORBIDDEN


async def test_a_dead_game_server_closes_the_websocket_at_once(relay) -> None:
    ws_relay, url = relay
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    host, port = probe.getsockname()
    probe.close()  # nothing listens there now: the kernel answers "port unreachable"
    ws_relay.allow_server(host, port)
    async with aiohttp.ClientSession() as http, \
            http.ws_connect(f"{url}?server={host}:{port}") as ws:
        await ws.send_bytes(encode_input(5, 1, 1, 0))
        message = await asyncio.wait_for(ws.receive(), 5)
        assert message.type == aiohttp.WSMsgType.CLOSE and ws.close_code == CLOSE_SERVER_GONE
    assert ws_relay.active == 0


async def test_text_frames_and_oversized_frames_close_the_websocket(relay) -> None:
    ws_relay, url = relay
    ws_relay.allow_server("127.0.0.1", 9)
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{url}?server=127.0.0.1:9") as ws:
            await ws.send_str("[1, 2]")
            await asyncio.wait_for(ws.receive(), 5)
            assert ws.close_code == aiohttp.WSCloseCode.UNSUPPORTED_DATA
        async with http.ws_connect(f"{url}?server=127.0.0.1:9") as ws:
            await ws.send_bytes(b"\x00" * 600)
            await asyncio.wait_for(ws.receive(), 5)
            assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
