"""The HTTP edge: declared routes validated with pydantic, handed to the actor side by a bridge or
answered by a function on the loop, and described by the OpenAPI 3.1 document the edge serves.

A ``Route`` declares method, path (``{name}`` path parameters), request models (``body``, and
``params`` for the query and path parameters), response model, and who answers: the hosting actor
or a named target through the bridge (the default; the host may answer with ``handler``), or
``loop_handler``, an async function run on the edge's loop.

Every answer is JSON, errors included: ``{"error": text, "refusal": kind, ...}``. Inside the tree a
refusal has a kind (``protocols.errors.RefusalKind``), never a status; ``HTTP_STATUS`` maps kinds to
statuses here, and only here: invalid 400 (``fields`` names each bad field), unauthorized 401,
forbidden 403 (also a client outside the allowlist), not_found 404 (also an unknown route),
conflict 409, too_large 413, unsupported 415 (content of a type not taken), too_many 429 and
unavailable 503 (both with ``Retry-After``; 503 also for a saturated or closed bridge), timeout
504; 500 is a bug here. A handler exception never takes the server down.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import logging
import time
import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import pydantic_core
from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import PydanticUserError, TypeAdapter, ValidationError

from actors.edges._metrics import EdgeMetrics
from actors.edges.bridge import BridgeClosedError, EdgeBridge, SaturatedError
from actors.edges.openapi import openapi_document
from actors.edges.routes import ANSWER_LATER, HTTP_STATUS, Answer, Inbound, Route, problem
from protocols.codec import field_errors
from protocols.errors import (
    ConfigError,
    InvalidMessageError,
    RefusalKind,
    RefusedError,
    RequestTimeoutError,
    SpecError,
    UnavailableError,
)

__all__ = ["ANSWER_LATER", "Answer", "HTTP_STATUS", "Inbound", "METRICS_KEY", "OPENAPI_PATH",
           "Route", "build_app", "problem"]

log = logging.getLogger("ptr.edges.http")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPENAPI_PATH = "/openapi.json"
RESERVED_PATHS = frozenset({"/health", "/metrics", OPENAPI_PATH})

_RETRY_LATER = frozenset({RefusalKind.TOO_MANY, RefusalKind.UNAVAILABLE})
UNMATCHED = "unmatched"  # one metrics label for every unknown path, so scanners cannot grow the series

METRICS_KEY: web.AppKey[EdgeMetrics] = web.AppKey("ptr_edge_metrics", EdgeMetrics)


def build_app(routes: Iterable[Route], *, bridge: EdgeBridge[Inbound], max_body_bytes: int,
              allow_networks: Sequence[str | Network],
              metrics_registry: CollectorRegistry | None = None,
              retry_after_s: int = 1, host: Any = None, title: str = "ptr edge",
              version: str = "1") -> web.Application:
    """An aiohttp application serving ``routes`` plus ``GET /health``, ``GET /metrics`` and
    ``GET /openapi.json`` (the OpenAPI 3.1 document of ``routes``, titled ``title``).

    ``host`` is the first argument of every ``loop_handler``. Raises ``SpecError`` for a route
    that is declared twice, uses a reserved path or has a model pydantic cannot validate, and
    ``ConfigError`` for an allowlist entry that is not a network. The allowlist is checked against
    the TCP peer of every request, ``/health`` and ``/metrics`` included; behind a proxy, allow the
    proxy. ``metrics_registry`` must not be shared with another app: each app registers its own
    metrics in it.
    """
    if max_body_bytes < 1:
        raise ConfigError(f"max_body_bytes must be positive, not {max_body_bytes}")
    routes = list(routes)
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
                                                               max_body_bytes, host))
    document = json.dumps(openapi_document(routes, title=title, version=version),
                          separators=(",", ":")).encode()
    app.router.add_get("/health", _health_handler(bridge))
    app.router.add_get("/metrics", _metrics_handler(metrics.registry))
    app.router.add_get(OPENAPI_PATH, _document_handler(document))
    return app


# --- answers ----------------------------------------------------------------------------------

def _json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(payload, separators=(",", ":")).encode(),
                        content_type="application/json", headers=headers)


def _error(status: int, message: str, headers: dict[str, str] | None = None, /,
           **context: Any) -> web.Response:
    return _json_response(status, problem(status, {"error": message, **context}), headers)


def _refused(exc: RefusedError, retry_after_s: int) -> web.Response:
    """A refusal's answer: the status of its kind, its JSON, ``Retry-After`` when retrying helps."""
    headers = None
    body = exc.as_json()
    if exc.refusal in _RETRY_LATER:
        wait = exc.retry_after_s if exc.retry_after_s is not None else retry_after_s
        seconds = max(1, round(wait + 0.49))
        headers = {"Retry-After": str(seconds)}
        body.setdefault("retry_after_s", seconds)  # the body says what the header says
    status = HTTP_STATUS[exc.refusal]
    return _json_response(status, problem(status, body), headers)


def _too_large(max_body_bytes: int) -> web.Response:
    return _error(413, "request body too large", refusal=RefusalKind.TOO_LARGE.value,
                  max_bytes=max_body_bytes)


_HTTP_REFUSALS = {404: RefusalKind.NOT_FOUND, 405: RefusalKind.NOT_FOUND,
                  413: RefusalKind.TOO_LARGE}


