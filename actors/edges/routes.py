"""What an HTTP edge declares: its ``Route``s, how each answers (``Answer``), what reaches the
actor side (``Inbound``), and the one map from a refusal's kind to an HTTP status (``HTTP_STATUS``).

Pure declarations: the aiohttp application that serves them is ``http_app``; the OpenAPI document
that describes them is ``openapi``. Both read this module; neither is read by it.
"""

from __future__ import annotations

import enum
import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from protocols.errors import RefusalKind, SpecError

__all__ = ["ANSWER_LATER", "Answer", "HTTP_STATUS", "Inbound", "PROBLEM_MEMBERS", "Route", "problem"]

HTTP_STATUS: dict[RefusalKind, int] = {
    RefusalKind.INVALID: 400, RefusalKind.UNAUTHORIZED: 401, RefusalKind.FORBIDDEN: 403,
    RefusalKind.NOT_FOUND: 404, RefusalKind.CONFLICT: 409, RefusalKind.TOO_LARGE: 413,
    RefusalKind.UNSUPPORTED: 415, RefusalKind.TOO_MANY: 429, RefusalKind.UNAVAILABLE: 503,
    RefusalKind.TIMEOUT: 504,
}
"""The one place a refusal kind becomes an HTTP status."""

def problem(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """An error body as RFC 9457 problem details as well: ``type`` (``about:blank``: the status
    says it all), ``title`` (the status's phrase), ``status`` and ``detail`` (the ``error`` text),
    beside ptr's own members (``error``, ``refusal``, ``fields``...). Served as
    ``application/json``, the type every client of the edges reads errors as."""
    return {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status,
            "detail": body.get("error", ""), **{k: v for k, v in body.items()
                                                 if k not in PROBLEM_MEMBERS}}


PROBLEM_MEMBERS = frozenset({"type", "title", "status", "detail"})
_PATH_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)}")

ANSWER_LATER: Any = type("AnswerLater", (), {"__repr__": lambda self: "ANSWER_LATER"})()
"""What a ``Route.handler`` returns when it settles the request itself later (``Inbound.pending``)."""


class Answer(enum.Enum):
    """How a route answers once its body is valid."""

    ACCEPTED = "accepted"
    """Hand the body to the actor without waiting; 202 ``{"accepted": records}``."""
    REPLY = "reply"
    """Wait for the actor's answer through the bridge and return it as JSON (200)."""


@dataclass(frozen=True)
class Route:
    """One declared endpoint.

    ``body`` is the request body's model (a ``protocols.message.WireBody``, or ``list[Model]`` for
    a batch, validated in one ``validate_json`` pass over the raw bytes), or None for no body.
    ``params`` is a model of the query and path parameters (validated from their strings; path
    parameters are its required fields named in ``{}``). ``response`` is the model of a 200 answer
    (documentation: the OpenAPI document and the contract tests check answers against it);
    ``media_type`` another content type for it (``bytes`` answers, e.g. ``image/png``).

    Who answers, once the request is valid:

    * by default the actor side through the bridge: ``HttpEdgeActor`` sends it to the route's
      target in an ``EdgeBatch`` (``name`` tells routes apart in ``EdgeItem.route``);
    * ``handler(host, inbound)``: a function of the hosting actor, run in its thread; it returns the
      answer, raises ``RefusedError``, or returns ``ANSWER_LATER`` and settles ``inbound.pending``;
    * ``loop_handler(host, inbound)``: an async function run on the edge's loop (never blocking it:
      database reads go to its executor); it must touch only what the host does not change.
    * ``stream_handler(host, request, params)``: an async function on the loop given aiohttp's raw
      request (``params`` validated), for what is not one JSON body in and one JSON answer out: a
      large upload streamed to disk (``body_media_type`` documents it; the edge's
      ``max_body_bytes`` does not apply, the handler enforces its own limit), or a stream of
      server-sent events (``media_type`` ``text/event-stream``). It returns the response, or raises
      ``RefusedError``. It may hand work to the route's target with ``host.bridge.submit(Inbound(
      route name, body, peer))`` when the system gives the route a target.

    ``refuses`` lists the refusal kinds the answering side may give beyond the edge's own (invalid,
    forbidden, too_large, unavailable, timeout); each is documented with its status.
    ``timeout_s`` bounds the wait for an answer.
    """

    method: str
    path: str
    body: Any = None
    answer: Answer = Answer.ACCEPTED
    name: str = ""
    timeout_s: float = 10.0
    params: type[BaseModel] | None = None
    response: Any = None
    handler: Callable[[Any, Inbound], Any] | None = None
    loop_handler: Callable[[Any, Inbound], Awaitable[Any]] | None = None
    refuses: tuple[RefusalKind, ...] = ()
    media_type: str = "application/json"
    summary: str = ""
    stream_handler: Callable[[Any, web.Request, Any], Awaitable[web.StreamResponse]] | None = None
    body_media_type: str = ""

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
        if sum(h is not None for h in (self.handler, self.loop_handler, self.stream_handler)) > 1:
            raise SpecError("a route has one handler: handler, loop_handler or stream_handler",
                            child_id=self.route_name)
        if self.stream_handler is not None and not inspect.iscoroutinefunction(
                self.stream_handler):
            raise SpecError("stream_handler must be an async function", child_id=self.route_name)
        if self.loop_handler is not None and not inspect.iscoroutinefunction(self.loop_handler):
            raise SpecError("loop_handler must be an async function", child_id=self.route_name)
        if ((self.handler or self.loop_handler or self.stream_handler)
                and self.answer is Answer.ACCEPTED):
            raise SpecError("a route with a handler answers: use Answer.REPLY",
                            child_id=self.route_name)
        if self.stream_handler is not None and self.body is not None:
            raise SpecError("a stream_handler reads the body itself: declare body_media_type, "
                            "not body", child_id=self.route_name)
        if self.body is None and self.answer is Answer.ACCEPTED:
            raise SpecError("a route without a body must answer: use Answer.REPLY",
                            child_id=self.route_name)
        names = set(self.path_params)
        declared = set(self.params.model_fields) if self.params is not None else set()
        if not names <= declared:
            raise SpecError(f"path parameters {sorted(names - declared)} are not fields of params",
                            child_id=self.route_name)
        object.__setattr__(self, "refuses", tuple(RefusalKind(k) for k in self.refuses))

    @property
    def route_name(self) -> str:
        return self.name or self.path

    @property
    def path_params(self) -> list[str]:
        return _PATH_PARAM.findall(self.path)


@dataclass(slots=True)
class Inbound:
    """What the HTTP edge puts on the bridge: which route, the validated body and parameters (a
    ``params`` model instance, or None), the client address; ``pending`` is set by the actor side
    while a ``Route.handler`` runs, for one that answers later."""

    route: str
    body: Any
    peer: str
    params: Any = None
    pending: Any = field(default=None, compare=False)
