"""The supervised HTTP edge: an aiohttp server in a loop thread, feeding the actor tree in batches.

``BridgedEdge`` is what both edge actors share (the UDP edge imports it): an asyncio ``LoopThread``
beside the actor thread, an ``EdgeBridge`` between them, and a credit window of requests to the
registered names the edge feeds. ``HttpEdgeActor`` serves declared ``Route``s with it.

How a request travels: aiohttp validates the body in the loop thread and puts it on the bridge. The
actor wakes (a ``WatchMessage`` on the bridge's fd on multiprocTCPBase; a 2 ms repeating timer on
simpleSystemBase, where Thespian cannot watch fds), drains up to ``drain_max`` items and sends ONE
``EdgeBatch`` request per target for the whole drained batch. The target answers ``EdgeAnswers``,
one answer per item, and each waiting HTTP request is resolved with its answer (200), or refused
with its ``Refusal``'s kind (the app maps kinds to statuses: invalid 400 naming fields,
unavailable 503 with ``Retry-After``...). A route with a ``handler`` is answered by this actor
instead (in its thread), one with a ``loop_handler`` on the loop.

Bounded in flight: at most ``window`` requests to targets are outstanding; while the window is full
the edge stops draining, the bridge fills up to ``max_in_flight`` HTTP requests and every one past
that is answered 503 with ``Retry-After`` at once.

Failure rules:

* The edge restarts like any child: ``on_start`` binds the server (a fixed ``port`` is bound again
  after a restart; port 0 picks a free one, reported by ``GetEdgeInfo``), ``on_stop`` closes the
  bridge (waiting clients get 503) and stops the server and the loop. A SIGKILL just ends the
  process, sockets and all.
* A target that goes down (its registered name is unregistered, which the edge monitors) fails the
  requests outstanding to it with 503 at once; the edge resolves the name again and stops draining
  until it is back, so new requests wait for the restarted target, or get 503 when the bridge is
  full, or 504 at their route's timeout. One absent target pauses the whole edge (the bridge is one
  FIFO).
* A target that does not answer within the route's ``timeout_s`` frees its window slot; its clients
  already got 504 from the route's own timeout. A target that crashes on a batch gives 503.
* A target that refuses work for now (an ``unavailable`` ``Refusal``: its storage is out) gives 503 with
  ``Retry-After`` and the target's reason in the JSON body; the edge itself is not affected.
* Bad input is answered by the aiohttp app (400, 403, 404, 405, 413) and never reaches the actor.

Args: ``routes`` (list of ``Route``), ``target`` (registered name for every route), ``targets``
(``{route name: registered name}`` overrides), ``host`` (127.0.0.1), ``port`` (0), ``tls_dir``
(HTTPS with a self-signed pair made there on first run, naming ``tls_hostnames`` or by default
``tls.host_names(host)``: for 0.0.0.0 the machine's names and addresses) or ``tls_cert`` +
``tls_key`` (a given pair), ``idle_timeout_s`` (aiohttp's keep-alive timeout: a connection that
has not sent a whole request within it, idle or slow, is closed), ``allow`` (CIDR allowlist, default loopback; others get 403), ``max_body_bytes`` (1 MiB,
413 above), ``max_in_flight`` (256), ``window`` (4), ``drain_max`` (256), ``linger_s`` (0: how
long a batch may wait for more items before it is sent; while it waits the edge sleeps on a
timer, so ``drain_max`` items arriving meanwhile leave when the timer fires),
``retry_after_s`` (1).
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, RootModel

from actors.base import Actor
from actors.peers import Peer
from actors.edges import (
    ANSWER_LATER,
    EdgeBridge,
    HttpServer,
    Inbound,
    LoopThread,
    Pending,
    Route,
    SaturatedError,
    build_app,
    context_from_files,
    self_signed_context,
)
from actors.edges.tls import host_names
from protocols.errors import ConfigError, RefusedError, RequestTimeoutError
from protocols.message import ActorArgs, Message, WireBody
from protocols.edges import EdgeAnswers, EdgeBatch, EdgeInfo, EdgeItem, GetEdgeInfo, Refusal
from protocols.supervision import ExitReason, Reply, Request

__all__ = ["BridgedEdge", "BridgedEdgeArgs", "DEFAULT_ALLOW", "HttpEdgeActor", "HttpEdgeArgs",
           "plain_body"]

log = logging.getLogger("ptr.edges")

DEFAULT_ALLOW = ("127.0.0.0/8", "::1/128")
POLL_INTERVAL_S = 0.002      # simpleSystemBase: how often the actor drains its bridge
LOOP_CALL_TIMEOUT_S = 10.0   # starting or stopping a server on the loop thread


class DrainTick:
    """Timer message: drain the bridge (simpleSystemBase, where fds cannot be watched)."""


class LingerOver:
    """Timer message: the oldest queued item has waited ``linger_s``; drain now."""


def transport_watches_fds(actor: Actor) -> bool:
    """True when the actor's Thespian transport honours ``ThespianWatch`` (multiprocTCPBase).

    simpleSystemBase ignores a returned watch, so an edge there polls its bridge on a timer.
    """
    return actor.can_watch_fds


def _plain(item: Any) -> Any:
    if isinstance(item, Message):
        return item.__dict__
    if isinstance(item, RootModel) and isinstance(item.root, WireBody):
        return item.root
    return item


def plain_body(body: Any) -> Any:
    """A validated body as it travels in an ``EdgeItem``: a message becomes the dict of its fields,
    a ``WireBody`` stays itself (it pickles as its field dict, see ``protocols.message``), a
    ``RootModel`` around one becomes it; a list of them a list of such (shallow: a nested message
    stays a message).

    Pickling and unpickling a pydantic model costs ~10 times its dict (~4.5 us a record against
    ~0.4), a ``RootModel`` around it more (~7 us); the target needs no second validation.
    """
    if isinstance(body, list):
        return [_plain(item) for item in body] if body else body
    return _plain(body)


class BridgedEdgeArgs(ActorArgs):
    """What every edge actor takes: its credit window towards its targets and how it drains."""

    window: int = Field(default=4, ge=1)
    drain_max: int = Field(default=256, ge=1)
    linger_s: float = Field(default=0.0, ge=0)


class HttpEdgeArgs(BridgedEdgeArgs):
    """An HTTP edge's arguments (see the module docstring for what each one does)."""

    routes: list[Route] = Field(default_factory=list)
    target: str | None = None
    targets: dict[str, str] = Field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    tls_dir: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allow: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOW))
    max_body_bytes: int = Field(default=1 << 20, ge=1)
    max_in_flight: int = Field(default=256, ge=1)
    retry_after_s: int = Field(default=1, ge=0)
    title: str | None = None
    shutdown_timeout_s: float = Field(default=1.0, ge=0)
    idle_timeout_s: float | None = Field(default=None, gt=0)
    tls_hostnames: list[str] | None = None