def _from_http_exception(exc: web.HTTPException, request: web.Request,
                         max_body_bytes: int) -> web.Response:
    """aiohttp's own answers (404, 405, 413 from ``read``...) rewritten as JSON, headers kept."""
    headers = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type",
                                                                        "content-length")}
    context: dict[str, Any] = {"path": request.path}
    refusal = _HTTP_REFUSALS.get(exc.status)
    if refusal is not None:
        context["refusal"] = refusal.value
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
            response = _error(503, "edge saturated, retry later", retry_after,
                              refusal=RefusalKind.UNAVAILABLE.value, limit=exc.limit)
        except RefusedError as exc:  # the edge or the tree refused: the status of its kind
            response = _refused(exc, retry_after_s)
        except UnavailableError as exc:  # the tree refuses for now: a store it needs is out
            response = _error(503, str(exc), retry_after, refusal=RefusalKind.UNAVAILABLE.value,
                              retry_after_s=retry_after_s)
        except BridgeClosedError:
            response = _error(503, "edge is shutting down", retry_after,
                              refusal=RefusalKind.UNAVAILABLE.value)
        except RequestTimeoutError as exc:
            response = _error(504, str(exc), refusal=RefusalKind.TIMEOUT.value,
                              timeout_s=exc.timeout_s)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            log.exception("%s %s failed", request.method, request.path)
            response = _error(500, "internal error", error_type=type(exc).__name__)
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
            return _error(403, "client address not allowed", refusal=RefusalKind.FORBIDDEN.value,
                          client=request.remote)
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


def _adapter(route: Route, model: Any, what: str) -> TypeAdapter[Any]:
    try:
        return TypeAdapter(model)
    except (PydanticUserError, pydantic_core.SchemaError, TypeError, ValueError) as exc:
        raise SpecError(f"{what} type {model!r} cannot be validated: {exc}",
                        child_id=route.route_name) from None


def _route_handler(route: Route, bridge: EdgeBridge[Inbound], metrics: EdgeMetrics,
                   max_body_bytes: int, host: Any) -> Handler:
    has_body = route.body is not None
    adapter = _adapter(route, route.body, "body") if has_body else None
    params_model = route.params
    if params_model is not None:
        _adapter(route, params_model, "params")
    is_batch = typing.get_origin(route.body) is list
    name, timeout_s = route.route_name, route.timeout_s
    kind = _kind_of(route.body) if has_body else name
    media_type, loop_handler = route.media_type, route.loop_handler

    def validated(raw: bytes) -> Any:
        assert adapter is not None
        try:
            return adapter.validate_json(raw)
        except ValidationError as exc:
            raise InvalidMessageError(f"invalid {kind}", kind=kind, errors=field_errors(exc)) from None

    def parameters(request: web.Request) -> Any:
        if params_model is None:
            return None
        query = request.query
        raw = {key: query.get(key) for key in query}
        raw.update(request.match_info)
        try:
            return params_model.model_validate(raw)
        except ValidationError as exc:
            errors = field_errors(exc)
            where = errors[0]["field"] if errors else "parameters"
            raise InvalidMessageError(f"invalid query parameter {where}", kind="query",
                                      errors=errors) from None

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
            bridge.submit_nowait(Inbound(name, body, request.remote or "", parameters(request)))
            metrics.accepted(name, count)
        return _json_response(202, {"accepted": count})

    async def reply(request: web.Request) -> web.StreamResponse:
        params = parameters(request)
        body = None
        if has_body:
            raw = await read_body(request)
            if raw is None:
                return _too_large(max_body_bytes)
            body = validated(raw)
        inbound = Inbound(name, body, request.remote or "", params)
        try:
            async with asyncio.timeout(timeout_s):
                if loop_handler is not None:
                    result = await loop_handler(host, inbound)
                else:
                    result = await bridge.submit(inbound)
        except TimeoutError:
            raise RequestTimeoutError("the actor side", f"{request.method} {name}", timeout_s) from None
        metrics.accepted(name, len(body) if is_batch else 1)
        if isinstance(result, bytes):
            return web.Response(body=result, content_type=media_type,
                                headers={"Cache-Control": "no-store"})
        return web.Response(body=pydantic_core.to_json(result), content_type="application/json")

    async def stream(request: web.Request) -> web.StreamResponse:
        assert route.stream_handler is not None
        return await route.stream_handler(host, request, parameters(request))

    if route.stream_handler is not None:
        return stream
    return accept if route.answer is Answer.ACCEPTED else reply


def _health_handler(bridge: EdgeBridge[Inbound]) -> Handler:
    async def health(request: web.Request) -> web.StreamResponse:
        if bridge.closed:
            return _json_response(503, {"status": "closing", "error": "edge is shutting down"})
        return _json_response(200, {"status": "ok", "in_flight": bridge.in_flight,
                                   "max_in_flight": bridge.limit})
    return health


def _metrics_handler(registry: CollectorRegistry) -> Handler:
    async def metrics(request: web.Request) -> web.StreamResponse:
        return web.Response(body=generate_latest(registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})
    return metrics


def _document_handler(document: bytes) -> Handler:
    async def openapi(request: web.Request) -> web.StreamResponse:
        return web.Response(body=document, content_type="application/json")
    return openapi
