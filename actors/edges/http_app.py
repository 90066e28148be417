"""The HTTP edge: declared routes validated with pydantic and handed to the actor side by a bridge.

Every answer is JSON, errors included (``{"error": text, ...}``), so a client always gets a reason it
can parse: 400 names each bad field, 403 an address outside the allowlist, 404/405 an unknown route,
413 a body over the limit, 503 (with ``Retry-After``) a saturated or closed bridge or an actor that
refuses work for now (``UnavailableError``: its storage is out; the body says why), 504 an actor that
did not answer in time, 500 a bug here. A handler exception never takes the server down.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import ipaddress
import json
import logging
import time
import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic_core
from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import PydanticUserError, TypeAdapter, ValidationError

from actors.edges._metrics import EdgeMetrics
from actors.edges.bridge import BridgeClosedError, EdgeBridge, SaturatedError
from protocols.codec import field_errors
from protocols.errors import (
    ConfigError,
    InvalidMessageError,
    RequestTimeoutError,
    SpecError,
    UnavailableError,
)

__all__ = ["Answer", "Inbound", "METRICS_KEY", "Route", "build_app"]

log = logging.getLogger("ptr.edges.http")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RESERVED_PATHS = frozenset({"/health", "/metrics"})
UNMATCHED = "unmatched"  # one metrics label for every unknown path, so scanners cannot grow the series

METRICS_KEY: web.AppKey[EdgeMetrics] = web.AppKey("ptr_edge_metrics", EdgeMetrics)


class Answer(enum.Enum):
    """How a route answers once its body is valid."""

    ACCEPTED = "accepted"
    """Hand the body to the actor without waiting; 202 ``{"accepted": records}``."""
    REPLY = "reply"
    """Wait for the actor's answer through the bridge and return it as JSON (200)."""


@dataclass(frozen=True)
class Route:
    """One declared endpoint.

    ``body`` is a pydantic model class, or ``list[Model]`` for a batch (validated in one
    ``validate_json`` pass over the raw bytes). ``name`` is what the actor side sees in
    ``Inbound.route`` to tell routes apart; it defaults to the path. ``timeout_s`` bounds the wait
    for a ``REPLY``.
    """

    method: str
    path: str
    body: Any
    answer: Answer = Answer.ACCEPTED
    name: str = ""
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise SpecError(f"path {self.path!r} must start with /", child_id=self.route_name)
        if not self.method.isalpha():
            raise SpecError(f"method {self.method!r} is not an HTTP method", child_id=self.route_name)
        if not isinstance(self.answer, Answer):
            raise SpecError(f"answer must be an Answer, not {self.answer!r}", child_id=self.route_name)
        if self.timeout_s <= 0:
            raise SpecError(f"timeout_s must be positive, not {self.timeout_s}",
                            child_id=self.route_name)

    @property
    def route_name(self) -> str:
        return self.name or self.path


@dataclass(frozen=True, slots=True)
class Inbound:
    """What the HTTP edge puts on the bridge: which route, the validated body, the client address."""

    route: str
    body: Any
    peer: str


def build_app(routes: Iterable[Route], *, bridge: EdgeBridge[Inbound], max_body_bytes: int,
              allow_networks: Sequence[str | Network],
              metrics_registry: CollectorRegistry | None = None,
              retry_after_s: int = 1) -> web.Application:
    """An aiohttp application serving ``routes`` plus ``GET /health`` and ``GET /metrics``.

    Raises ``SpecError`` for a route that is declared twice, uses a reserved path or has a body
    type pydantic cannot validate, and ``ConfigError`` for an allowlist entry that is not a network.
    The allowlist is checked against the TCP peer of every request, ``/health`` and ``/metrics``
    included; behind a proxy, allow the proxy. ``metrics_registry`` must not be shared with another
    app: each app registers its own metrics in it.
    """
    if max_body_bytes < 1:
        raise ConfigError(f"max_body_bytes must be positive, not {max_body_bytes}")
    networks = _parse_networks(allow_networks)
    metrics = EdgeMetrics(metrics_registry or CollectorRegistry(), lambda: bridge.in_flight)
    app = web.Application(middlewares=[_guard(metrics, retry_after_s, max_body_bytes),
                                       _allowlist(networks)],
                          client_max_size=max_body_bytes)
    app[METRICS_KEY] = metrics
    seen: set[tuple[str, str]] = set()
    for route in routes:
        method = route.method.upper()
        if route.path in RESERVED_PATHS:
            raise SpecError(f"{route.path} is served by the edge itself", child_id=route.route_name)
        if (method, route.path) in seen:
            raise SpecError(f"{method} {route.path} is declared twice", child_id=route.route_name)
        seen.add((method, route.path))
        app.router.add_route(method, route.path, _route_handler(route, bridge, metrics,
                                                               max_body_bytes))
    app.router.add_get("/health", _health_handler(bridge))
    app.router.add_get("/metrics", _metrics_handler(metrics.registry))
    return app


# --- answers ----------------------------------------------------------------------------------

def _json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(payload, separators=(",", ":")).encode(),
                        content_type="application/json", headers=headers)


def _error(status: int, message: str, headers: dict[str, str] | None = None, /,
           **context: Any) -> web.Response:
    return _json_response(status, {"error": message, **context}, headers)


def _too_large(max_body_bytes: int) -> web.Response:
    return _error(413, "request body too large", max_bytes=max_body_bytes)