class BridgedEdge(Actor):
    """Base of the edge actors; subclasses implement ``start_edge``, ``stop_edge``, ``send_drained``
    and ``target_names``.

    If ``on_start`` raises (a port in use, a bad setting), the actor exits with reason error and its
    supervisor decides; ``on_stop`` copes with a half-made start.
    """

    bridge: EdgeBridge[Any] | None = None
    loop_thread: LoopThread | None = None

    # --- hooks for the concrete edge ----------------------------------------------------------

    def start_edge(self) -> EdgeBridge[Any]:
        """Start the server on ``self.loop_thread``; return the bridge it feeds (set it on
        ``self.bridge`` before anything that may fail, so ``on_stop`` closes it)."""
        raise NotImplementedError

    def stop_edge(self) -> None:
        """Stop the server (the bridge is closed already)."""

    def target_names(self) -> Sequence[str]:
        raise NotImplementedError

    def send_drained(self, drained: list[Pending[Any]]) -> None:
        """Turn one drained batch into one request per target with ``ask_target``."""
        raise NotImplementedError

    # --- lifecycle ----------------------------------------------------------------------------

    Args: type[BridgedEdgeArgs] = BridgedEdgeArgs

    def on_start(self) -> None:
        self.edge_args = typed = self.typed_args()
        self.window, self.drain_max, self.linger_s = typed.window, typed.drain_max, typed.linger_s
        self.lingering = False
        self.batches_sent = self.items_sent = 0
        self.targets: dict[str, Peer] = {}
        self.in_flight: dict[str, tuple[str, Any, Callable[[BaseException], None]]] = {}
        self.watching = transport_watches_fds(self)
        self.loop_thread = LoopThread(name=f"ptr-edge{self.path}")
        self.loop_thread.start()
        self.bridge = self.start_edge()
        for name in dict.fromkeys(self.target_names()):
            self.targets[name] = self.peer(name, on_down=lambda address, n=name:
                                           self.target_down(n, address))
            self.resolve(name)
        if not self.watching:
            self.start_timer(POLL_INTERVAL_S, DrainTick(), repeat=True)
        self.update_watch()

    def on_stop(self, reason: ExitReason) -> None:
        self.watch_fds(None)  # before closing: the fd Thespian selects on goes away with the bridge
        if self.bridge is not None:
            self.bridge.close()
        try:
            if self.loop_thread is not None and self.loop_thread.running:
                self.stop_edge()
        finally:
            if self.loop_thread is not None:
                self.loop_thread.stop()

    # --- waking up and draining ---------------------------------------------------------------

    def receiveMsg_WatchMessage(self, msg: Any, sender: Any) -> None:
        self.pump()

    def receiveMsg_DrainTick(self, msg: DrainTick, sender: Any) -> None:
        if sender == self.myAddress:
            self.pump()

    def receiveMsg_LingerOver(self, msg: LingerOver, sender: Any) -> None:
        if sender == self.myAddress:
            self.lingering = False
            self.pump()

    def ready(self) -> bool:
        """Room in the window, every target resolved, bridge open: draining may go on."""
        return (self.bridge is not None and not self.bridge.closed
                and len(self.in_flight) < self.window
                and all(peer.address is not None for peer in self.targets.values()))

    def pump(self) -> None:
        """Drain while ready; one batch at a time, each becoming one request per target."""
        bridge = self.bridge
        while bridge is not None and self.ready() and not self.linger(bridge):
            drained = bridge.drain(self.drain_max)
            if not drained:
                break
            self.batches_sent += 1
            self.items_sent += len(drained)
            self.send_drained(drained)
        self.update_watch()

    def linger(self, bridge: EdgeBridge[Any]) -> bool:
        """True while the batch should wait for more items (Kafka's ``linger.ms``): its oldest item
        is younger than ``linger_s`` and it was not full when the edge last woke. Every batch costs a Thespian round trip
        (~1-2 ms of CPU on each side), so at a steady trickle a few ms of waiting buys batches
        several times larger for the same answer time budget. A one-shot timer ends the wait."""
        if self.lingering:
            return True
        if self.linger_s <= 0 or bridge.queued >= self.drain_max:
            return False
        oldest = bridge.oldest_queued_at
        if oldest is None:
            return False
        wait = oldest + self.linger_s - time.monotonic()
        if wait <= 0.0005:
            return False
        self.lingering = True
        self.start_timer(wait, LingerOver())
        return True

    def update_watch(self) -> None:
        """Watch the bridge only while ready and not lingering, so neither a full window nor a
        wait for a fuller batch spins on a readable fd."""
        if self.watching and self.bridge is not None:
            self.watch_fds([self.bridge.wake_fd] if self.ready() and not self.lingering else None)

    # --- talking to targets -------------------------------------------------------------------

    def ask_target(self, name: str, body: Any, on_answer: Callable[[Any], None],
                   on_failure: Callable[[BaseException], None], timeout_s: float) -> None:
        """One request in the window. Exactly one of ``on_answer``/``on_failure`` runs: the answer,
        a timeout (``RequestTimeoutError``), or the target going down or crashing on it (503)."""
        cid = ""

        def answered(answer: Any) -> None:
            if self.in_flight.pop(cid, None) is not None:
                on_answer(answer)
                self.pump()

        def timed_out() -> None:
            if self.in_flight.pop(cid, None) is not None:
                on_failure(RequestTimeoutError(name, type(body).__name__, timeout_s))
                self.forget(name)  # perhaps a stale address: ask the registry again
                self.pump()

        address = self.targets[name].address
        cid = self.request(address, body, answered, timeout_s=timeout_s, on_timeout=timed_out)
        self.in_flight[cid] = (name, address, on_failure)

    def unavailable(self, name: str, why: str) -> SaturatedError:
        """What a client is told when the tree behind the edge cannot take its request: 503."""
        log.info("%s: target %s unavailable: %s", self.path, name, why)
        return SaturatedError(self.window)

    def fail_in_flight(self, cid: str, why: str) -> bool:
        entry = self.in_flight.pop(cid, None)
        if entry is None:
            return False
        name, _address, on_failure = entry
        on_failure(self.unavailable(name, why))
        return True

    def receiveMsg_Reply(self, msg: Reply, sender: Any) -> None:
        """A target that crashed on our request answers with an error: 503 for its clients, and
        this edge lives on (the base class would crash the caller, as an OTP call does)."""
        failed = bool(msg.error) and self.fail_in_flight(msg.correlation_id, msg.error)
        super().receiveMsg_Reply(Reply(correlation_id=msg.correlation_id) if failed else msg,
                                 sender)
        if failed:
            self.pump()

    def receiveMsg_PoisonMessage(self, msg: Any, sender: Any) -> None:
        """Thespian could not deliver a request (the target's process is gone): fail it now."""
        request = getattr(msg, "poisonMessage", None)
        if isinstance(request, Request) and self.fail_in_flight(request.correlation_id,
                                                                "undeliverable"):
            self.pump()

    # --- resolving targets (each one a ``Peer``) -------------------------------------------------

    def resolve(self, name: str) -> None:
        """Find the target (again): draining resumes once it is known; while it is restarting the
        ``Peer`` asks again with backoff, and keeps asking past its deadline."""
        def known(address: Any) -> None:
            if address is None:
                self.resolve(name)  # still not registered: go on asking
            else:
                self.pump()

        self.targets[name].when_up(known)

    def forget(self, name: str) -> None:
        """A target did not answer in time: perhaps a stale address; ask the registry again."""
        self.targets[name].forget()
        self.resolve(name)

    def target_down(self, name: str, address: Any) -> None:
        """A target went down: fail what is outstanding to it (503) and wait for its restart."""
        for cid, (target, sent_to, _) in list(self.in_flight.items()):
            if target == name and sent_to == address:
                self.fail_in_flight(cid, "went down")
        self.resolve(name)
        self.pump()


