"""The bare baseline of ``ptr bench grid``: aiohttp + a token check + a JetStream append, no actors.

Run as ``python -m systems.bench.grid.bare PORT TOKENS_JSON CERT KEY NATS_URL STREAM``; the bench
starts as many of these processes as the system has gateways, all on one port (SO_REUSEPORT). Each
request: the token's SHA-256 compared with the sensor's, the body validated as readings, each
reading published with a ``Nats-Msg-Id`` of ``sensor:seq`` (JetStream drops repeats), the answer
sent after every publish ack.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import ssl
import sys
from pathlib import Path

import nats
from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from protocols.grid import ReadingBody

_BODY = TypeAdapter(ReadingBody | list[ReadingBody])


async def serve(port: int, tokens_file: str, cert: str, key: str, nats_url: str,
                stream: str) -> None:
    tokens = json.loads(Path(tokens_file).read_text())  # once, before serving
    hashes = {sid: hashlib.sha256(tok.encode()).hexdigest() for sid, tok in tokens.items()}
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    subject = f"{stream}.readings"

    async def readings(request: web.Request) -> web.Response:
        sensor = request.headers.get("X-Sensor-Id", "")
        token = request.headers.get("Authorization", "")[7:]
        expected = hashes.get(sensor)
        if expected is None or not hmac.compare_digest(
                hashlib.sha256(token.encode()).hexdigest(), expected):
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            parsed = _BODY.validate_json(await request.read())
        except ValidationError:
            return web.json_response({"error": "invalid"}, status=400)
        batch = parsed if isinstance(parsed, list) else [parsed]
        futures = [await js.publish_async(subject, r.model_dump_json().encode(),
                                          headers={"Nats-Msg-Id": f"{r.sensor_id}:{r.seq}"})
                   for r in batch]
        acks = await asyncio.gather(*futures)
        stored = sum(1 for ack in acks if not ack.duplicate)
        return web.json_response({"acked": len(batch), "stored": stored, "gateway": "bare"})

    app = web.Application()
    app.router.add_post("/readings", readings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    await web.SockSite(runner, sock, ssl_context=context).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    port, tokens, cert, key, url, stream = sys.argv[1:7]
    asyncio.run(serve(int(port), tokens, cert, key, url, stream))
