"""Clients the tests talk to the systems with (no tests here): one HTTP(S) call, a blocking call run
beside a runtime that must keep running, and reading a UDP socket until an expected datagram."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from systems.runtime import ActorRuntime


class Answered:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Answered({self.status}, {self.body[:300]!r})"


def call(url: str, body: Any = None, *, context: ssl.SSLContext | None = None,
         method: str | None = None, timeout_s: float = 15) -> Answered:
    """One HTTP(S) request; a body that is not bytes is sent as JSON. Error statuses are answers."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"},
                                     method=method or ("GET" if data is None else "POST"))
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:
            return Answered(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return Answered(error.code, error.headers, error.read())


class Background:
    """A blocking client call in a thread of its own; ``result`` lets the runtime run meanwhile
    (on simpleSystemBase the actors run only while the runtime's owner listens)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.box: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self.box["value"] = fn()
        except BaseException as exc:  # handed to the test thread by result()
            self.box["error"] = exc

    def result(self, rt: ActorRuntime, timeout_s: float = 20) -> Any:
        rt.wait_for(lambda: not self.thread.is_alive(), timeout_s, what="client call")
        if "error" in self.box:
            raise self.box["error"]
        return self.box["value"]


def meanwhile(rt: ActorRuntime, fn: Callable[[], Any], timeout_s: float = 20) -> Any:
    """Run a blocking client call in a thread while this thread lets the system run."""
    return Background(fn).result(rt, timeout_s)


def expect_datagram(sock: socket.socket, decode: Callable[[bytes], Any], kind: type, *,
                    where: Callable[[Any], bool] = lambda d: True, timeout_s: float = 5.0,
                    who: str = "client") -> Any:
    """Read ``sock`` until a datagram that decodes to a ``kind`` matching ``where``; others are
    skipped. Fails the test if none comes within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            datagram = decode(sock.recv(4096))
        except TimeoutError:
            break
        if isinstance(datagram, kind) and where(datagram):
            return datagram
    raise AssertionError(f"{who}: no {kind.__name__} within {timeout_s} s")