class HttpEdgeActor(BridgedEdge):
    """Serves ``args["routes"]`` over HTTP(S): a route's validated request goes to its target in
    an ``EdgeBatch``, to its ``handler`` in this actor's thread, or to its ``loop_handler`` on the
    loop. Subclasses (an API with handlers of its own) pass their routes in ``args`` as well, or
    override ``routes()``. ``GET /openapi.json`` documents them (``title`` arg).

    See the module docstring for args, back-pressure and failure rules.
    """

    Args: type[BridgedEdgeArgs] = HttpEdgeArgs
    server: HttpServer | None = None

    def routes(self) -> list[Route]:
        return list(self.edge_args.routes)

    def start_edge(self) -> EdgeBridge[Inbound]:
        args: HttpEdgeArgs = self.edge_args
        routes = self.routes()
        if not routes:
            raise ConfigError(f"{self.path}: an HTTP edge needs at least one route")
        default_target = args.target
        overrides: Mapping[str, str] = args.targets
        self.route_targets: dict[str, str] = {}
        self.route_handlers: dict[str, Callable[[Any, Inbound], Any]] = {}
        for route in routes:
            if route.handler is not None:
                self.route_handlers[route.route_name] = route.handler
                continue
            if route.loop_handler is not None:
                continue
            target = overrides.get(route.route_name, default_target)
            if route.stream_handler is not None and not target:
                continue  # a stream handler that hands nothing to the actors
            if not target:
                raise ConfigError(f"{self.path}: route {route.route_name!r} has no target name")
            self.route_targets[route.route_name] = str(target)
        self.route_timeouts = {route.route_name: route.timeout_s for route in routes}
        self.host = args.host
        ssl_context = self.tls_context()
        self.scheme = "https" if ssl_context is not None else "http"
        bridge: EdgeBridge[Inbound] = EdgeBridge(max_in_flight=args.max_in_flight)
        self.bridge = bridge  # closed by on_stop even if the server below fails to start
        app = build_app(routes, bridge=bridge, max_body_bytes=args.max_body_bytes,
                        allow_networks=list(args.allow), retry_after_s=args.retry_after_s,
                        host=self, title=args.title or self.path or "ptr edge")
        self.configure_app(app)
        self.server = HttpServer(app, host=self.host, port=args.port, ssl_context=ssl_context,
                                 shutdown_timeout_s=args.shutdown_timeout_s,
                                 idle_timeout_s=args.idle_timeout_s)
        assert self.loop_thread is not None
        self.port = self.loop_thread.run(self.server.start(), LOOP_CALL_TIMEOUT_S)
        log.info("%s serving %s://%s:%d", self.path, self.scheme, self.host, self.port)
        return bridge

    def configure_app(self, app: Any) -> None:
        """Called with the aiohttp application before it serves: a subclass may add middlewares,
        response headers or routes of its own (a WebSocket). Nothing by default."""

    def tls_context(self) -> ssl.SSLContext | None:
        args: HttpEdgeArgs = self.edge_args
        if args.tls_cert or args.tls_key:
            if not (args.tls_cert and args.tls_key):
                raise ConfigError(f"{self.path}: tls_cert and tls_key go together")
            return context_from_files(os.fspath(args.tls_cert), os.fspath(args.tls_key))
        if args.tls_dir:  # names the host bound (for 0.0.0.0: the machine's addresses)
            names = args.tls_hostnames or host_names(self.host)
            return self_signed_context(os.fspath(args.tls_dir), names)
        return None

    def stop_edge(self) -> None:
        if self.server is not None and self.loop_thread is not None:
            self.loop_thread.run(self.server.stop(), LOOP_CALL_TIMEOUT_S)

    def target_names(self) -> Sequence[str]:
        return tuple(self.route_targets.values())

    def send_drained(self, drained: list[Pending[Inbound]]) -> None:
        by_target: dict[str, list[Pending[Inbound]]] = {}
        handlers = self.route_handlers
        for pending in drained:
            route = pending.item.route
            if route in handlers:
                self.call_handler(handlers[route], pending)
            else:
                by_target.setdefault(self.route_targets[route], []).append(pending)
        for name, pendings in by_target.items():
            items = [EdgeItem(route=p.item.route, body=plain_body(p.item.body), peer=p.item.peer,
                              wants_answer=p.expects_reply) for p in pendings]
            timeout_s = max(self.route_timeouts[p.item.route] for p in pendings)
            self.ask_target(name, EdgeBatch(items=items),
                            lambda answer, ps=pendings, n=name: self.settle(ps, answer, n),
                            lambda exc, ps=pendings: self.fail_all(ps, exc),
                            timeout_s)
        if handlers:
            self.handled_drain()

    def call_handler(self, handler: Callable[[Any, Inbound], Any],
                     pending: Pending[Inbound]) -> None:
        """A route answered in this actor: its answer, its refusal, or ``ANSWER_LATER``. Any other
        exception is a bug of this actor: it crashes (its clients get 503 from the closing
        bridge) and its supervisor decides."""
        inbound = pending.item
        inbound.pending = pending
        try:
            answer = handler(self, inbound)
        except RefusedError as exc:
            pending.fail(exc)
            return
        if answer is not ANSWER_LATER:
            pending.resolve(answer)

    def handled_drain(self) -> None:
        """Called after the handlers of one drained batch ran: a subclass may send on what they
        gathered (one message for the whole drain)."""

    def settle(self, pendings: list[Pending[Inbound]], answer: Any, name: str) -> None:
        """Resolve each waiting request with its answer, or fail it with its refusal's status."""
        if not isinstance(answer, EdgeAnswers) or len(answer.answers) != len(pendings):
            log.error("%s: %s answered %r to a batch of %d", self.path, name, type(answer).__name__,
                      len(pendings))
            self.fail_all(pendings, TypeError(f"{name} did not answer with one answer per item"))
            return
        assert self.bridge is not None
        resolved = []
        for pending, value in zip(pendings, answer.answers):
            if not pending.expects_reply:
                continue
            if isinstance(value, Refusal):
                pending.fail(self.refusal_error(value, pending.item.route, name))
            else:
                resolved.append((pending, value))
        self.bridge.resolve_many(resolved)

    def refusal_error(self, refusal: Refusal, route: str, name: str) -> Exception:
        """The target's refusal as the edge answers it: the status of its kind, its reason and
        fields (an ``unavailable`` one with ``Retry-After``)."""
        return refusal.as_error(kind=route)

    @staticmethod
    def fail_all(pendings: list[Pending[Inbound]], exc: BaseException) -> None:
        for pending in pendings:
            pending.fail(exc)  # a no-op on accepted (202) items

    def receiveMsg_GetEdgeInfo(self, msg: GetEdgeInfo, sender: Any) -> EdgeInfo:
        return EdgeInfo(scheme=self.scheme, host=self.host, port=self.port,
                        incarnation=self.incarnation, batches_sent=self.batches_sent,
                        items_sent=self.items_sent)