def _from_http_exception(exc: web.HTTPException, request: web.Request,
                         max_body_bytes: int) -> web.Response:
    """aiohttp's own answers (404, 405, 413 from ``read``...) rewritten as JSON, headers kept."""
    headers = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type",
                                                                        "content-length")}
    context: dict[str, Any] = {"path": request.path}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        context["allowed"] = sorted(exc.allowed_methods)
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        context["max_bytes"] = max_body_bytes
    return _error(exc.status, exc.reason, headers, **context)


# --- middlewares --------------------------------------------------------------------------------

def _route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


def _guard(metrics: EdgeMetrics, retry_after_s: int, max_body_bytes: int) -> Middleware:
    """Outermost middleware: measures every request and turns every failure into a JSON answer.

    This is the single place where the edge catches ``Exception``: a bug in one request must cost
    that request a 500, not the server.
    """
    retry_after = {"Retry-After": str(retry_after_s)}

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        metrics.in_flight.inc()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = _from_http_exception(exc, request, max_body_bytes)
        except SaturatedError as exc:
            response = _error(503, "edge saturated, retry later", retry_after, limit=exc.limit)
        except UnavailableError as exc:  # the tree refuses for now: a store it needs is out
            response = _error(503, str(exc), retry_after, retry_after_s=retry_after_s)
        except BridgeClosedError:
            response = _error(503, "edge is shutting down", retry_after)
        except InvalidMessageError as exc:  # the actor judged the content invalid
            response = _json_response(exc.status, exc.as_json())
        except RequestTimeoutError as exc:
            response = _error(504, str(exc), timeout_s=exc.timeout_s)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            log.exception("%s %s failed", request.method, request.path)
            response = _error(500, "internal error", type=type(exc).__name__)
        finally:
            metrics.in_flight.dec()
        metrics.observe(_route_label(request), response.status, time.perf_counter() - started)
        return response

    return guard


def _allowlist(networks: tuple[Network, ...]) -> Middleware:
    """Refuse (403) clients whose TCP peer address is in none of ``networks``."""

    @functools.lru_cache(maxsize=4096)  # clients repeat; parsing and matching cost ~2 us each
    def allowed(remote: str | None) -> bool:
        if not remote:
            return False
        try:
            address = ipaddress.ip_address(remote.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in networks)

    @web.middleware
    async def allowlist(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not allowed(request.remote):
            return _error(403, "client address not allowed", client=request.remote)
        return await handler(request)

    return allowlist


def _parse_networks(entries: Sequence[str | Network]) -> tuple[Network, ...]:
    if isinstance(entries, str):
        entries = [entries]
    if not entries:
        raise ConfigError("allow_networks is empty, so every client would be refused; "
                          "allow 0.0.0.0/0 and ::/0 explicitly to allow everyone")
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry))
        except ValueError as exc:
            raise ConfigError(f"allow_networks entry {entry!r} is not a network: {exc}") from None
    return tuple(networks)


# --- handlers -----------------------------------------------------------------------------------

def _kind_of(body: Any) -> str:
    item = typing.get_args(body)[0] if typing.get_origin(body) is list else body
    return str(getattr(item, "kind", "") or getattr(item, "__name__", "") or item)


def _route_handler(route: Route, bridge: EdgeBridge[Inbound], metrics: EdgeMetrics,
                   max_body_bytes: int) -> Handler:
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(route.body)
    except (PydanticUserError, pydantic_core.SchemaError, TypeError, ValueError) as exc:
        raise SpecError(f"body type {route.body!r} cannot be validated: {exc}",
                        child_id=route.route_name) from None
    is_batch = typing.get_origin(route.body) is list
    name, kind, timeout_s = route.route_name, _kind_of(route.body), route.timeout_s

    def validated(raw: bytes) -> Any:
        try:
            return adapter.validate_json(raw)
        except ValidationError as exc:
            raise InvalidMessageError(f"invalid {kind}", kind=kind, errors=field_errors(exc)) from None

    async def read_body(request: web.Request) -> bytes | None:
        if request.content_length is not None and request.content_length > max_body_bytes:
            return None  # refuse before reading a byte of it
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:  # chunked bodies have no length to check up front
            return None

    async def accept(request: web.Request) -> web.StreamResponse:
        raw = await read_body(request)
        if raw is None:
            return _too_large(max_body_bytes)
        body = validated(raw)
        count = len(body) if is_batch else 1
        if count:
            bridge.submit_nowait(Inbound(name, body, request.remote or ""))
            metrics.accepted(name, count)
        return _json_response(202, {"accepted": count})

    async def reply(request: web.Request) -> web.StreamResponse:
        raw = await read_body(request)
        if raw is None:
            return _too_large(max_body_bytes)
        body = validated(raw)
        try:
            async with asyncio.timeout(timeout_s):
                result = await bridge.submit(Inbound(name, body, request.remote or ""))
        except TimeoutError:
            raise RequestTimeoutError("the actor side", f"{request.method} {name}", timeout_s) from None
        metrics.accepted(name, len(body) if is_batch else 1)
        return web.Response(body=pydantic_core.to_json(result), content_type="application/json")

    return accept if route.answer is Answer.ACCEPTED else reply


def _health_handler(bridge: EdgeBridge[Inbound]) -> Handler:
    async def health(request: web.Request) -> web.StreamResponse:
        if bridge.closed:
            return _error(503, "edge is shutting down", status="closing")
        return _json_response(200, {"status": "ok", "in_flight": bridge.in_flight,
                                   "max_in_flight": bridge.limit})
    return health


def _metrics_handler(registry: CollectorRegistry) -> Handler:
    async def metrics(request: web.Request) -> web.StreamResponse:
        return web.Response(body=generate_latest(registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})
    return metrics
