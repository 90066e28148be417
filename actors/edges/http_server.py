"""Start and stop an aiohttp application on a host and port, from whatever loop runs it.

Meant to be driven from a ``LoopThread``: ``port = loop_thread.run(server.start())`` and later
``loop_thread.run(server.stop())``. Port 0 picks a free port; ``port`` then reports the bound one.
"""

from __future__ import annotations

import json
import logging
import ssl
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

from actors.edges.routes import problem

log = logging.getLogger("ptr.edges.http")

__all__ = ["HttpServer"]


class _JsonErrorRequestHandler(RequestHandler):
    """aiohttp's connection handler, except that a request it cannot parse (an over-long request
    line or header, a malformed one: 4xx) is answered with a JSON body like every other refusal
    of the edge, and logged as one line without a traceback: the sender's fault, not ours."""

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status >= 500 or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        why = str(getattr(exc, "message", "") or message or HTTPStatus(status).phrase)
        log.info("refused a request from %s that did not parse: %d %s", request.remote, status,
                 why)
        body = problem(status, {"error": why, "refusal": "invalid"})
        response = web.Response(status=status, text=json.dumps(body),
                                content_type="application/json")
        response.force_close()
        return response


class _JsonErrorServer(Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class _AppRunner(web.AppRunner):
    async def _make_server(self) -> Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer  # the same server; only its connection handler differs
        return server


class HttpServer:
    """One aiohttp application served on one TCP address, with or without TLS.

    No access log (one log line per request would cost more than the request) and no signal
    handlers (the loop usually runs outside the main thread; the hosting actor decides when to stop).
    A request that does not parse gets a JSON 4xx and one log line. ``idle_timeout_s``: a
    connection that has not sent a whole request within it (idle, or slow) is closed
    (aiohttp's keep-alive timeout; its default is an hour).
    """

    def __init__(self, app: web.Application, *, host: str = "127.0.0.1", port: int = 0,
                 ssl_context: ssl.SSLContext | None = None, shutdown_timeout_s: float = 5.0,
                 backlog: int = 1024, idle_timeout_s: float | None = None) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._ssl_context = ssl_context
        self._shutdown_timeout_s = shutdown_timeout_s
        self._backlog = backlog
        self._idle_timeout_s = idle_timeout_s
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The bound port; only known after ``start``."""
        if self._port is None:
            raise RuntimeError("the HTTP server is not started")
        return self._port

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl_context is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    async def start(self) -> int:
        """Bind and start serving; returns the bound port. Raises OSError if the port is taken."""
        if self._runner is not None:
            raise RuntimeError("the HTTP server is started already")
        extra: dict[str, Any] = {}
        if self._idle_timeout_s is not None:  # also bounds a client slow to send its request
            extra["keepalive_timeout"] = float(self._idle_timeout_s)
        runner = _AppRunner(self.app, access_log=None, handle_signals=False,
                            shutdown_timeout=self._shutdown_timeout_s, **extra)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._requested_port, ssl_context=self._ssl_context,
                           backlog=self._backlog)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        return self._port

    async def stop(self) -> None:
        """Stop accepting, let running requests finish (up to the shutdown timeout), clean up."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
