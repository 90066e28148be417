"""Start and stop an aiohttp application on a host and port, from whatever loop runs it.

Meant to be driven from a ``LoopThread``: ``port = loop_thread.run(server.start())`` and later
``loop_thread.run(server.stop())``. Port 0 picks a free port; ``port`` then reports the bound one.
"""

from __future__ import annotations

import ssl

from aiohttp import web

__all__ = ["HttpServer"]


class HttpServer:
    """One aiohttp application served on one TCP address, with or without TLS.

    No access log (one log line per request would cost more than the request) and no signal
    handlers (the loop usually runs outside the main thread; the hosting actor decides when to stop).
    """

    def __init__(self, app: web.Application, *, host: str = "127.0.0.1", port: int = 0,
                 ssl_context: ssl.SSLContext | None = None, shutdown_timeout_s: float = 5.0,
                 backlog: int = 1024) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._ssl_context = ssl_context
        self._shutdown_timeout_s = shutdown_timeout_s
        self._backlog = backlog
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
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                               shutdown_timeout=self._shutdown_timeout_s)
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
